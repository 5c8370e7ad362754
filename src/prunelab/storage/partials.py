"""Partials: the newest checkpoint of each state being computed (``partials/<id>.<slot>.ckpt``).

A state has two slots, 0 and 1. A checkpoint is written in place over the
slot that does not hold the newest one, and its record carries a sequence
number one past the newest: a crash at any point leaves the newest
checkpoint whole in the other slot, and readers take the whole checkpoint
with the highest number. (Overwriting a file whose pages are cached costs a
fraction of creating one, and spares ext4 the writeback a replacing rename
forces.) A slot holds::

    b"prunelab-checkpoint 1\n" | u64 record length | sealed record | packed blobs

and is whole when its record's seal holds and every packed blob matches its
digest, up to the file's end; a slot a crash left half-written is not, and
readers pass it over for the other. The record names its blobs by digest,
content-addressed like a state's: one in ``blobs/`` (shared with the parent,
as the run's first checkpoint finds, or unchanged since the last checkpoint)
is referenced and costs nothing; the others (what changed since) are packed
after the record. A blob packed in one checkpoint and unchanged at the next
moves to ``blobs/``, so it is written once more and never again. ``gc`` keeps
every blob a slot names. Partials are not states: no listing,
query or index reads them; ``gc`` removes those of done states.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from ..core.errors import CorruptStateError
from ..core.schema import check_partial
from .blobs import Blobs
from .codecs import Blob, digest
from .files import RECORD_LIMIT, crash_point, digest_words, open_regular, write_in_place
from .layout import Layout
from .seal import seal, unseal

__all__ = ["Partials", "PartialInfo"]

_ADVICE = "The state is computed from its beginning instead; `prunelab gc` removes the file once it is done."
_MAGIC = b"prunelab-checkpoint 1\n"
_HEAD = len(_MAGIC) + 8
_NAME = re.compile(r"^([0-9a-f]{32})\.([01])\.ckpt$")
_SLOTS = (0, 1)


@dataclass(frozen=True)
class PartialInfo:
    """One stored checkpoint, as ``prunelab status`` lists it."""

    node_id: str
    step: int
    at: float
    worker: str | None

    @property
    def age_s(self) -> float:
        """Seconds since it was written."""
        return max(0.0, time.time() - self.at)


class Partials:
    """The ``partials/`` folder of one experiment.

    Parameters
    ----------
    layout : Layout
        The directory's paths.
    blobs : Blobs
        Where a checkpoint's tensors go when they are not packed.
    durable : bool
        fsync every file written.
    """

    def __init__(self, layout: Layout, blobs: Blobs, durable: bool):
        self.layout = layout
        self.blobs = blobs
        self.durable = durable
        # per state whose checkpoint this process wrote or read: its slot, its sequence, the blobs it packed and
        # those in blobs/ it names (gc keeps those while a slot names them: they need no second look)
        self._newest: dict[str, tuple[int, int, set[str], set[str]]] = {}

    def write(self, record: dict[str, Any], blobs: dict[str, Blob], in_store: dict[str, int] | None = None) -> None:
        """Store a checkpoint; it supersedes the state's previous one, which stays whole until it is written.

        Parameters
        ----------
        record : dict
            The checkpoint (``id``, ``step``, ``at``, ``values``, ``objects``, ``generators``, ``series`` …);
            its ``sequence``, ``blobs`` (those in ``blobs/``) and ``packed`` (those in the slot) are set here,
            and it is sealed.
        blobs : dict of str to Blob
            The blobs it references, with their bytes.
        in_store : dict of str to int, optional
            The other blobs it references, by digest, with their sizes: ones stored in ``blobs/`` already
            (by a publish before this write), checked there.

        Raises
        ------
        CorruptStateError
            If a blob of ``in_store`` is not stored whole.
        """
        node_id = record["id"]
        first = node_id not in self._newest
        newest = self._guess(node_id) if first else self._newest[node_id]
        stored: list[str] = []
        moved: dict[str, Blob] = {}
        packed: list[list[Any]] = []  # [digest, offset, size]
        chunks, offset = [], 0
        for name, size in (in_store or {}).items():
            if not self.blobs.present(name, size):
                raise CorruptStateError(f"blob {name} of the checkpoint of state {node_id[:12]} is not stored in "
                                        f"{self.layout.blob_path(name)}; it was removed since it was published. "
                                        "Run again: the state is computed from its last whole checkpoint.",
                                        str(self.layout.blob_path(name)), [node_id])
            stored.append(name)
        for name, blob in sorted(blobs.items()):
            # A blob new since the last checkpoint is a tensor that changed: packed without looking in blobs/
            # (the first checkpoint of a run looks, for what it shares with the parent).
            if name in newest[3] or (first and self.blobs.present(name, len(blob.data))):
                stored.append(name)
            elif name in newest[2]:  # unchanged since the last checkpoint: stored once, referenced from now on
                moved[name] = blob
                stored.append(name)
            else:
                packed.append([name, offset, len(blob.data)])
                chunks.append(blob.data)
                offset += len(blob.data)
        self.blobs.write(moved)
        crash_point("partial-blobs-written")
        slot, sequence = 1 - newest[0], newest[1] + 1
        header = seal({**record, "sequence": sequence, "blobs": sorted(stored), "packed": packed})
        self.layout.ensure_dir(self.layout.partials)
        write_in_place(self.layout.partial_path(node_id, slot), [_MAGIC, struct.pack("<Q", len(header)), header,
                                                                 *chunks], durable=self.durable)
        self._newest[node_id] = (slot, sequence, {str(name) for name, _, _ in packed}, set(stored))
        crash_point("partial-written")

    def _guess(self, node_id: str) -> tuple[int, int, set[str], set[str]]:
        """Where a first write in this process goes: over the slot with the lower sequence (or none)."""
        sequences = {slot: -1 for slot in _SLOTS}
        for slot in _SLOTS:
            with contextlib.suppress(OSError, CorruptStateError):
                found = self._slot(node_id, slot, whole=False)
                if found is not None:
                    sequences[slot] = found[0]["sequence"]
        newest = max(_SLOTS, key=lambda s: sequences[s])
        return newest, max(0, sequences[newest]), set(), set()

    def read(self, node_id: str) -> dict[str, Any] | None:
        """The record of the state's newest whole checkpoint (None when it has none).

        Raises
        ------
        CorruptStateError
            If every slot is damaged or holds no checkpoint of this state.
        """
        found = self._read(node_id)
        return None if found is None else found[0]

    def read_packed(self, node_id: str) -> tuple[dict[str, Any], dict[str, bytes]] | None:
        """The state's newest whole checkpoint and its packed blobs (by digest, verified); None when it has none.

        Raises
        ------
        CorruptStateError
            If every slot is damaged (a packed blob that fails its digest included) or is not of this state.
        """
        found = self._read(node_id)
        if found is None:
            return None
        record, blobs, slot = found
        self._newest[node_id] = (slot, record["sequence"], set(blobs), set(record["blobs"]))
        return record, blobs

    def _read(self, node_id: str) -> tuple[dict[str, Any], dict[str, bytes], int] | None:
        found, error = [], None
        for slot in _SLOTS:
            try:
                got = self._slot(node_id, slot)
            except CorruptStateError as err:
                error = err
                continue
            if got is not None:
                found.append((got[0]["sequence"], slot, got))
        if not found:
            if error is not None:
                raise error
            return None
        _, slot, (record, blobs) = max(found)
        return record, blobs, slot

    def named_blobs(self, node_id: str) -> set[str]:
        """The blobs in ``blobs/`` that either slot's record names (what gc keeps).

        A slot whose record cannot be read names every 32-hex word in its first
        bytes (the record's place), so a damaged checkpoint loses nothing to gc.
        """
        names: set[str] = set()
        for slot in _SLOTS:
            try:
                found = self._slot(node_id, slot, whole=False)
                names.update([] if found is None else found[0]["blobs"])
            except (OSError, CorruptStateError):
                with contextlib.suppress(OSError, CorruptStateError), \
                        self._open(self.layout.partial_path(node_id, slot), node_id) as handle:
                    names.update(digest_words(handle.read(_HEAD + RECORD_LIMIT)))
        return names

    def _slot(self, node_id: str, slot: int, whole: bool = True) -> tuple[dict[str, Any], dict[str, bytes]] | None:
        """One slot's record and packed blobs, verified (None when the slot is empty); ``whole=False``: the record."""
        path = self.layout.partial_path(node_id, slot)
        try:
            handle = self._open(path, node_id)
        except FileNotFoundError:
            return None
        with handle:
            size = os.fstat(handle.fileno()).st_size
            head = handle.read(_HEAD)
            length = struct.unpack("<Q", head[len(_MAGIC):])[0] if len(head) == _HEAD else -1
            if not head.startswith(_MAGIC) or not 0 < length <= min(RECORD_LIMIT, size - _HEAD):
                raise self._damaged(path, node_id, "does not begin with a checkpoint's header")
            record = check_partial(unseal(handle.read(length), Path(path), [node_id], _ADVICE), path, node_id)
            if not whole:
                return record, {}
            data = memoryview(handle.read())
        out, end = {}, 0
        for name, offset, size in record["packed"]:
            blob = data[offset:offset + size]
            if offset != end or len(blob) != size or digest(blob) != name:
                raise self._damaged(path, node_id, f"holds a packed blob {name} that fails its checksum")
            out[name], end = bytes(blob), offset + size
        if end != len(data):
            raise self._damaged(path, node_id, "has bytes after its packed blobs")
        return record, out

    @staticmethod
    def _open(path: str, node_id: str) -> BinaryIO:
        """Open a slot for reading; never through a link, nor anything but a regular file (without blocking)."""
        return os.fdopen(open_regular(path, [node_id])[0], "rb")

    @staticmethod
    def _damaged(path: str, node_id: str, what: str) -> CorruptStateError:
        return CorruptStateError(f"{path} {what}; it was altered or cut short. {_ADVICE}", path, [node_id])

    def remove(self, node_id: str) -> bool:
        """Delete the state's checkpoints; return whether there was one."""
        self._newest.pop(node_id, None)
        removed = False
        for slot in _SLOTS:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.layout.partial_path(node_id, slot))
                removed = True
        return removed

    def entries(self, odd: list[str] | None = None) -> list[tuple[str, os.DirEntry[str]]]:
        """Every checkpoint slot's file as (state id, entry), by state; anything else goes to ``odd``."""
        if not self.layout.real_dir(self.layout.partials):
            return []
        try:
            listing = list(os.scandir(self.layout.partials))
        except FileNotFoundError:
            return []
        out = []
        for entry in listing:
            match = _NAME.match(entry.name)
            if match and stat.S_ISREG(entry.stat(follow_symlinks=False).st_mode):
                out.append((match[1], entry))
            elif odd is not None:
                odd.append(f"partials/{entry.name}")
        return sorted(out, key=lambda e: e[1].name)

    def listing(self) -> list[PartialInfo]:
        """What each readable checkpoint holds (node, step, when, where), oldest first; damaged ones left out."""
        out = []
        for node_id in sorted({node_id for node_id, _ in self.entries()}):
            with contextlib.suppress(OSError, CorruptStateError):
                record = self.read(node_id)
                if record is not None:
                    out.append(PartialInfo(node_id, record["step"], record["at"], record.get("worker")))
        return sorted(out, key=lambda p: p.at)
