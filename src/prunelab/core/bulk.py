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
    with paused():  # each record's parts are freed as soon as its fields are taken: no cycles to collect
        for key in storage.result_versions(name):
            sample = storage.result_sample(key)
            if sample is None:
                continue
            layout = _Layout(sample["value"], fields)
            for node_id, parts in storage.result_parts(key, layout.paths):
                node = wanted.get(node_id)
                if node is None or not shown(node, {"name": name, "version": parts[0]}, chosen.get(node_id)):
                    continue
                specs = layout.specs(parts)
                if specs is None:  # laid out otherwise than the sample: read whole
                    specs = _field_specs(storage.results(node_id)[key]["value"], fields)
                whole = parts[1] or (blinds and graph.prereg.blind_patterns(graph.tags_of(node)))
                chosen[node_id] = {"version": parts[0], "fields": None if whole else storage.decode(
                    ["dict", [[["json", f], spec] for f, spec in specs.items()]],  # the fields decoded at once
                    owner=f"result {name!r} of state {node_id[:12]}")}
        out = {node_id: kept["fields"] if kept["fields"] is not None
               else _picked(graph.results_of(wanted[node_id]).get(name), fields) for node_id, kept in chosen.items()}
    return out


class _Layout:
    """Where fields lie in the records of one result version, as JSON paths, learned from one of its records.

    A record's value spec nests dicts as ``["dict", [[key spec, value spec],
    ...]]``, so a field's place is a path of positions. The records of one
    function version are usually laid out alike; each record is checked
    against the sample on the way (the kinds, and every key, of the dicts the
    fields pass through, so a key added, missing or moved is seen), and one
    laid out otherwise is read whole.

    Parameters
    ----------
    spec : list
        The sample record's value spec.
    fields : sequence of str
        The fields read (``"a"``, ``"a.b"``).
    """

    def __init__(self, spec: Any, fields: Sequence[str]):
        checks: dict[str, Any] = {}
        self.found: dict[str, str] = {}  # field -> the path of its spec, for those the sample has
        for field in fields:
            path, node = "$.value", spec
            for key in field.split("."):
                checks[f"{path}[0]"] = node[0]
                if node[0] != "dict":
                    break
                entries = node[1]
                checks.update({f"{path}[1][{k}][0]": entry[0] for k, entry in enumerate(entries)})
                checks[f"{path}[1][{len(entries)}]"] = None  # no entry more
                place = next((k for k, entry in enumerate(entries) if entry[0] == ["json", key]), None)
                if place is None:
                    break
                path, node = f"{path}[1][{place}][1]", entries[place][1]
            else:
                self.found[field] = path
        self.expected = list(checks.values())
        self.paths = ["$.version", "$.blinded", *checks, *self.found.values()]

    def specs(self, parts: list[Any]) -> dict[str, Any] | None:
        """The fields' specs from a record's parts at :attr:`paths` (None: the record is laid out otherwise)."""
        checked = len(self.expected) + 2
        if parts[2:checked] != self.expected:
            return None
        return dict(zip(self.found, parts[checked:]))


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
