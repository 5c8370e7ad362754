"""Sets of nodes: ordered, with set algebra, graph walks, tag and field filters, and a frame of their records."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, overload

from .display import to_display
from .errors import UnknownNameError
from .nodes import Node

if TYPE_CHECKING:
    import pandas

__all__ = ["NodeSet", "match_tags"]

_WILDCARDS = set("*?[")


def match_tags(tags: frozenset[str], pattern: str) -> bool:
    """Whether ``tags`` match one tag pattern (shell-style; a leading ``!`` negates)."""
    negate = pattern.startswith("!")
    pat = pattern[1:] if negate else pattern
    if _WILDCARDS.isdisjoint(pat):
        found = pat in tags
    else:
        found = any(fnmatch.fnmatchcase(t, pat) for t in tags)
    return found != negate


class NodeSet:
    """An ordered set of nodes with set algebra, graph walks and queries.

    Parameters
    ----------
    nodes : iterable of Node, default=()
        The nodes, in order; a repeated id is kept once, at its first place.
    """

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

        Parameters
        ----------
        *tag_patterns : str
            Tag patterns every kept node must match (``"!pattern"``: must not match).
        **properties
            Field values every kept node must have.

        Returns
        -------
        NodeSet
            The kept nodes, in order.

        Raises
        ------
        UnknownNameError
            If a keyword names no field of any node in the set.
        """
        nodes = self._nodes
        if tag_patterns:
            stored = nodes[0].experiment.graph.stored_tags() if nodes else {}
            kept = []
            for node in nodes:
                tags = frozenset(stored.get(node.id, ())) | frozenset(node._tags or ())
                if all(match_tags(tags, p) for p in tag_patterns):
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
        """Keep nodes for which ``predicate(node)`` is true.

        Parameters
        ----------
        predicate : callable
            Takes a node and returns whether to keep it.

        Returns
        -------
        NodeSet
            The kept nodes, in order.
        """
        return NodeSet(n for n in self._nodes if predicate(n))

    def children(self) -> NodeSet:
        """Every child of a node in the set.

        Returns
        -------
        NodeSet
            The children, stored or declared, each once.
        """
        return NodeSet(c for n in self._nodes for c in n.children)

    def ancestors(self) -> NodeSet:
        """Every strict ancestor of a node in the set, nearest first.

        Returns
        -------
        NodeSet
            The ancestors, each once.
        """
        out: list[Node] = []
        for node in self._nodes:
            parent = node.parent
            while parent is not None:
                out.append(parent)
                parent = parent.parent
        return NodeSet(out)

    def descendants(self) -> NodeSet:
        """Every strict descendant of a node in the set (breadth first).

        Returns
        -------
        NodeSet
            The descendants, each once.
        """
        out: list[Node] = []
        frontier = list(self._nodes)
        while frontier:
            nxt = [c for n in frontier for c in n.experiment.graph.children_of(n.id)]
            out.extend(nxt)
            frontier = nxt
        return NodeSet(out)

    def in_run(self, k: int = -1) -> NodeSet:
        """Keep the nodes that run ``k`` declared (``-1``: the latest run).

        Parameters
        ----------
        k : int, default=-1
            The run, indexed as a list of the experiment's runs (0: the first).

        Returns
        -------
        NodeSet
            The kept nodes, in order (none if the experiment has no runs).

        Raises
        ------
        UnknownNameError
            If run ``k`` does not exist.
        """
        if not self._nodes:
            return NodeSet()
        declared = set(self._nodes[0].experiment.graph.run_nodes(k))
        return NodeSet(n for n in self._nodes if n.id in declared)

    def to_frame(self) -> pandas.DataFrame:
        """Return one row per node: id, status, tags, properties, lineage, recipe and scalar results.

        Returns
        -------
        pandas.DataFrame
            One row per node, in order; recipe properties are ``recipe.<name>`` columns, and the scalars of
            a dict result ``<result>.<key>`` columns.
        """
        import pandas as pd

        if not self._nodes:
            return pd.DataFrame(columns=["id", "parent_id", "status", "depth", "recipe", "tags"])
        return pd.DataFrame(self._nodes[0].experiment.graph.frame_rows(self._nodes))

    def series(self, name: str | None = None) -> pandas.DataFrame:
        """The series of every node in the set as one long frame (see :meth:`Node.series`).

        Parameters
        ----------
        name : str, optional
            The one series to read; None reads every series of each node.

        Returns
        -------
        pandas.DataFrame
            A row per logged value: ``node_id``, ``name``, ``step``, ``value``, ``source``, then the node's
            properties and lineage fields (``replicate``, ``technique``, ``treatment``, ``root_id`` …), to
            group curves by seed and treatment.
        """
        from .curves import set_series

        return set_series(self._nodes, name)


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
