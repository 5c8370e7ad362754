"""Functions: computations attached to a node that store a result, not a new state."""

from __future__ import annotations

import copy
import functools
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, overload

from .display import to_display
from .errors import StateDefinitionError
from .identity import encode_property
from .recipe import require_node

if TYPE_CHECKING:
    from .nodes import Node

__all__ = ["Function", "function"]


class Function:
    """A computation attached to a node without creating a new state.

    Made by :func:`function`. Calling it on a node declares it; the result is
    stored as ``node.results[name]`` when the experiment runs, once per node,
    name and version.

    The keyword-only parameters of ``fn`` that have defaults are its options
    (as a recipe's ``OPTIONS``: how it runs, such as ``device``, not what it
    computes): ``evaluate(node, device="cuda")`` declares it with one set;
    they are recorded with the result, not part of its identity.

    Parameters
    ----------
    fn : callable
        Receives a private copy of the node's state (and its options, as keyword arguments) and returns the result.
    name : str or None, default=None
        Result name; defaults to ``fn.__name__``.
    version : int, default=1
        Bump it to recompute results after changing the function.

    Raises
    ------
    StateDefinitionError
        If ``fn`` is not callable, ``version`` is not a positive int, or the name is not an identifier.
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
        self.options = _keyword_defaults(fn)
        functools.update_wrapper(self, fn)

    @property
    def key(self) -> str:
        """The name of the result record: ``name@vVERSION``."""
        return f"{self.name}@v{self.version}"

    def __call__(self, node: Node, **options: Any) -> Node:
        """Declare this function applied to ``node``, with ``options`` set (the others at their defaults).

        Parameters
        ----------
        node : Node
            The node whose state it computes on.
        **options
            Values for the function's options (its keyword-only parameters with defaults).

        Returns
        -------
        Node
            ``node`` itself.

        Raises
        ------
        StateDefinitionError
            For an option the function does not have, or a value that cannot be recorded.
        """
        hint = f"; to compute on a state directly, call {self.name}.fn(state)"
        node = require_node(node, f"function {self.name!r}", hint)
        return node.experiment._apply_function(self._with(options), node)

    def _with(self, options: dict[str, Any]) -> Function:
        """A copy of this function holding ``options`` over its defaults (each checked)."""
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            known = ", ".join(self.options) or "none"
            raise StateDefinitionError(
                f"function {self.name!r} has no option {unknown[0]!r} (its options, the keyword-only parameters "
                f"of {self.fn.__qualname__} with defaults: {known}); pass one of them, or add it to the function.")
        bound = copy.copy(self)
        bound.options = {**self.options, **options}
        for option, value in bound.options.items():  # recorded as shown, so what is shown must be storable
            encode_property(f"function {self.name!r}", option, to_display(value), kind="option")
        return bound

    def __repr__(self) -> str:
        return f"<prunelab function {self.key}>"


def _keyword_defaults(fn: Callable[..., Any]) -> dict[str, Any]:
    """The keyword-only parameters of ``fn`` that have defaults, with them (none for a callable without a signature)."""
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return {}
    return {p.name: p.default for p in parameters if p.kind is p.KEYWORD_ONLY and p.default is not p.empty}


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
    dict of such values and tensors/arrays (stored as blobs). Keyword-only
    parameters with defaults (``def evaluate(state, *, device="auto")``) are
    the function's options, set per declaration (``evaluate(node, device="cpu")``)
    and recorded with the result, not hashed.

    Parameters
    ----------
    fn : callable, optional
        Receives a private copy of the node's state, and its options as keyword arguments.
    name : str, optional
        Result name; defaults to ``fn.__name__``.
    version : int, default=1
        Bump it to recompute results after changing the function.

    Returns
    -------
    Function or callable
        The :class:`Function` wrapping ``fn``; without ``fn``, a decorator that makes one.

    Raises
    ------
    StateDefinitionError
        If ``fn`` is not callable, ``version`` is not a positive int, or the name is not an identifier
        (with ``fn`` omitted, when the decorator is applied).
    """
    if fn is None:
        return lambda f: Function(f, name, version)
    return Function(fn, name, version)
