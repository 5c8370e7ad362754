"""Readable JSON forms of property values, for records and queries.

Identity uses the exact encoding of :mod:`prunelab.core.identity`; records keep
this readable projection so that slim nodes, frames and the CLI can show and
filter properties without the classes that made them.
"""

from __future__ import annotations

import dataclasses
import enum
import pathlib
from typing import Any

from .identity import class_name, encode

__all__ = ["to_display"]


def to_display(value: Any) -> Any:
    """Return a JSON-able projection of an encodable value."""
    if value is None or isinstance(value, (bool, int, float, str)) and not isinstance(value, enum.Enum):
        return value  # NaN and ±inf are written as JSON's NaN/Infinity tokens
    if isinstance(value, (list, tuple)):
        return [to_display(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_display(v) for k, v in value.items()}
    if isinstance(value, (set, frozenset)):
        return sorted((to_display(v) for v in value), key=repr)
    if isinstance(value, bytes):
        return {"bytes": value.hex()}
    if isinstance(value, pathlib.PurePath):
        return value.as_posix()
    if isinstance(value, enum.Enum):
        return f"{class_name(type(value))}.{value.name}"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: to_display(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return {"dataclass": class_name(type(value)), **fields}
    kind = type(value).__module__.split(".")[0]
    if kind == "numpy" and hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return to_display(value.item())
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return {"array": str(value.dtype), "shape": list(value.shape), "digest": encode(value)[-32:].hex()[:16]}
    return str(value)
