"""State directories: a record (``meta.json``) and a value file, published complete or not at all.

A state is published in one ``rename``: blobs are written first (each
atomically, under its digest), then the record and value file into a private
temporary directory, which the rename makes visible. A crash at any point
leaves only leftovers under ``tmp/`` (and perhaps unreferenced blobs) for gc.
Every read verifies: the record's own digest, then the value file against the
checksum the record holds (each blob is verified by :class:`~.blobs.Blobs`).
"""

from __future__ import annotations

import os
import shutil
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..core.errors import CorruptStateError
from ..core.records import Status, canonical_json
from ..core.schema import check_state_record
from .blobs import Blobs
from .codecs import Blob
from .files import VALUES_LIMIT, checksum, crash_point, fsync_dir, parse_json, read_file, write_file
from .layout import Layout
from .lock import Lock
from .seal import STATE_ADVICE, seal, unseal

__all__ = ["States"]


class States:
    """The ``states/`` folder of one experiment.

    Parameters
    ----------
    layout : Layout
        The directory's paths.
    lock : Lock
        The experiment lock, held around each rename.
    blobs : Blobs
        Where a state's tensors go, before its record.
    counters : Counter
        Where reads are counted (shared with the rest of the store).
    durable : bool
        fsync every file and folder written.
    """

    def __init__(self, layout: Layout, lock: Lock, blobs: Blobs, counters: Counter[str], durable: bool):
        self.layout = layout
        self.lock = lock
        self.blobs = blobs
        self.counters = counters
        self.durable = durable

    def publish(self, record: dict[str, Any], values: dict[str, Any] | None, blobs: dict[str, Blob],
                on_published: Callable[[bytes, bool], None], owned: Callable[[], bool] = lambda: True) -> bool:
        """Make a state visible, complete, in one rename.

        Parameters
        ----------
        record : dict
            The state's record (sealed here; ``values_checksum`` is added).
        values : dict, optional
            The value file's content (None for a failed state).
        blobs : dict of str to Blob
            The tensors the values refer to.
        on_published : callable
            ``on_published(record_bytes, new_dir)`` runs under the experiment
            lock right after the rename (the index update); ``new_dir`` is
            False when a failed record was replaced.
        owned : callable, optional
            Asked just before the rename: does this writer still hold the state's lease?

        Returns
        -------
        bool
            False when another writer published a done state first, or the
            lease was lost (ours is discarded).
        """
        node_id = record["id"]
        self.blobs.write(blobs)
        crash_point("blobs-written")
        tmp = self.layout.tmp(f"{node_id}.{os.getpid()}")
        try:
            os.mkdir(tmp)
        except FileNotFoundError:
            raise self.layout.vanished(tmp) from None
        renamed = False
        try:
            if values is not None:
                values_bytes = canonical_json(values)
                write_file(f"{tmp}/values.json", values_bytes, durable=self.durable)
                record = {**record, "values_checksum": checksum(values_bytes)}
            sealed = seal(record)
            write_file(f"{tmp}/meta.json", sealed, durable=self.durable)
            if self.durable:
                fsync_dir(tmp)
            crash_point("record-written")
            target = self.layout.state_dir(node_id)
            self.layout.ensure_dir(target.parent)
            crash_point("before-rename")
            if not owned():
                return False
            with self.lock.hold():
                new_dir = not os.path.lexists(target)
                if not new_dir:  # replacing a failed record: the count stays, so mark the write
                    self.lock.bump_generation()
                    if self.peek_status(target) == Status.DONE:
                        on_published(read_file(target / "meta.json"), False)
                        return False
                    self.layout.discard(target)
                os.rename(tmp, target)
                renamed = True
                if self.durable:
                    fsync_dir(target.parent)
                crash_point("after-rename")
                on_published(sealed, new_dir)
            return True
        finally:
            if not renamed:
                shutil.rmtree(tmp, ignore_errors=True)

    def status(self, node_id: str) -> str | None:
        """Return a state's stored status read from its record (None when not stored or unreadable)."""
        target = self.layout.state_dir(node_id)
        return self.peek_status(target) if os.path.lexists(target) else None

    def peek_status(self, target: Path) -> str | None:
        """The status in the record of the state directory ``target`` (None when it cannot be read)."""
        try:
            return self.read_record(target.name).get("status")
        except (OSError, CorruptStateError):
            return None

    def remove(self, node_id: str) -> bool:
        """Remove a state from view (its files are deleted by gc); return whether it was stored."""
        target = self.layout.state_dir(node_id)
        if not os.path.lexists(target):
            return False
        self.layout.discard(target)
        return True

    def read_record(self, node_id: str) -> dict[str, Any]:
        """Read and verify a state's record (its seal, then the type of every field readers use)."""
        path = self.layout.state_file(node_id, "meta.json")
        self.counters["records_read"] += 1
        return self.parse_record(read_file(path, state_ids=[node_id]), path, node_id)

    @staticmethod
    def parse_record(data: bytes, path: Path, node_id: str) -> dict[str, Any]:
        """Verify a state record's bytes: its seal, then its fields (see :mod:`prunelab.core.schema`)."""
        return check_state_record(unseal(data, path, [node_id]), path, node_id)

    def read_values(self, node_id: str, record: dict[str, Any]) -> dict[str, Any]:
        """Read a state's value file, verifying it against the record's checksum."""
        path = self.layout.state_file(node_id, "values.json")
        self.counters["values_read"] += 1
        data = read_file(path, VALUES_LIMIT, [node_id])
        if checksum(data) != record.get("values_checksum"):
            raise CorruptStateError(
                f"state {node_id[:12]}: {path} fails its checksum; other states are intact. {STATE_ADVICE}",
                str(path),
                [node_id],
            )
        values = parse_json(data, path, [node_id])
        if not isinstance(values, dict) or not all(isinstance(v, list) and v for v in values.values()):
            raise CorruptStateError(f"state {node_id[:12]}: {path} is not a value file prunelab wrote; the file "
                                    f"was altered. {STATE_ADVICE}", str(path), [node_id])
        return values
