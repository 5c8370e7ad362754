"""Function results: one immutable sealed record per state, function name and version; blinded parts withheld."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..core.errors import CorruptStateError
from ..core.schema import check_result_record, is_id
from .blobs import Blobs
from .codecs import Blob
from .files import read_file, write_atomic
from .layout import Layout, real_folder
from .lock import Lock
from .seal import RESULT_ADVICE, seal, unseal

__all__ = ["Results"]


class Results:
    """The ``results/`` folders of the states of one experiment, and ``prereg/withheld/``.

    Parameters
    ----------
    layout : Layout
        The directory's paths.
    lock : Lock
        The experiment lock, held around each write.
    blobs : Blobs
        Where a result's tensors go.
    durable : bool
        fsync every file written.
    """

    def __init__(self, layout: Layout, lock: Lock, blobs: Blobs, durable: bool):
        self.layout = layout
        self.lock = lock
        self.blobs = blobs
        self.durable = durable

    @staticmethod
    def read_file(path: Path, node_id: str) -> dict[str, Any]:
        """Read and verify one result file (or withheld part): its seal, then its fields."""
        data = read_file(path, state_ids=[node_id])
        return check_result_record(unseal(data, path, [node_id], RESULT_ADVICE), path, node_id)

    def write(self, node_id: str, record: dict[str, Any], blobs: dict[str, Blob],
              on_written: Callable[[dict[str, Any]], None]) -> None:
        """Store one immutable function result (a second writer's copy is dropped).

        No generation bump: a result written but not indexed (a crash between
        the two) is found on disk by the next plan and indexed then.
        ``on_written`` receives what the file holds (ours, or the first writer's).
        """
        self.blobs.write(blobs)
        path = self.layout.result_path(node_id, record["name"], record["version"])
        sealed = seal(record)
        self.layout.state_file(node_id, "results")
        self.layout.ensure_dir(path.parent)
        with self.lock.hold():
            stored = self.read(node_id, record["name"], record["version"])
            if stored is None:  # absent, or damaged: ours replaces it
                write_atomic(path, sealed, durable=self.durable)
            on_written(record if stored is None else stored)  # the index holds what the file holds

    def read(self, node_id: str, name: str, version: int) -> dict[str, Any] | None:
        """Read and verify one result record; None when it is not stored or is damaged (it is then recomputed,
        and :meth:`write` replaces the damaged file)."""
        path = self.layout.result_path(node_id, name, version)
        try:
            self.layout.state_file(node_id, "results", path.name)
            return self.read_file(path, node_id)
        except (OSError, CorruptStateError):
            return None

    def read_all(self, node_id: str, errors: list[CorruptStateError] | None = None) -> list[dict[str, Any]]:
        """Read and verify every result record of a state.

        A damaged result raises, or with ``errors`` (a list) is added to it and
        skipped, so the state's other results are still read.
        """
        folder = self.layout.state_file(node_id, "results")
        if not real_folder(folder):
            return []
        out = []
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            if entry.name.startswith("."):
                continue  # a result being written
            try:
                out.append(self.read_file(Path(entry.path), node_id))
            except CorruptStateError as err:
                if errors is None:
                    raise
                errors.append(err)
        return out

    # ----------------------------------------------------------- withheld
    def write_withheld(self, node_id: str, record: dict[str, Any], blobs: dict[str, Blob]) -> None:
        """Store the blinded part of a result, out of every read path until unblinding."""
        self.blobs.write(blobs)
        path = self.layout.withheld_path(node_id, record["name"], record["version"])
        self.layout.ensure_dir(path.parent.parent)
        self.layout.ensure_dir(path.parent)
        if not os.path.lexists(path):
            write_atomic(path, seal(record), durable=self.durable)

    def read_withheld(self, node_id: str, name: str, version: int) -> dict[str, Any]:
        """Read and verify the withheld part of a result."""
        path = self.layout.withheld_path(node_id, name, version)
        if not (self.layout.real_dir(path.parent.parent) and real_folder(path.parent)):
            raise FileNotFoundError(errno.ENOENT, "no withheld result", str(path))
        return self.read_file(path, node_id)

    def iter_withheld(self, odd: list[str] | None = None) -> Iterator[tuple[str, Path]]:
        """Yield (state id, path) of every withheld result file (links and odd names go to ``odd``)."""
        folder = self.layout.withheld
        if not self.layout.real_dir(folder):
            return
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            if not (is_id(entry.name) and entry.is_dir(follow_symlinks=False)):
                if odd is not None:
                    odd.append(f"prereg/withheld/{entry.name}")
                continue
            for item in sorted(os.scandir(entry.path), key=lambda e: e.name):
                if item.is_file(follow_symlinks=False):
                    yield entry.name, Path(item.path)
                elif odd is not None:
                    odd.append(f"prereg/withheld/{entry.name}/{item.name}")
