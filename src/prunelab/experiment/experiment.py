"""``Experiment``: declare a graph of states, run it, query it, restore it."""

from __future__ import annotations

import contextlib
import copy
import errno
import os
import secrets
import sqlite3
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self, TypeVar

from ..storage.codecs import encode_value
from ..core.display import to_display
from ..execution.engine import Engine, EngineSpec, Task, refuse_inside_body
from ..core.environment import capture
from ..core.errors import (CorruptStateError, PrunelabError, PrunelabWarning, PublishError, RunError, StateDefinitionError,
                     UnhashableValueError)
from ..core.graph import Graph
from ..core.identity import child_id, class_name, encode_property, root_id
from ..storage.index import Index
from ..storage.lease import Lease, acquire
from ..core.nodes import Node, NodeSet
from ..core.recipe import Function, Recipe, fingerprint
from ..core.state import ExperimentState, check_properties, check_tag, property_defaults, validate_state_class
from ..storage.files import disk_full
from ..storage.gc import GCReport, collect
from ..storage.storage import Storage
from ..storage.merge import merge
from ..storage.store import FORMAT_VERSION, LAYOUT, Store

if TYPE_CHECKING:
    from ..execution.base import Executor, RunReport

__all__ = ["Experiment", "Plan", "declaring_only", "find_state_class", "reindex", "EXECUTOR_ENV"]

#: Chooses the executor when ``run()`` is given none (``local``).
EXECUTOR_ENV = "PRUNELAB_EXECUTOR"

_DECLARING_ONLY: list[str] = []  # why run() only declares now, innermost last (see declaring_only)


@contextlib.contextmanager
def declaring_only(why: str) -> Iterator[None]:
    """Make every :meth:`Experiment.run` inside the block compute and write nothing.

    For importing a user's script to learn its classes (``prunelab status
    --script``): the script's ``run()`` calls return an empty report instead
    of training. ``why`` is said in the warning each such call gives.
    """
    _DECLARING_ONLY.append(why)
    try:
        yield
    finally:
        _DECLARING_ONLY.pop()


@dataclass
class Plan:
    """What :meth:`Experiment.run` would do: tasks in dependency order and what is cached."""

    tasks: list[Task] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)

    @property
    def to_compute(self) -> list[str]:
        """Ids of the states that would be computed."""
        return [t.node_id for t in self.tasks if t.compute]

    @property
    def functions(self) -> list[tuple[str, str]]:
        """(node id, result key) of every function that would run."""
        return [(t.node_id, f.key) for t in self.tasks for f in t.functions]

    def __str__(self) -> str:
        lines = [f"plan: {len(self.to_compute)} state(s) to compute, {len(self.functions)} function result(s), "
                 f"{len(self.cached)} cached, {len(self.blocked)} failed and not retried"]
        for task in self.tasks:
            what = (task.record.get("recipe") or {}).get("name", "root") if task.compute else "(stored)"
            fns = ", ".join(f.key for f in task.functions)
            lines.append(f"  {task.node_id[:12]} {what}{'  + ' + fns if fns else ''}")
        return "\n".join(lines)


T = TypeVar("T")


def imported(predicate: Callable[[Any], bool]) -> list[Any]:
    """Every distinct object, in the namespaces of already-imported modules, for which ``predicate`` holds.

    Never imports anything: a directory cannot make prunelab run its code.
    """
    found: dict[int, Any] = {}
    with warnings.catch_warnings():  # some modules hold deprecated objects that warn when inspected
        warnings.simplefilter("ignore")
        for module in list(sys.modules.values()):
            namespace = getattr(module, "__dict__", None)
            if isinstance(namespace, dict):
                found.update((id(v), v) for v in list(namespace.values()) if predicate(v))
    return list(found.values())


def named_subclasses(name: str, base: type[T]) -> list[type[T]]:
    """The imported subclasses of ``base`` whose class name (``NAME`` or qualname) is ``name``."""
    return imported(lambda v: isinstance(v, type) and issubclass(v, base) and v is not base and class_name(v) == name)


def find_imported(name: str, base: type[T]) -> type[T] | None:
    """The one imported subclass of ``base`` called ``name`` (None if there is none; an error if several)."""
    found = named_subclasses(name, base)
    if len(found) > 1:
        names = ", ".join(sorted(f"{c.__module__}.{c.__qualname__}" for c in found))
        raise StateDefinitionError(f"several imported classes are named {name!r} ({names}); pass the class itself.")
    return found[0] if found else None


def reindex(directory: str | Path) -> tuple[Experiment, list[str]]:
    """Rebuild the index of an experiment from its files; return it and what could not be restored.

    A damaged ``experiment.json`` is first written again from the state
    records (its state class and format; the prunelab version that created
    it is lost). Damaged records, results and tag entries are skipped and
    listed: ``prunelab gc --repair`` sets them aside for recomputation.
    """
    store = Store(directory)
    notes = []
    try:
        store.read_info()
    except CorruptStateError as err:
        if not err.path.endswith("experiment.json"):
            raise
        store.layout.require_writable("reindex")
        name = store.restore_info()
        notes.append(f"{err.path} was damaged: written again from the state records (state class {name}; the "
                     "prunelab version that created the experiment is not known)")
    exp = Experiment.restore(directory)
    with exp.store.lock():
        notes += exp.index.rebuild()
    exp.graph.reload()
    return exp, notes


def find_state_class(name: str) -> type[ExperimentState] | None:
    """Find the state class called ``name`` among already-imported modules (see :func:`find_imported`)."""
    return find_imported(name, ExperimentState)


class Experiment:
    """A graph of experiment states stored in one directory.

    Parameters
    ----------
    directory : str or Path
        Where states are stored; created if missing. Re-running a script on the
        same directory resumes: stored states are not recomputed.
    state_class : type of ExperimentState
        The class of every state in the experiment.
    allow_pickle : bool, default=False
        Store values that have no codec by pickling them (and load pickles).
        Off by default: unpickling a directory runs code from it.
    deterministic : bool, default=False
        Run recipes with ``torch.use_deterministic_algorithms(True)``.
    threads : int, default=1
        ``torch.set_num_threads`` for every recipe and function (recorded:
        the thread count changes floating-point results).
    durable : bool, default=False
        fsync every write (safe against power loss; slower).

    Examples
    --------
    >>> import prunelab as pl, tempfile
    >>> class S(pl.ExperimentState):
    ...     PROPERTIES = ["n"]
    ...     NONHASHED_ATTRIBUTES = ["total"]
    ...     def initialize_state(self):
    ...         self.total = 0
    >>> class Add(pl.Recipe):
    ...     PROPERTIES = ["k"]
    ...     def run(self, state):
    ...         state.total += self.k
    ...         return state
    >>> exp = pl.Experiment(tempfile.mkdtemp(), S)
    >>> node = Add(k=2)(exp.spawn_new_tree(n=1))
    >>> report = exp.run(quiet=True)
    >>> node.restore().total
    2
    """

    #: The classes of the graph and of its nodes (:mod:`prunelab.compat.dagger` extends them with dagger's spellings).
    graph_class: type[Graph] = Graph
    node_class: type[Node] = Node

    def __init__(self, directory: str | Path, state_class: type[ExperimentState], *, allow_pickle: bool = False,
                 deterministic: bool = False, threads: int = 1, durable: bool = False):
        self._open(directory, validate_state_class(state_class), allow_pickle=allow_pickle,
                   deterministic=deterministic, threads=threads, durable=durable, create=True)

    def _open(self, directory: str | Path, state_class: type[ExperimentState] | None, *, allow_pickle: bool,
              deterministic: bool, threads: int, durable: bool, create: bool) -> None:
        if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
            raise StateDefinitionError(f"Experiment threads must be a positive int, got {threads!r}.")
        self.directory = Path(directory)
        self.state_class = state_class
        self.allow_pickle = bool(allow_pickle)
        self.deterministic = bool(deterministic)
        self.threads = threads
        self.store = Store(self.directory, durable=durable)
        if create and not self.store.layout.is_experiment():
            foreign = [p.name for p in self.directory.iterdir()  # ours: the layout, and temp files being written
                       if p.name not in LAYOUT and not p.name.startswith(".tmp-")] if self.directory.is_dir() else []
            if foreign:
                raise StateDefinitionError(
                    f"{self.directory} exists and is not empty (it holds {sorted(foreign)[:3]}), but is not a "
                    "prunelab experiment; choose a new or empty directory."
                )
            from .. import __version__

            assert state_class is not None  # only restore() opens without a class, and never creates
            self.directory.mkdir(parents=True, exist_ok=True)
            try:
                with self.store.lock():  # two drivers may create the same new experiment at once
                    if not self.store.layout.is_experiment():
                        self.store.create({"state_class": class_name(state_class), "prunelab": __version__})
            except OSError as err:
                if not disk_full(err):
                    raise
                raise PublishError(f"cannot create the experiment {self.store.root}: the disk is full ({err}). Free "
                                   "some space and open it again; nothing else was changed.") from err
        info = self.store.read_info()
        if state_class is not None and info.get("state_class") != class_name(state_class):
            raise StateDefinitionError(
                f"{self.directory} holds states of class {info.get('state_class')!r}, not "
                f"{class_name(state_class)!r}; use that class, or another directory."
            )
        self.info = info
        self.index = Index(self.store)
        self.store.blobs.users = self.index.blob_users
        self.index.ensure_valid()
        self.storage = Storage(self.store, self.index)
        spec = EngineSpec(str(self.store.root), state_class, info.get("state_class", "?"), self.allow_pickle,
                          threads, self.deterministic, durable, None)
        self.engine = Engine(spec, self.store, self.index)
        self.graph = self.graph_class(self)
        self._tag_stack: list[str] = []
        self._declared: dict[str, Node] = {}
        self._recipe_classes: dict[str, type] = {}
        self._functions: dict[str, Function] = {}

    @classmethod
    def restore(cls, directory: str | Path, state_class: type[ExperimentState] | None = None, slim: bool = True,
                *, allow_pickle: bool = False) -> Self:
        """Open a stored experiment.

        Parameters
        ----------
        directory : str or Path
            An experiment directory.
        state_class : type of ExperimentState, optional
            The state class; if omitted, it is looked up among already-imported
            modules (including ``__main__``). A slim restore never needs it.
        slim : bool, default=True
            Load only the records; values load on ``node.restore()``. With
            ``slim=False`` every done state's values are loaded now.
        allow_pickle : bool, default=False
            Allow loading values stored as pickles (only for trusted directories).
        """
        store = Store(directory)
        info = store.read_info()
        if state_class is None:
            state_class = find_state_class(info.get("state_class", ""))
        elif not isinstance(state_class, type):
            raise StateDefinitionError(f"state_class must be a class, got {state_class!r}.")
        exp = cls.__new__(cls)
        exp._open(directory, state_class, allow_pickle=allow_pickle, deterministic=False, threads=1,
                  durable=False, create=False)
        if not slim:
            if state_class is None:
                raise StateDefinitionError(
                    f"restoring {directory} with slim=False needs its state class {info.get('state_class')!r}; "
                    "pass state_class= or import the module that defines it."
                )
            for node in exp.graph.nodes:
                if node.stored_status == "done":
                    node.restore()
        return exp

    def load(self, node: Node) -> ExperimentState:
        """Load a done node's state from the store (what :meth:`Node.restore` calls).

        Parameters
        ----------
        node : Node
            A node of this experiment whose state is stored.

        Returns
        -------
        ExperimentState
            A new state holding the stored values.
        """
        return self.engine.load_state(node.id, node.properties, node.record["root_id"])

    # ------------------------------------------------------------ declaring
    @contextlib.contextmanager
    def tag(self, name: str | Iterable[str]) -> Iterator[None]:
        """Tag every node declared inside the block (tags nest; they are not identity).

        Parameters
        ----------
        name : str or iterable of str
            One tag, or several (``exp.tag(["a", "b"])`` tags with both).
        """
        names = [check_tag(name)] if isinstance(name, str) else [check_tag(n) for n in _tag_list(name)]
        self._tag_stack.extend(names)
        try:
            yield
        finally:
            del self._tag_stack[len(self._tag_stack) - len(names):]

    def _declare(self, node_id: str, parent_id: str | None, pending: dict[str, Any], values: dict[str, Any]) -> Node:
        node = self.graph.declare(node_id, parent_id)
        node._pending = pending
        node.values = values
        for tag in self._tag_stack:
            node.add_tag_in_memory(tag)
        self._declared[node_id] = node
        return node

    def spawn_new_tree(self, **properties: Any) -> Node:
        """Declare a root state with these properties and return its node."""
        state_class = self.engine.require_class()
        owner = class_name(state_class)
        values = check_properties(owner, list(state_class.PROPERTIES), properties,
                                  property_defaults(state_class.PROPERTIES))
        for name, value in values.items():
            encode_property(owner, name, value)
        node_id = root_id(owner, values)
        pending = {"id": node_id, "parent_id": None, "root_id": node_id, "depth": 0, "state_class": owner,
                   "recipe": None, "properties": {k: to_display(v) for k, v in values.items()},
                   "property_specs": _property_specs(values), "lineage": {}, "seed": None}
        return self._declare(node_id, None, pending, values)

    def _own(self, node: Node, what: str) -> None:
        if node.experiment is not self:
            raise StateDefinitionError(
                f"{what} was applied to node {node.id[:12]} of another experiment ({node.experiment.directory}); "
                f"apply it to nodes of {self.directory}."
            )

    def _apply_recipe(self, recipe: Recipe, parent: Node) -> Node:
        cls = type(recipe)
        name = class_name(cls)
        self._own(parent, name)
        known = self._recipe_classes.setdefault(name, cls)
        if known is not cls:
            raise StateDefinitionError(
                f"two different recipe classes are named {name!r} ({known.__module__}.{known.__qualname__} and "
                f"{cls.__module__}.{cls.__qualname__}); set NAME on one of them so their ids differ."
            )
        recipe = recipe.applied()  # what is hashed and recorded is what runs
        properties = recipe.properties
        node_id = child_id(parent.id, name, cls.VERSION, properties)
        parent_record = parent.record
        shown = {k: to_display(v) for k, v in properties.items()}
        lineage = dict(parent_record.get("lineage") or {})
        for key, source in cls.LINEAGE.items():
            if isinstance(source, str) and source in shown:
                if shown[source] is not None:  # a property left at None keeps the inherited value
                    lineage[key] = shown[source]
            else:
                lineage[key] = to_display(source)
        pending = {"id": node_id, "parent_id": parent.id, "root_id": parent_record.get("root_id"),
                   "depth": int(parent_record.get("depth", 0)) + 1, "state_class": parent_record.get("state_class"),
                   "recipe": {"name": name, "version": cls.VERSION, "properties": shown,
                              "property_specs": _property_specs(properties),
                              "options": {k: to_display(v) for k, v in recipe.options.items()},
                              "fingerprint": fingerprint(cls), "module": cls.__module__,
                              "qualname": cls.__qualname__},
                   "properties": parent_record.get("properties"), "property_specs": parent_record.get("property_specs"),
                   "lineage": lineage, "seed": None}
        child = self._declare(node_id, parent.id, pending, parent.properties)
        child.recipe_obj = recipe
        return child

    def _apply_function(self, function: Function, node: Node) -> Node:
        self._own(node, f"function {function.name!r}")
        known = self._functions.setdefault(function.name, function)
        if known is not function and getattr(known.fn, "__code__", None) is not getattr(function.fn, "__code__", 0):
            raise StateDefinitionError(
                f"two different functions are named {function.name!r} ({known.fn.__module__}."
                f"{known.fn.__qualname__} and {function.fn.__module__}.{function.fn.__qualname__}); "
                "give one another name with @pl.function(name=...)."
            )
        node.functions[function.name] = copy.copy(function)  # its name and version now are what runs
        for tag in self._tag_stack:
            node.add_tag_in_memory(tag)
        self._declared.setdefault(node.id, node)
        return node

    # ----------------------------------------------------------- tags
    def add_tag(self, nodes: Node | Iterable[Node], tag: str) -> None:
        """Add ``tag`` to stored nodes now (append-only log)."""
        check_tag(tag)
        self._write_tags([["+", n.id, tag] for n in self._as_nodes(nodes)])

    def remove_tag(self, nodes: Node | Iterable[Node], tag: str) -> None:
        """Remove ``tag`` from nodes now (recorded in the append-only log)."""
        targets = self._as_nodes(nodes)
        for node in targets:
            if node._tags:
                node._tags.discard(tag)
        self._write_tags([["-", n.id, tag] for n in targets])

    def _as_nodes(self, nodes: Node | Iterable[Node]) -> list[Node]:
        items = [nodes] if isinstance(nodes, Node) else list(nodes)
        for node in items:
            if not isinstance(node, Node):
                raise StateDefinitionError(f"expected nodes, got {type(node).__qualname__}.")
            self._own(node, "a tag change")
        return items

    def _write_tags(self, entries: list[list[str]]) -> None:
        if not entries:
            return
        self.store.layout.require_writable("changing tags")
        self.store.logs.append("tags", {"entries": entries}, lambda _: self.index.tags_written(entries))
        self.graph.invalidate()

    def _flush_declared_tags(self) -> None:
        stored = self.graph.stored_tags()
        entries = [["+", node.id, tag] for node in self._declared.values() for tag in sorted(node._tags or ())
                   if tag not in stored.get(node.id, set())]
        self._write_tags(entries)

    # ------------------------------------------------------------ running
    def plan(self, targets: Iterable[Node] | None = None, retry_failed: bool = True) -> Plan:
        """Return what :meth:`run` would do, without doing it."""
        if targets is None:
            candidates = list(self._declared.values())
        else:
            chosen = self._as_nodes(targets)
            candidates = list({n.id: n for n in [*chosen, *NodeSet(chosen).ancestors()]}.values())
        status = self.index.status_of([n.id for n in candidates])
        keys = self.index.result_keys()
        prereg = self.graph.prereg
        plan = Plan()
        failed_parents: set[str] = set()
        for node in sorted(candidates, key=lambda n: n.depth):
            node.stored_status = status.get(node.id)
            stored = node.stored_status
            if stored == "failed" and not retry_failed or node.parent_id in failed_parents:
                plan.blocked.append(node.id)
                failed_parents.add(node.id)
                continue
            compute = stored != "done"
            if compute and node.recipe_obj is None and node.parent_id is not None:
                plan.blocked.append(node.id)  # stored as failed and not declared here: nothing to rerun with
                failed_parents.add(node.id)
                continue
            functions = [f for f in node.functions.values()
                         if f.key not in keys.get(node.id, set()) and not self._index_result_on_disk(node.id, f)]
            if not compute and not functions:
                plan.cached.append(node.id)
                continue
            record = node._pending or node.record  # a retried failure starts from what this script declares
            blinded = prereg.blind_patterns(self.graph.tags_of(node)) if functions and prereg.blinds else []
            plan.tasks.append(Task(node.id, node.parent_id, node.properties, node.recipe_obj, record, compute,
                                   functions, blinded, sorted(self.graph.tags_of(node))))
        return plan

    def _index_result_on_disk(self, node_id: str, function: Function) -> bool:
        """Index a result that is on disk but not in the index (a crash between the two)."""
        record = self.store.results.read(node_id, function.name, function.version)
        if record is None:
            return False
        with self.store.lock():
            self.index.result_written(node_id, record)
        return True

    def run(self, executor: Executor | None = None, targets: Iterable[Node] | None = None,
            retry_failed: bool = True, *, raise_on_failure: bool = True, quiet: bool = False) -> RunReport:
        """Compute every declared node (or those ``targets`` need) that is not stored.

        Parameters
        ----------
        executor : Executor, optional
            Default: ``PRUNELAB_EXECUTOR`` if set, else :class:`~prunelab.LocalExecutor`.
        targets : iterable of Node, optional
            Compute only these and their ancestors.
        retry_failed : bool, default=True
            Recompute nodes stored as failed.
        raise_on_failure : bool, default=True
            Raise :class:`~prunelab.RunError` listing every failure; if False, return it in the report.
        quiet : bool, default=False
            Do not print the summary line.

        Returns
        -------
        RunReport
            Ids computed, cached, failed and skipped, and the timing.

        Raises
        ------
        RunError
            Some nodes failed (every other branch completed).
        PublishError
            Storing failed (the disk is full, the directory was deleted under
            the run …); every state stored before is intact.
        ReadOnlyError
            The directory cannot be written.
        """
        refuse_inside_body("run()")
        if _DECLARING_ONLY:
            warnings.warn(f"run() on {self.directory} computed nothing: {_DECLARING_ONLY[-1]}.", PrunelabWarning,
                          stacklevel=2)
            from ..execution.base import RunReport

            return RunReport()
        self.store.layout.require_writable("run()")
        self.store.logs.read("prereg", strict=True)  # damaged registrations: which metrics are blinded is unknown
        try:
            return self._run(executor, targets, retry_failed, raise_on_failure, quiet)
        except (OSError, sqlite3.Error) as err:
            if isinstance(err, PrunelabError) and not disk_full(err):
                raise
            raise self._storing_failed(err) from err

    def _storing_failed(self, err: BaseException) -> PublishError:
        """Say in plain words why storing failed: a full disk, or the directory gone from under the run."""
        if disk_full(err) or "No space left" in str(err) or "disk is full" in str(err):
            return PublishError(f"the disk holding {self.store.root} is full ({err}); every state stored before is "
                                "intact. Free some space (`prunelab gc` removes leftovers) and re-run the script: "
                                "it computes only what is missing.")
        if not self.store.root.is_dir() or not self.store.layout.is_experiment():
            return PublishError(f"{self.store.root} was deleted or moved during the run ({err}); nothing was written "
                                "elsewhere and nothing was recreated. Re-run the script to start it again.")
        if isinstance(err, sqlite3.Error) or getattr(err, "errno", None) == errno.EBADF:
            return PublishError(f"the index of {self.store.root} stopped working ({err}): its file descriptor was "
                                "closed or replaced, as a recipe or function closing descriptors it does not own "
                                "(os.closerange, daemonising code) does; every state stored before is intact. Leave "
                                "descriptors 3 and up alone in recipes, and re-run the script.")
        return PublishError(f"storing into {self.store.root} failed ({err}); every state stored before is intact. "
                            "Fix the cause and re-run the script: it computes only what is missing.")

    def _run(self, executor: Executor | None, targets: Iterable[Node] | None, retry_failed: bool,
             raise_on_failure: bool, quiet: bool) -> RunReport:
        from ..execution import resolve_executor

        executor = resolve_executor(executor)
        targets = None if targets is None else self._as_nodes(targets)
        started = time.time()
        self.graph.invalidate()  # re-read registrations and blinds other processes may have written
        self.engine.with_environment(self.store.logs.write_env(capture()), tuple(self.graph.prereg.digests))
        plan = self.plan(targets, retry_failed)
        self._flush_declared_tags()
        declared_ids = list(self._declared) if targets is None else [t.node_id for t in plan.tasks] + plan.cached
        manifest = {"format": FORMAT_VERSION, "declared": declared_ids, "started": started,
                    "executor": executor.describe(), "environment": self.engine.environment,
                    "threads": self.threads, "deterministic": self.deterministic, "pid": os.getpid(),
                    "targets": None if targets is None else [t.id for t in targets],
                    "planned": len(plan.tasks), "cached": len(plan.cached)}
        self.store.logs.append("runs", manifest, lambda _: self.index.touch())
        for task in plan.tasks:
            self.graph._nodes[task.node_id].run_status = "running"
        from ..execution.progress import Progress

        progress = Progress(len(plan.tasks), quiet=quiet)
        run_lease = acquire(self.store.layout.leases, f"run.{os.getpid()}.{secrets.token_hex(4)}", lambda: False,
                            durable=self.store.durable)  # tells gc a run is writing (keep unreferenced blobs)
        try:
            with self.engine.batch():
                report = executor.execute(plan.tasks, self.engine, progress)
        finally:
            if isinstance(run_lease, Lease):
                run_lease.release()
            progress.close()
            self._refresh([t.node_id for t in plan.tasks])
        report.cached = plan.cached
        report.wall_s = time.time() - started
        report.skipped = sorted({*report.skipped, *plan.blocked})
        for node_id in report.skipped:
            node = self.graph._nodes.get(node_id)
            if node is not None and node.stored_status is None:
                node.run_status = "skipped"
        if not quiet:
            print(report.summary(), file=sys.stderr)
        if report.failed:
            error = RunError(report.failed, report.skipped)
            report.error = error
            if raise_on_failure:
                raise error
        return report

    def _refresh(self, node_ids: list[str]) -> None:
        status = self.index.status_of(node_ids)
        for node_id in node_ids:
            node = self.graph._nodes[node_id]
            node.stored_status = status.get(node_id)
            node.run_status = None
            node.invalidate()
        self.graph.invalidate()

    # ---------------------------------------------------------- lifecycle
    def remove(self, node: Node) -> list[str]:
        """Remove a stored node and its whole subtree (files are deleted by ``gc``); return the ids."""
        self._own(node, "remove()")
        self.store.layout.require_writable("remove()")
        subtree = [node, *NodeSet([node]).descendants()]
        ids = [n.id for n in subtree]
        with self.store.lock():
            self.store.bump_generation()
            removed = [node_id for node_id in ids if self.store.states.remove(node_id)]
            self.index.nodes_removed(removed)
        for node_id in ids:
            self._declared.pop(node_id, None)
        self.graph.forget(ids)
        return ids

    def merge(self, directory: str | Path) -> list[str]:
        """Merge another experiment directory of the same state class into this one (a union).

        Returns the ids of the states added. Re-merging is harmless.
        """
        self.store.layout.require_writable("merge()")
        other = Store(directory)
        info = other.read_info()
        if info.get("state_class") != self.info.get("state_class"):
            raise StateDefinitionError(
                f"{directory} holds states of class {info.get('state_class')!r}, this experiment "
                f"{self.info.get('state_class')!r}; only experiments of one state class can be merged."
            )
        with self.store.lock():
            self.store.bump_generation()
            added = merge(self.store, other)
            self.index.rebuild()
        self.graph.reload()
        return added

    def gc(self, *, repair: bool = False, min_age_s: float = 3600.0, dry_run: bool = False) -> GCReport:
        """Delete crash leftovers, removed states and unreferenced blobs; see :func:`prunelab.storage.gc.collect`."""
        report = collect(self.store, self.index, repair=repair, min_age_s=min_age_s, dry_run=dry_run)
        if (report.states_removed or report.results_removed or report.logs_removed) and not dry_run:
            self.graph.forget(report.states_removed)
            self.graph.reload()
        return report

    def __repr__(self) -> str:
        return f"Experiment({str(self.directory)!r}, {self.info.get('state_class')}, {len(self.graph.nodes)} nodes)"


def _tag_list(names: Any) -> list[Any]:
    """The tags of an iterable given to :meth:`Experiment.tag`, or an error saying what a tag is."""
    try:
        return list(names)
    except TypeError:
        raise StateDefinitionError(f"a tag must be a non-empty str (or a list of them), got {names!r}.") from None


def _property_specs(values: dict[str, Any]) -> dict[str, Any]:
    """Value specs that decode to the properties exactly (None where only the readable form is kept)."""
    specs: dict[str, Any] = {}
    for name, value in values.items():
        try:
            encoded = encode_value(value, owner=f"property {name!r}", allow_stateful=False)
        except (StateDefinitionError, UnhashableValueError):
            encoded = None  # Enum, dataclass: identity-encoded, shown in readable form only
        specs[name] = encoded.spec if encoded is not None and not encoded.blobs else None  # no blobs for properties
    return specs
