"""Copying a state's values before stored ones are loaded into them (faster than ``copy.deepcopy`` for modules).

A child state starts as a copy of its root's freshly initialised template,
into which its parent's stored values are then decoded (see
:mod:`prunelab.execution.materialise`). Modules are copied with
:func:`prunelab.prune.copy_model`; where loading a stored state dict would only
copy values in, the copy takes clones of the stored tensors directly
(:func:`seed_copy`) and nothing is decoded into it after. Support for torch is
installed once torch is imported, as in :mod:`.codecs`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..core.lazy import LazyInstallers

if TYPE_CHECKING:
    from .codecs import BlobSource

__all__ = ["copy_values", "loads_into_current", "seed_copy"]

_LAZY = LazyInstallers()

# Faster equivalents of copy.deepcopy(value, memo) for some kinds of value (modules).
# A copier takes (value, memo, complete); complete=False: a state dict is loaded into the copy next.
_COPIERS: list[tuple[Callable[[Any], bool], Callable[..., Any]]] = []
# Seeders of a copy's memo with stored tensors, for objects whose loading only copies values (see seed_copy):
# (predicate, planner(current, state_dict) -> plan or None, seeder(plan, state_dict, memo) -> bool).
_Seeder = tuple[Callable[[Any], bool], Callable[[Any, Any], Any], Callable[[Any, Any, dict[int, Any]], bool]]
_SEEDERS: list[_Seeder] = []


def copy_values(values: dict[str, Any], memo: dict[int, Any], loaded: frozenset[str] = frozenset()
                ) -> dict[str, Any]:
    """Deep-copy a dict of values as ``copy.deepcopy(values, memo)`` would, faster for modules.

    Values with a registered copier are copied first, into the shared memo, so
    that other values referring to their parts (an optimizer's parameters) are
    tied to the copies. Values named in ``loaded`` are about to have a stored
    state dict loaded into them: parts that loading recomputes are not copied.
    """
    _LAZY.install_imported()
    for name, value in values.items():
        for predicate, copier in _COPIERS:
            if predicate(value):
                copier(value, memo, complete=name not in loaded)
                break
    copied: dict[str, Any] = copy.deepcopy(values, memo)
    return copied


def seed_copy(current: Any, spec: Any, source: BlobSource, memo: dict[int, Any],
              plans: dict[Any, Any] | None = None) -> bool:
    """Seed ``memo`` so that copying ``current`` (with :func:`copy_values`) gives it with ``spec`` loaded.

    For an object stored as a state dict of tensors on the CPU whose loader
    would only copy values in (a module, see
    :func:`prunelab.prune.copying.seed_loaded_copy`), the copy then takes a
    clone of each stored tensor in place of its own, and decoding ``spec``
    into it is left out. Returns False (``memo`` unchanged) otherwise:
    copy, then decode.

    ``plans`` is a cache of the checks for a caller whose ``current`` objects
    never change (templates): one per object and stored structure (keys,
    dtypes, shapes, devices). It holds the objects, so their ids stay theirs.
    """
    if not (spec[0] == "stateful" and type(current).__qualname__ == spec[1] and spec[2][0] == "dict"):
        return False
    tensors = {}
    for key, value in spec[2][1]:
        if key[0] != "json" or value[0] != "tensor" or value[4] != "cpu":
            return False
        tensors[key[1]] = value
    _LAZY.install_imported()
    shared = getattr(source, "shared", source)
    structure = (id(current), tuple((k, v[2], tuple(v[3])) for k, v in tensors.items()))
    cached = None if plans is None else plans.get(structure)
    if cached is None:
        for predicate, planner, seeder in _SEEDERS:
            if predicate(current):
                state_dict = {k: shared.tensor(v[1], v[2], v[3]) for k, v in tensors.items()}
                plan = planner(current, state_dict)
                if plans is not None:
                    plans[structure] = (current, plan, seeder)
                return plan is not None and bool(seeder(plan, state_dict, memo))
        return False
    _, plan, seeder = cached
    return plan is not None and bool(seeder(plan, {k: shared.tensor(v[1], v[2], v[3]) for k, v in tensors.items()},
                                            memo))


def loads_into_current(spec: Any) -> bool:
    """Whether decoding ``spec`` loads a state dict into an existing object (so it needs ``current``)."""
    stack = [spec]
    while stack:
        tag, *rest = stack.pop()
        if tag == "stateful":
            return True
        if tag in ("list", "tuple"):  # only containers hold other specs; JSON payloads are not walked
            stack.extend(rest[0])
        elif tag == "dict":
            for pair in rest[0]:
                stack.extend(pair)
    return False


@_LAZY.register("torch")
def _install_torch() -> None:
    import torch

    from ..prune.copying import copy_model, seed_memo, seed_plan

    def is_module(obj: Any) -> bool:
        return isinstance(obj, torch.nn.Module)

    _COPIERS.append((is_module, copy_model))
    _SEEDERS.append((is_module, seed_plan, seed_memo))
