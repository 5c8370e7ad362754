"""Records as the model knows them: statuses, the state and result records and the run manifest, and the
canonical JSON that seals, digests and checksums are taken over.

Each record is built by one constructor per transition (a state is
*declared*, *started*, then *done* or *failed*; the declared record stays in
its stored form until the state runs, the others are frozen dataclasses), so every path that
writes one (the run's own process, the publishing helper, a Dask failure
recorded by the driver) writes the same fields. :meth:`StateRecord.to_dict`
gives the stored form, key for key as prunelab has always written it; the
store adds the value file's checksum, and the seal its digest.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from .errors import CorruptStateError

__all__ = ["ResultRecord", "RunManifest", "StateRecord", "Status", "canonical_json", "stamps"]


class Status(StrEnum):
    """The stages of a node's life; the stored value is the plain string (``"done"``)."""

    DECLARED = "declared"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"
    STALE = "stale"


def canonical_json(obj: Any) -> bytes:
    """Serialise ``obj`` deterministically (sorted keys, no spaces, NaN allowed).

    Parameters
    ----------
    obj : Any
        A JSON-able value.

    Returns
    -------
    bytes
        Its UTF-8 encoding, the same for equal values whatever their key order.
    """
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def stamps(environment: str | None, prereg: tuple[str, ...]) -> dict[str, Any]:
    """What every record a run writes says of its context: the environment, and the registrations in force."""
    return {"environment": environment, **({"prereg": list(prereg)} if prereg else {})}


#: Fields of a stored record that belong to the file, not to the state (the seal's digest, the values' checksum).
_FILE_FIELDS = frozenset({"digest", "values_checksum"})


@dataclass(frozen=True)
class StateRecord:
    """The record of one state (``meta.json``), from its declaration to its outcome.

    Attributes
    ----------
    id : str
        The state's id.
    parent_id, root_id : str or None
        Its parent's id (None for a root) and its root's (every record prunelab writes names it; see :attr:`root`).
    depth : int
        Edges from the root.
    state_class : str
        The state class's name.
    recipe : dict or None
        The recipe that makes it: name, version, properties (shown and exact
        specs), options, source fingerprint, module and qualname (None for a root).
    properties, property_specs : dict
        The root's properties, shown and as exact value specs.
    lineage : dict
        Fields copied down from recipes (see ``Recipe.LINEAGE``).
    seed : int or None
        The seed its recipe ran under (None until it runs).
    run : dict
        What the run that made it recorded (when it started, where, the
        environment, the torch settings in force), in the stored field names.
    outcome : dict
        How it ended: ``status`` and ``error``, the wall time, its blobs and bytes.
    """

    id: str
    parent_id: str | None
    root_id: str | None
    depth: int
    state_class: str | None
    recipe: dict[str, Any] | None
    properties: dict[str, Any] | None
    property_specs: dict[str, Any] | None
    lineage: dict[str, Any] | None
    seed: int | None = None
    run: dict[str, Any] = field(default_factory=dict)
    outcome: dict[str, Any] = field(default_factory=dict)

    @property
    def root(self) -> str:
        """The id of the state's root (every record prunelab writes names it)."""
        if self.root_id is None:
            raise CorruptStateError(f"the record of state {self.id[:12]} names no root_id, so it cannot be built; it "
                                    "was altered. `prunelab gc --repair` sets it aside for recomputation.")
        return self.root_id

    # A declared record lives on its node, in its stored form, until the state runs: :meth:`from_dict` reads it
    # then. Declaring makes no dataclass (one per node would cost a declaration a tenth more).
    @staticmethod
    def declared_root(node_id: str, state_class: str, properties: dict[str, Any],
                      property_specs: dict[str, Any]) -> dict[str, Any]:
        """The record of a root as declared (its properties, shown and exact), in its stored form."""
        return _own(node_id, None, node_id, 0, state_class, None, properties, property_specs, {}, None)

    @staticmethod
    def declared_child(node_id: str, parent_id: str, parent: dict[str, Any], recipe: dict[str, Any],
                       lineage: dict[str, Any]) -> dict[str, Any]:
        """The record of the state a recipe makes from node ``parent_id`` (whose record is ``parent``), as declared."""
        return _own(node_id, parent_id, parent.get("root_id"), int(parent.get("depth", 0)) + 1,
                    parent.get("state_class"), recipe, parent.get("properties"), parent.get("property_specs"),
                    lineage, None)

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> StateRecord:
        """Read a record as stored (or as declared): what a retried failure starts from."""
        outcome = {k: record[k] for k in _OUTCOME if k in record}
        run = {k: v for k, v in record.items() if k not in _OWN and k not in outcome and k not in _FILE_FIELDS}
        return cls(record["id"], record.get("parent_id"), record.get("root_id"), int(record.get("depth") or 0),
                   record.get("state_class"), record.get("recipe"), record.get("properties"),
                   record.get("property_specs"), record.get("lineage"), record.get("seed"), run, outcome)

    def started(self, *, at: float, worker: str, environment: str | None, prereg: tuple[str, ...], seed: int,
                threads: int, deterministic: bool) -> StateRecord:
        """The record as its recipe starts: when, where, the environment and registrations, seed and settings."""
        run = {"started": at, "worker": worker, "threads": threads, "deterministic": deterministic,
               **stamps(environment, prereg)}
        return dataclasses.replace(self, seed=seed, run=run, outcome={})

    def in_force(self, settings: dict[str, Any]) -> StateRecord:
        """The record with the torch settings a recipe left in force (``threads``, ``deterministic``)."""
        return dataclasses.replace(self, run={**self.run, **settings})

    def done(self, *, wall_s: float, blobs: list[str], size: int, pickled: bool, devices: list[str],
             series: str | None = None, resumed: list[int] | None = None) -> StateRecord:
        """The record of a state computed: its blobs (and their bytes), whether pickled, the devices of its tensors.

        ``series`` is the digest of the blob of the series its recipe logged
        (also listed in ``blobs``), ``resumed`` the steps of the checkpoints it
        was resumed from; each is left out when there is none, and ``wall_s``
        is then the time of the last attempt only.
        """
        extra = {**({"series": series} if series else {}), **({"resumed": resumed} if resumed else {})}
        return dataclasses.replace(self, outcome={"status": Status.DONE.value, "error": None, "wall_s": wall_s,
                                                  "blobs": blobs, "bytes": size, "pickled": pickled,
                                                  "devices": devices, **extra})

    def failed(self, *, error: str, wall_s: float) -> StateRecord:
        """The record of a state whose recipe failed (or that could not run at all): the traceback."""
        return dataclasses.replace(self, outcome={"status": Status.FAILED.value, "error": error, "wall_s": wall_s,
                                                  "blobs": [], "pickled": False})

    def to_dict(self) -> dict[str, Any]:
        """The stored form: every field by its stored name (``run`` and ``outcome`` spread out)."""
        out = _own(self.id, self.parent_id, self.root_id, self.depth, self.state_class, self.recipe, self.properties,
                   self.property_specs, self.lineage, self.seed)
        return {**out, **self.run, **self.outcome}


def _own(node_id: str, parent_id: str | None, root_id: str | None, depth: int, state_class: str | None,
         recipe: dict[str, Any] | None, properties: dict[str, Any] | None, property_specs: dict[str, Any] | None,
         lineage: dict[str, Any] | None, seed: int | None) -> dict[str, Any]:
    """A state's own fields (those known when it is declared, and its seed), by their stored names."""
    return {"id": node_id, "parent_id": parent_id, "root_id": root_id, "depth": depth, "state_class": state_class,
            "recipe": recipe, "properties": properties, "property_specs": property_specs, "lineage": lineage,
            "seed": seed}


_OUTCOME = ("status", "error", "wall_s", "blobs", "bytes", "pickled", "devices", "series", "resumed")
_OWN = frozenset({"id", "parent_id", "root_id", "depth", "state_class", "recipe", "properties", "property_specs",
                  "lineage", "seed"})


@dataclass(frozen=True)
class ResultRecord:
    """The record of one function result (``results/<name>@v<version>.json``).

    Attributes
    ----------
    name, version : str, int
        The function's name and version.
    node_id : str
        The state it was computed on.
    seed : int
        The seed it ran under.
    fingerprint, module, qualname : str or None
        The source fingerprint and location of the function.
    value : Any
        The value spec (blinded keys replaced, when a blind covers them).
    blobs : list of str
        The blobs the value uses.
    run : dict
        When it started, its wall time, worker, environment and registrations.
    blinded : list of str or None
        The keys withheld under a blind (None: nothing is).
    series : str or None
        The digest of the blob of the series the function logged (None: it logged none).
    """

    name: str
    version: int
    node_id: str
    seed: int
    fingerprint: str | None
    module: str | None
    qualname: str | None
    value: Any
    blobs: list[str]
    run: dict[str, Any]
    blinded: list[str] | None = None
    series: str | None = None  # the digest of the series the function logged (also in ``blobs``)

    def withheld(self, value: Any, blobs: list[str]) -> ResultRecord:
        """The withheld part of this result: the same record holding the blinded keys' values."""
        return dataclasses.replace(self, value=value, blobs=blobs, series=None)

    def to_dict(self) -> dict[str, Any]:
        """The stored form."""
        out = {"name": self.name, "version": self.version, "node_id": self.node_id, "seed": self.seed,
               "fingerprint": self.fingerprint, "module": self.module, "qualname": self.qualname,
               "value": self.value, "blobs": self.blobs, **self.run}
        if self.series is not None:
            out["series"] = self.series
        return {**out, "blinded": self.blinded} if self.blinded is not None else out


@dataclass(frozen=True)
class RunManifest:
    """What one ``run()`` declared and how it ran (``runs/<name>.json``).

    Attributes
    ----------
    declared : list of str
        The ids the run declared (or those its targets needed).
    started : float
        When it started.
    executor : str
        The executor, described.
    environment : str or None
        The digest of the environment it ran in.
    threads, deterministic : int, bool
        The experiment's torch settings.
    pid : int
        The driver's process id.
    targets : list of str or None
        The ids asked for, when the run was limited to them.
    planned, cached : int
        How many tasks were planned, and how many states were stored already.
    format : int
        The on-disk format it was written in.
    """

    declared: list[str]
    started: float
    executor: str
    environment: str | None
    threads: int
    deterministic: bool
    pid: int
    targets: list[str] | None
    planned: int
    cached: int
    format: int

    def to_dict(self) -> dict[str, Any]:
        """The stored form."""
        return dataclasses.asdict(self)
