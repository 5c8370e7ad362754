"""The graph of an experiment: every stored and declared node, and views of it."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from .errors import UnknownNameError
from .nodes import Node
from .nodeset import NodeSet
from .prereg import Prereg, mask
from .records import Status

if TYPE_CHECKING:
    from .host import Host
    from .recipe import Recipe

__all__ = ["Graph"]


class Graph:
    """All nodes of an experiment: stored ones (slim, from the index) and those declared now."""

    def __init__(self, experiment: Host):
        self.experiment = experiment
        self._nodes: dict[str, Node] = {}
        self._children: dict[str | None, list[str]] | None = None
        self._tags: dict[str, set[str]] | None = None
        self._result_keys: dict[str, set[str]] | None = None
        self._prereg: Prereg | None = None
        self.reload()

    # ---------------------------------------------------------- contents
    def reload(self) -> None:
        """Re-read the stored nodes from the index (declared nodes are kept)."""
        nodes = self._nodes
        for node_id, parent_id, status in self.experiment.storage.node_rows():
            node = nodes.get(node_id)
            if node is None:
                nodes[node_id] = self.experiment.node_class(self.experiment, node_id, parent_id, status)
            else:
                node.stored_status = status
                node.invalidate()
        self.invalidate()

    def invalidate(self) -> None:
        """Forget cached tags, results and children (after a write)."""
        self._children = None
        self._tags = None
        self._result_keys = None
        self._prereg = None

    @property
    def prereg(self) -> Prereg:
        """The experiment's registrations and active blinds (cached until the next write)."""
        if self._prereg is None:
            self._prereg = self.experiment.storage.prereg()
        return self._prereg

    def tags_of(self, node: Node) -> frozenset[str]:
        """A node's stored tags and those declared now."""
        return frozenset(self.stored_tags().get(node.id, ())) | frozenset(node._tags or ())

    def declare(self, node_id: str, parent_id: str | None, *, pending: dict[str, Any] | None = None,
                values: dict[str, Any] | None = None, recipe: Recipe | None = None) -> Node:
        """Return the node with this id (the same object for the same id), creating a declared one if it is new.

        ``pending`` is its record as known before it runs (what a retried
        failure starts from), ``values`` its property values and ``recipe``
        the recipe, as applied, that makes it; each given one is set.
        """
        node = self._nodes.get(node_id)
        if node is None:
            node = self.experiment.node_class(self.experiment, node_id, parent_id, None)
            self._nodes[node_id] = node
            if self._children is not None:
                self._children.setdefault(parent_id, []).append(node_id)
        if pending is not None:
            node._pending = pending
        if values is not None:
            node.values = values
        if recipe is not None:
            node.recipe_obj = recipe
        return node

    # ------------------------------------------------------------ statuses
    def set_stored_status(self, node: Node, status: str | None) -> None:
        """Record what the store says of a node now (``None``: not stored)."""
        node.stored_status = status

    def mark_running(self, node_ids: Iterable[str]) -> None:
        """Show these nodes as ``running`` until :meth:`refresh`."""
        for node_id in node_ids:
            self._nodes[node_id].run_status = Status.RUNNING

    def refresh(self, node_ids: Iterable[str], stored: dict[str, str]) -> None:
        """After a run: these nodes' stored statuses are ``stored`` (absent: not stored); their records are re-read."""
        for node_id in node_ids:
            node = self._nodes[node_id]
            node.stored_status = stored.get(node_id)
            node.run_status = None
            node.invalidate()
        self.invalidate()

    def mark_skipped(self, node_ids: Iterable[str]) -> None:
        """Show the nodes a run skipped (an ancestor failed) as ``skipped``, unless they are stored."""
        for node_id in node_ids:
            node = self._nodes.get(node_id)
            if node is not None and node.stored_status is None:
                node.run_status = Status.SKIPPED

    def forget(self, node_ids: Iterable[str]) -> None:
        """Drop nodes from the graph (after removal)."""
        for node_id in node_ids:
            self._nodes.pop(node_id, None)
        self.invalidate()

    @property
    def nodes(self) -> NodeSet:
        """Every node, stored or declared."""
        return NodeSet(self._nodes.values())

    def node(self, id_or_prefix: str) -> Node:
        """Return the node with this id or unique id prefix."""
        node = self._nodes.get(id_or_prefix)
        if node is not None:
            return node
        if not isinstance(id_or_prefix, str) or not id_or_prefix:
            raise UnknownNameError(f"a state id or id prefix must be a non-empty str, got {id_or_prefix!r}.")
        matches = [n for i, n in self._nodes.items() if i.startswith(id_or_prefix)]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise UnknownNameError(
                f"no state with id or prefix {id_or_prefix!r} in {self.experiment.directory}; "
                "`prunelab ls` lists the ids."
            )
        raise UnknownNameError(
            f"the prefix {id_or_prefix!r} matches {len(matches)} states ({', '.join(m.id[:12] for m in matches[:5])}"
            f"{', …' if len(matches) > 5 else ''}); give more characters."
        )

    def children_of(self, node_id: str) -> list[Node]:
        """Return the children of a node."""
        if self._children is None:
            children: dict[str | None, list[str]] = {}
            for node in self._nodes.values():
                children.setdefault(node.parent_id, []).append(node.id)
            self._children = children
        return [self._nodes[i] for i in self._children.get(node_id, [])]

    def roots(self) -> list[Node]:
        """Nodes without a parent in the graph."""
        return [n for n in self._nodes.values() if n.parent_id is None or n.parent_id not in self._nodes]

    def stored_tags(self) -> dict[str, set[str]]:
        """Stored tags per node id (cached)."""
        if self._tags is None:
            self._tags = self.experiment.storage.tags()
        return self._tags

    # ------------------------------------------------------------ records
    def decode_properties(self, record: dict[str, Any]) -> dict[str, Any]:
        """Return a record's (or a record's recipe's) property values, exact where it holds their specs."""
        specs = record.get("property_specs") or {}
        shown = record.get("properties") or {}
        storage = self.experiment.storage
        return {name: value if specs.get(name) is None
                else storage.decode(specs[name], owner=f"property {name!r}") for name, value in shown.items()}

    def results_of(self, node: Node) -> dict[str, Any]:
        """Decode a node's results: per name, the version declared on it, else the newest stored."""
        storage = self.experiment.storage
        records = storage.results(node.id)
        chosen: dict[str, dict[str, Any]] = {}
        for record in records.values():
            if shown(node, record, chosen.get(record["name"])):
                chosen[record["name"]] = record
        blinded = self.prereg.blind_patterns(self.tags_of(node)) if self.prereg.blinds else []
        out = {}
        for name, record in sorted(chosen.items()):
            value = storage.decode(record["value"], owner=f"result {name!r}")
            if record.get("blinded") and not blinded and not self.prereg.damaged:  # the blind was lifted: show all
                hidden = storage.withheld(node.id, name, record["version"])
                withheld = storage.decode(hidden["value"], owner=f"result {name!r}")
                value = withheld[""] if "" in withheld else {**value, **withheld}
            out[name] = mask(value, name, blinded)
        return out

    def result_keys(self) -> dict[str, set[str]]:
        """Stored result keys (``name@vN``) per node id (cached)."""
        if self._result_keys is None:
            self._result_keys = self.experiment.storage.result_keys()
        return self._result_keys

    # --------------------------------------------------------------- runs
    @property
    def runs(self) -> list[dict[str, Any]]:
        """Every run manifest, oldest first."""
        return self.experiment.storage.runs()

    def run_nodes(self, k: int) -> list[str]:
        """Return the ids run ``k`` declared (``-1``: the latest)."""
        runs = self.runs
        if not runs:
            return []
        try:
            return list(runs[k]["declared"])
        except IndexError:
            raise UnknownNameError(f"run {k} does not exist; this experiment has {len(runs)} run(s).") from None

    def frame_rows(self, nodes: list[Node]) -> list[dict[str, Any]]:
        """Rows for :meth:`NodeSet.to_frame`."""
        stored = self.experiment.storage.records([n.id for n in nodes if n.stored_status is not None])
        tags = self.stored_tags()
        rows = []
        for node in nodes:
            record = stored.get(node.id) or node.record
            recipe = record.get("recipe") or {}
            row: dict[str, Any] = {
                "id": node.id, "parent_id": node.parent_id, "status": node.status, "depth": record.get("depth"),
                "root_id": record.get("root_id"), "recipe": recipe.get("name"),
                "tags": ",".join(sorted(tags.get(node.id, set()) | (node._tags or set()))),
            }
            row.update(record.get("properties") or {})
            row.update(record.get("lineage") or {})
            row.update({f"recipe.{k}": v for k, v in (recipe.get("properties") or {}).items()})
            if node.stored_status == Status.DONE:
                for name, value in self.results_of(node).items():
                    if isinstance(value, dict):
                        row.update({f"{name}.{k}": v for k, v in value.items() if _is_scalar(v)})
                    elif _is_scalar(value):
                        row[name] = value
            rows.append(row)
        return rows

    # ----------------------------------------------------------- drawing
    def print(self, file: TextIO | None = None, *, nodes: NodeSet | None = None) -> None:
        """Print the tree as text: id prefix, depth, tags, recipe and status per node."""
        from .draw import text_tree

        print(text_tree(self, nodes), file=file or sys.stdout)

    def draw(self, path: str | Path | None = None, *, nodes: NodeSet | None = None,
             max_nodes: int | None = None) -> str | None:
        """Draw the graph to SVG/PNG/PDF (by suffix) through Graphviz, else matplotlib.

        With no ``path``, return the SVG text. Above ``max_nodes`` states
        (default :data:`prunelab.core.draw.MAX_NODES`) the graph is drawn
        summarised, one box per recipe path, with a warning saying so.
        """
        from .draw import MAX_NODES, draw

        return draw(self, path, nodes, max_nodes=MAX_NODES if max_nodes is None else max_nodes)

    def _repr_svg_(self) -> str | None:
        return self.draw()


def shown(node: Node, record: dict[str, Any], current: dict[str, Any] | None) -> bool:
    """Whether a node shows the result ``record`` rather than ``current``: its declared version, else the newest."""
    declared = node.functions.get(record["name"])
    if declared is not None:
        return bool(record["version"] == declared.version)
    return current is None or record["version"] > current["version"]


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))
