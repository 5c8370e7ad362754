"""Nodes: a declared or stored state, at any stage of its life (sets of them are :mod:`.nodeset`'s)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import UnknownNameError
from .function import Function
from .recipe import Recipe, fingerprint
from .records import Status
from .seeding import derive_seed
from .state import bind_node

if TYPE_CHECKING:
    import pandas

    from .host import Host
    from .nodeset import NodeSet
    from .state import ExperimentState

__all__ = ["Node"]

class Node:
    """One state of the experiment graph, at any stage of its life.

    A node's ``status`` is ``declared`` (applied, not run), ``running``,
    ``done``, ``failed``, ``skipped`` (an ancestor failed) or ``stale`` (stored,
    but its recipe's source changed since; never silently recomputed). Slim
    nodes read their record lazily from the index; :meth:`restore` loads the
    values.

    Nodes are made by their experiment's graph (declaring or loading one), not by hand.

    Parameters
    ----------
    experiment : Host
        The experiment the node belongs to.
    node_id : str
        The state's id.
    parent_id : str or None
        The parent's id (None for a root).
    stored_status : str or None
        The status stored for the state (None when it is only declared).
    """

    __slots__ = ("experiment", "id", "parent_id", "stored_status", "run_status", "recipe_obj", "functions",
                 "values", "_tags", "_record", "_pending", "_state")

    def __init__(self, experiment: Host, node_id: str, parent_id: str | None, stored_status: str | None):
        self.experiment = experiment
        self.id = node_id
        self.parent_id = parent_id
        self.stored_status = stored_status
        self.run_status: str | None = None
        self.recipe_obj: Recipe | None = None
        self.functions: dict[str, Function] = {}
        self.values: dict[str, Any] | None = None  # the root's property values, when declared here
        self._tags: set[str] | None = None
        self._record: dict[str, Any] | None = None
        self._pending: dict[str, Any] | None = None
        self._state: ExperimentState | None = None

    # ------------------------------------------------------------- status
    @property
    def status(self) -> Status:
        """One of declared, running, done, failed, skipped, stale (a :class:`Status`, equal to its string)."""
        if self.run_status is not None:
            return Status(self.run_status)
        if self.stored_status is None:
            return Status.DECLARED
        if self.stored_status == Status.DONE and self.recipe_obj is not None:
            stored = (self.record.get("recipe") or {}).get("fingerprint")
            current = fingerprint(type(self.recipe_obj))
            if stored and current and stored != current:
                return Status.STALE
        return Status(self.stored_status)

    @property
    def record(self) -> dict[str, Any]:
        """The state's record: stored when it is stored, else what is known in advance."""
        if self._record is None and self.stored_status is not None:
            self._record = self.experiment.storage.record(self.id) or {}
        if self._record is not None:
            return self._record
        return self._pending or {}

    def invalidate(self) -> None:
        """Forget the cached record (after a run changed it)."""
        self._record = None

    # --------------------------------------------------------- structure
    @property
    def parent(self) -> Node | None:
        """The parent node (None for a root)."""
        return None if self.parent_id is None else self.experiment.graph.node(self.parent_id)

    @property
    def children(self) -> NodeSet:
        """The child nodes, stored or declared."""
        from .nodeset import NodeSet

        return NodeSet(self.experiment.graph.children_of(self.id))

    @property
    def tags(self) -> frozenset[str]:
        """Every tag the state carries (the union over the contexts it was declared in)."""
        stored = self.experiment.graph.stored_tags().get(self.id, set())
        return frozenset(stored | (self._tags or set()))

    def add_tag_in_memory(self, tag: str) -> None:
        """Record a tag declared in this session (stored at the next run).

        Parameters
        ----------
        tag : str
            The tag (not checked here: :meth:`Experiment.tag` checks it).
        """
        if self._tags is None:
            self._tags = set()
        self._tags.add(tag)

    # --------------------------------------------------------------- data
    @property
    def properties(self) -> dict[str, Any]:
        """The state's properties (its root's identity)."""
        if self.values is not None:
            return dict(self.values)
        return self.experiment.graph.decode_properties(self.record)

    @property
    def lineage(self) -> dict[str, Any]:
        """Lineage fields, plus ``root_id`` and ``depth``."""
        record = self.record
        return {**record.get("lineage", {}), "root_id": record.get("root_id"), "depth": record.get("depth")}

    @property
    def recipe(self) -> dict[str, Any] | None:
        """The recipe that made this state: name, version and properties (None for a root)."""
        return self.record.get("recipe")

    @property
    def seed(self) -> int:
        """The seed its recipe runs with."""
        return derive_seed(self.id, "recipe")

    @property
    def depth(self) -> int:
        """Number of recipes between the root and this state."""
        known = self._record or self._pending  # a node declared here knows it without reading its stored record
        return int((known or self.record).get("depth", 0))

    @property
    def results(self) -> dict[str, Any]:
        """Function results by name (the version applied here, else the newest stored)."""
        return self.experiment.graph.results_of(self)

    def series(self, name: str | None = None) -> pandas.DataFrame:
        """The metric series logged with :func:`prunelab.log` by this state's recipe and its functions.

        Parameters
        ----------
        name : str, optional
            Only this series (default: all).

        Returns
        -------
        pandas.DataFrame
            ``name``, ``step``, ``value`` and ``source`` (``recipe``, or ``function:<name>@v<version>``), one
            row per logged value; empty for a state not stored yet.
        """
        from .curves import node_series

        return node_series(self, name)

    def history(self, name: str) -> pandas.DataFrame:
        """The series ``name`` of this state's lineage, root first, on one global step axis.

        Parameters
        ----------
        name : str
            The series (e.g. ``"loss"``): train, prune, finetune as one curve.

        Returns
        -------
        pandas.DataFrame
            ``global_step``, ``value``, ``step``, ``node_id``, ``recipe``, ``begins``; ``attrs["events"]``
            says where each recipe (and each pruning round) begins (see :func:`prunelab.core.curves.history`).
        """
        from .curves import history

        return history(self, name)

    # ------------------------------------------------------------- values
    def restore(self) -> ExperimentState:
        """Load the state's values (once) and return the state (``state.id`` and ``state.tags`` are the node's).

        Returns
        -------
        ExperimentState
            The state, the same object on each call until :meth:`deflate`.

        Raises
        ------
        UnknownNameError
            If the state is not stored as done (declared, failed …), so it has no values.
        CorruptStateError
            If a stored file of the state fails its checksum or cannot be parsed.
        """
        if self._state is None:
            if self.stored_status != Status.DONE:
                raise UnknownNameError(
                    f"state {self.id[:12]} is {self.status}, so it has no stored values; run the experiment first."
                )
            self._state = bind_node(self.experiment.load(self), self.id, self.experiment.graph.tags_of(self))
        return self._state

    def deflate(self) -> Node:
        """Drop loaded values, keeping the slim node; return the node.

        Returns
        -------
        Node
            This node.
        """
        self._state = None
        return self

    def __repr__(self) -> str:
        recipe = (self.record.get("recipe") or {}).get("name", "root")
        tags = ",".join(sorted(self.tags))
        return f"<Node {self.id[:12]} {recipe} {self.status}{' [' + tags + ']' if tags else ''}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Node) and other.id == self.id and other.experiment is self.experiment

    def __hash__(self) -> int:
        return hash(self.id)
