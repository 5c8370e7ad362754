"""``ExperimentState``: what a node of the graph holds."""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

from .errors import PrunelabWarning, StateDefinitionError, UnknownNameError

__all__ = ["ExperimentState", "check_properties", "attribute_names"]


class ExperimentState:
    """Base class of experiment states (model + data + metadata).

    Subclasses declare three kinds of attribute:

    ``PROPERTIES``
        Identity: hashed into the root's id and inherited by every child.
    ``NONHASHED_ATTRIBUTES``
        Stored and carried to children (the model, an optimizer, snapshots…).
    ``DERIVED_ATTRIBUTES``
        Rebuilt by :meth:`initialize_state` from the properties, never stored
        (datasets, data loaders).

    A child receives exactly what a store round trip of its parent gives: a new
    object whose properties are set, whose :meth:`initialize_state` rebuilds the
    structure, and into which the stored values are loaded. Any other attribute
    is dropped with a warning. Set ``NAME`` to keep ids when renaming the class.

    Examples
    --------
    >>> import prunelab as pl
    >>> class State(pl.ExperimentState):
    ...     PROPERTIES = ["width"]
    ...     NONHASHED_ATTRIBUTES = ["weights"]
    ...     def initialize_state(self):
    ...         self.weights = [0.0] * self.width
    """

    PROPERTIES: ClassVar[list[str]] = []
    NONHASHED_ATTRIBUTES: ClassVar[list[str]] = []
    DERIVED_ATTRIBUTES: ClassVar[list[str]] = []
    NAME: ClassVar[str | None] = None

    def initialize_state(self, **kwargs: Any) -> None:
        """Build the structure (models, data) from the properties; override in subclasses.

        It runs for a new root and again whenever a state is loaded or handed
        to a child, always seeded with the root's seed, before stored values
        are loaded into what it built.
        """

    def __repr__(self) -> str:
        props = ", ".join(f"{p}={getattr(self, p, '?')!r}" for p in self.PROPERTIES)
        return f"{type(self).__qualname__}({props})"


def attribute_names(state_class: type[ExperimentState]) -> set[str]:
    """Return every declared attribute name of a state class."""
    return set(state_class.PROPERTIES) | set(state_class.NONHASHED_ATTRIBUTES) | set(state_class.DERIVED_ATTRIBUTES)


def validate_state_class(state_class: Any) -> type[ExperimentState]:
    """Return ``state_class`` if it is a well-formed ExperimentState subclass."""
    if not (isinstance(state_class, type) and issubclass(state_class, ExperimentState)):
        raise StateDefinitionError(
            f"state_class must be a subclass of pl.ExperimentState, got {state_class!r}."
        )
    kinds = {
        "PROPERTIES": state_class.PROPERTIES,
        "NONHASHED_ATTRIBUTES": state_class.NONHASHED_ATTRIBUTES,
        "DERIVED_ATTRIBUTES": state_class.DERIVED_ATTRIBUTES,
    }
    seen: dict[str, str] = {}
    for kind, names in kinds.items():
        if isinstance(names, str) or not all(isinstance(n, str) and n.isidentifier() for n in names):
            raise StateDefinitionError(f"{state_class.__qualname__}.{kind} must be a list of attribute names.")
        for name in names:
            if name in seen:
                raise StateDefinitionError(
                    f"{state_class.__qualname__} declares {name!r} in both {seen[name]} and {kind}; "
                    "each attribute has one kind."
                )
            seen[name] = kind
    return state_class


def check_properties(owner: str, declared: list[str], given: dict[str, Any],
                     defaults: dict[str, Any] | None = None) -> dict[str, Any]:
    """Return the complete property map, refusing missing and unknown names."""
    defaults = defaults or {}
    unknown = sorted(set(given) - set(declared))
    if unknown:
        import difflib

        hints = [difflib.get_close_matches(u, declared, n=1) for u in unknown]
        hint = "; ".join(f"did you mean {h[0]!r} for {u!r}?" for u, h in zip(unknown, hints) if h)
        raise UnknownNameError(
            f"{owner} has no propert{'y' if len(unknown) == 1 else 'ies'} {', '.join(map(repr, unknown))}. "
            f"Its properties are {declared}. {hint}".rstrip()
        )
    missing = [p for p in declared if p not in given and p not in defaults]
    if missing:
        raise StateDefinitionError(
            f"{owner} is missing propert{'y' if len(missing) == 1 else 'ies'} {', '.join(map(repr, missing))}; "
            f"pass every one of {declared}."
        )
    return {p: given[p] if p in given else defaults[p] for p in declared}


def warn_undeclared(state: ExperimentState, where: str) -> list[str]:
    """Warn about (and return) attributes a state holds but does not declare."""
    extra = sorted(set(vars(state)) - attribute_names(type(state)))
    if extra:
        warnings.warn(
            f"{where} left undeclared attribute(s) {', '.join(map(repr, extra))} on the state; they are "
            f"dropped (children receive what a store round trip gives). Declare them in "
            f"{type(state).__qualname__}.NONHASHED_ATTRIBUTES to keep them, or DERIVED_ATTRIBUTES if "
            "initialize_state rebuilds them.",
            PrunelabWarning,
            stacklevel=2,
        )
    return extra
