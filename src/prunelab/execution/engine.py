"""Computing one node: build a state, run a recipe or function on it, publish it.

This is the part every executor shares. A :class:`Task` is slim and picklable
(ids, the recipe, the record fields known in advance); :class:`Engine` turns it
into stored files. A parent reaches its child as a :class:`Materialized` value
(the spec and blobs of a store round trip) in memory, or from the store.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import itertools
import os
import socket
import sys
import time
import traceback
import warnings
from dataclasses import dataclass, field
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from ..storage.codecs import Blob, Encoded, copy_values, decode_value, encode_value, loads_into_current
from ..core.errors import CorruptStateError, PrunelabWarning, StateDefinitionError
from ..core.identity import class_name
from ..storage.lease import BUSY, Lease, acquire
from ..storage.sources import MemorySource, StoreSource
from ..core.prereg import split_blinded
from ..core.seeding import derive_seed, preserved, reseed, seeded
from ..core.state import NODE_KEY, ExperimentState, bind_node, build_state, check_kept, derived_fingerprint, warn_undeclared

if TYPE_CHECKING:
    from ..storage.index import Index
    from .publisher import Publisher
    from ..core.recipe import Function, Recipe
    from ..storage.store import Store

__all__ = ["Task", "TaskOutcome", "Materialized", "Engine", "EngineSpec", "ELSEWHERE", "BUSY", "refuse_inside_body"]


@dataclass
class Task:
    """One node to compute (and/or functions to run on it)."""

    node_id: str
    parent_id: str | None
    properties: dict[str, Any]
    recipe: Recipe | None
    record: dict[str, Any]
    compute: bool
    functions: list[Function] = field(default_factory=list)
    blinded: list[str] = field(default_factory=list)  # metric patterns withheld for this node (see prereg)
    tags: list[str] = field(default_factory=list)  # the node's tags, as state.tags shows them to bodies


@dataclass
class TaskOutcome:
    """What :meth:`Engine.run_task` did to a state and its functions."""

    state: Materialized | str | None
    error: str | None = None  # the recipe's traceback when ``state`` is None
    results: list[str] = field(default_factory=list)  # "<node id> <name@vN>" of each result stored
    failures: dict[str, str] = field(default_factory=dict)  # "<node id> function <name>" -> traceback



@dataclass
class Materialized:
    """A computed state's stored form, kept in memory for its children."""

    values: dict[str, Any]
    blobs: dict[str, Blob]
    _replaced: frozenset[str] | None = field(default=None, repr=False)
    _layout: tuple[tuple[str, tuple[Any, ...]], ...] | None = field(default=None, repr=False)

    @property
    def replaced(self) -> frozenset[str]:
        """Attributes decoded without the object ``initialize_state`` built (not loaded into it)."""
        if self._replaced is None:
            self._replaced = frozenset(n for n, spec in self.values.items() if not loads_into_current(spec))
        return self._replaced

    @property
    def layout(self) -> tuple[tuple[str, tuple[Any, ...]], ...]:
        """The structure of the attributes loaded into built objects: (name, state-dict keys) each.

        Two states with one layout load into objects of the same structure
        (e.g. the same parameters pruned, in the same order). Empty when an
        attribute's structure cannot be read from its spec (nothing is shared then).
        """
        if self._layout is None:
            layout: list[tuple[str, tuple[Any, ...]]] = []
            for name in sorted(set(self.values) - self.replaced):
                keys = _state_dict_keys(self.values[name])
                if keys is None:
                    layout = []
                    break
                layout.append((name, keys))
            self._layout = tuple(layout)
        return self._layout


def _state_dict_keys(spec: Any) -> tuple[Any, ...] | None:
    """The keys of a ``stateful`` spec's state dict, in order (None for any other spec)."""
    if spec[0] != "stateful" or spec[2][0] != "dict" or any(key[0] != "json" for key, _ in spec[2][1]):
        return None
    return tuple(key[1] for key, _ in spec[2][1])


@dataclass(frozen=True)
class EngineSpec:
    """Everything a worker process needs to compute nodes of an experiment (picklable)."""

    directory: str
    state_class: type[ExperimentState] | None
    state_class_name: str
    allow_pickle: bool
    threads: int
    deterministic: bool
    durable: bool
    environment: str | None
    prereg: tuple[str, ...] = ()  # digests of the registrations, embedded in every record written


#: A task outcome's state when another driver or worker stored it first.
ELSEWHERE = "elsewhere"

_OPEN: dict[str, Engine] = {}
# The recipe and function bodies running in this process, one entry each (a Dask worker may run several at once).
_BODIES: dict[int, str] = {}
_ENTRIES = itertools.count()


@contextlib.contextmanager
def _in_body(what: str) -> Iterator[None]:
    """Mark ``what`` (a recipe or function, and its node) as running in this process for the block."""
    entry = next(_ENTRIES)
    _BODIES[entry] = what
    try:
        yield
    finally:
        del _BODIES[entry]


def refuse_inside_body(call: str) -> None:
    """Raise if a recipe or function body is running in this process, where ``call`` would wait forever.

    A run started from inside a body waits for the lease of the state that
    body is computing, which is held until the body returns.
    """
    if _BODIES:
        raise StateDefinitionError(
            f"{call} was called from inside {list(_BODIES.values())[-1]}, which cannot return before that run "
            "ends (the run would wait forever for the state being computed); declare the nodes in the script "
            "and call run() once."
        )


@dataclass
class _Template:
    """A root's state as ``initialize_state`` built it, and the fingerprint of its derived attributes then."""

    state: ExperimentState
    derived: dict[str, Any]


class Engine:
    """Builds, computes and publishes states for one experiment."""

    def __init__(self, spec: EngineSpec, store: Store, index: Index):
        self.spec = spec
        self.store = store
        self.index = index
        self.state_class = spec.state_class
        self.state_class_name = spec.state_class_name
        self.allow_pickle = spec.allow_pickle
        self.threads = spec.threads
        self.deterministic = spec.deterministic
        self.environment = spec.environment
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        self._templates: dict[str, _Template] = {}
        self._layouts: dict[tuple[str, Any], ExperimentState] = {}  # made from the root's template in _templates
        self._spoiled: dict[str, dict[str, Any]] = {}  # root id -> derived fingerprint before a body changed it
        self._stored: dict[str, Materialized] = {}
        self._preserving = False
        self.publisher: Publisher | None = None  # the helper publishing in a pipelined block, once started
        self._pipelining = False

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

    def _stamps(self) -> dict[str, Any]:
        return {"environment": self.environment, **({"prereg": list(self.spec.prereg)} if self.spec.prereg else {})}

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Compute many tasks in a row: the caller's generators and torch settings are saved once, around them.

        Inside, each task is seeded without saving what the previous task left
        (it is reseeded before every recipe and function anyway).
        """
        with preserved():
            self._preserving = True
            try:
                yield
            finally:
                self._preserving = False

    @contextlib.contextmanager
    def pipelined(self, enabled: bool = True) -> Iterator[list[str]]:
        """Publish from a helper process for the duration of the block (see :mod:`.publisher`).

        The helper starts with the first state or result to publish (a run
        with nothing to compute starts none). Yields a list that, after the
        block, holds the states another writer turned out to have published
        first. Until the helper is up, and where it cannot run, states are
        published in this process, as outside the block.
        """
        from .publisher import available

        late: list[str] = []
        if not enabled or self._pipelining or not available():
            yield late
            return
        self._pipelining = True
        try:
            yield late
        finally:
            self._pipelining = False
            publisher, self.publisher = self.publisher, None
            if publisher is not None:
                try:
                    publisher.close()
                finally:
                    late.extend(publisher.elsewhere)
                    self.store.counters.update(publisher.counters)

    def publishing_helper(self) -> Publisher | None:
        """The helper of the current :meth:`pipelined` block, started on first use; None outside one."""
        if self._pipelining and self.publisher is None:
            from .publisher import Publisher

            self.publisher = Publisher(self.spec)
        return self.publisher

    def _ready_helper(self) -> Publisher | None:
        """The publishing helper if it is up; None while it starts, where it cannot, and outside a pipelined block."""
        helper = self.publishing_helper()
        return helper if helper is not None and helper.ready() else None

    def _publish(self, record: dict[str, Any], materialized: Materialized | None, lease: Lease) -> bool:
        """Publish a state (or a failure record) made under ``lease``; False when another writer came first."""
        values, blobs = (None, {}) if materialized is None else (materialized.values, materialized.blobs)
        helper = self._ready_helper()
        if helper is not None:
            helper.publish_state(record, values, blobs, lease)
            return True
        return self.store.states.publish(record, values, blobs, self.index.record_published, lease.owned)

    def _store_result(self, node_id: str, record: dict[str, Any], blobs: dict[str, Blob],
                      withheld: tuple[dict[str, Any], dict[str, Blob]] | None, lease: Lease) -> None:
        helper = self._ready_helper()
        if helper is not None:
            helper.write_result(node_id, record, blobs, withheld, lease)
            return
        if withheld is not None:
            self.store.results.write_withheld(node_id, *withheld)
        self.store.results.write(node_id, record, blobs, lambda r: self.index.result_written(node_id, r))

    def _let_go(self, lease: Lease) -> None:
        """Release a lease once what was made under it is published."""
        if self.publisher is not None:
            self.publisher.let_go(lease)
        else:
            lease.release()

    @contextlib.contextmanager
    def _body(self, seed: int, root_id: str, what: str) -> Iterator[None]:
        """Run a recipe's or function's body: seeded, marked as running, then its root's derived attributes checked.

        Derived attributes are shared by every state of a root (see
        :meth:`new_state`), so one changed in place fails the body's task and
        the root's template is dropped: later states are built afresh.
        """
        try:
            with self._seeded(seed), _in_body(what):
                yield
        except BaseException:
            self._changed_derived(root_id)  # a failing body may have changed them too: drop them then as well
            raise
        changed = self._changed_derived(root_id)
        if changed:
            example = changed[0]
            raise StateDefinitionError(
                f"{what} changed derived attribute(s) {', '.join(map(repr, changed))} in place. Derived attributes "
                "are built once by initialize_state and shared by every state of the root, so its other states "
                f"would see the change; copy one before changing it (e.g. state.{example} = state.{example}.clone() "
                f"for a tensor, copy.deepcopy(state.{example}) otherwise). The states computed next get it rebuilt."
            )

    def _changed_derived(self, root_id: str) -> list[str]:
        """The derived attributes of the root's template changed since it was built (the template dropped if any)."""
        template = self._templates.get(root_id)
        if template is None:  # the body's state was the template itself: it is shared with nothing
            return []
        now = derived_fingerprint(template.state)
        changed = [name for name, before in template.derived.items() if now.get(name) != before]
        if changed:
            self._spoiled.setdefault(root_id, template.derived)
            self._forget(root_id)
        return changed

    def _forget(self, root_id: str) -> None:
        """Drop a root's template and the copies shaped from it."""
        self._templates.pop(root_id, None)
        for key in [key for key in self._layouts if key[0] == root_id]:
            del self._layouts[key]

    def _seeded(self, seed: int) -> contextlib.AbstractContextManager[None]:
        if self._preserving:
            reseed(seed, threads=self.threads, deterministic=self.deterministic)
            return contextlib.nullcontext()
        return seeded(seed, threads=self.threads, deterministic=self.deterministic)

    def require_class(self) -> type[ExperimentState]:
        """Return the state class, or say how to provide it."""
        if self.state_class is None:
            raise StateDefinitionError(
                f"this experiment was restored without its state class {self.state_class_name!r}, so states "
                "cannot be declared or loaded; pass state_class= to Experiment.restore (or import the module "
                "that defines it first)."
            )
        return self.state_class

    # --------------------------------------------------------- materialise
    def new_state(self, properties: dict[str, Any], root_id: str, stored: Materialized | None = None
                  ) -> ExperimentState:
        """Return a fresh state: properties set, as ``initialize_state`` builds it under the root's seed.

        ``initialize_state`` is seeded with the root's seed, so it builds the
        same thing every time; it runs once per root and process, and later
        states are copies of that template (much cheaper than re-initialising
        a model). Derived attributes are shared with the template, not copied:
        like anything ``initialize_state`` rebuilds from the properties, they
        are read-only, and a recipe or function that changes one in place fails
        (see :meth:`_body`).

        With ``stored`` (the values the caller is about to decode into the
        state), the attributes decoded from scratch are left out of the copy,
        and the copy is taken from a template whose built objects already have
        the stored structure (see :meth:`_shaped`).
        """
        cls = self.require_class()
        template = self._templates.pop(root_id, None)
        if template is None:
            template = self._initialise(cls, properties, root_id)
        try:
            source = template.state
            if stored is not None and stored.layout:
                source = self._shaped(source, root_id, stored)
            state = _copy_template(source, cls.DERIVED_ATTRIBUTES, stored)
        except (TypeError, copy.Error, RuntimeError):  # something initialize_state built cannot be copied
            self._forget(root_id)
            return template.state  # the template itself; the next state initialises again
        self._templates[root_id] = template  # most recently used last
        while len(self._templates) > _TEMPLATES:
            self._forget(next(iter(self._templates)))
        return state

    def _initialise(self, cls: type[ExperimentState], properties: dict[str, Any], root_id: str) -> _Template:
        """Build a root's template with ``initialize_state`` under the root's seed, and fingerprint what it derived."""
        with self._seeded(derive_seed(root_id, "recipe")):
            state = build_state(cls, properties)
        template = _Template(state, derived_fingerprint(state))
        before = self._spoiled.get(root_id)
        if before is not None:
            rebuilt = [name for name, value in before.items() if template.derived.get(name) != value]
            if rebuilt:
                raise StateDefinitionError(
                    f"initialize_state of root {root_id[:12]} rebuilt derived attribute(s) "
                    f"{', '.join(map(repr, rebuilt))} with the values a recipe or function changed in place (see "
                    "its failure), not the ones it first built: it hands out a cached object (e.g. data loaded "
                    "once per process). Make initialize_state return a fresh object or a copy."
                )
            del self._spoiled[root_id]
        return template

    def _shaped(self, template: ExperimentState, root_id: str, stored: Materialized) -> ExperimentState:
        """The root's template with a stored state loaded into its built objects, once per layout.

        Loading gives a built object the stored structure (re-applying a pruning
        reparametrisation is most of the cost of loading a pruned model); later
        loads of states with that layout into a copy of this template change
        values only. The values it holds are never used: every attribute that
        is loaded is loaded again from the state being decoded.
        """
        key = (root_id, stored.layout)
        shaped = self._layouts.pop(key, None)
        if shaped is None:
            shaped = _copy_template(template, type(template).DERIVED_ATTRIBUTES, None)
            self._decode_into(shaped, stored, set(stored.values) - stored.replaced)
        self._layouts[key] = shaped  # most recently used last
        while len(self._layouts) > 2 * _TEMPLATES:
            self._layouts.pop(next(iter(self._layouts)))
        return shaped

    def load_state(self, node_id: str, properties: dict[str, Any], root_id: str,
                   parent: Materialized | None = None) -> ExperimentState:
        """Return a private copy of a computed state (from memory when given, else the store)."""
        cls = self.require_class()
        if parent is None:
            parent = self.read_stored(node_id)
        for name in parent.values:
            if name not in cls.NONHASHED_ATTRIBUTES:
                raise CorruptStateError(
                    f"state {node_id[:12]}: stored attribute {name!r} is not declared in "
                    f"{cls.__qualname__}.NONHASHED_ATTRIBUTES; is this the right state class?"
                )
        state = self.new_state(properties, root_id, parent)
        self._decode_into(state, parent, parent.values)
        return state

    def _decode_into(self, state: ExperimentState, stored: Materialized, names: Iterable[str]) -> None:
        source = MemorySource(stored.blobs)
        for name in names:
            current = getattr(state, name, None)
            setattr(state, name, decode_value(stored.values[name], source, current=current,
                                              owner=f"attribute {name!r}", allow_pickle=self.allow_pickle))

    def read_stored(self, node_id: str) -> Materialized:
        """Read a stored state's values and blobs (verified), through a bounded per-process cache.

        Stored states never change, so parents shared by several children (on a
        worker, or when resuming) are read from disk once. The cache holds at most
        ``PRUNELAB_STATE_CACHE_MB`` (default 512) of blobs; a larger state is not kept.
        """
        cached = self._stored.pop(node_id, None)
        if cached is None:
            record = self.store.states.read_record(node_id)
            values = self.store.states.read_values(node_id, record)
            cached = Materialized(values, _read_blobs(values, self.store))
        size = sum(len(b.data) for b in cached.blobs.values())
        if size <= _cache_limit():
            self._stored[node_id] = cached  # most recently used last
            total = sum(sum(len(b.data) for b in m.blobs.values()) for m in self._stored.values())
            while total > _cache_limit():
                evicted = self._stored.pop(next(iter(self._stored)))
                total -= sum(len(b.data) for b in evicted.blobs.values())
        return cached

    def encode_state(self, state: ExperimentState) -> tuple[Materialized, bool]:
        """Encode a state's stored attributes; return them and whether anything was pickled."""
        values: dict[str, Any] = {}
        blobs: dict[str, Blob] = {}
        pickled = False
        for name in type(state).NONHASHED_ATTRIBUTES:
            if not hasattr(state, name):
                continue
            encoded: Encoded = encode_value(getattr(state, name), owner=f"attribute {name!r}",
                                            allow_pickle=self.allow_pickle)
            values[name] = encoded.spec
            blobs.update(encoded.blobs)
            pickled |= encoded.pickled
        return Materialized(values, blobs), pickled

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
            lease = acquire(leases, task.node_id, lambda: self._done(task.node_id), durable=self.spec.durable,
                            wait=wait)
            if isinstance(lease, str):
                return TaskOutcome(BUSY)
            if lease is None:
                outcome.state = ELSEWHERE
            else:
                try:
                    outcome.state, outcome.error = self._compute(task, parent, lease)
                    if isinstance(outcome.state, Materialized):
                        return self._run_functions(task, outcome, outcome.state, lease)
                finally:
                    self._let_go(lease)
                if outcome.state is None:
                    return outcome
        if not task.functions:
            return outcome
        paths = [self.store.layout.result_path(task.node_id, f.name, f.version) for f in task.functions]
        lease = acquire(leases, task.node_id, lambda: all(p.exists() for p in paths), durable=self.spec.durable,
                        wait=wait)
        if isinstance(lease, str):
            return TaskOutcome(BUSY)
        if lease is None:
            return self._run_functions(task, outcome, None, None, stored=task.functions)
        try:
            return self._run_functions(task, outcome, None, lease, stored=[f for f, p in zip(task.functions, paths)
                                                                             if p.exists()])
        finally:
            self._let_go(lease)

    def _run_functions(self, task: Task, outcome: TaskOutcome, parent: Materialized | None, lease: Lease | None,
                       stored: Sequence[Function] = ()) -> TaskOutcome:
        """Run the task's functions but those ``stored`` already; every one that did not fail is a result."""
        for function in task.functions:
            if function not in stored and lease is not None:
                ok, error = self._run_function(task, function, parent, lease)
                if not ok:
                    outcome.failures[f"{task.node_id} function {function.name}"] = error or ""
        outcome.results = [f"{task.node_id} {f.key}" for f in task.functions
                           if f"{task.node_id} function {f.name}" not in outcome.failures]
        return outcome

    def _done(self, node_id: str) -> bool:
        return self.store.states.status(node_id) == "done"

    def _compute(self, task: Task, parent: Materialized | None, lease: Lease
                 ) -> tuple[Materialized | str | None, str | None]:
        """Make and publish a task's state: (its stored form or ELSEWHERE, None), or (None, the traceback)."""
        started = time.time()
        record = {**task.record, "started": started, "worker": self.worker, **self._stamps(),
                  "seed": derive_seed(task.node_id, "recipe"), "threads": self.threads,
                  "deterministic": self.deterministic}
        try:
            state, in_force = self._make(task, parent)
            record.update(in_force)
            materialized, pickled = self.encode_state(state)
        except Exception:  # noqa: BLE001 - a user's recipe may raise anything; it is recorded
            error = traceback.format_exc()
            record.update(status="failed", error=error, wall_s=time.time() - started, blobs=[], pickled=False)
            self._publish(record, None, lease)
            return None, error
        devices = sorted({spec[4] for spec in _tensor_specs(materialized.values)})
        record.update(status="done", error=None, wall_s=time.time() - started, blobs=sorted(materialized.blobs),
                      bytes=sum(len(b.data) for b in materialized.blobs.values()), pickled=pickled,
                      devices=devices)
        return (materialized if self._publish(record, materialized, lease) else ELSEWHERE), None

    def record_failure(self, task: Task, error: str) -> None:
        """Publish a failure record for a task that could not run at all (e.g. it kept killing its worker)."""
        record = {**task.record, "status": "failed", "error": error, "started": time.time(), "wall_s": 0.0,
                  "worker": self.worker, "environment": self.environment, "threads": self.threads,
                  "deterministic": self.deterministic, "blobs": [], "pickled": False}
        self.store.states.publish(record, None, {}, self.index.record_published)

    def _make(self, task: Task, parent: Materialized | None) -> tuple[ExperimentState, dict[str, Any]]:
        """Build a task's state; return it and the torch settings its recipe left in force (when they differ)."""
        cls = self.require_class()
        root_id = task.record["root_id"]
        if task.recipe is None or task.parent_id is None:
            state = self.new_state(task.properties, root_id)
            warn_undeclared(state, f"{cls.__qualname__}.initialize_state")
            return state, {}
        state = bind_node(self.load_state(task.parent_id, task.properties, root_id, parent), task.node_id, task.tags)
        recipe = task.recipe.fresh()  # a failed run that changed self leaves the next one as declared
        name = class_name(type(recipe))
        what = f"recipe {name} (node {task.node_id[:12]}…)"
        with self._body(derive_seed(task.node_id, "recipe"), root_id, what):
            out = recipe.run(state)
            in_force = self._settings_changed(what)
        if not isinstance(out, cls):
            raise StateDefinitionError(
                f"{name}.run returned {type(out).__qualname__}, not a {cls.__qualname__}; "
                "a recipe must return the state it was given (or another instance of the state class)."
            )
        check_kept(out, task.properties, name, " Keep it fixed, or make the varying value a recipe property or a "
                    "non-hashed attribute.")
        warn_undeclared(out, f"{name}.run")
        return out, in_force

    def _settings_changed(self, what: str) -> dict[str, Any]:
        """The thread count and deterministic flag in force now, where a body changed them (with a warning)."""
        torch = sys.modules.get("torch")
        if torch is None:
            return {}
        now = {"threads": torch.get_num_threads(), "deterministic": torch.are_deterministic_algorithms_enabled()}
        changed = {k: v for k, v in now.items() if v != getattr(self, k)}
        if changed:
            warnings.warn(
                f"{what} changed torch's {' and '.join(f'{k} to {v}' for k, v in changed.items())} (the experiment "
                f"sets threads={self.threads}, deterministic={self.deterministic}); they change the bits, so the "
                "record says what was in force when it returned. Set them on the Experiment instead.",
                PrunelabWarning, stacklevel=2,
            )
        return changed

    def _run_function(self, task: Task, function: Function, parent: Materialized | None, lease: Lease
                      ) -> tuple[bool, str | None]:
        started = time.time()
        seed = derive_seed(task.node_id, f"function:{function.name}")
        owner = f"result of function {function.name!r}"
        try:
            root_id = task.record["root_id"]
            state = bind_node(self.load_state(task.node_id, task.properties, root_id, parent), task.node_id, task.tags)
            what = f"function {function.name!r} (node {task.node_id[:12]}…)"
            with self._body(seed, root_id, what):
                value = function.fn(state)
                self._settings_changed(what)
            value, withheld = split_blinded(value, function.name, task.blinded)
            encoded = encode_value(value, owner=owner, allow_stateful=False)
            hidden = encode_value(withheld, owner=owner, allow_stateful=False) if withheld else None
        except Exception:  # noqa: BLE001 - recorded and reported
            return False, traceback.format_exc()
        from ..core.recipe import fingerprint

        record = {"name": function.name, "version": function.version, "node_id": task.node_id, "seed": seed,
                  "fingerprint": fingerprint(function.fn), "module": getattr(function.fn, "__module__", None),
                  "qualname": getattr(function.fn, "__qualname__", None), "value": encoded.spec, "blobs": sorted(encoded.blobs),
                  "started": started, "wall_s": time.time() - started, "worker": self.worker, **self._stamps()}
        withheld_part = None
        if hidden is not None:
            record["blinded"] = sorted(withheld)
            withheld_part = ({**record, "value": hidden.spec, "blobs": sorted(hidden.blobs)}, hidden.blobs)
        self._store_result(task.node_id, record, encoded.blobs, withheld_part, lease)
        return True, None


def _cache_limit() -> int:
    try:
        return int(float(os.environ.get("PRUNELAB_STATE_CACHE_MB", "512")) * 2**20)
    except ValueError:
        return 512 * 2**20


def _read_blobs(values: dict[str, Any], store: Store) -> dict[str, Blob]:
    """Read every blob a value spec references: tensors as tensors, the rest as bytes."""
    blobs: dict[str, Blob] = {}
    source = StoreSource(store)
    stack: list[Any] = list(values.values())
    while stack:
        item = stack.pop()
        if not (isinstance(item, list) and item):
            continue
        tag = item[0]
        if tag == "tensor" and item[1] not in blobs:
            import torch

            tensor = source.tensor(item[1], item[2], item[3])
            data = tensor.reshape(-1).view(torch.uint8).numpy().data if tensor.numel() else memoryview(b"")
            blobs[item[1]] = Blob(item[1], data, tensor)
        elif tag in ("ndarray", "bytes", "pickle") and item[1] not in blobs:
            raw = source.raw(item[1])
            blobs[item[1]] = Blob(item[1], memoryview(raw), raw)
        else:
            stack.extend(x for x in item if isinstance(x, list))
    return blobs


_TEMPLATES = 4  # initialised states kept per process, one per root


def _copy_template(template: ExperimentState, derived: list[str], stored: Materialized | None) -> ExperimentState:
    """Copy a freshly initialised state: derived attributes shared, the rest deep-copied.

    With ``stored`` (values about to be decoded into the copy), its replaced
    attributes are left out and the ones loaded into are copied for loading.
    """
    shared = {name: template.__dict__[name] for name in derived if name in template.__dict__}
    memo = {id(value): value for value in shared.values()}
    state = type(template).__new__(type(template))
    replaced = frozenset() if stored is None else stored.replaced
    rest = {k: v for k, v in template.__dict__.items() if k not in shared and k not in replaced and k != NODE_KEY}
    loaded = frozenset() if stored is None else frozenset(stored.values) - replaced
    state.__dict__.update(copy_values(rest, memo, loaded))
    state.__dict__.update(shared)
    return state


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
