"""The runtime of one recipe or function body: its series, its checkpoints, and resuming from them.

:class:`BodyRuntime` is what :func:`prunelab.core.runtime.running` makes
current while the engine runs a body. A recipe's checkpoint holds all that
the rest of its run depends on (the state's stored attributes, the objects it
is given, the seeded generators, the series so far), so a run resumed from it
continues exactly as the uninterrupted one did: the published state is the
same, bit for bit.
"""

from __future__ import annotations

import contextlib
import os
import random
import socket
import struct
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from ..core.errors import CorruptStateError, Preempted, PrunelabWarning, StateDefinitionError
from ..core.identity import class_name
from ..core.recipe import fingerprint
from ..core.runtime import Series
from ..core.seeding import reseed
from ..storage.codecs import Blob, decode_value, encode_value
from ..storage.series import decode_series, encode_series
from ..storage.sources import LayeredSource, MemorySource, StoreSource
from . import preempt
from .materialise import read_blobs

if TYPE_CHECKING:
    from ..core.recipe import Recipe
    from ..core.state import ExperimentState
    from ..storage.store import Store
    from .materialise import Materialiser

__all__ = ["BodyRuntime", "CohortRuntime", "generator_states", "set_generator_states"]


def generator_states() -> dict[str, Any]:
    """The states of the generators the engine seeds: Python's, NumPy's, torch's CPU and (started) CUDA ones."""
    version, internal, gauss = random.getstate()  # 625 words, kept as bytes (one blob, not 625 JSON numbers)
    out: dict[str, Any] = {"python": [version, struct.pack(f"<{len(internal)}I", *internal), gauss]}
    np_random = sys.modules.get("numpy.random")
    if np_random is not None:
        kind, keys, pos, has_gauss, cached = np_random.get_state(legacy=True)
        out["numpy"] = [kind, keys, int(pos), int(has_gauss), float(cached)]
    torch = sys.modules.get("torch")
    if torch is not None:
        out["torch"] = torch.default_generator.get_state()
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def set_generator_states(states: dict[str, Any]) -> None:
    """Put the generators back in the states :func:`generator_states` gave."""
    version, internal, gauss = states["python"]
    random.setstate((version, struct.unpack(f"<{len(internal) // 4}I", internal), gauss))
    if "numpy" in states:
        import numpy as np

        np.random.set_state(tuple(states["numpy"]))
    if "torch" in states:
        import torch

        torch.default_generator.set_state(states["torch"])
        if "cuda" in states:
            torch.cuda.set_rng_state_all(states["cuda"])


class BodyRuntime:
    """What one body reaches while it runs: its series, and (for a recipe) its checkpoints.

    Parameters
    ----------
    node_id : str
        The node the body computes for.
    store : Store or None
        Where checkpoints go; None keeps none (``verify``, and functions).
    materialiser : Materialiser or None
        Encodes the state for a checkpoint (None: checkpoints are not kept).
    save : callable, optional
        Stores a checkpoint, given its record and blobs (default: ``store.partials.write``, in this process).
    threads, deterministic : int, bool
        The torch settings the body runs under; a checkpoint made under others is not resumed from.
    """

    def __init__(self, node_id: str, store: Store | None = None, materialiser: Materialiser | None = None, *,
                 save: Callable[[dict[str, Any], dict[str, Blob]], None] | None = None, threads: int = 1,
                 deterministic: bool = False):
        self.node_id = node_id
        self.store = store if materialiser is not None else None
        self.save = None if self.store is None else save or self.store.partials.write
        self.materialiser = materialiser
        self.threads = threads
        self.deterministic = deterministic
        self.series = Series()
        self.resumed: list[int] = []  # the steps of the checkpoints this run continued from
        self.cohort = False  # computed by run_cohort (set by CohortRuntime): its checkpoints are that code's
        self.written = 0
        self._last = time.monotonic()

    # ----------------------------------------------------------- checkpoint
    def checkpoint(self, recipe: Recipe, state: ExperimentState, step: int, every: tuple[str, float] | None,
                   objects: dict[str, Any]) -> bool:
        """Write a partial when due (always when preempted); see :meth:`prunelab.Recipe.checkpoint`."""
        stopping = preempt.requested()
        if not stopping and not self._due(step, every):
            return False
        written = False
        if self.save is not None:
            record, blobs = self._partial(recipe, state, step, objects)
            self.save(record, blobs)
            self._last = time.monotonic()
            self.written += 1
            written = True
        if stopping:
            raise Preempted(f"state {self.node_id[:12]} was preempted at step {step}"
                            f"{'; its checkpoint is stored' if written else ''}", [self.node_id])
        return written

    def _due(self, step: int, every: tuple[str, float] | None) -> bool:
        if every is None:
            return True
        kind, amount = every
        if kind == "steps":
            return step % int(amount) == 0
        return time.monotonic() - self._last >= amount

    def _partial(self, recipe: Recipe, state: ExperimentState, step: int, objects: dict[str, Any]
                 ) -> tuple[dict[str, Any], dict[str, Blob]]:
        assert self.materialiser is not None
        materialized, _ = self.materialiser.encode_state(state)
        blobs = dict(materialized.blobs)
        specs = {}
        owner = class_name(type(recipe))
        for name, obj in sorted(objects.items()):
            if not (callable(getattr(obj, "state_dict", None)) and callable(getattr(obj, "load_state_dict", None))):
                raise StateDefinitionError(
                    f"{owner}.checkpoint: {name}= is a {type(obj).__qualname__}, which has no state_dict() and "
                    "load_state_dict(); pass optimizers, schedulers, scalers, samplers — objects whose state "
                    "is a state dict — or keep the value as a stored attribute of the state.")
            encoded = encode_value(obj, owner=f"checkpoint object {name!r}", allow_pickle=self.materialiser.allow_pickle)
            specs[name] = encoded.spec
            blobs.update(encoded.blobs)
        generators = encode_value(generator_states(), owner="generator states")
        blobs.update(generators.blobs)
        series = encode_series(self.series.frozen())
        if series is not None:
            blobs[series.digest] = series
        record = {"id": self.node_id, "step": step, "at": time.time(),
                  "worker": f"{socket.gethostname()}:{os.getpid()}", "fingerprint": fingerprint(type(recipe)),
                  "threads": self.threads, "deterministic": self.deterministic, "values": materialized.values,
                  "objects": specs, "generators": generators.spec,
                  "series": None if series is None else series.digest, "resumed": self.resumed,
                  "cohort": self.cohort}
        return record, blobs

    # --------------------------------------------------------------- resume
    def resume(self, recipe: Recipe, state: ExperimentState, objects: dict[str, Any]) -> int | None:
        """Load the newest partial into ``state`` and ``objects``; see :meth:`prunelab.Recipe.resume`."""
        if self.store is None or self.materialiser is None:
            return None
        owner = class_name(type(recipe))
        try:
            found = self.store.partials.read_packed(self.node_id)
        except (OSError, CorruptStateError) as err:
            self._ignored(f"its checkpoint cannot be read ({err})")
            return None
        if found is None:
            return None
        record, packed = found
        if record.get("fingerprint") != fingerprint(type(recipe)):
            self._ignored(f"its checkpoint was written by other code of {owner} (its source changed since)")
            return None
        if record.get("cohort", False) != self.cohort:
            self._ignored(f"its checkpoint was written by {owner}.{'run' if self.cohort else 'run_cohort'}, and "
                          f"{owner}.{'run_cohort' if self.cohort else 'run'} computes it now")
            return None
        if (record.get("threads"), record.get("deterministic")) != (self.threads, self.deterministic):
            self._ignored(f"its checkpoint was written with threads={record.get('threads')}, deterministic="
                          f"{record.get('deterministic')}, which change the bits")
            return None
        if sorted(record["objects"]) != sorted(objects):
            raise StateDefinitionError(
                f"{owner}.resume was given {sorted(objects) or 'no objects'}, but the checkpoint of state "
                f"{self.node_id[:12]} holds {sorted(record['objects']) or 'none'}; pass resume() the same "
                "objects, by the same names, as checkpoint().")
        try:  # every blob read (and verified) before anything is loaded: a resume is all or nothing
            specs = {**record["values"], **{f"object {k}": v for k, v in record["objects"].items()},
                     "generators": record["generators"]}
            source = LayeredSource(MemorySource({d: Blob(d, memoryview(b), b) for d, b in packed.items()}),
                                   StoreSource(self.store))
            blobs = read_blobs(specs, source)
            series = None if record["series"] is None else decode_series(
                source.raw(record["series"]), f"series blob {record['series']}")
        except (OSError, CorruptStateError) as err:
            self._ignored(f"a blob of its checkpoint cannot be read ({err})")
            return None
        self._load(state, objects, record, MemorySource(blobs))
        self.series = Series({} if series is None else {n: (s.tolist(), v.tolist()) for n, (s, v) in series.items()})
        self.resumed = [*record.get("resumed", []), record["step"]]
        self._last = time.monotonic()
        return int(record["step"])

    def _load(self, state: ExperimentState, objects: dict[str, Any], record: dict[str, Any],
              source: MemorySource) -> None:
        assert self.materialiser is not None
        allow_pickle = self.materialiser.allow_pickle
        for name in type(state).NONHASHED_ATTRIBUTES:
            if name in record["values"]:
                setattr(state, name, decode_value(record["values"][name], source, current=getattr(state, name, None),
                                                  owner=f"checkpointed attribute {name!r}", allow_pickle=allow_pickle))
            elif name in state.__dict__:
                delattr(state, name)  # the recipe had removed it by then
        for name, obj in objects.items():
            decode_value(record["objects"][name], source, current=obj, owner=f"checkpoint object {name!r}",
                         allow_pickle=allow_pickle)
        set_generator_states(decode_value(record["generators"], source, owner="generator states"))

    def _ignored(self, why: str) -> None:
        warnings.warn(f"state {self.node_id[:12]} is computed from its beginning: {why}.", PrunelabWarning,
                      stacklevel=4)


class CohortRuntime:
    """What ``run_cohort`` reaches: each member's runtime, recipe and seed, and the member acted for now.

    Parameters
    ----------
    members : dict of str to (BodyRuntime, Recipe, int)
        Per member's node id: its runtime, its recipe and its seed.
    threads, deterministic : int, bool
        The torch settings members are seeded under.
    """

    def __init__(self, members: dict[str, tuple[BodyRuntime, Recipe, int]], threads: int, deterministic: bool):
        self.members = members
        for runtime, _, _ in members.values():
            runtime.cohort = True
        self.threads, self.deterministic = threads, deterministic
        self.acting: str | None = None

    @property
    def series(self) -> Series:
        """The series of the member acted for (``pl.log`` appends to it)."""
        if self.acting is None:
            raise StateDefinitionError("pl.log inside run_cohort logs for one member: call it inside "
                                       "`with self.member(state):`.")
        return self.members[self.acting][0].series

    def _of(self, state: ExperimentState) -> tuple[BodyRuntime, Recipe, int]:
        member = self.members.get(getattr(state, "id", None) or "")
        if member is None:
            raise StateDefinitionError("run_cohort was given this state for none of its members; pass the states "
                                       "run_cohort received (or the ones it returns).")
        return member

    def checkpoint(self, recipe: Recipe, state: ExperimentState, step: int, every: tuple[str, float] | None,
                   objects: dict[str, Any]) -> bool:
        """A member's checkpoint (see :meth:`prunelab.Recipe.checkpoint`)."""
        return self._of(state)[0].checkpoint(recipe, state, step, every, objects)

    def resume(self, recipe: Recipe, state: ExperimentState, objects: dict[str, Any]) -> int | None:
        """Resume a member (see :meth:`prunelab.Recipe.resume`)."""
        return self._of(state)[0].resume(recipe, state, objects)

    @contextlib.contextmanager
    def member(self, state: ExperimentState) -> Iterator[Recipe]:
        """Act for one member: its seed in the generators, its series for ``pl.log``; yield its recipe."""
        _, recipe, seed = self._of(state)
        before, self.acting = self.acting, state.id
        reseed(seed, threads=self.threads, deterministic=self.deterministic)
        try:
            yield recipe
        finally:
            self.acting = before
