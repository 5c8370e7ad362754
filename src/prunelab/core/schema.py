"""Shape checks of sealed files: a record whose seal holds may still not be one prunelab wrote.

A seal (see :func:`prunelab.storage.seal.seal`) detects accidental damage; a
crafted file can carry a valid seal over fields of the wrong type. Every sealed
file is checked here before any field is used, so such a file is a
:class:`CorruptStateError` naming it and the field, never a crash somewhere
later. Only what readers rely on is checked; unknown fields are allowed (newer
prunelab versions may add some).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import CorruptStateError
from .records import Status

__all__ = ["check_state_record", "check_result_record", "check_partial", "check_log_entry", "is_id", "STATUSES"]

#: The statuses a stored state record may have.
STATUSES = (Status.DONE, Status.FAILED)
_HEX = re.compile(r"[0-9a-f]{32}")
_Check = Callable[[Any], bool]


def is_id(value: Any) -> bool:
    """Whether ``value`` is a 32-hex-digit name (a state id, blob digest or environment digest)."""
    return isinstance(value, str) and _HEX.fullmatch(value) is not None


def _optional(check: _Check) -> _Check:
    return lambda v: v is None or check(v)


def _list_of(check: _Check) -> _Check:
    return lambda v: isinstance(v, list) and all(check(x) for x in v)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


def _is_dict(value: Any) -> bool:
    return isinstance(value, dict)


def _is_spec(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and isinstance(value[0], str)


_RECIPE: dict[str, tuple[_Check, bool]] = {
    "name": (_is_str, True), "version": (_is_int, True), "properties": (_is_dict, True),
    "property_specs": (_optional(_is_dict), False), "options": (_optional(_is_dict), False),
    "fingerprint": (_optional(_is_str), False), "module": (_optional(_is_str), False),
    "qualname": (_optional(_is_str), False),
}
_STATE: dict[str, tuple[_Check, bool]] = {
    "id": (is_id, True), "parent_id": (_optional(is_id), True), "root_id": (_optional(is_id), False),
    "status": (lambda v: v in STATUSES, True), "depth": (lambda v: _is_int(v) and v >= 0, False),
    "state_class": (_optional(_is_str), False), "properties": (_optional(_is_dict), False),
    "property_specs": (_optional(_is_dict), False), "lineage": (_optional(_is_dict), False),
    "blobs": (_list_of(is_id), False), "error": (_optional(_is_str), False), "seed": (_optional(_is_int), False),
    "threads": (_optional(_is_int), False), "wall_s": (_optional(_is_number), False),
    "started": (_optional(_is_number), False), "environment": (_optional(is_id), False),
    "prereg": (_list_of(_is_str), False), "values_checksum": (_optional(_is_str), False),
    "worker": (_optional(_is_str), False), "devices": (_list_of(_is_str), False),
    "series": (is_id, False), "resumed": (_list_of(_is_int), False),
}
_RESULT: dict[str, tuple[_Check, bool]] = {
    "name": (_is_str, True), "version": (_is_int, True), "node_id": (is_id, True), "value": (_is_spec, True),
    "blobs": (_list_of(is_id), False), "blinded": (_list_of(_is_str), False),
    "fingerprint": (_optional(_is_str), False), "module": (_optional(_is_str), False),
    "qualname": (_optional(_is_str), False), "environment": (_optional(is_id), False),
    "prereg": (_list_of(_is_str), False), "wall_s": (_optional(_is_number), False), "series": (is_id, False),
    "options": (_optional(_is_dict), False),
}
_PARTIAL: dict[str, tuple[_Check, bool]] = {
    "id": (is_id, True), "step": (lambda v: _is_int(v) and v >= 0, True), "at": (_is_number, True),
    "values": (lambda v: _is_dict(v) and all(_is_spec(x) for x in v.values()), True),
    "objects": (lambda v: _is_dict(v) and all(_is_spec(x) for x in v.values()), True),
    "generators": (_is_spec, True), "series": (_optional(is_id), True), "blobs": (_list_of(is_id), True),
    "fingerprint": (_optional(_is_str), False), "threads": (_optional(_is_int), False),
    "deterministic": (lambda v: isinstance(v, bool), False), "worker": (_optional(_is_str), False),
    "resumed": (_list_of(_is_int), False), "sequence": (lambda v: _is_int(v) and v >= 1, True),
    "packed": (_list_of(lambda v: isinstance(v, list) and len(v) == 3 and is_id(v[0]) and _is_int(v[1]) and v[1] >= 0
                        and _is_int(v[2]) and v[2] >= 0), True),
}


def _tag_entry(value: Any) -> bool:
    return (isinstance(value, list) and len(value) == 3 and value[0] in ("+", "-") and is_id(value[1])
            and isinstance(value[2], str))


_LOGS: dict[str, dict[str, tuple[_Check, bool]]] = {
    "tags": {"entries": (_list_of(_tag_entry), True)},
    "runs": {"declared": (_list_of(is_id), True), "started": (_optional(_is_number), False)},
    "prereg": {"kind": (lambda v: v in ("registration", "blind", "unblind"), True),
               "nodes": (_optional(_list_of(_is_str)), False), "metrics": (_optional(_list_of(_is_str)), False),
               "hypotheses": (_optional(_list_of(_is_str)), False), "formula": (_optional(_is_str), False),
               "alpha": (_optional(_is_number), False), "created": (_optional(_is_number), False),
               "late_nodes": (_optional(_list_of(_is_str)), False), "name": (_optional(_is_str), False)},
}


def _check(record: Any, fields: dict[str, tuple[_Check, bool]], path: Path | str, what: str,
           state_ids: list[str]) -> dict[str, Any]:
    if not isinstance(record, dict):
        raise CorruptStateError(f"{path} holds a {type(record).__name__}, not a {what}; the file was altered or "
                                "is not from prunelab.", str(path), state_ids)
    for name, (check, required) in fields.items():
        if name not in record:
            if required:
                raise CorruptStateError(f"{path}: this {what} has no {name!r} field; the file was altered or is "
                                        "not from prunelab.", str(path), state_ids)
            continue
        if not check(record[name]):
            raise CorruptStateError(f"{path}: field {name!r} of this {what} holds {record[name]!r:.60}, which is "
                                    "not what prunelab writes there; the file was altered.", str(path), state_ids)
    return record


def _of_state(record: dict[str, Any], field: str, path: Path | str, node_id: str, what: str) -> dict[str, Any]:
    """``record`` if its ``field`` names ``node_id``, the state whose folder holds it; else raise."""
    if record[field] != node_id:
        raise CorruptStateError(f"{path} holds {what} of {record[field][:12]}, not of {node_id[:12]} whose folder "
                                "it is in; the file was moved or altered.", str(path), [node_id])
    return record


def check_state_record(record: Any, path: Path | str, node_id: str) -> dict[str, Any]:
    """Return ``record`` if it is a well-formed state record of ``node_id``, else raise naming the field."""
    checked = _of_state(_check(record, _STATE, path, "state record", [node_id]), "id", path, node_id, "the record")
    if checked.get("recipe") is not None:
        _check(checked["recipe"], _RECIPE, path, "recipe description", [node_id])
    return checked


def check_result_record(record: Any, path: Path | str, node_id: str) -> dict[str, Any]:
    """Return ``record`` if it is a well-formed function result of ``node_id``, else raise naming the field."""
    return _of_state(_check(record, _RESULT, path, "function result", [node_id]), "node_id", path, node_id,
                     "a result")


def check_partial(record: Any, path: Path | str, node_id: str) -> dict[str, Any]:
    """Return ``record`` if it is a well-formed checkpoint (partial) of ``node_id``, else raise naming the field."""
    return _of_state(_check(record, _PARTIAL, path, "checkpoint", [node_id]), "id", path, node_id, "a checkpoint")


def check_log_entry(kind: str, entry: Any, path: Path | str) -> dict[str, Any]:
    """Return ``entry`` if it is a well-formed entry of the ``kind`` log (tags, runs, prereg), else raise."""
    return _check(entry, _LOGS.get(kind, {}), path, f"{kind} log entry", [])
