"""Recipes (edges that make new states) and functions (computations on a state)."""

from __future__ import annotations

import functools
import hashlib
import inspect
import textwrap
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, overload

from .display import to_display
from .errors import StateDefinitionError
from .identity import class_name, encode_property
from .state import ExperimentState, check_properties

if TYPE_CHECKING:
    from .nodes import Node

__all__ = ["Recipe", "Function", "function", "fingerprint"]


_FINGERPRINTS: dict[object, str | None] = {}


def fingerprint(obj: object) -> str | None:
    """Return a digest of the source of a class or function (None if unavailable).

    Only the object's own source is covered, not the helpers it calls: bump the
    recipe's ``VERSION`` (or the function's ``version``) when those change.
    """
    if obj not in _FINGERPRINTS:
        try:
            source = inspect.getsource(obj)  # type: ignore[arg-type]
        except (OSError, TypeError):
            _FINGERPRINTS[obj] = None
        else:
            _FINGERPRINTS[obj] = hashlib.sha256(textwrap.dedent(source).encode()).hexdigest()[:16]
    return _FINGERPRINTS[obj]


def _require_node(value: Any, what: str, hint: str = "") -> Node:
    from .nodes import Node

    if not isinstance(value, Node):
        raise StateDefinitionError(
            f"{what} must be applied to a node (what spawn_new_tree, a recipe or a function returns), "
            f"got {type(value).__qualname__}{hint}."
        )
    return value


class Recipe:
    """Base class of recipes: the edges of the experiment graph.

    A recipe turns a private copy of its parent state into a new state.
    Subclasses declare ``PROPERTIES`` (identity: a list of names, or a dict of
    names to defaults), optionally ``OPTIONS`` (a dict of settings that are
    recorded but not hashed, e.g. ``device``), ``VERSION`` (bump it to
    invalidate results after changing the code), ``LINEAGE`` (record fields,
    see below) and ``NAME`` (to keep ids when the class is renamed), and
    implement :meth:`run`.

    ``LINEAGE = {"field": "property or value"}`` copies into the record of the
    state it makes, and of every descendant, the value of the named recipe
    property (unless it is None: then the inherited value stays), or the
    literal value when it names none.

    Applying a recipe to a node, ``Train(nb_epochs=3, lr=0.1)(node)``, declares
    the child and returns its :class:`~prunelab.Node`; nothing runs until
    :meth:`Experiment.run`.
    """

    PROPERTIES: ClassVar[list[str] | dict[str, Any]] = []
    OPTIONS: ClassVar[dict[str, Any]] = {}
    VERSION: ClassVar[int] = 1
    LINEAGE: ClassVar[dict[str, Any]] = {}
    NAME: ClassVar[str | None] = None

    def __init__(self, **kwargs: Any):
        cls = type(self)
        declared = list(cls.PROPERTIES)
        defaults = dict(cls.PROPERTIES) if isinstance(cls.PROPERTIES, dict) else {}
        options = {k: kwargs.pop(k) for k in list(kwargs) if k in cls.OPTIONS and k not in declared}
        owner = class_name(cls)
        self.properties = check_properties(owner, declared, kwargs, defaults)
        self.options = {**cls.OPTIONS, **options}
        self.encoded = {name: encode_property(owner, name, v) for name, v in self.properties.items()}
        for name, value in self.options.items():  # recorded as shown, so what is shown must be storable
            encode_property(owner, name, to_display(value), kind="option")
        for name, value in {**self.options, **self.properties}.items():
            setattr(self, name, value)

    def run(self, state: ExperimentState) -> ExperimentState:
        """Transform ``state`` (a private copy of the parent) and return the new state."""
        raise StateDefinitionError(f"{class_name(type(self))} must implement run(self, state).")

    def __call__(self, node: Node) -> Node:
        """Declare this recipe applied to ``node``; return the child node."""
        return _require_node(node, class_name(type(self))).experiment._apply_recipe(self, node)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.properties.items())
        return f"{class_name(type(self))}({args})"


class Function:
    """A computation attached to a node without creating a new state.

    Made by :func:`function`. Calling it on a node declares it; the result is
    stored as ``node.results[name]`` when the experiment runs, once per node,
    name and version.
    """

    def __init__(self, fn: Callable[..., Any], name: str | None = None, version: int = 1):
        if not callable(fn):
            raise StateDefinitionError(f"pl.function needs a callable, got {type(fn).__qualname__}.")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise StateDefinitionError(f"function version must be a positive int, got {version!r}.")
        self.fn = fn
        self.name = name or fn.__name__
        if not self.name.isidentifier():
            raise StateDefinitionError(f"function name must be an identifier, got {self.name!r}; pass name=.")
        self.version = version
        functools.update_wrapper(self, fn)

    @property
    def key(self) -> str:
        """The name of the result record: ``name@vVERSION``."""
        return f"{self.name}@v{self.version}"

    def __call__(self, node: Node) -> Node:
        """Declare this function applied to ``node``; return the same node."""
        hint = f"; to compute on a state directly, call {self.name}.fn(state)"
        return _require_node(node, f"function {self.name!r}", hint).experiment._apply_function(self, node)

    def __repr__(self) -> str:
        return f"<prunelab function {self.key}>"


@overload
def function(fn: Callable[..., Any], *, name: str | None = None, version: int = 1) -> Function: ...


@overload
def function(fn: None = None, *, name: str | None = None, version: int = 1) -> Callable[[Callable[..., Any]], Function]:
    ...


def function(fn: Callable[..., Any] | None = None, *, name: str | None = None,
             version: int = 1) -> Function | Callable[[Callable[..., Any]], Function]:
    """Make a function that attaches a computation to nodes.

    Use as ``@pl.function`` or ``@pl.function(name="eval", version=2)``. The
    return value must be JSON-able (NaN, ±inf and NumPy scalars allowed) or a
    dict of such values and tensors/arrays (stored as blobs).

    Parameters
    ----------
    fn : callable, optional
        Receives a private copy of the node's state.
    name : str, optional
        Result name; defaults to ``fn.__name__``.
    version : int, default=1
        Bump it to recompute results after changing the function.
    """
    if fn is None:
        return lambda f: Function(f, name, version)
    return Function(fn, name, version)
