"""Reading the records and results of many states at once: one query each, instead of one per state.

What :meth:`~prunelab.core.graph.Graph.results_of` and
:attr:`~prunelab.core.nodes.Node.record` give state by state, for analyses
over populations (a frame of 100,000 outcome states).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from .graph import shown
from .heap import paused
from .prereg import BLINDED
from .records import Status

if TYPE_CHECKING:
    from .graph import Graph
    from .nodes import Node

__all__ = ["load_records", "result_fields"]


def load_records(graph: Graph, nodes: Iterable[Node]) -> None:
    """Read the stored records of many nodes at once (those not read yet), instead of one query each.

    Parameters
    ----------
    graph : Graph
        The experiment's graph.
    nodes : iterable of Node
        The nodes whose :attr:`~prunelab.core.nodes.Node.record` is read now.
    """
    missing = [n for n in nodes if n._record is None and n.stored_status is not None]
    with paused():  # thousands of records decoded in a row, none of them garbage
        stored = graph.experiment.storage.records([n.id for n in missing])
    for node in missing:
        node._record = stored.get(node.id) or {}


def result_fields(graph: Graph, nodes: Iterable[Node], name: str, fields: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Some fields of the result ``name`` of many stored states, read in one query: node id → field → value.

    Each node's result is the one :meth:`Graph.results_of` shows (the version
    declared on the node, else the newest stored), and a field is what
    that result holds there: a key of the result (a dict), or ``"a.b"``
    the key ``b`` of its dict ``a``. A field the result lacks is left out,
    and so is a node without the result. Only the fields asked for are
    decoded, so what a result holds besides (a confusion matrix,
    predictions) costs nothing. Where blinding is in force, a node's result
    is read through ``results_of``, and a field inside a blinded part of
    it is :data:`~prunelab.core.prereg.BLINDED`.

    Parameters
    ----------
    graph : Graph
        The experiment's graph.
    nodes : iterable of Node
        The states to read (those not stored as done are left out).
    name : str
        The function's name.
    fields : sequence of str
        The fields to read, e.g. ``["test_accuracy", "test.per_class_accuracy"]``.

    Returns
    -------
    dict
        Node id → field → decoded value.
    """
    wanted = {n.id: n for n in nodes if n.stored_status == Status.DONE}
    chosen: dict[str, dict[str, Any]] = {}  # per node: the version shown, and its fields (None: read it whole)
    storage, blinds = graph.experiment.storage, graph.prereg.blinds
    with paused():  # each record is freed as soon as its fields are taken: no cycles to collect
        for node_id, record in storage.results_named(name):
            node = wanted.get(node_id)
            if node is None or not shown(node, record, chosen.get(node_id)):
                continue
            whole = record.get("blinded") or (blinds and graph.prereg.blind_patterns(graph.tags_of(node)))
            specs = _field_specs(record["value"], fields)
            chosen[node_id] = {"version": record["version"], "fields": None if whole else storage.decode(
                ["dict", [[["json", f], spec] for f, spec in specs.items()]],  # the fields decoded at once
                owner=f"result {name!r} of state {node_id[:12]}")}
        out = {node_id: kept["fields"] if kept["fields"] is not None
               else _picked(graph.results_of(wanted[node_id]).get(name), fields) for node_id, kept in chosen.items()}
    return out


_MISSING = object()


def _field_specs(spec: Any, fields: Sequence[str]) -> dict[str, Any]:
    """The value specs of ``fields`` (``"a"``, ``"a.b"``) inside a result's spec, those it has."""
    found = {field: _follow(spec, field, _spec_child) for field in fields}
    return {field: value for field, value in found.items() if value is not _MISSING}


def _picked(value: Any, fields: Sequence[str]) -> dict[str, Any]:
    """``fields`` of a decoded result value, those it has (BLINDED where a part on the way is)."""
    found = {field: _follow(value, field, _value_child) for field in fields}
    return {field: value for field, value in found.items() if value is not _MISSING}


def _follow(tree: Any, field: str, child: Callable[[Any, str], Any]) -> Any:
    """Follow the keys of ``field`` down ``tree``, ``child`` giving each step (or _MISSING)."""
    for key in field.split("."):
        tree = child(tree, key)
        if tree is _MISSING:
            break
    return tree


def _spec_child(spec: Any, key: str) -> Any:
    if not (isinstance(spec, list) and spec and spec[0] == "dict"):
        return _MISSING
    return next((v for k, v in spec[1] if k == ["json", key]), _MISSING)


def _value_child(value: Any, key: str) -> Any:
    if isinstance(value, str) and value == BLINDED:
        return BLINDED
    return value[key] if isinstance(value, dict) and key in value else _MISSING
