"""Codecs: how a state's stored attributes become data on disk, and back.

A value is encoded into a *spec*, a JSON tree of tagged lists, plus the *blobs*
it references (raw tensor and array bytes, content-addressed by their xxh3-128
digest). Nothing is pickled unless the experiment allows it:

========================  ===================================================
value                     spec
========================  ===================================================
None, bool, int, str      ``["json", v]``
float                     ``["json", v]``; NaN and ±inf ``["float", "nan"]``
list / tuple              ``["list", [...]]`` / ``["tuple", [...]]``
dict                      ``["dict", [[key spec, value spec], ...]]``
torch tensor              ``["tensor", digest, dtype, shape, device, requires_grad]``
numpy array / scalar      ``["ndarray", digest, dtype, shape]`` / ``["npscalar", dtype, v]``
bytes                     ``["bytes", digest]``
pathlib paths             ``["path", posix string]``
nn.Module, optimizer, …   ``["stateful", class name, state-dict spec]``
anything else             ``["pickle", digest]``, only with ``allow_pickle=True``
========================  ===================================================

Objects with ``state_dict()``/``load_state_dict()`` are stored as their state
dicts and loaded back into the object the state's ``initialize_state`` built
(structure comes from the properties, values from the store). Modules go
through :func:`prunelab.prune.load_pruned_state_dict`, which re-applies pruning
masks first. Support for torch and NumPy is installed when those libraries are
imported, as in :mod:`prunelab.core.identity`.
"""

from __future__ import annotations

import io
import math
import pathlib
import pickle
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import xxhash

from ..core.errors import CorruptStateError, StateDefinitionError
from ..core.lazy import LazyInstallers

__all__ = ["Blob", "Encoded", "encode_value", "decode_value", "digest", "BlobSource"]


def digest(data: bytes | memoryview) -> str:
    """Return the xxh3-128 hex digest that names a blob."""
    return xxhash.xxh3_128_hexdigest(data)



@dataclass
class Blob:
    """Bytes to store, named by their digest; ``owner`` keeps the buffer alive."""

    digest: str
    data: memoryview
    owner: Any = None


@dataclass
class Encoded:
    """An encoded value: its spec and the blobs the spec references."""

    spec: Any
    blobs: dict[str, Blob] = field(default_factory=dict)
    pickled: bool = False


class BlobSource(Protocol):
    """Where decoding reads blobs from (the store, or memory)."""

    def tensor(self, digest: str, dtype: str, shape: list[int]) -> Any:
        """Return a fresh, writable torch tensor holding the blob."""

    def raw(self, digest: str) -> bytes:
        """Return the blob's bytes."""


class _Context:
    def __init__(self, owner: str, allow_pickle: bool, allow_stateful: bool):
        self.owner = owner
        self.allow_pickle = allow_pickle
        self.allow_stateful = allow_stateful
        self.blobs: dict[str, Blob] = {}
        self.pickled = False

    def add_blob(self, data: memoryview, owner: Any) -> str:
        name = digest(data)
        if name not in self.blobs:
            self.blobs[name] = Blob(name, data, owner)
        return name


# Where a value sits inside an attribute, for error messages: a chain (parent, part), () at the top;
# a part is an item key or a text suffix. Built as tuples (cheap) and only formatted for an error.
_Path = tuple[Any, ...]


def _where(ctx: _Context, path: _Path) -> str:
    parts: list[str] = []
    while path:
        path, part, suffix = path
        parts.append(part if suffix else f"[{part!r}]")
    return ctx.owner + "".join(reversed(parts))


# Each codec: (predicate, encoder). Encoders take (value, path, ctx) and return a spec.
_Encoder = Callable[[Any, _Path, _Context], Any]
_CODECS: list[tuple[Callable[[Any], bool], _Encoder]] = []
_DECODERS: dict[str, Callable[..., Any]] = {}
_BY_TYPE: dict[type, _Encoder] = {}  # the codec of each type a codec matched (codecs are only ever added)
_LAZY = LazyInstallers()


def encode_value(value: Any, *, owner: str, allow_pickle: bool = False, allow_stateful: bool = True) -> Encoded:
    """Encode ``value`` into a spec and blobs.

    Parameters
    ----------
    value : Any
        The attribute's value.
    owner : str
        What the value is, for error messages (``"attribute 'model'"``).
    allow_pickle : bool, default=False
        Pickle values that no codec handles, instead of raising.
    allow_stateful : bool, default=True
        Accept objects stored through their state dicts (not for results).

    Raises
    ------
    StateDefinitionError
        If a value has no codec and pickling is not allowed; the message names
        the attribute and the type, and says what to do.
    """
    _LAZY.install_imported()
    ctx = _Context(owner, allow_pickle, allow_stateful)
    spec = _encode(value, (), ctx)
    return Encoded(spec, ctx.blobs, ctx.pickled)


_SCALARS = frozenset({type(None), bool, int, float, str})


def _scalar(value: None | bool | int | float | str) -> list[Any]:
    """The spec of a JSON scalar (NaN and infinities as text)."""
    return ["json", value] if type(value) is not float or math.isfinite(value) else ["float", repr(value)]


def _encode(value: Any, path: _Path, ctx: _Context) -> Any:
    encoder = _BY_TYPE.get(type(value))
    if encoder is not None:  # a tensor or array: its codec found once per type
        return encoder(value, path, ctx)
    if value is None or isinstance(value, (bool, int, str)):
        return ["json", value]
    if isinstance(value, float):
        return ["json", value] if math.isfinite(value) else ["float", repr(value)]
    if type(value) in (list, tuple):  # JSON scalars (losses, per-class figures, configs) are encoded in place
        return ["list" if type(value) is list else "tuple",
                [_scalar(v) if type(v) in _SCALARS else _encode(v, (path, i, False), ctx)
                 for i, v in enumerate(value)]]
    if isinstance(value, dict):  # OrderedDict (state dicts) too; loaded back as a dict
        return ["dict", [[_scalar(k) if type(k) in _SCALARS else _encode(k, path, ctx),
                          _scalar(v) if type(v) in _SCALARS else _encode(v, (path, k, False), ctx)]
                         for k, v in value.items()]]
    if isinstance(value, bytes):
        return ["bytes", ctx.add_blob(memoryview(value), value)]
    if isinstance(value, pathlib.PurePath):
        return ["path", value.as_posix()]
    for predicate, encoder in _CODECS:
        if predicate(value):
            _BY_TYPE[type(value)] = encoder  # the predicates test types: the same codec for every value of it
            return encoder(value, path, ctx)
    if ctx.allow_stateful and callable(getattr(value, "state_dict", None)) and callable(
        getattr(value, "load_state_dict", None)
    ):
        return ["stateful", type(value).__qualname__, _encode(value.state_dict(), (path, ".state_dict()", True), ctx)]
    if ctx.allow_pickle:
        ctx.pickled = True
        data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        return ["pickle", ctx.add_blob(memoryview(data), data)]
    where = _where(ctx, path)
    raise StateDefinitionError(
        f"{where} holds a {type(value).__module__}.{type(value).__qualname__}, which has no codec; "
        "declare the attribute in DERIVED_ATTRIBUTES if initialize_state can rebuild it, store it as "
        "tensors, arrays or JSON-able data, or create the experiment with allow_pickle=True."
    )


def decode_value(spec: Any, source: BlobSource, *, current: Any = None, owner: str, allow_pickle: bool = False) -> Any:
    """Decode a spec, loading state dicts into ``current`` where the spec says so.

    ``current`` is the value ``initialize_state`` built for this attribute (or
    ``None``); objects stored through their state dicts are loaded into it in
    place and returned.
    """
    _LAZY.install_imported()
    return _decode(spec, source, current, owner, allow_pickle)


def _decode(spec: Any, source: BlobSource, current: Any, owner: str, allow_pickle: bool) -> Any:
    tag = spec[0]
    if tag == "json":
        return spec[1]
    if tag == "float":
        return float(spec[1])
    if tag in ("list", "tuple"):  # JSON scalars (most items) are read in place: no call, no owner text
        items = [s[1] if s[0] == "json" else _decode(s, source, _item(current, i), f"{owner}[{i}]", allow_pickle)
                 for i, s in enumerate(spec[1])]
        return items if tag == "list" else tuple(items)
    if tag == "dict":
        out = {}
        for key_spec, value_spec in spec[1]:
            key = key_spec[1] if key_spec[0] == "json" else _decode(key_spec, source, None, owner, allow_pickle)
            out[key] = (value_spec[1] if value_spec[0] == "json" else
                        _decode(value_spec, source, _item(current, key), f"{owner}[{key!r}]", allow_pickle))
        return out
    if tag == "bytes":
        return source.raw(spec[1])
    if tag == "path":
        return pathlib.Path(spec[1])
    if tag == "stateful":
        copies = current is not None and any(predicate(current) for predicate, _ in _STATE_LOADERS)
        inner = getattr(source, "shared", source) if copies else source  # the loader copies: no private copy
        state = _decode(spec[2], inner, None, f"{owner}.state_dict()", allow_pickle)
        if current is None or type(current).__qualname__ != spec[1]:
            raise StateDefinitionError(
                f"{owner} was stored as the state dict of a {spec[1]}, but initialize_state built "
                f"{'nothing' if current is None else 'a ' + type(current).__qualname__} for it; build the "
                "object in initialize_state from the properties so its stored state can be loaded into it."
            )
        try:
            return _load_state_dict(current, state)
        except (RuntimeError, KeyError, ValueError) as err:
            raise StateDefinitionError(
                f"{owner}: the stored state dict does not fit the {spec[1]} initialize_state built ({err}); "
                "initialize_state must rebuild the same structure from the properties."
            ) from err
    if tag == "pickle":
        if not allow_pickle:
            raise CorruptStateError(
                f"{owner} is stored as a pickle, which this experiment does not allow; open it with "
                "allow_pickle=True only if you trust the directory (unpickling runs code)."
            )
        return pickle.load(io.BytesIO(source.raw(spec[1])))  # noqa: S301 - allowed explicitly by the user
    decoder = _DECODERS.get(tag)
    if decoder is None and _LAZY.install(_LIBRARY_OF.get(tag, "")):  # a tensor read before torch was imported
        decoder = _DECODERS.get(tag)
    if decoder is None:
        raise CorruptStateError(f"{owner} has an unknown value kind {tag!r}; it was written by a newer prunelab.")
    return decoder(spec, source)


def _item(container: Any, key: Any) -> Any:
    try:
        return container[key]
    except (TypeError, KeyError, IndexError):
        return None


def _load_state_dict(obj: Any, state: Any) -> Any:
    for predicate, loader in _STATE_LOADERS:
        if predicate(obj):
            loader(obj, state)
            return obj
    obj.load_state_dict(state)
    return obj


# The library whose installer decodes each lazily supported kind of value.
_LIBRARY_OF = {"tensor": "torch", "torchname": "torch", "ndarray": "numpy", "npscalar": "numpy"}
# Special loaders for objects whose plain load_state_dict is not enough (pruned modules).
_STATE_LOADERS: list[tuple[Callable[[Any], bool], Callable[[Any, Any], Any]]] = []

@_LAZY.register("numpy")
def _install_numpy() -> None:
    import numpy as np

    def encode_array(value: np.ndarray, path: _Path, ctx: _Context) -> Any:
        if value.dtype.hasobject:
            raise StateDefinitionError(
                f"{_where(ctx, path)} is a NumPy array of Python objects, which cannot be stored as data; "
                "use a numeric dtype or create the experiment with allow_pickle=True."
            )
        data = np.ascontiguousarray(value)
        raw = data.reshape(-1).view(np.uint8).data
        return ["ndarray", ctx.add_blob(raw, data), data.dtype.str, list(data.shape)]

    def decode_array(spec: Any, source: BlobSource) -> np.ndarray:
        array = np.frombuffer(bytearray(source.raw(spec[1])), dtype=np.dtype(spec[2]))
        return array.reshape(spec[3])

    _CODECS.append((lambda v: isinstance(v, np.ndarray), encode_array))
    _CODECS.append((lambda v: isinstance(v, np.generic), lambda v, p, c: ["npscalar", v.dtype.str, v.item()]))
    _DECODERS["ndarray"] = decode_array
    _DECODERS["npscalar"] = lambda spec, source: np.dtype(spec[1]).type(spec[2])


_RAW_VIEW: set[Any] = set()  # the torch dtypes NumPy has no view of (their bytes are viewed through uint8)
_DTYPE_NAMES: dict[Any, str] = {}  # a torch dtype's name in specs ("float32"), by dtype


@_LAZY.register("torch")
def _install_torch() -> None:
    import torch

    from ..prune.copying import load_pruned_state_dict

    def encode_tensor(value: torch.Tensor, path: _Path, ctx: _Context) -> Any:
        if value.layout != torch.strided or value.is_quantized:
            raise StateDefinitionError(
                f"{_where(ctx, path)} is a {value.layout} tensor; store it dense (.to_dense()) or as its parts."
            )
        requires_grad = value.requires_grad
        data = value.detach() if requires_grad else value
        on_cpu = data.is_cpu
        if not on_cpu:
            data = data.to("cpu")
        if not data.is_contiguous():
            data = data.contiguous()
        dtype = data.dtype
        try:  # NumPy's view of the bytes is the quick way; bfloat16 and the like have none
            raw = data.numpy().data.cast("B") if dtype not in _RAW_VIEW else None
        except (TypeError, RuntimeError):
            _RAW_VIEW.add(dtype)
            raw = None
        if raw is None:
            raw = data.reshape(-1).view(torch.uint8).numpy().data if data.numel() else memoryview(b"")
        name = ctx.add_blob(raw, data)
        return ["tensor", name, _DTYPE_NAMES.get(dtype) or _DTYPE_NAMES.setdefault(dtype, str(dtype).removeprefix("torch.")), list(data.shape),
                "cpu" if on_cpu else str(value.device), requires_grad]

    def decode_tensor(spec: Any, source: BlobSource) -> Any:
        tensor = source.tensor(spec[1], spec[2], spec[3])
        device = torch.device(spec[4])
        if device.type != "cpu" and _device_available(device):
            tensor = tensor.to(device)
        if spec[5]:
            tensor.requires_grad_(True)
        return tensor

    def is_module(obj: Any) -> bool:
        return isinstance(obj, torch.nn.Module)

    _CODECS.append((lambda v: isinstance(v, torch.Tensor), encode_tensor))
    _CODECS.append((lambda v: isinstance(v, (torch.dtype, torch.device)), lambda v, p, c: ["torchname", str(v)]))
    _DECODERS["tensor"] = decode_tensor
    _DECODERS["torchname"] = lambda spec, source: (
        getattr(torch, spec[1].removeprefix("torch.")) if spec[1].startswith("torch.") else torch.device(spec[1])
    )
    _STATE_LOADERS.append((is_module, load_pruned_state_dict))


def _device_available(device: Any) -> bool:
    import torch

    if device.type == "cuda":
        return torch.cuda.is_available() and (device.index or 0) < torch.cuda.device_count()
    return device.type == "mps" and torch.backends.mps.is_available()
