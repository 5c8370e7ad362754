"""Nodes (declared or stored states) and sets of them."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, overload

from .display import to_display
from .errors import UnknownNameError
from .recipe import Function, Recipe, fingerprint
from .seeding import derive_seed
from .state import bind_node

if TYPE_CHECKING:
    import pandas

    from .host import Host
    from .state import ExperimentState

__all__ = ["Node", "NodeSet"]

_WILDCARDS = set("*?[")


class Node:
    """One state of the experiment graph, at any stage of its life.

    A node's ``status`` is ``declared`` (applied, not run), ``running``,
    ``done``, ``failed``, ``skipped`` (an ancestor failed) or ``stale`` (stored,
    but its recipe's source changed since; never silently recomputed). Slim
    nodes read their record lazily from the index; :meth:`restore` loads the
    values.
    """

    __slots__ = ("experiment", "id", "parent_id", "stored_status", "run_status", "recipe_obj", "functions",
                 "values", "_tags", "_record", "_pending", "_state")

    def __init__(self, experiment: Host, node_id: str, parent_id: str | None, stored_status: str | None):
        self.experiment = experiment
        self.id = node_id
        self.parent_id = parent_id
        self.stored_status = stored_status
        self.run_status: str | None = None
        self.recipe_obj: Recipe | None = None
        self.functions: dict[str, Function] = {}
        self.values: dict[str, Any] | None = None  # the root's property values, when declared here
        self._tags: set[str] | None = None
        self._record: dict[str, Any] | None = None
        self._pending: dict[str, Any] | None = None
        self._state: ExperimentState | None = None

    # ------------------------------------------------------------- status
    @property
    def status(self) -> str:
        """One of declared, running, done, failed, skipped, stale."""
        if self.run_status in ("running", "skipped"):
            return self.run_status
        if self.stored_status is None:
            return "declared"
        if self.stored_status == "done" and self.recipe_obj is not None:
            stored = (self.record.get("recipe") or {}).get("fingerprint")
            current = fingerprint(type(self.recipe_obj))
            if stored and current and stored != current:
                return "stale"
        return self.stored_status

    @property
    def record(self) -> dict[str, Any]:
        """The state's record: stored when it is stored, else what is known in advance."""
        if self._record is None and self.stored_status is not None:
            self._record = self.experiment.storage.record(self.id) or {}
        if self._record is not None:
            return self._record
        return self._pending or {}

    def invalidate(self) -> None:
        """Forget the cached record (after a run changed it)."""
        self._record = None

    # --------------------------------------------------------- structure
    @property
    def parent(self) -> Node | None:
        """The parent node (None for a root)."""
        return None if self.parent_id is None else self.experiment.graph.node(self.parent_id)

    @property
    def children(self) -> NodeSet:
        """The child nodes, stored or declared."""
        return NodeSet(self.experiment.graph.children_of(self.id))

    @property
    def tags(self) -> frozenset[str]:
        """Every tag the state carries (the union over the contexts it was declared in)."""
        stored = self.experiment.graph.stored_tags().get(self.id, set())
        return frozenset(stored | (self._tags or set()))

    def add_tag_in_memory(self, tag: str) -> None:
        """Record a tag declared in this session (stored at the next run)."""
        if self._tags is None:
            self._tags = set()
        self._tags.add(tag)

    # --------------------------------------------------------------- data
    @property
    def properties(self) -> dict[str, Any]:
        """The state's properties (its root's identity)."""
        if self.values is not None:
            return dict(self.values)
        return self.experiment.graph.decode_properties(self.record)

    @property
    def lineage(self) -> dict[str, Any]:
        """Lineage fields, plus ``root_id`` and ``depth``."""
        record = self.record
        return {**record.get("lineage", {}), "root_id": record.get("root_id"), "depth": record.get("depth")}

    @property
    def recipe(self) -> dict[str, Any] | None:
        """The recipe that made this state: name, version and properties (None for a root)."""
        return self.record.get("recipe")

    @property
    def seed(self) -> int:
        """The seed its recipe runs with."""
        return derive_seed(self.id, "recipe")

    @property
    def depth(self) -> int:
        """Number of recipes between the root and this state."""
        known = self._record or self._pending  # a node declared here knows it without reading its stored record
        return int((known or self.record).get("depth", 0))

    @property
    def results(self) -> dict[str, Any]:
        """Function results by name (the version applied here, else the newest stored)."""
        return self.experiment.graph.results_of(self)

    # ------------------------------------------------------------- values
    def restore(self) -> ExperimentState:
        """Load the state's values (once) and return the state (``state.id`` and ``state.tags`` are the node's)."""
        if self._state is None:
            if self.stored_status != "done":
                raise UnknownNameError(
                    f"state {self.id[:12]} is {self.status}, so it has no stored values; run the experiment first."
                )
            self._state = bind_node(self.experiment.load(self), self.id, self.experiment.graph.tags_of(self))
        return self._state

    def deflate(self) -> Node:
        """Drop loaded values, keeping the slim node; return the node."""
        self._state = None
        return self

    def __repr__(self) -> str:
        recipe = (self.record.get("recipe") or {}).get("name", "root")
        tags = ",".join(sorted(self.tags))
        return f"<Node {self.id[:12]} {recipe} {self.status}{' [' + tags + ']' if tags else ''}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Node) and other.id == self.id and other.experiment is self.experiment

    def __hash__(self) -> int:
        return hash(self.id)


def _match_tags(tags: frozenset[str], pattern: str) -> bool:
    negate = pattern.startswith("!")
    pat = pattern[1:] if negate else pattern
    if _WILDCARDS.isdisjoint(pat):
        found = pat in tags
    else:
        found = any(fnmatch.fnmatchcase(t, pat) for t in tags)
    return found != negate


class NodeSet:
    """An ordered set of nodes with set algebra, graph walks and queries."""

    __slots__ = ("_nodes",)

    def __init__(self, nodes: Iterable[Node] = ()):
        seen: dict[str, Node] = {}
        for node in nodes:
            seen.setdefault(node.id, node)
        self._nodes = list(seen.values())

    def __len__(self) -> int:
        return len(self._nodes)

    def __iter__(self) -> Iterator[Node]:
        return iter(self._nodes)

    @overload
    def __getitem__(self, key: int) -> Node: ...

    @overload
    def __getitem__(self, key: slice) -> NodeSet: ...

    def __getitem__(self, key: int | slice) -> Node | NodeSet:
        if isinstance(key, slice):
            return NodeSet(self._nodes[key])
        return self._nodes[key]

    def __contains__(self, node: object) -> bool:
        return isinstance(node, Node) and any(n.id == node.id for n in self._nodes)

    def __and__(self, other: object) -> NodeSet:
        nodes = _operand(other)
        if nodes is None:
            return NotImplemented
        ids = {n.id for n in nodes}
        return NodeSet(n for n in self._nodes if n.id in ids)

    def __or__(self, other: object) -> NodeSet:
        nodes = _operand(other)
        if nodes is None:
            return NotImplemented
        return NodeSet([*self._nodes, *nodes])

    def __sub__(self, other: object) -> NodeSet:
        nodes = _operand(other)
        if nodes is None:
            return NotImplemented
        ids = {n.id for n in nodes}
        return NodeSet(n for n in self._nodes if n.id not in ids)

    def __repr__(self) -> str:
        return f"NodeSet({len(self)} nodes)"

    @property
    def ids(self) -> list[str]:
        """The node ids, in order."""
        return [n.id for n in self._nodes]

    def filter(self, *tag_patterns: str, **properties: Any) -> NodeSet:
        """Keep nodes whose tags match every pattern and whose fields equal ``properties``.

        Patterns are shell-style (``"lr:*"``); ``"!pattern"`` keeps nodes with no
        matching tag. A keyword matches a state property, a lineage field
        (``root_id``, ``depth`` and the fields recipes' ``LINEAGE`` records) or
        a property of the node's recipe, compared in their readable form; a
        keyword that names no field of any node in the set is an error listing
        the fields there are.
        """
        nodes = self._nodes
        if tag_patterns:
            stored = nodes[0].experiment.graph.stored_tags() if nodes else {}
            kept = []
            for node in nodes:
                tags = frozenset(stored.get(node.id, ())) | frozenset(node._tags or ())
                if all(_match_tags(tags, p) for p in tag_patterns):
                    kept.append(node)
            nodes = kept
        if properties and self._nodes:
            fields = {n.id: _fields(n) for n in nodes}  # of the nodes the tags kept; the rest only to name a typo
            if not set(properties) <= set().union(*fields.values()):
                _refuse_unknown(self._nodes, properties)
            wanted = {k: to_display(v) for k, v in properties.items()}
            nodes = [n for n in nodes if all(k in fields[n.id] and fields[n.id][k] == v for k, v in wanted.items())]
        return NodeSet(nodes)


    def where(self, predicate: Callable[[Node], bool]) -> NodeSet:
        """Keep nodes for which ``predicate(node)`` is true."""
        return NodeSet(n for n in self._nodes if predicate(n))

    def children(self) -> NodeSet:
        """Every child of a node in the set."""
        return NodeSet(c for n in self._nodes for c in n.children)

    def ancestors(self) -> NodeSet:
        """Every strict ancestor of a node in the set, nearest first."""
        out: list[Node] = []
        for node in self._nodes:
            parent = node.parent
            while parent is not None:
                out.append(parent)
                parent = parent.parent
        return NodeSet(out)

    def descendants(self) -> NodeSet:
        """Every strict descendant of a node in the set (breadth first)."""
        out: list[Node] = []
        frontier = list(self._nodes)
        while frontier:
            nxt = [c for n in frontier for c in n.experiment.graph.children_of(n.id)]
            out.extend(nxt)
            frontier = nxt
        return NodeSet(out)

    def in_run(self, k: int = -1) -> NodeSet:
        """Keep the nodes that run ``k`` declared (``-1``: the latest run)."""
        if not self._nodes:
            return NodeSet()
        declared = set(self._nodes[0].experiment.graph.run_nodes(k))
        return NodeSet(n for n in self._nodes if n.id in declared)

    def to_frame(self) -> pandas.DataFrame:
        """Return one row per node: id, status, tags, properties, lineage, recipe and scalar results."""
        import pandas as pd

        if not self._nodes:
            return pd.DataFrame(columns=["id", "parent_id", "status", "depth", "recipe", "tags"])
        return pd.DataFrame(self._nodes[0].experiment.graph.frame_rows(self._nodes))


def _fields(node: Node) -> dict[str, Any]:
    """The fields a node can be filtered on, in readable form: recipe properties, lineage, state properties."""
    record = node.record
    return {**((record.get("recipe") or {}).get("properties") or {}), **node.lineage,
            **(record.get("properties") or {})}


def _refuse_unknown(nodes: list[Node], names: dict[str, Any]) -> None:
    """Raise, listing the known fields, if a name in ``names`` is a field of none of ``nodes``."""
    known: set[str] = set().union(*(_fields(n) for n in nodes))
    unknown = sorted(set(names) - known)
    if unknown:
        raise UnknownNameError(
            f"no node of this set has the field(s) {', '.join(map(repr, unknown))}; filter on one of {sorted(known)} "
            "(state properties, lineage fields and recipe properties), or on tags by passing them as strings."
        )


def _operand(other: object) -> list[Node] | None:
    """The nodes of the other side of a set operation (a NodeSet, or a list, tuple or set of nodes); else None."""
    if isinstance(other, NodeSet):
        return other._nodes
    if isinstance(other, (list, tuple, set, frozenset)) and all(isinstance(n, Node) for n in other):
        return list(other)
    return None
