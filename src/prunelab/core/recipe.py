"""Recipes (edges that make new states) and functions (computations on a state)."""

from __future__ import annotations

import copy
import sys
from typing import TYPE_CHECKING, Any, ClassVar

from .cohort import Cohorts
from .display import to_display
from .errors import StateDefinitionError
from .identity import class_name, encode_property, fingerprint
from .state import ExperimentState, check_properties, property_defaults

if TYPE_CHECKING:
    from .nodes import Node

__all__ = ["Recipe", "fingerprint"]


def _read_attributes(recipe: Recipe, names: list[str], defaults: dict[str, Any]) -> dict[str, Any]:
    """The values of a recipe's declared attributes; a missing one without a default is an error naming it."""
    values = {}
    for name in names:
        try:
            values[name] = getattr(recipe, name)
        except AttributeError:
            if name not in defaults:
                owner = class_name(type(recipe))
                raise StateDefinitionError(
                    f"{owner} has no attribute {name!r}, which its PROPERTIES declare; set self.{name} in "
                    f"{owner}.__init__, pass {name}= to Recipe.__init__, or give it a default "
                    f"(PROPERTIES = {{{name!r}: default, ...}})."
                ) from None
            values[name] = defaults[name]
    return values


def _private_copy(owner: str, name: str, value: Any) -> Any:
    """A copy of a property value that nothing else holds (a tensor detached from any autograd graph)."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor):
        return value.detach().clone()
    try:
        return copy.deepcopy(value)
    except Exception as err:  # noqa: BLE001 - e.g. a tensor with autograd history inside a list
        raise StateDefinitionError(
            f"{owner} property {name!r} cannot be copied ({type(err).__name__}: {err}); pass a plain value (for a "
            "tensor, .detach())."
        ) from err


def require_node(value: Any, what: str, hint: str = "") -> Node:
    """``value`` if it is a :class:`Node`; else an error saying that ``what`` applies to nodes."""
    from .nodes import Node

    if not isinstance(value, Node):
        raise StateDefinitionError(
            f"{what} must be applied to a node (what spawn_new_tree, a recipe or a function returns), "
            f"got {type(value).__qualname__}{hint}."
        )
    return value


class Recipe(Cohorts):
    """Base class of recipes: the edges of the experiment graph.

    A recipe turns a private copy of its parent state into a new state.
    Subclasses declare ``PROPERTIES`` (identity: a list of names, or a dict of
    names to defaults), optionally ``OPTIONS`` (a dict of settings that are
    recorded but not hashed, e.g. ``device``), ``VERSION`` (bump it to
    invalidate results after changing the code), ``LINEAGE`` (record fields,
    see below) and ``NAME`` (to keep ids when the class is renamed), and
    implement :meth:`run`. A recipe that can compute many nodes as one
    computation also implements :meth:`cohort_key` and :meth:`run_cohort`
    (see :mod:`prunelab.core.cohort`).

    ``LINEAGE = {"field": "property or value"}`` copies into the record of the
    state it makes, and of every descendant, the value of the named recipe
    property (unless it is None: then the inherited value stays), or the
    literal value when it names none.

    Applying a recipe to a node, ``Train(nb_epochs=3, lr=0.1)(node)``, declares
    the child and returns its :class:`~prunelab.Node`; nothing runs until
    :meth:`Experiment.run`. The properties are read from the recipe's
    attributes when it is applied (see :meth:`applied`), so a recipe may set
    them in its own ``__init__`` instead of calling ``Recipe.__init__``, and
    changing an attribute afterwards changes neither the id nor the run.

    Parameters
    ----------
    **kwargs
        The recipe's properties and options, by name; each is set as an attribute. A property left
        out takes its declared default, an option its ``OPTIONS`` value.

    Raises
    ------
    UnknownNameError
        If a name is neither a declared property nor an option.
    StateDefinitionError
        If a property without a default is missing.
    UnhashableValueError
        If a property (or an option as recorded) has no identity encoding.
    """

    PROPERTIES: ClassVar[list[str] | dict[str, Any]] = []
    OPTIONS: ClassVar[dict[str, Any]] = {}
    VERSION: ClassVar[int] = 1
    LINEAGE: ClassVar[dict[str, Any]] = {}
    NAME: ClassVar[str | None] = None

    def __init__(self, **kwargs: Any):
        cls = type(self)
        declared = list(cls.PROPERTIES)
        options = {k: kwargs.pop(k) for k in list(kwargs) if k in cls.OPTIONS and k not in declared}
        values = check_properties(class_name(cls), declared, kwargs, property_defaults(cls.PROPERTIES))
        for name, value in {**cls.OPTIONS, **options, **values}.items():
            setattr(self, name, value)
        self._checked()  # a value that cannot be hashed or recorded is refused here, where it was given

    @property
    def properties(self) -> dict[str, Any]:
        """The recipe's properties, read from its attributes now (a declared default where one is unset)."""
        return _read_attributes(self, list(type(self).PROPERTIES), property_defaults(type(self).PROPERTIES))

    @property
    def options(self) -> dict[str, Any]:
        """The recipe's options, read from its attributes now (the declared default where one is unset)."""
        return _read_attributes(self, list(type(self).OPTIONS), type(self).OPTIONS)

    def _checked(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """The properties and options now, if they can be hashed and recorded; else raise naming the one at fault."""
        owner = class_name(type(self))
        values, options = self.properties, self.options
        for name, value in values.items():
            encode_property(owner, name, value)
        for name, value in options.items():  # recorded as shown, so what is shown must be storable
            encode_property(owner, name, to_display(value), kind="option")
        return values, options

    def applied(self) -> Recipe:
        """Return a copy of this recipe that holds its property values now, as private copies.

        Applying a recipe hashes and records what this copy holds, and each
        run calls ``run()`` on a fresh copy of it: changing the original's
        attributes afterwards, or ``self`` inside a failed run, changes nothing
        that runs. Recipes that set their properties in their own ``__init__``
        (as dagger's do, without calling ``Recipe.__init__``) are read the same
        way. Options are held as they are (not copied: one may be a large
        object), so an option changed in place afterwards is seen by the run.

        Returns
        -------
        Recipe
            A shallow copy of this recipe whose property attributes are private copies.

        Raises
        ------
        StateDefinitionError
            If a declared property without a default is not set as an attribute, or a value cannot be copied.
        UnhashableValueError
            If a property (or an option as recorded) has no identity encoding.
        """
        self._checked()
        return self.fresh()

    def fresh(self) -> Recipe:
        """Return a copy holding private copies of the property values now (options as they are), unchecked.

        What each run calls ``run()`` on, made from what :meth:`applied`
        returned (whose values were checked then).

        Returns
        -------
        Recipe
            A shallow copy of this recipe whose property attributes are private copies.

        Raises
        ------
        StateDefinitionError
            If a declared property without a default is not set, a value cannot be copied, or a read-only
            property does not give the value back on the copy.
        """
        values, options = self.properties, self.options
        frozen = copy.copy(self)
        owner = class_name(type(self))
        for name, value in {**options, **values}.items():
            private = _private_copy(owner, name, value) if name in values else value
            try:
                setattr(frozen, name, private)
            except AttributeError:  # a read-only attribute (a Python property): it must give the value back
                if name in values and encode_property(owner, name, getattr(frozen, name)) != \
                        encode_property(owner, name, value):
                    raise StateDefinitionError(
                        f"{owner}.{name} is read-only and does not give back {value!r} on a copy of the recipe; make "
                        "it a plain attribute set in __init__."
                    ) from None
        return frozen

    def run(self, state: ExperimentState) -> ExperimentState:
        """Transform ``state`` (a private copy of the parent) and return the new state.

        Parameters
        ----------
        state : ExperimentState
            A private copy of the parent's state, which the recipe may change in place.

        Returns
        -------
        ExperimentState
            The new state (usually ``state`` itself).

        Raises
        ------
        StateDefinitionError
            Always, in the base class: subclasses implement it.
        """
        raise StateDefinitionError(f"{class_name(type(self))} must implement run(self, state).")

    def checkpoint(self, state: ExperimentState, step: int, *, every: Any = None, **objects: Any) -> bool:
        """Store, atomically, a partial of the node being computed: what :meth:`resume` restores.

        A partial holds the state's stored attributes (content-addressed: an
        unchanged tensor costs nothing), each object's ``state_dict()``, the
        generators the engine seeds (Python, NumPy, torch CPU and CUDA) and the
        series logged so far; it replaces the node's previous one. It is not a
        state: queries and analysis never see it, and it goes once the node is
        done. When the process has been sent the preemption signal (SIGTERM, or
        ``PRUNELAB_PREEMPT_SIGNAL``), it is written whether or not it is due and
        :class:`~prunelab.Preempted` is raised: the node stays declared.

        Parameters
        ----------
        state : ExperimentState
            The state being computed (the one ``run`` was given).
        step : int
            Where the recipe is (e.g. the epochs done); :meth:`resume` returns it.
        every : int, datetime.timedelta or str, optional
            Write only when due: every ``n`` steps (an int), or once that much time has passed since the last
            partial (``"90s"``, ``"5min"``, ``"1h"``, a ``timedelta``). None: every call writes.
        **objects
            Objects with ``state_dict()``/``load_state_dict()`` (optimizers, schedulers, scalers, samplers).

        Returns
        -------
        bool
            Whether a partial was written.

        Raises
        ------
        Preempted
            After writing the partial, when the process was asked to stop.
        StateDefinitionError
            Outside a run's call of :meth:`run`, for a step that is not a non-negative int, or an object
            without ``state_dict()``.
        """
        from .runtime import current, every_of

        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise StateDefinitionError(f"{class_name(type(self))}.checkpoint: step must be a non-negative int, "
                                       f"got {step!r}.")
        return current(f"{class_name(type(self))}.checkpoint").checkpoint(self, state, step, every_of(every),
                                                                          objects)

    def resume(self, state: ExperimentState, **objects: Any) -> int | None:
        """Load the node's newest partial into ``state`` and ``objects`` in place; return its step (None: none).

        Call it at the start of :meth:`run`, once the objects exist. Continued
        from that step, the run stores a state bitwise identical to an
        uninterrupted run's. A partial written by other code of the recipe, or
        under other thread settings, is ignored with a warning.

        Parameters
        ----------
        state : ExperimentState
            The state ``run`` was given.
        **objects
            The objects passed to :meth:`checkpoint`, by the same names.

        Returns
        -------
        int or None
            The step of the partial loaded; None when there is none (start from the beginning).

        Raises
        ------
        StateDefinitionError
            Outside a run's call of :meth:`run`, or when the partial holds other objects than those passed.
        """
        from .runtime import current

        return current(f"{class_name(type(self))}.resume").resume(self, state, objects)

    def __call__(self, node: Node) -> Node:
        """Declare this recipe applied to ``node``; return the child node."""
        return require_node(node, class_name(type(self))).experiment._apply_recipe(self, node)

    def __repr__(self) -> str:
        try:
            properties = self.properties
        except StateDefinitionError:  # a property attribute not set yet: repr must not raise
            return f"<{class_name(type(self))} with properties not set>"
        args = ", ".join(f"{k}={v!r}" for k, v in properties.items())
        return f"{class_name(type(self))}({args})"
