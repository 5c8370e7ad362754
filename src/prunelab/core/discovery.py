"""Finding classes among already-imported modules by the name a record gives them (never importing anything)."""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

from .errors import StateDefinitionError
from .identity import class_name
from .state import ExperimentState

__all__ = ["find_imported", "find_state_class", "imported", "named_subclasses"]

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


def find_state_class(name: str) -> type[ExperimentState] | None:
    """Find the state class called ``name`` among already-imported modules (see :func:`find_imported`)."""
    return find_imported(name, ExperimentState)
