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

A declared property (:func:`encode_property`) must also be storable in the
records every reader opens: its ints fit in 64 bits (``-2**63`` to ``2**64 - 1``,
so int64 and uint64 values work) and its strings, dict keys and paths are UTF-8
text (no lone surrogates). Anything else is refused when it is declared, not
when ``run()`` writes its record.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import inspect
import math
import pathlib
import struct
import textwrap
import types
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from typing import Any

from .errors import UnhashableValueError
from .lazy import LazyInstallers

__all__ = ["SCHEME", "encode", "register", "register_lazy", "class_name", "root_id", "child_id", "fingerprint"]

#: Version of the encoding. Part of every id.
SCHEME = 1

_Encoder = Callable[[Any, str], bytes]
_ENCODERS: dict[type, _Encoder] = {}
_LAZY = LazyInstallers()
_CANONICAL_NAN = struct.pack(">d", math.nan)
#: The ints a declared property may hold: what int64 and uint64 hold together.
INT_MIN, INT_MAX = -(2**63), 2**64 - 1
# Set while a property is declared: values must then also be storable (see the module docstring).
_DECLARING: ContextVar[bool] = ContextVar("prunelab_declaring", default=False)


class _PathError(Exception):
    """Internal: carries the path of an unencodable value (and why, for a type we encode) up to the caller."""

    def __init__(self, path: str, value: Any, reason: str = ""):
        super().__init__(path)
        self.path = path
        self.value = value
        self.reason = reason


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

    Parameters
    ----------
    value : object
        A str, number, bool, None, bytes, list, tuple, dict with str keys, set, Path, Enum,
        dataclass, array or tensor, nested as deep as needed.

    Returns
    -------
    bytes
        The same bytes for the same value, whatever the order of a dict's keys or a set's items.

    Raises
    ------
    UnhashableValueError
        If ``value`` (or something inside it) has no encoding; the message names
        the path to it, e.g. ``schedule[2].fn``.
    """
    try:
        return _encode(value, "")
    except _PathError as err:
        raise UnhashableValueError(_describe(err.path, err.value, err.reason)) from None


def _describe(path: str, value: Any, reason: str = "") -> str:
    where = f"'{printable(path)}'" if path else "value"
    if reason:
        return f"{where} is {reason}."
    is_function = isinstance(value, (types.FunctionType, types.BuiltinFunctionType, types.MethodType))
    kind = "function" if is_function else type(value).__qualname__
    if callable(value) and not isinstance(value, type):
        hint = "pass its name (str) and look it up inside run(), or describe it with a dataclass"
    else:
        hint = ("use a str, number, bool, None, bytes, list, tuple, dict with str keys, set, Path, Enum, "
                "dataclass, array or tensor")
    return f"{where} is a {kind} ({shown(value, 60)}), which has no identity encoding; {hint}."


def printable(text: str) -> str:
    """Return ``text`` with lone surrogates written as escapes, so that it can be printed and stored."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def shown(value: Any, width: int) -> str:
    """Return ``repr(value)`` cut to ``width`` characters; an int longer than that is shown by its size."""
    if isinstance(value, int) and value.bit_length() > 3 * width:  # repr fails beyond 4300 digits
        return f"<int of {value.bit_length()} bits>"
    return f"{value!r:.{width}}"


def surrogate_at(text: str) -> int | None:
    """Return the index of the first lone surrogate in ``text`` (None for UTF-8-encodable text)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        return err.start
    return None


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
    if not INT_MIN <= value <= INT_MAX and _DECLARING.get():
        raise _PathError(path, value, f"an int ({shown(value, 30)}) outside the 64-bit range (-2**63 to "
                         "2**64 - 1) that records store; pass it as a str (and convert it inside run())")
    length = (value.bit_length() + 8) // 8
    return frame(b"I", value.to_bytes(length, "big", signed=True))


@register(float)
def _encode_float(value: float, path: str) -> bytes:
    return frame(b"F", _CANONICAL_NAN if math.isnan(value) else struct.pack(">d", value))


@register(str)
def _encode_str(value: str, path: str) -> bytes:
    if _DECLARING.get():
        _check_text(value, path, "a str")
    return frame(b"S", value.encode("utf-8", "surrogatepass"))


def _check_text(text: str, path: str, kind: str) -> None:
    """Refuse text that has no UTF-8 encoding (a lone surrogate, e.g. from ``os.fsdecode``)."""
    index = surrogate_at(text)
    if index is not None:
        raise _PathError(path, text, f"{kind} holding a lone surrogate ({text[index]!a} at index {index}), which "
                         "is not UTF-8 text and cannot be stored; pass it as bytes (e.g. "
                         "text.encode('utf-8', 'surrogateescape')) or as a str without surrogates")


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
        items = sorted(_encode(v, f"{path}{{{shown(v, 30)}}}") for v in value)
        return frame(tag, b"".join(items))

    return encoder


register(set)(_encode_unordered(b"E"))
register(frozenset)(_encode_unordered(b"Z"))


def encode_mapping(value: Mapping[str, Any], path: str) -> bytes:
    """Encode a mapping with string keys, order-free."""
    items = []
    for key, item in value.items():
        if not isinstance(key, str):
            raise _PathError(f"{path}[{shown(key, 60)}]" if path else shown(key, 60), key)
        sub = f"{path}.{key}" if path else key
        if _DECLARING.get():
            _check_text(key, sub, "a dict key")
        items.append(_encode_str(key, sub) + _encode(item, sub))
    return frame(b"D", b"".join(sorted(items)))


register(dict)(encode_mapping)


@register(pathlib.PurePath)
def _encode_path(value: pathlib.PurePath, path: str) -> bytes:
    text = value.as_posix()
    _check_text(text, path, f"a {type(value).__qualname__}")  # never encodable: no id ever had one
    return frame(b"P", text.encode("utf-8"))


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


def encode_property(owner: str, name: str, value: Any, *, kind: str = "property") -> bytes:
    """Encode one declared property (or other recorded ``kind`` of value), naming ``owner`` and its path on failure.

    Unlike :func:`encode`, it also refuses values that records cannot store
    (ints beyond 64 bits, text that is not UTF-8; see the module docstring).
    """
    token = _DECLARING.set(True)
    try:
        return _encode(value, name)
    except _PathError as err:
        raise UnhashableValueError(f"{owner} {kind} {_describe(err.path, err.value, err.reason)}") from None
    finally:
        _DECLARING.reset(token)


_FINGERPRINTS: dict[object, str | None] = {}


def fingerprint(obj: object) -> str | None:
    """Return a digest of the source of a class or function (None if unavailable).

    Only the object's own source is covered, not the helpers it calls: bump the
    recipe's ``VERSION`` (or the function's ``version``) when those change.
    """
    if obj not in _FINGERPRINTS:
        try:
            source = inspect.getsource(obj)  # type: ignore[arg-type]
        except (OSError, TypeError):
            _FINGERPRINTS[obj] = None
        else:
            _FINGERPRINTS[obj] = hashlib.sha256(textwrap.dedent(source).encode()).hexdigest()[:16]
    return _FINGERPRINTS[obj]
