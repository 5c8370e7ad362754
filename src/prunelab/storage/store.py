"""The experiment directory, the truth of an experiment: one :class:`Store` composes its parts.

Its layout and paths are :mod:`.layout`'s; blobs, state directories, function
results and the logs each have a module (:mod:`.blobs`, :mod:`.states`,
:mod:`.results`, :mod:`.logs`), and sealed files :mod:`.seal`. The store holds
the parts, the experiment lock and ``experiment.json``.
"""

from __future__ import annotations

import contextlib
import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..core.errors import CorruptStateError, ExperimentFormatError
from ..core.records import Status, canonical_json
from .blobs import Blobs
from .codecs import Blob
from .files import read_json, write_atomic
from .layout import FORMAT_VERSION, LAYOUT, Layout
from .lock import Lock
from .logs import Logs
from .partials import Partials
from .results import Results
from .states import States

__all__ = ["Store", "FORMAT_VERSION", "LAYOUT"]


class Store:
    """Reads and writes one experiment directory.

    Parameters
    ----------
    root : Path or str
        The experiment directory.
    durable : bool, default=False
        fsync files and directories on every write (power-loss safety; slower).

    Attributes
    ----------
    layout : Layout
        Every path of the directory.
    blobs : Blobs
        Tensor bytes by digest.
    states : States
        State records and value files.
    results : Results
        Function results and their withheld (blinded) parts.
    logs : Logs
        Tags, runs, registrations and environments.
    partials : Partials
        The newest checkpoint of each state being computed.
    counters : Counter
        What was read and written, for benchmarks.
    """

    def __init__(self, root: Path | str, *, durable: bool = False):
        self.layout = Layout(root)
        self.root = self.layout.root
        self.durable = durable
        self.counters: Counter[str] = Counter()
        self._lock = Lock(self.layout, durable)
        self.blobs = Blobs(self.layout, self.counters, durable)
        self.states = States(self.layout, self._lock, self.blobs, self.counters, durable)
        self.results = Results(self.layout, self._lock, self.blobs, durable)
        self.logs = Logs(self.layout, self._lock, durable)
        self.partials = Partials(self.layout, self.blobs, durable)

    def publish_state(self, record: dict[str, Any], values: dict[str, Any] | None, blobs: dict[str, Blob],
                      on_published: Callable[[bytes, bool], None], owned: Callable[[], bool] = lambda: True) -> bool:
        """Publish a state (see :meth:`States.publish`, whose parameters these are); a done one's checkpoint goes.

        Returns
        -------
        bool
            False when another writer published a done state first, or the lease was lost.
        """
        published = self.states.publish(record, values, blobs, on_published, owned)
        if published and record.get("status") == Status.DONE:
            self.partials.remove(record["id"])  # the state holds all of it now (gc removes any left by a crash)
        return published

    def lock(self) -> contextlib.AbstractContextManager[None]:
        """Hold the experiment lock (re-entrant within this process); see :meth:`Lock.hold`."""
        return self._lock.hold()

    def generation(self) -> int:
        """Return the store's write generation (0 when never written)."""
        return self._lock.generation()

    def bump_generation(self) -> int:
        """Advance the write generation (call under the lock, before the write it covers)."""
        return self._lock.bump_generation()

    def forget_caches(self) -> None:
        """Forget which blobs were verified and which folders exist (after gc or a repair changed the files)."""
        self.blobs.forget()
        self.layout.forget()

    # ------------------------------------------------------ experiment.json
    def create(self, info: dict[str, Any]) -> None:
        """Create the directory layout and ``experiment.json`` (written once; call under the lock)."""
        self.layout.create_folders()
        if not os.path.lexists(self.layout.info):
            write_atomic(self.layout.info, canonical_json({"format": FORMAT_VERSION, **info}), durable=self.durable)

    def read_info(self) -> dict[str, Any]:
        """Read ``experiment.json``, refusing a directory that is not an experiment or is newer."""
        path = self.layout.info
        if not self.root.is_dir():
            raise ExperimentFormatError(f"{self.root} does not exist; pass the directory an experiment was run in.")
        if not os.path.lexists(path):
            raise ExperimentFormatError(
                f"{self.root} is not a prunelab experiment (it has no experiment.json); pass the directory "
                "given to pl.Experiment(...)."
            )
        self.layout.check()
        try:
            info: dict[str, Any] = read_json(path)
        except CorruptStateError as err:
            raise CorruptStateError(f"{err} It names the experiment's state class and format: `prunelab reindex "
                                    f"{self.root}` writes it again from the state records.", str(path)) from None
        version = info.get("format") if isinstance(info, dict) else None
        if not isinstance(version, int) or isinstance(version, bool) or not isinstance(info.get("state_class"), str):
            raise CorruptStateError(f"{path} has no format version or state class; it was altered. `prunelab "
                                    f"reindex {self.root}` writes it again from the state records.", str(path))
        if version > FORMAT_VERSION:
            raise ExperimentFormatError(
                f"{self.root} was written in format {version} by a newer prunelab; this prunelab reads format "
                f"{FORMAT_VERSION} and older. Upgrade prunelab to open it."
            )
        return info

    def restore_info(self) -> str:
        """Write ``experiment.json`` again from the state records (after it was damaged); return the state class.

        Its format and state class can be restored (every record names its
        class); the prunelab version that created the experiment cannot, and
        is recorded as unknown.
        """
        names: set[str] = set()
        for folder in self.layout.iter_state_dirs():
            with contextlib.suppress(OSError, CorruptStateError):
                names.add(str(self.states.read_record(folder.name).get("state_class")))
        path = self.layout.info
        if len(names) != 1:
            raise CorruptStateError(
                f"{path} is damaged, and the state records name {len(names)} state classes ({sorted(names)[:3]}), "
                "so it cannot be written again from them; write it yourself as "
                '{"format": 1, "state_class": "<the class name>"}.', str(path))
        with self.lock():
            if os.path.lexists(path):
                os.rename(path, self.layout.tmp("damaged.experiment.json"))
            write_atomic(path, canonical_json({"format": FORMAT_VERSION, "state_class": next(iter(names)),
                                               "prunelab": None, "restored": True}), durable=self.durable)
        return next(iter(names))
