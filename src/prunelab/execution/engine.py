"""Computing one node: build its state, run its recipe and functions on it, publish what they made.

This is the part every executor shares. A :class:`~.task.Task` is slim and
picklable (ids, the recipe, the record fields known in advance); :class:`Engine`
turns it into stored files. States are built, loaded and encoded by a
:class:`~.materialise.Materialiser`, and published by a :class:`~.writer.Writer`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import time
import traceback
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from ..core.errors import Preempted, StateDefinitionError
from ..core.heap import frozen
from ..core.identity import class_name
from ..core.records import StateRecord, Status
from ..core.runtime import running
from ..core.seeding import derive_seed, preserved, reseed, seeded
from ..core.state import ExperimentState, bind_node, check_kept, warn_undeclared
from ..storage.lease import Lease, acquire
from ..storage.series import encode_series
from .bodies import in_body, settings_changed
from .checkpoints import BodyRuntime
from .functions import run_function
from .making import make_state
from .materialise import Materialiser, Materialized
from .task import BUSY, ELSEWHERE, PREEMPTED, EngineSpec, Task, TaskOutcome
from .writer import Writer

if TYPE_CHECKING:
    from ..core.function import Function
    from ..storage.index import Index
    from ..storage.store import Store

__all__ = ["Engine"]

_OPEN: dict[str, Engine] = {}  # this process's engine per experiment directory (a worker keeps one each)


class Engine:
    """Computes the states and function results of one experiment in this process.

    Parameters
    ----------
    spec : EngineSpec
        The experiment's settings (picklable: a worker opens its own engine from it).
    store : Store
        The experiment directory.
    index : Index
        Its index.

    Attributes
    ----------
    materialiser : Materialiser
        Builds, loads and encodes states.
    writer : Writer
        Publishes what is computed (through the publishing helper in a pipelined block).
    """

    def __init__(self, spec: EngineSpec, store: Store, index: Index):
        self.spec = spec
        self.store = store
        self.index = index
        self.threads = spec.threads
        self.deterministic = spec.deterministic
        self.environment = spec.environment
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        self.materialiser = Materialiser(spec.state_class, spec.state_class_name, spec.allow_pickle, store,
                                         self._seeded)
        self.writer = Writer(store, index)
        self.cohorts = False  # whether recipes with a cohort key compute through run_cohort (an executor's choice)
        self._preserving = False

    @classmethod
    def open(cls, spec: EngineSpec) -> Engine:
        """Return this process's engine for ``spec`` (workers keep one per experiment)."""
        from ..storage.index import Index
        from ..storage.store import Store

        engine = _OPEN.get(spec.directory)
        if engine is None or engine.spec != spec:
            store = Store(spec.directory, durable=spec.durable)
            index = Index(store)
            store.blobs.users = index.blob_users
            engine = cls(spec, store, index)
            _OPEN[spec.directory] = engine
        return engine

    def with_environment(self, environment: str, prereg: tuple[str, ...] = ()) -> None:
        """Record the run's environment digest (and registration digests) in every record written from now on."""
        self.environment = environment
        self.spec = dataclasses.replace(self.spec, environment=environment, prereg=prereg)

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Compute many tasks in a row: the caller's generators and torch settings are saved once, around them.

        Inside, each task is seeded without saving what the previous task left
        (it is reseeded before every recipe and function anyway), and the
        objects alive when it starts (the graph, the plan, imported modules)
        are frozen out of the garbage collector's full passes, which would
        otherwise walk them again and again while tasks allocate (unless the
        caller froze some already: it keeps its own).
        """
        with frozen(), preserved():
            self._preserving = True
            try:
                yield
            finally:
                self._preserving = False

    @contextlib.contextmanager
    def body(self, seed: int, root_ids: Sequence[str], what: str) -> Iterator[None]:
        """Run a recipe's or function's body: seeded, marked as running, then its root's derived attributes checked.

        Derived attributes are shared by every state of a root (see
        :meth:`Materialiser.new_state`), so one changed in place fails the body's task and
        the root's template is dropped: later states are built afresh.
        """
        try:
            with self._seeded(seed), in_body(what):
                yield
        except BaseException:
            for root_id in root_ids:  # a failing body may have changed them too: drop them then as well
                self.materialiser.changed_derived(root_id)
            raise
        changed = [name for root_id in dict.fromkeys(root_ids) for name in self.materialiser.changed_derived(root_id)]
        if changed:
            example = changed[0]
            raise StateDefinitionError(
                f"{what} changed derived attribute(s) {', '.join(map(repr, changed))} in place. Derived attributes "
                "are built once by initialize_state and shared by every state of the root, so its other states "
                f"would see the change; copy one before changing it (e.g. state.{example} = state.{example}.clone() "
                f"for a tensor, copy.deepcopy(state.{example}) otherwise). The states computed next get it rebuilt."
            )

    def _seeded(self, seed: int) -> contextlib.AbstractContextManager[None]:
        if self._preserving:
            reseed(seed, threads=self.threads, deterministic=self.deterministic)
            return contextlib.nullcontext()
        return seeded(seed, threads=self.threads, deterministic=self.deterministic)

    # ------------------------------------------------------------- compute
    def run_task(self, task: Task, parent: Materialized | None, *, wait: bool = True) -> TaskOutcome:
        """Compute a task's state (when it is to be computed, under its lease) and run its functions.

        The outcome's ``state`` is the new state's stored form for its
        children, None when the recipe failed (its failure record is published
        instead), :data:`ELSEWHERE` when another driver or worker stored the
        state first, or (with ``wait=False``) :data:`BUSY` while another one
        holds the state's lease (nothing is recorded then; run the task again).

        One lease per state covers computing it and running its functions: the
        functions of a state computed here run before its lease is released, and
        the missing results of a stored state are computed under its lease, so
        a driver waits for another's functions instead of repeating them.
        """
        leases = self.store.layout.leases
        outcome = TaskOutcome(None)
        if task.compute:
            lease = acquire(leases, task.node_id, lambda: self.is_stored(task.node_id), durable=self.spec.durable,
                            wait=wait)
            if isinstance(lease, str):
                return TaskOutcome(BUSY)
            if lease is None:
                outcome.state = ELSEWHERE
            else:
                try:
                    outcome.state, outcome.error = self._compute(task, parent, lease)
                    if isinstance(outcome.state, Materialized):
                        return self.run_functions(task, outcome, outcome.state, lease)
                finally:
                    self.writer.let_go(lease)
                if outcome.state is None or outcome.state == PREEMPTED:
                    return outcome
        if not task.functions:
            return outcome
        paths = [self.store.layout.result_path(task.node_id, f.name, f.version) for f in task.functions]
        lease = acquire(leases, task.node_id, lambda: all(p.exists() for p in paths), durable=self.spec.durable,
                        wait=wait)
        if isinstance(lease, str):
            return TaskOutcome(BUSY)
        if lease is None:
            return self.run_functions(task, outcome, None, None, stored=task.functions)
        try:
            return self.run_functions(task, outcome, None, lease, stored=[f for f, p in zip(task.functions, paths)
                                                                             if p.exists()])
        finally:
            self.writer.let_go(lease)

    def run_functions(self, task: Task, outcome: TaskOutcome, parent: Materialized | None, lease: Lease | None,
                       stored: Sequence[Function] = ()) -> TaskOutcome:
        """Run the task's functions but those ``stored`` already; every one that did not fail is a result."""
        for function in task.functions:
            if function not in stored and lease is not None:
                ok, error = run_function(self, task, function, parent, lease)
                if not ok:
                    outcome.failures[f"{task.node_id} function {function.name}"] = error or ""
        outcome.results = [f"{task.node_id} {f.key}" for f in task.functions
                           if f"{task.node_id} function {f.name}" not in outcome.failures]
        return outcome

    def is_stored(self, node_id: str) -> bool:
        """Whether the state ``node_id`` is stored, done (by this run or another writer)."""
        return self.store.states.status(node_id) == Status.DONE

    def _compute(self, task: Task, parent: Materialized | None, lease: Lease
                 ) -> tuple[Materialized | str | None, str | None]:
        """Make and publish a task's state: (its stored form, ELSEWHERE or PREEMPTED, None), or (None, the traceback)."""
        started = time.time()
        runtime = self.runtime(task, lease)
        try:
            state, in_force = self.make(task, parent, runtime, cohort=self.cohorts)
        except Preempted:
            return PREEMPTED, None  # its checkpoint is stored; the node stays declared
        except Exception:  # noqa: BLE001 - a user's recipe may raise anything; it is recorded
            return None, self.publish_failure(task, started, traceback.format_exc(), lease)
        return self.store_made(task, started, state, in_force, runtime, lease)

    def runtime(self, task: Task, lease: Lease) -> BodyRuntime:
        """Where a task's recipe logs and checkpoints (its partials written under ``lease``)."""
        return BodyRuntime(task.node_id, self.store, self.materialiser,
                           save=lambda partial, blobs: self.writer.write_partial(partial, blobs, lease),
                           threads=self.threads, deterministic=self.deterministic)

    def publish_failure(self, task: Task, started: float, error: str, lease: Lease) -> str:
        """Publish the failure record of a task whose recipe raised ``error`` (a traceback); return it."""
        self.writer.publish(self._started(task, started).failed(error=error, wall_s=time.time() - started).to_dict(),
                            None, lease)
        return error

    def store_made(self, task: Task, started: float, state: ExperimentState, in_force: dict[str, Any],
                   runtime: BodyRuntime, lease: Lease) -> tuple[Materialized | str | None, str | None]:
        """Encode and publish the state a recipe made: (its stored form or ELSEWHERE, None), or (None, the traceback)."""
        record = self._started(task, started).in_force(in_force)
        try:
            materialized, pickled = self.materialiser.encode_state(state)
            series = encode_series(runtime.series.frozen())
        except Exception:  # noqa: BLE001 - a user's state may hold anything; it is recorded
            return None, self.publish_failure(task, started, traceback.format_exc(), lease)
        extra = {} if series is None else {series.digest: series}
        blobs = {**materialized.blobs, **extra}
        done = record.done(wall_s=time.time() - started, blobs=sorted(blobs),
                           size=sum(len(b.data) for b in blobs.values()), pickled=pickled,
                           devices=sorted({spec[4] for spec in _tensor_specs(materialized.values)}),
                           series=None if series is None else series.digest, resumed=runtime.resumed)
        published = self.writer.publish(done.to_dict(), materialized, lease, extra)
        return (materialized if published else ELSEWHERE), None

    def _started(self, task: Task, at: float) -> StateRecord:
        return task.record.started(at=at, worker=self.worker, environment=self.environment, prereg=self.spec.prereg,
                                   seed=derive_seed(task.node_id, "recipe"), threads=self.threads,
                                   deterministic=self.deterministic)

    def record_failure(self, task: Task, error: str) -> None:
        """Publish a failure record for a task that could not run at all (e.g. it kept killing its worker).

        The record is the one a recipe failing in this process gives (seed,
        environment and registrations included), with no wall time.
        """
        self.writer.publish_unleased(self._started(task, time.time()).failed(error=error, wall_s=0.0).to_dict())

    def make(self, task: Task, parent: Materialized | None, runtime: BodyRuntime | None = None, *,
             cohort: bool = False) -> tuple[ExperimentState, dict[str, Any]]:
        """Build a task's state as a run does (see :func:`.making.make_state`; ``verify`` re-executes through this)."""
        return make_state(self, task, parent, runtime, cohort=cohort)


def _tensor_specs(spec: Any) -> list[list[Any]]:
    """Return every tensor spec inside a value spec tree."""
    out, stack = [], [spec]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list) and item:
            if item[0] == "tensor":
                out.append(item)
            else:  # a JSON scalar's spec holds no tensor
                stack.extend(x for x in item if isinstance(x, list) and x and x[0] != "json")
    return out
