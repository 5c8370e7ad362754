"""One experiment directory as the layers above see it: its files (:class:`Store`) and its index (:class:`Index`).

:class:`Storage` is what the graph reads (it is the model's :class:`~prunelab.core.host.Catalogue`) and what the
facade and the analysis write through: tags, run manifests, environments, registrations, removals, merges and gc.
States and results are published by the engine's writer (or its publishing helper), through the same store.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ..core.errors import PublishError, StateDefinitionError
from ..core.prereg import Prereg
from .codecs import decode_value
from .consistency import catch_up
from .files import disk_full
from . import parts
from .gc import GCReport, collect
from .index import Index
from .merge import merge
from .partials import PartialInfo
from .series import decode_series
from .sources import StoreSource
from .layout import LAYOUT
from .store import Store

__all__ = ["Storage"]


class Storage:
    """The stored side of an experiment: what its graph and nodes read (see :class:`prunelab.core.host.Catalogue`).

    Parameters
    ----------
    store : Store
        The experiment directory's files.
    index : Index
        Its SQLite index (a cache of the records, rebuilt from the files when stale).
    info : dict
        Its ``experiment.json`` (format version, state class name, prunelab version).
    """

    def __init__(self, store: Store, index: Index, info: dict[str, Any]):
        self.store = store
        self.index = index
        self.info = info

    @classmethod
    def open(cls, directory: str | Path, state_class: str | None, *, durable: bool, create: bool,
             version: str) -> Storage:
        """Open an experiment directory (creating it when asked), with its index brought up to date.

        Parameters
        ----------
        directory : str or Path
            The experiment directory.
        state_class : str, optional
            The name of the state class the caller expects (None: any).
        durable : bool
            fsync every write.
        create : bool
            Make the experiment when the directory holds none (it must be missing or empty).
        version : str
            The prunelab version recorded in a new experiment.

        Returns
        -------
        Storage
            With :attr:`info` holding ``experiment.json``.

        Raises
        ------
        StateDefinitionError
            The directory holds other things, or states of another class.
        PublishError
            The disk is full (nothing else was changed).
        """
        store = Store(directory, durable=durable)
        if create and not store.layout.is_experiment():
            assert state_class is not None  # only a restore opens without a class, and it never creates
            _create(store, Path(directory), state_class, version)
        info = store.read_info()
        if state_class is not None and info.get("state_class") != state_class:
            raise StateDefinitionError(
                f"{directory} holds states of class {info.get('state_class')!r}, not "
                f"{state_class!r}; use that class, or another directory."
            )
        index = Index(store)
        store.blobs.users = index.blob_users
        index.ensure_valid()
        return cls(store, index, info)

    def node_rows(self) -> list[tuple[str, str | None, str]]:
        """Every stored state as (id, parent id, status)."""
        return self.index.node_rows()

    def record(self, node_id: str) -> dict[str, Any] | None:
        """The stored record of one state, or None."""
        return self.index.record(node_id)

    def records(self, node_ids: list[str]) -> dict[str, dict[str, Any]]:
        """The stored records of several states, by id."""
        return self.index.records(node_ids)

    def tags(self) -> dict[str, set[str]]:
        """The stored tags of every state, by id."""
        return self.index.tags()

    def results(self, node_id: str) -> dict[str, dict[str, Any]]:
        """The stored result records of one state, by ``name@vN``."""
        return self.index.results(node_id)

    def result_versions(self, name: str) -> list[str]:
        """The keys (``name@vN``) under which results of the function ``name`` are stored."""
        return parts.result_versions(self.index.db, name)

    def result_sample(self, key: str) -> dict[str, Any] | None:
        """One stored record of the result ``key`` (``name@vN``), any state's; None when none is stored."""
        return parts.result_sample(self.index.db, key)

    def result_parts(self, key: str, paths: Sequence[str]) -> Iterator[tuple[str, list[Any]]]:
        """Per stored record of the result ``key``: its state's id and the parts at the JSON ``paths`` (see
        :func:`~prunelab.storage.parts.result_parts`)."""
        return parts.result_parts(self.index.db, key, paths)

    def result_keys(self) -> dict[str, set[str]]:
        """The stored result keys (``name@vN``) of every state, by id."""
        return self.index.result_keys()

    def stored_result(self, node_id: str, name: str, version: int) -> dict[str, Any] | None:
        """One result record read from its file (verified), whether or not the index holds it; None if not stored."""
        return self.store.results.read(node_id, name, version)

    def withheld(self, node_id: str, name: str, version: int) -> dict[str, Any]:
        """The withheld (blinded) part of one result record."""
        return self.store.results.read_withheld(node_id, name, version)

    def decode(self, spec: Any, owner: str) -> Any:
        """Decode a stored value spec, reading its tensors from the blobs.

        Parameters
        ----------
        spec : Any
            A value spec, as in a value file or a record's ``property_specs``.
        owner : str
            What the value is, for errors (``"property 'lr'"``).

        Returns
        -------
        Any
            The value, exactly as it was encoded.
        """
        return decode_value(spec, StoreSource(self.store), owner=owner)

    def series(self, digest: str) -> dict[str, tuple[Any, Any]]:
        """A stored series blob, read and verified: per name, its steps (int64) and values (float64) as arrays.

        Parameters
        ----------
        digest : str
            The blob's digest, as a state or result record names it (``series``).

        Returns
        -------
        dict of str to (ndarray, ndarray)
            Per name, in sorted order.
        """
        return decode_series(StoreSource(self.store).raw(digest), str(self.store.layout.blob_path(digest)))

    def partials(self) -> list[PartialInfo]:
        """The checkpoints stored for states being computed (node, step, when, where), oldest first."""
        return self.store.partials.listing()

    def runs(self) -> list[dict[str, Any]]:
        """Every run manifest, oldest first."""
        return [entry for _, entry in self.store.logs.read("runs")]

    def prereg(self) -> Prereg:
        """The experiment's registrations and active blinds, read from its log (seals verified)."""
        entries = self.store.logs.read("prereg")
        folder = str(self.store.layout.log_folder("prereg"))
        damaged = any(os.path.dirname(path) == folder for path in self.store.logs.damaged)
        return Prereg.from_log(entries, damaged)

    def status_of(self, node_ids: list[str]) -> dict[str, str]:
        """The stored status of those of ``node_ids`` that are stored."""
        return self.index.status_of(node_ids)

    # ------------------------------------------------------------- writes
    def write_env(self, env: dict[str, Any]) -> str:
        """Store a captured environment once; return its digest (what records name it by)."""
        return self.store.logs.write_env(env)

    def append_registration(self, entry: dict[str, Any]) -> None:
        """Append a registration, blind or unblind to the pre-registration log."""
        self.store.logs.append("prereg", entry, lambda _: self.index.touch())

    def write_tags(self, entries: list[list[str]]) -> None:
        """Append tag assignments (``["+" or "-", node id, tag]`` each) to the tag log, and index them."""
        if not entries:
            return
        self.store.layout.require_writable("changing tags")
        self.store.logs.append("tags", {"entries": entries}, lambda _: self.index.tags_written(entries))

    def append_run(self, manifest: dict[str, Any]) -> None:
        """Append a run's manifest to the run log."""
        self.store.logs.append("runs", manifest, lambda _: self.index.touch())

    def index_results(self, found: list[tuple[str, dict[str, Any]]]) -> None:
        """Index results stored but missing from the index (a crash between the two): (node id, record) each."""
        if found:
            with self.store.lock():
                for node_id, record in found:
                    self.index.result_written(node_id, record)

    def index_stored(self, statuses: dict[str, str], results: list[str]) -> int:
        """Index what processes with an index of their own stored (see :func:`.consistency.catch_up`).

        Returns
        -------
        int
            How many records were indexed.
        """
        return catch_up(self.index, statuses, results)

    def remove(self, node_ids: list[str]) -> list[str]:
        """Remove states from view (gc deletes their files); return those that were stored."""
        self.store.layout.require_writable("remove()")
        with self.store.lock():
            self.store.bump_generation()
            removed = [node_id for node_id in node_ids if self.store.states.remove(node_id)]
            self.index.nodes_removed(removed)
        return removed

    def merge(self, directory: str | Path) -> list[str]:
        """Merge another experiment directory of the same state class into this one; return the ids added.

        Parameters
        ----------
        directory : str or Path
            The experiment merged in (only read).

        Returns
        -------
        list of str
            The ids of the states added (merging again adds none).

        Raises
        ------
        StateDefinitionError
            The other experiment's states are of another class.
        """
        self.store.layout.require_writable("merge()")
        other = Store(directory)
        theirs, ours = other.read_info().get("state_class"), self.info.get("state_class")
        if theirs != ours:
            raise StateDefinitionError(
                f"{directory} holds states of class {theirs!r}, this experiment {ours!r}; only experiments of one "
                "state class can be merged."
            )
        with self.store.lock():
            self.store.bump_generation()
            added = merge(self.store, other)
            self.index.rebuild()
        return added

    def collect(self, *, repair: bool, min_age_s: float, dry_run: bool) -> GCReport:
        """Delete crash leftovers, removed states and unreferenced blobs; see :func:`prunelab.storage.gc.collect`."""
        return collect(self.store, self.index, repair=repair, min_age_s=min_age_s, dry_run=dry_run)


def _create(store: Store, directory: Path, state_class: str, version: str) -> None:
    """Make a new experiment in ``directory`` (``store``'s, as the caller named it), refusing one holding other things."""
    foreign = [p.name for p in directory.iterdir()  # ours: the layout, and temp files being written
               if p.name not in LAYOUT and not p.name.startswith(".tmp-")] if directory.is_dir() else []
    if foreign:
        raise StateDefinitionError(
            f"{directory} exists and is not empty (it holds {sorted(foreign)[:3]}), but is not a "
            "prunelab experiment; choose a new or empty directory."
        )
    directory.mkdir(parents=True, exist_ok=True)
    try:
        with store.lock():  # two drivers may create the same new experiment at once
            if not store.layout.is_experiment():
                store.create({"state_class": state_class, "prunelab": version})
    except OSError as err:
        if not disk_full(err):
            raise
        raise PublishError(f"cannot create the experiment {store.root}: the disk is full ({err}). Free "
                           "some space and open it again; nothing else was changed.") from err
