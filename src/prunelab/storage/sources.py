"""Where decoded tensors come from: the blobs of a store (verified as they are read), blobs in memory, or both.

A value file names each tensor by its blob digest, dtype and shape;
:func:`~prunelab.storage.codecs.decode_value` asks a source for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..core.errors import CorruptStateError

if TYPE_CHECKING:
    from .codecs import Blob, BlobSource
    from .store import Store

__all__ = ["LayeredSource", "MemorySource", "StoreSource"]


class StoreSource:
    """Blob source reading (and verifying) blobs from the store."""

    def __init__(self, store: Store):
        self.store = store

    def tensor(self, digest: str, dtype: str, shape: list[int]) -> Any:
        import math

        import torch

        kind = _torch_dtype(dtype)
        if not (isinstance(shape, list) and all(isinstance(n, int) and n >= 0 for n in shape)):
            raise CorruptStateError(f"a value file gives the tensor shape {shape!r:.60}; the file was altered.")
        expected = math.prod(shape) * kind.itemsize
        actual = self.store.blobs.size(digest)
        if actual != expected:  # checked before allocating: an altered shape cannot exhaust memory
            raise self.store.blobs.error(digest, f"holds {actual} bytes where its value file expects {expected}")
        tensor = torch.empty(shape, dtype=kind)
        flat = tensor.reshape(-1).view(torch.uint8).numpy()
        self.store.blobs.read(digest, into=flat)
        return tensor

    def raw(self, digest: str) -> bytes:
        return bytes(self.store.blobs.read(digest))


class MemorySource:
    """Blob source over blobs still in memory; every tensor is a private copy.

    ``shared`` is the same source without the copies, for loaders that copy
    what they are given (``nn.Module.load_state_dict``).
    """

    def __init__(self, blobs: dict[str, Blob], private: bool = True):
        self.blobs = blobs
        self.private = private

    @property
    def shared(self) -> MemorySource:
        return MemorySource(self.blobs, private=False)

    def tensor(self, digest: str, dtype: str, shape: list[int]) -> Any:
        import torch

        owner = self.blobs[digest].owner
        if isinstance(owner, torch.Tensor) and owner.dtype is _torch_dtype(dtype):
            view = owner if list(owner.shape) == shape else owner.reshape(shape)
            return view.clone() if self.private else view
        flat = torch.frombuffer(bytearray(self.blobs[digest].data), dtype=torch.uint8)
        return flat.view(_torch_dtype(dtype)).reshape(shape)

    def raw(self, digest: str) -> bytes:
        return bytes(self.blobs[digest].data)


class LayeredSource:
    """Blob source over blobs in memory (a checkpoint's packed ones) first, then another source (the store).

    A tensor from memory is checked against the size its spec gives, as the store's are.
    """

    def __init__(self, first: MemorySource, then: BlobSource):
        self.first = first
        self.then = then

    def tensor(self, digest: str, dtype: str, shape: list[int]) -> Any:
        import math

        import torch

        blob = self.first.blobs.get(digest)
        if blob is None:
            return self.then.tensor(digest, dtype, shape)
        kind = _torch_dtype(dtype)
        if not (isinstance(shape, list) and all(isinstance(n, int) and n >= 0 for n in shape)) or \
                math.prod(shape) * kind.itemsize != len(blob.data):
            raise CorruptStateError(f"a checkpoint gives the tensor shape {shape!r:.60} and dtype {dtype} to a blob of "
                                    f"{len(blob.data)} bytes; the file was altered.")
        return self.first.tensor(digest, dtype, shape) if blob.data else torch.empty(shape, dtype=kind)

    def raw(self, digest: str) -> bytes:
        return self.first.raw(digest) if digest in self.first.blobs else self.then.raw(digest)


_DTYPES: dict[str, Any] = {}


def _torch_dtype(name: str) -> Any:
    dtype = _DTYPES.get(name) if isinstance(name, str) else None
    if dtype is None:
        import torch

        dtype = getattr(torch, name, None) if isinstance(name, str) and name.isidentifier() else None
        if not isinstance(dtype, torch.dtype):
            raise CorruptStateError(f"unknown tensor dtype {name!r} in a value file; the file was altered.")
        _DTYPES[name] = dtype
    return dtype
