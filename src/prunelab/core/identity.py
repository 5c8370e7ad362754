"""Content addressing: the canonical encoding of property values and state ids.

An id is known before anything runs:

* root: ``H(scheme, "root", state class name, {property: value})``
* child: ``H(scheme, "recipe", parent id, recipe name, recipe VERSION, {property: value})``

``H`` is SHA-256 over :func:`encode`, truncated to 32 hex characters.

The encoding is explicit bytes, never ``str``, ``repr`` or pickle: each value is
a one-byte type tag, a length and a payload. Floats are IEEE-754 bits (every NaN
is one canonical NaN), dict items are sorted by their encoded key, sets by their
encoded items. NumPy scalars are normalised to the Python scalar of the same kind,
so ``np.float64(0.1)`` and ``0.1`` share ids, while ``1``, ``1.0``, ``True`` and
``"1"`` all differ. Arrays and tensors are encoded as dtype, shape and a SHA-256
digest of their bytes. Support for NumPy and torch types is installed only when
those libraries are imported (:func:`register_lazy`).

Changing the encoding changes ids: bump :data:`SCHEME` on purpose, and update the
golden ids in ``tests/core/test_identity_golden.py``.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import math
import pathlib
import struct
import types
from collections.abc import Callable, Mapping
from typing import Any

from .errors import UnhashableValueError
from .lazy import LazyInstallers

__all__ = ["SCHEME", "encode", "register", "register_lazy", "class_name", "root_id", "child_id"]

#: Version of the encoding. Part of every id.
SCHEME = 1

_Encoder = Callable[[Any, str], bytes]
_ENCODERS: dict[type, _Encoder] = {}
_LAZY = LazyInstallers()
_CANONICAL_NAN = struct.pack(">d", math.nan)


class _PathError(Exception):
    """Internal: carries the path of an unencodable value up to the caller."""

    def __init__(self, path: str, value: Any):
        super().__init__(path)
        self.path = path
        self.value = value


def register(cls: type) -> Callable[[_Encoder], _Encoder]:
    """Register an encoder for instances of ``cls`` (subclasses included).

    The encoder receives the value and its path (for error messages) and returns
    its complete encoding, tag byte included; use :func:`frame` to build it.
    """

    def decorator(func: _Encoder) -> _Encoder:
        _ENCODERS[cls] = func
        return func

    return decorator


def register_lazy(module: str) -> Callable[[Callable[[], None]], Callable[[], None]]:
    """Register a function that installs encoders once ``module`` is imported."""
    return _LAZY.register(module)


def frame(tag: bytes, payload: bytes) -> bytes:
    """Return ``tag + len(payload) + payload``, the unit of the encoding."""
    return tag + struct.pack(">Q", len(payload)) + payload


def class_name(cls: type) -> str:
    """Return the name a class is known by: its ``NAME`` attribute, else ``__qualname__``."""
    name = cls.__dict__.get("NAME") or getattr(cls, "NAME", None)
    return name if isinstance(name, str) and name else cls.__qualname__


def encode(value: Any) -> bytes:
    """Return the canonical byte encoding of ``value``.

    Raises
    ------
    UnhashableValueError
        If ``value`` (or something inside it) has no encoding; the message names
        the path to it, e.g. ``schedule[2].fn``.
    """
    try:
        return _encode(value, "")
    except _PathError as err:
        raise UnhashableValueError(_describe(err.path, err.value)) from None


def _describe(path: str, value: Any) -> str:
    is_function = isinstance(value, (types.FunctionType, types.BuiltinFunctionType, types.MethodType))
    kind = "function" if is_function else type(value).__qualname__
    where = f"'{path}'" if path else "value"
    if callable(value) and not isinstance(value, type):
        hint = "pass its name (str) and look it up inside run(), or describe it with a dataclass"
    else:
        hint = ("use a str, number, bool, None, bytes, list, tuple, dict with str keys, set, Path, Enum, "
                "dataclass, array or tensor")
    return f"{where} is a {kind} ({value!r:.60}), which has no identity encoding; {hint}."


def _encode(value: Any, path: str) -> bytes:
    cls = type(value)
    encoder = _ENCODERS.get(cls)
    if encoder is None:
        encoder = _find_encoder(value)
        if encoder is None:
            raise _PathError(path, value)
    return encoder(value, path)


def _find_encoder(value: Any) -> _Encoder | None:
    _LAZY.install_imported()
    if isinstance(value, enum.Enum):  # before the MRO: an IntEnum is also an int
        return _ENCODERS[enum.Enum]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _encode_dataclass
    for cls in type(value).__mro__:
        if cls in _ENCODERS:
            return _ENCODERS[cls]
    return None


@register(type(None))
def _encode_none(value: None, path: str) -> bytes:
    return frame(b"N", b"")


@register(bool)
def _encode_bool(value: bool, path: str) -> bytes:
    return frame(b"B", b"\x01" if value else b"\x00")


@register(int)
def _encode_int(value: int, path: str) -> bytes:
    length = (value.bit_length() + 8) // 8
    return frame(b"I", value.to_bytes(length, "big", signed=True))


@register(float)
def _encode_float(value: float, path: str) -> bytes:
    return frame(b"F", _CANONICAL_NAN if math.isnan(value) else struct.pack(">d", value))


@register(str)
def _encode_str(value: str, path: str) -> bytes:
    return frame(b"S", value.encode("utf-8", "surrogatepass"))


@register(bytes)
def _encode_bytes(value: bytes, path: str) -> bytes:
    return frame(b"Y", value)


def _encode_sequence(tag: bytes) -> _Encoder:
    def encoder(value: Any, path: str) -> bytes:
        return frame(tag, b"".join(_encode(v, f"{path}[{i}]") for i, v in enumerate(value)))

    return encoder


register(list)(_encode_sequence(b"L"))
register(tuple)(_encode_sequence(b"T"))


def _encode_unordered(tag: bytes) -> _Encoder:
    def encoder(value: Any, path: str) -> bytes:
        items = sorted(_encode(v, f"{path}{{{v!r:.30}}}") for v in value)
        return frame(tag, b"".join(items))

    return encoder


register(set)(_encode_unordered(b"E"))
register(frozenset)(_encode_unordered(b"Z"))


def encode_mapping(value: Mapping[str, Any], path: str) -> bytes:
    """Encode a mapping with string keys, order-free."""
    items = []
    for key, item in value.items():
        if not isinstance(key, str):
            raise _PathError(f"{path}[{key!r}]" if path else repr(key), key)
        sub = f"{path}.{key}" if path else key
        items.append(_encode_str(key, sub) + _encode(item, sub))
    return frame(b"D", b"".join(sorted(items)))


register(dict)(encode_mapping)


@register(pathlib.PurePath)
def _encode_path(value: pathlib.PurePath, path: str) -> bytes:
    return frame(b"P", value.as_posix().encode("utf-8"))


@register(enum.Enum)
def _encode_enum(value: enum.Enum, path: str) -> bytes:
    return frame(b"M", _encode_str(class_name(type(value)), path) + _encode(value.value, f"{path}.value"))


def _encode_dataclass(value: Any, path: str) -> bytes:
    fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    return frame(b"C", _encode_str(class_name(type(value)), path) + encode_mapping(fields, path))


def digest_bytes(data: bytes | memoryview) -> bytes:
    """Return the SHA-256 digest of raw bytes (used for arrays and tensors)."""
    return hashlib.sha256(data).digest()


@register_lazy("numpy")
def _install_numpy() -> None:
    import numpy as np

    @register(np.ndarray)
    def _encode_array(value: np.ndarray, path: str) -> bytes:
        if value.dtype.hasobject:
            raise _PathError(path, value)
        data = np.ascontiguousarray(value)
        head = _encode_str(data.dtype.str, path) + _encode(tuple(int(s) for s in data.shape), path)
        return frame(b"A", head + digest_bytes(data.view(np.uint8).reshape(-1).data if data.size else b""))

    register(np.bool_)(lambda v, p: _encode_bool(bool(v), p))
    register(np.integer)(lambda v, p: _encode_int(int(v), p))
    register(np.floating)(lambda v, p: _encode_float(float(v), p))
    register(np.str_)(lambda v, p: _encode_str(str(v), p))
    register(np.bytes_)(lambda v, p: _encode_bytes(bytes(v), p))


@register_lazy("torch")
def _install_torch() -> None:
    import torch

    @register(torch.Tensor)
    def _encode_tensor(value: torch.Tensor, path: str) -> bytes:
        data = value.detach().cpu().contiguous()
        raw: Any = data.reshape(-1).view(torch.uint8).numpy() if data.numel() else b""
        head = _encode_str(str(data.dtype), path) + _encode(tuple(data.shape), path)
        return frame(b"X", head + digest_bytes(raw))

    register(torch.dtype)(lambda v, p: frame(b"G", str(v).encode()))
    register(torch.device)(lambda v, p: frame(b"V", str(v).encode()))


def _hash(parts: list[Any]) -> str:
    return hashlib.sha256(encode(["prunelab", SCHEME, *parts])).hexdigest()[:32]


def root_id(state_class_name: str, properties: Mapping[str, Any]) -> str:
    """Return the id of a root state."""
    return _hash(["root", state_class_name, dict(properties)])


def child_id(parent_id: str, recipe_name: str, version: int, properties: Mapping[str, Any]) -> str:
    """Return the id of the state a recipe makes from its parent."""
    return _hash(["recipe", parent_id, recipe_name, version, dict(properties)])


def encode_property(owner: str, name: str, value: Any) -> bytes:
    """Encode one property, naming ``owner`` and the property path on failure."""
    try:
        return _encode(value, name)
    except _PathError as err:
        raise UnhashableValueError(f"{owner} property {_describe(err.path, err.value)}") from None
