"""prunelab with FAIR dagger's spellings: ``import prunelab.compat.dagger as dg``.

Everything ``import prunelab`` exports is here too, and dagger's names are added
where the concept is the same, and only there:

- ``exp.root``: the experiment's single root node (an error naming the roots
  when there are none or several);
- ``node.get()``: run what the node needs, then return its restored state;
- ``with node.lazy_load():``: restore, and deflate when the block ends (``as
  state`` binds the state too);
- ``node.<name>`` while the node's state is loaded (inside ``lazy_load()``, after
  ``get()`` or ``restore()``): the state's attribute, as dagger loaded a state
  into its node; the node's own attributes (``id``, ``tags``, ``status``,
  ``results``, ...) win, and names starting with ``_`` are never read through;
- ``exp.graph.nodes_at_distance(d)``: the nodes ``d`` recipes below a root;
- ``exp.graph.draw(filename=..., format=...)``: write ``filename.format``;
- ``ExperimentStatePromise``: dagger's name for a node, here :class:`Node`;
- ``Function``: :class:`prunelab.core.Function` (dagger's ``Function(op)``).

What differs from dagger on purpose (no pickle by default, seeds from ids,
:class:`RunError`, no save or load hooks) is listed in the README's "Coming
from dagger".
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import prunelab
from prunelab import (
    CorruptStateError,
    DaskExecutor,
    ExperimentFormatError,
    ExperimentState,
    LocalExecutor,
    NodeSet,
    Preempted,
    PrunelabError,
    PrunelabWarning,
    PublishError,
    REQUIRED,
    ReadOnlyError,
    Recipe,
    RunError,
    StateDefinitionError,
    UnhashableValueError,
    UnknownNameError,
    __version__,
    added,
    function,
    log,
)
from prunelab.core import Function
from prunelab.core import graph as _graph

if TYPE_CHECKING:
    from prunelab.execution.base import Executor

__all__ = [
    "CorruptStateError",
    "DaskExecutor",
    "Experiment",
    "ExperimentFormatError",
    "ExperimentState",
    "ExperimentStatePromise",
    "Function",
    "LocalExecutor",
    "Node",
    "NodeSet",
    "Preempted",
    "PrunelabError",
    "PrunelabWarning",
    "PublishError",
    "REQUIRED",
    "ReadOnlyError",
    "Recipe",
    "RunError",
    "StateDefinitionError",
    "UnhashableValueError",
    "UnknownNameError",
    "__version__",
    "added",
    "function",
    "log",
]

_SHOWN = 5  # roots named in an error, at most


class Node(prunelab.Node):
    """A node with dagger's ``get()`` and ``lazy_load()`` that reads its loaded state (see :class:`prunelab.Node`).

    While the node's state is loaded (inside ``with node.lazy_load():``, after
    ``node.get()`` or ``node.restore()``, until ``node.deflate()``), an
    attribute the node does not have is read from the state, as dagger loaded a
    state into its node: ``node.model`` is ``node.restore().model``. The node's
    own attributes always win (``id``, ``tags``, ``status``, ``results``,
    ``properties``, ``restore``, ...: a state attribute of the same name is read
    as ``node.restore().<name>``), names starting with ``_`` are never read
    through, and assigning to the node is not forwarded. When the state is not
    loaded, such a name raises an AttributeError saying how to load it.
    """

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        # Called only when normal lookup failed: not one of the node's attributes, or one whose own lookup raised
        # AttributeError (an unset slot, a property that failed). Those, and private and dunder names (which copy
        # and pickle probe), are looked up again as they are, so that their own error propagates.
        if name.startswith("_") or any(name in vars(cls) for cls in type(self).__mro__):
            return object.__getattribute__(self, name)
        try:
            state = object.__getattribute__(self, "_state")
            node_id = object.__getattribute__(self, "id")
        except AttributeError:  # a node not fully built (being copied or unpickled): nothing to read through
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}", name=name,
                                 obj=self) from None
        if state is None:
            raise AttributeError(
                f"{type(self).__name__!r} object has no attribute {name!r}, and state {node_id[:12]} is not loaded, "
                f"so it is not read from the state; load it first: node.get().{name}, "
                f"with node.lazy_load(): node.{name}, or node.restore().{name}.",
                name=name, obj=self,
            )
        return getattr(state, name)

    def get(self, executor: Executor | None = None) -> ExperimentState:
        """Compute what this node needs, if anything, and return its restored state.

        Parameters
        ----------
        executor : Executor, optional
            Runs what is missing (dagger's ``scheduler``); the default is
            :meth:`Experiment.run`'s. Nothing runs, and nothing is printed,
            when everything the node needs is stored.

        Returns
        -------
        ExperimentState
            The node's state, loaded once and kept (``deflate()`` drops it).

        Raises
        ------
        RunError
            The node's recipe, an ancestor's or a function failed.
        """
        experiment = cast(prunelab.Experiment, self.experiment)  # a node's host is always an Experiment
        plan = experiment.plan(targets=[self])
        if plan.tasks or plan.unindexed:  # a run also indexes a stored result the index lost
            experiment.run(executor, targets=[self])
        return self.restore()

    @contextlib.contextmanager
    def lazy_load(self) -> Iterator[ExperimentState]:
        """Restore the state for the block and deflate it when the block ends, even if it raises.

        As in dagger, the block reads the state's attributes through the node
        (``with node.lazy_load(): node.model``); the block also binds the state
        itself (``with node.lazy_load() as state: state.model``). A node
        restored before the block is deflated after it too, as in dagger.
        """
        try:
            yield self.restore()
        finally:
            self.deflate()


#: dagger's name for a state that may not be computed yet: a node.
ExperimentStatePromise = Node


class Graph(_graph.Graph):
    """The graph with dagger's ``nodes_at_distance`` and ``draw(filename=, format=)``."""

    def nodes_at_distance(self, distance: int) -> NodeSet:
        """Return the nodes ``distance`` recipes below a root (empty below the deepest).

        Parameters
        ----------
        distance : int
            0 for the roots, 1 for their children, and so on.

        Raises
        ------
        StateDefinitionError
            ``distance`` is not an int of at least 0.
        """
        if not isinstance(distance, int) or isinstance(distance, bool) or distance < 0:
            raise StateDefinitionError(f"nodes_at_distance() needs an int of at least 0, got {distance!r}.")
        level = NodeSet(self.roots())
        for _ in range(distance):
            if not level:
                break
            level = level.children()
        return level

    def draw(self, path: str | Path | None = None, *, nodes: NodeSet | None = None, max_nodes: int | None = None,
             filename: str | os.PathLike[str] | None = None, format: str | None = None) -> str | None:
        """Draw the graph; with dagger's ``filename``/``format``, write ``filename.format`` and return that path.

        Parameters
        ----------
        path : str or Path, optional
            prunelab's form: write this file (``.svg``, ``.png`` or ``.pdf``);
            with no argument at all, return the SVG text.
        nodes : NodeSet, optional
            Draw only these nodes.
        max_nodes : int, optional
            Above this many states, draw one box per recipe path (see
            :meth:`prunelab.core.graph.Graph.draw`).
        filename : str or path-like, optional
            dagger's form: the file written is ``filename`` plus ``.`` plus
            ``format`` (default ``"graph"``).
        format : {"svg", "png", "pdf"}, optional
            dagger's form: the format (default ``"pdf"``, as in dagger).

        Returns
        -------
        str or None
            dagger's form: the path written; prunelab's form: the SVG text when
            no ``path`` is given, else None.

        Raises
        ------
        StateDefinitionError
            ``path`` is given with ``filename`` or ``format``, or the format is
            not one of svg, png, pdf.
        """
        if filename is None and format is None:
            return super().draw(path, nodes=nodes, max_nodes=max_nodes)
        if path is not None:
            raise StateDefinitionError(
                f"draw() takes a path ({str(path)!r}) or dagger's filename=/format=, not both; pass one of them."
            )
        target = f"{os.fspath('graph' if filename is None else filename)}.{'pdf' if format is None else format}"
        super().draw(target, nodes=nodes, max_nodes=max_nodes)
        return target


class Experiment(prunelab.Experiment):
    """An experiment with dagger's ``root``, whose nodes and graph have dagger's spellings.

    Takes the arguments of :class:`prunelab.Experiment`;
    ``Experiment.restore(directory)`` opens a stored one as this class.

    Examples
    --------
    >>> import prunelab.compat.dagger as dg, tempfile
    >>> class S(dg.ExperimentState):
    ...     PROPERTIES = ["n"]
    ...     NONHASHED_ATTRIBUTES = ["total"]
    ...     def initialize_state(self, **kwargs):
    ...         self.total = self.n
    >>> class Add(dg.Recipe):
    ...     PROPERTIES = ["k"]
    ...     def __init__(self, k):
    ...         self.k = k
    ...     def run(self, state):
    ...         state.total += self.k
    ...         return state
    >>> exp = dg.Experiment(tempfile.mkdtemp(), S)
    >>> child = Add(2)(exp.spawn_new_tree(n=1))
    >>> exp.root.id == child.parent_id
    True
    >>> child.get().total  # runs the root and the child (the summary goes to stderr)
    3
    >>> exp.graph.nodes_at_distance(1).ids == [child.id]
    True
    """

    graph_class = Graph
    node_class = Node
    graph: Graph

    @property
    def root(self) -> Node:
        """The experiment's root node, when it has exactly one.

        Raises
        ------
        UnknownNameError
            The experiment has no root yet, or several (they are named).
        """
        roots = self.graph.roots()
        if len(roots) == 1:
            root = roots[0]
            assert isinstance(root, Node)  # the graph makes every node of node_class
            return root
        if not roots:
            raise UnknownNameError(f"{self.directory} has no root yet; declare one with exp.spawn_new_tree(...).")
        named = ", ".join(f"{r.id[:12]} ({_properties(r)})" for r in roots[:_SHOWN])
        raise UnknownNameError(
            f"{self.directory} has {len(roots)} roots, so exp.root is ambiguous: {named}"
            f"{', …' if len(roots) > _SHOWN else ''}. Pick one with exp.graph.node(id), or take them all with "
            "exp.graph.nodes_at_distance(0)."
        )


def _properties(node: prunelab.Node) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in (node.record.get("properties") or {}).items())
