"""Partials: the newest checkpoint of each state being computed (``partials/<id>.json``).

A checkpoint is written as a state is: its blobs first (content-addressed, so
a tensor unchanged since the last checkpoint, or shared with the parent, is
not written again), then its sealed record, atomically replacing the
previous one. A crash at any point leaves the previous checkpoint whole (and
perhaps blobs that gc collects). Partials are not states: no listing, query
or index reads them; ``gc`` removes those of done states.
"""

from __future__ import annotations

import contextlib
import os
import stat
import time
from dataclasses import dataclass
from typing import Any

from ..core.errors import CorruptStateError
from ..core.schema import check_partial, is_id
from .blobs import Blobs
from .codecs import Blob
from .files import crash_point, read_file, write_atomic
from .layout import Layout
from .seal import seal, unseal

__all__ = ["Partials", "PartialInfo"]

_ADVICE = "The state is computed from its beginning instead; `prunelab gc` removes the file once it is done."


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
        Where a checkpoint's tensors go, before its record.
    durable : bool
        fsync every file written.
    """

    def __init__(self, layout: Layout, blobs: Blobs, durable: bool):
        self.layout = layout
        self.blobs = blobs
        self.durable = durable

    def write(self, record: dict[str, Any], blobs: dict[str, Blob]) -> None:
        """Store a checkpoint, replacing the state's previous one atomically.

        Parameters
        ----------
        record : dict
            The checkpoint (``id``, ``step``, ``at``, ``values``, ``objects``, ``generators``, ``series``,
            ``blobs`` …); sealed here.
        blobs : dict of str to Blob
            Every blob it references that may not be stored yet.
        """
        self.blobs.write(blobs)
        crash_point("partial-blobs-written")
        path = self.layout.partial_path(record["id"])
        self.layout.ensure_dir(self.layout.partials)
        write_atomic(path, seal(record), durable=self.durable)
        crash_point("partial-written")

    def read(self, node_id: str) -> dict[str, Any] | None:
        """The state's newest checkpoint, verified (None when it has none).

        Raises
        ------
        CorruptStateError
            If the file is damaged or is not a checkpoint of this state.
        """
        path = self.layout.partial_path(node_id)
        if not self.layout.real_dir(self.layout.partials) or not os.path.lexists(path):
            return None
        return check_partial(unseal(read_file(path, state_ids=[node_id]), path, [node_id], _ADVICE), path, node_id)

    def remove(self, node_id: str) -> bool:
        """Delete the state's checkpoint; return whether there was one."""
        try:
            os.unlink(self.layout.partial_path(node_id))
        except FileNotFoundError:
            return False
        return True

    def entries(self, odd: list[str] | None = None) -> list[tuple[str, os.DirEntry[str]]]:
        """Every checkpoint file, by state id (work in progress left out; anything else goes to ``odd``)."""
        try:
            listing = sorted(os.scandir(self.layout.partials), key=lambda e: e.name)
        except FileNotFoundError:
            return []
        out = []
        for entry in listing:
            node_id = entry.name.removesuffix(".json")
            if entry.name.startswith("."):
                continue
            if entry.name.endswith(".json") and is_id(node_id) and stat.S_ISREG(entry.stat(follow_symlinks=False).st_mode):
                out.append((node_id, entry))
            elif odd is not None:
                odd.append(f"partials/{entry.name}")
        return out

    def listing(self) -> list[PartialInfo]:
        """What each readable checkpoint holds (node, step, when, where), oldest first; damaged ones left out."""
        out = []
        for node_id, _ in self.entries():
            with contextlib.suppress(OSError, CorruptStateError):
                record = self.read(node_id)
                if record is not None:
                    out.append(PartialInfo(node_id, record["step"], record["at"], record.get("worker")))
        return sorted(out, key=lambda p: p.at)
