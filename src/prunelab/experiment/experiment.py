"""``Experiment``: open a directory, declare a graph of states, and hand planning, running and upkeep to the layers."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from .. import __version__
from ..core.discovery import find_state_class
from ..core.errors import CorruptStateError, StateDefinitionError
from ..core.graph import Graph
from ..core.identity import class_name
from ..core.nodes import Node
from ..core.nodeset import NodeSet
from ..core.function import Function
from ..core.recipe import Recipe
from ..core.state import ExperimentState, validate_state_class
from ..core.records import Status
from ..execution.engine import Engine
from ..execution.plan import Plan, make_plan
from ..execution.task import EngineSpec
from ..storage.storage import Storage
from ..storage.store import Store
from .declare import Declarations, declare_child, declare_root
from .running import run
from .upkeep import Upkeep

if TYPE_CHECKING:
    from ..execution.base import Executor, RunReport

__all__ = ["Experiment", "Plan", "reindex"]

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


class Experiment(Upkeep):
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
        self.state_class, self.threads = state_class, threads
        self.allow_pickle, self.deterministic = bool(allow_pickle), bool(deterministic)
        self.storage = Storage.open(self.directory, class_name(state_class) if state_class else None, durable=durable,
                                    create=create, version=__version__)
        self.store, self.index, self.info = self.storage.store, self.storage.index, self.storage.info
        spec = EngineSpec(str(self.store.root), state_class, self.info.get("state_class", "?"), self.allow_pickle,
                          threads, self.deterministic, durable, None)
        self.engine = Engine(spec, self.store, self.index)
        self.graph = self.graph_class(self)
        self.declared = Declarations()

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

        Returns
        -------
        Experiment
            The experiment, its graph holding every stored node.
        """
        exp = cls.__new__(cls)
        exp._open(directory, _state_class(directory, state_class, slim), allow_pickle=allow_pickle,
                  deterministic=False, threads=1, durable=False, create=False)
        if not slim:
            for node in exp.graph.nodes:
                if node.stored_status == Status.DONE:
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
        return self.engine.materialiser.load_state(node.id, node.properties, node.record["root_id"])

    # ------------------------------------------------------------ declaring
    def tag(self, name: str | Iterable[str]) -> contextlib.AbstractContextManager[None]:
        """Tag every node declared inside the block (tags nest; they are not identity).

        Parameters
        ----------
        name : str or iterable of str
            One tag, or several (``exp.tag(["a", "b"])`` tags with both).

        Returns
        -------
        context manager
            Checks the tags on entering the block and puts them in force until it ends.
        """
        return self.declared.tagged(name)

    def spawn_new_tree(self, **properties: Any) -> Node:
        """Declare a root state with these properties and return its node.

        Parameters
        ----------
        **properties
            The state class's ``PROPERTIES`` (those with a default may be left out).

        Returns
        -------
        Node
            The root, the same node for the same properties.
        """
        node_id, values, pending = declare_root(self.engine.materialiser.require_class(), properties)
        return self.declared.add(self.graph.declare(node_id, None, pending=pending, values=values))

    def _apply_recipe(self, recipe: Recipe, parent: Node) -> Node:
        name = class_name(type(recipe))
        self._own(parent, name)
        self.declared.register_recipe(type(recipe), name)
        recipe = recipe.applied()  # what is hashed and recorded is what runs
        node_id, pending = declare_child(recipe, name, parent)
        return self.declared.add(self.graph.declare(node_id, parent.id, pending=pending, values=parent.properties,
                                                    recipe=recipe))

    def _apply_function(self, function: Function, node: Node) -> Node:
        self._own(node, f"function {function.name!r}")
        return self.declared.function(function, node)

    # ------------------------------------------------------------ running
    def plan(self, targets: Iterable[Node] | None = None, retry_failed: bool = True) -> Plan:
        """Return what :meth:`run` would do, without doing it (nothing is written).

        Parameters
        ----------
        targets : iterable of Node or None, default=None
            Plan only these and their ancestors; None plans every node declared in this session.
        retry_failed : bool, default=True
            Plan to recompute nodes stored as failed.

        Returns
        -------
        Plan
            The tasks in dependency order, and what is cached or blocked.
        """
        if targets is None:
            candidates = list(self.declared.nodes.values())
        else:
            chosen = self._as_nodes(targets)
            candidates = list({n.id: n for n in [*chosen, *NodeSet(chosen).ancestors()]}.values())
        return make_plan(candidates, self.graph, self.storage, retry_failed)

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
        return run(self, executor, targets, retry_failed, raise_on_failure=raise_on_failure, quiet=quiet)

    def __repr__(self) -> str:
        return f"Experiment({str(self.directory)!r}, {self.info.get('state_class')}, {len(self.graph.nodes)} nodes)"


def _state_class(directory: str | Path, given: type[ExperimentState] | None, slim: bool
                 ) -> type[ExperimentState] | None:
    """The state class to restore ``directory`` with: ``given``, else the imported class its records name."""
    name = Store(directory).read_info().get("state_class", "")  # first: a directory that is no experiment says so
    if given is not None:
        if not isinstance(given, type):
            raise StateDefinitionError(f"state_class must be a class, got {given!r}.")
        return given
    found = find_state_class(name)
    if found is None and not slim:
        raise StateDefinitionError(f"restoring {directory} with slim=False needs its state class {name!r}; pass "
                                   "state_class= or import the module that defines it.")
    return found
