"""Copying and loading pruned models, with their pruning reparametrisations kept.

A fresh, unpruned module cannot load the state dict of a pruned one (its
``weight_orig`` and ``weight_mask``); :func:`load_pruned_state_dict`
re-applies the reparametrisation first, so prunelab and
``torch.nn.utils.prune`` state dicts interoperate. :func:`copy_model` copies
a model, pruned or not, much faster than :func:`copy.deepcopy`.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.nn.utils import prune

from .masks import _recompute, pruned_parameters

__all__ = ["copy_model", "load_pruned_state_dict", "seed_loaded_copy", "seed_memo", "seed_plan"]


def load_pruned_state_dict(
    model: nn.Module, state_dict: Mapping[str, torch.Tensor], *, strict: bool = True
) -> nn.Module:
    """Load a state dict, pruned or not, into ``model`` (modified in place).

    For every ``<name>_orig``/``<name>_mask`` pair in ``state_dict`` whose
    parameter is not yet pruned in ``model``, the reparametrisation is applied
    with :func:`torch.nn.utils.prune.identity`; a parameter pruned in ``model``
    but stored plainly is made plain again with :func:`torch.nn.utils.prune.remove`.
    Then the state dict is loaded and every masked weight is recomputed, so
    ``module.weight`` is correct before the first forward pass.

    Parameters
    ----------
    model : nn.Module
        The module to load into, with the architecture the state dict came from.
    state_dict : mapping of str to Tensor
        As returned by ``state_dict()`` of a pruned or unpruned model.
    strict : bool, default=True
        Passed to :meth:`torch.nn.Module.load_state_dict`.

    Returns
    -------
    nn.Module
        ``model`` itself.

    Raises
    ------
    KeyError
        If a ``_mask`` entry names a submodule ``model`` does not have.
    RuntimeError
        From :meth:`torch.nn.Module.load_state_dict` when shapes or keys differ.
    """
    # pruned tensors in the order of their "_orig" parameters, so a restored module registers them in the
    # order the stored one did and its state dict comes back in the same order
    wanted: dict[str, list[str]] = {}
    for key in state_dict:
        if key.endswith("_orig") and key[: -len("_orig")] + "_mask" in state_dict:
            module_path, _, name = key[: -len("_orig")].rpartition(".")
            wanted.setdefault(module_path, []).append(name)
    modules = dict(model.named_modules())
    for module_path, module in modules.items():
        current = pruned_parameters(module) if module._forward_pre_hooks else []
        prefix = f"{module_path}." if module_path else ""
        for name in current:
            if name not in wanted.get(module_path, []) and prefix + name in state_dict:
                prune.remove(module, name)  # type: ignore[no-untyped-call]
        for name in wanted.get(module_path, []):
            if name not in current:
                prune.identity(module, name)  # type: ignore[no-untyped-call]
    missing = set(wanted) - set(modules)
    if missing:
        raise KeyError(f"the state dict has pruning masks for submodules {sorted(missing)} that the model lacks")
    if not (strict and _copy_values_in(model, state_dict)):
        model.load_state_dict(state_dict, strict=strict)
    _recompute(model, modules.values())
    return model


# Loaders that copy each tensor in place when every key is present with its shape (_NormBase's only
# supplies a missing counter of old checkpoints before calling Module's).
_PLAIN_LOADERS = {nn.Module._load_from_state_dict, nn.modules.batchnorm._NormBase._load_from_state_dict}


def _loads_plainly(module: nn.Module) -> bool:
    """Whether loading a state dict into ``module`` itself (not its children) only copies values in."""
    cls = type(module)
    return (cls._load_from_state_dict in _PLAIN_LOADERS and not module._load_state_dict_pre_hooks
            and not module._load_state_dict_post_hooks and cls.get_extra_state is nn.Module.get_extra_state)


def _copy_values_in(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> bool:
    """Copy ``state_dict`` into ``model``'s tensors as ``load_state_dict(strict=True)`` would, without its machinery.

    Returns False, maybe having copied some tensors, when ``load_state_dict``
    has anything more to do (custom loaders or load hooks, extra state, a
    missing or surplus key, a shape to complain about): the caller then calls it.
    """
    if torch.__future__.get_swap_module_params_on_conversion():
        return False
    copied = 0
    stack = [("", model)]
    with torch.no_grad():
        while stack:
            prefix, module = stack.pop()
            if not _loads_plainly(module):
                return False
            for tensors, skipped in ((module._parameters, ()), (module._buffers, module._non_persistent_buffers_set)):
                for name, tensor in tensors.items():
                    if tensor is None or name in skipped:
                        continue
                    value = state_dict.get(prefix + name)
                    if not isinstance(value, torch.Tensor) or value.shape != tensor.shape:
                        return False
                    tensor.copy_(value)
                    copied += 1
            stack.extend((f"{prefix}{name}.", sub) for name, sub in module._modules.items() if sub is not None)
    return copied == len(state_dict)


def seed_loaded_copy(model: nn.Module, state_dict: Mapping[str, torch.Tensor], memo: dict[int, Any]) -> bool:
    """Seed ``memo`` so that ``copy_model(model, memo)`` is a copy with ``state_dict`` loaded; False if it cannot.

    When loading into a copy would only copy values in (the copy's plain
    modules already have the stored reparametrisations, and every key names
    one of its contiguous tensors with the same shape, dtype and device), the
    copy can take a clone of each stored tensor in place of a clone of the
    model's: ``load_pruned_state_dict(copy_model(model), state_dict)`` with
    one copy of each tensor instead of two, and the same result bit for bit.

    Parameters
    ----------
    model : nn.Module
        The module to be copied (not changed).
    state_dict : mapping of str to Tensor
        The state dict to load into the copy (not changed; its tensors are cloned).
    memo : dict
        The memo :func:`copy_model` is then given; filled only when True is returned.

    Returns
    -------
    bool
        Whether ``memo`` was seeded (else load the state dict into a plain copy).
    """
    plan = seed_plan(model, state_dict)
    return plan is not None and seed_memo(plan, state_dict, memo)


def seed_plan(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> list[tuple[torch.Tensor, str]] | None:
    """The checks of :func:`seed_loaded_copy`: each tensor of ``model`` and its key, or None if it cannot seed.

    The plan depends only on ``model`` and the keys, shapes, dtypes and
    devices of ``state_dict``: a caller copying a model it never changes may
    keep it for other state dicts of that structure (see :func:`seed_memo`).

    Parameters
    ----------
    model : nn.Module
        The module to be copied.
    state_dict : mapping of str to Tensor
        A state dict of the structure to load.

    Returns
    -------
    list of (Tensor, str) or None
        ``model``'s tensors, each with the key of the stored tensor that replaces it in the copy.
    """
    if torch.__future__.get_swap_module_params_on_conversion():
        return None
    plan: list[tuple[torch.Tensor, str]] = []
    storages: set[int] = set()
    stack = [("", model)]
    while stack:
        prefix, module = stack.pop()
        if not _loads_plainly(module):
            return None
        pruned = pruned_parameters(module) if module._forward_pre_hooks else []
        wanted = [key[:-len("_orig")] for key in module._parameters
                  if key.endswith("_orig") and prefix + key in state_dict
                  and prefix + key[:-len("_orig")] + "_mask" in state_dict]
        if sorted(pruned) != sorted(wanted):
            return None  # loading would change a reparametrisation
        for tensors, skipped in ((module._parameters, ()), (module._buffers, module._non_persistent_buffers_set)):
            for name, tensor in tensors.items():
                if tensor is None or name in skipped:
                    continue
                value = state_dict.get(prefix + name)
                if (not isinstance(value, torch.Tensor) or value.shape != tensor.shape or value.dtype != tensor.dtype
                        or value.device != tensor.device or not tensor.is_contiguous() or not _plain(tensor)
                        or tensor.untyped_storage().data_ptr() in storages):
                    return None
                storages.add(tensor.untyped_storage().data_ptr())
                plan.append((tensor, prefix + name))
        stack.extend((f"{prefix}{name}.", sub) for name, sub in module._modules.items() if sub is not None)
    return plan if len(plan) == len(state_dict) else None


def seed_memo(plan: list[tuple[torch.Tensor, str]], state_dict: Mapping[str, torch.Tensor], memo: dict[int, Any]
              ) -> bool:
    """Seed ``memo`` with clones of ``state_dict``'s tensors by a :func:`seed_plan`; False (memo unchanged) if taken.

    Parameters
    ----------
    plan : list of (Tensor, str)
        From :func:`seed_plan` for this model and a state dict of this structure.
    state_dict : mapping of str to Tensor
        The state dict to load into the copy (its tensors are cloned).
    memo : dict
        The memo :func:`copy_model` is then given.

    Returns
    -------
    bool
        False when ``memo`` already holds one of the model's tensors (another value copied them first).
    """
    if any(id(tensor) in memo for tensor, _ in plan):
        return False
    with torch.no_grad():
        for tensor, key in plan:
            data = state_dict[key].clone(memory_format=torch.contiguous_format)
            memo[id(tensor)] = (nn.Parameter(data, tensor.requires_grad) if type(tensor) is nn.Parameter
                                else data.requires_grad_(tensor.requires_grad))
    return True


def copy_model(model: nn.Module, memo: dict[int, Any] | None = None, *, complete: bool = True) -> nn.Module:
    """Return an independent deep copy of ``model``, pruned or not.

    ``copy.deepcopy`` fails on a pruned module ("Only Tensors created explicitly
    by the user support the deepcopy protocol") because ``weight`` is a
    computed tensor; this copies everything else and recomputes it.

    The copy is what ``copy.deepcopy`` would make, built several times faster
    for ordinary modules: parameters and buffers are cloned, submodules copied
    the same way, plain attributes shared when immutable and deep-copied
    otherwise, and the result set with the class's ``__setstate__``. Modules
    that define ``__deepcopy__`` or their own reduction, and buffers that share
    storage, go through ``copy.deepcopy`` itself.

    Parameters
    ----------
    model : nn.Module
        The module to copy.
    memo : dict, optional
        A ``copy.deepcopy`` memo shared with copies of other objects, so that
        those referring to the model's tensors (an optimizer) stay tied to the copy.
    complete : bool, default=True
        False when a state dict is loaded into the copy right after (with
        :func:`load_pruned_state_dict`, which recomputes them): the masked
        weights are then left unset.

    Returns
    -------
    nn.Module
        The copy, with its own masks and hooks.
    """
    memo = {} if memo is None else memo
    pruned, aliased = False, False
    storages: dict[int, int] = {}  # storage address -> the buffer first seen using it
    for module in model.modules():
        for name in pruned_parameters(module) if module._forward_pre_hooks else ():
            computed = module.__dict__.get(name)
            if computed is not None:
                memo[id(computed)] = None
                pruned = True
        for buffer in module._buffers.values():
            if buffer is not None and buffer.layout == torch.strided and buffer.untyped_storage().data_ptr():
                owner = storages.setdefault(buffer.untyped_storage().data_ptr(), id(buffer))
                aliased |= owner != id(buffer)
    copied: nn.Module = copy.deepcopy(model, memo) if aliased else _clone(model, memo)
    if pruned and complete:
        _recompute(copied)
    return copied


_ATOMS = (type(None), bool, int, float, str)
# What a module class must inherit unchanged for copy.deepcopy to copy its __getstate__() and call __setstate__.
_PLAIN_COPY: dict[str, Any] = {"__deepcopy__": None, "__reduce_ex__": object.__reduce_ex__,
                               "__reduce__": object.__reduce__}


_PLAIN_CLASSES: dict[type, bool] = {}
_EMPTY = (dict, OrderedDict, set)


def _clone(module: nn.Module, memo: dict[int, Any]) -> nn.Module:
    if id(module) in memo:
        return memo[id(module)]  # type: ignore[no-any-return]
    cls = type(module)
    plain = _PLAIN_CLASSES.get(cls)
    if plain is None:
        plain = _PLAIN_CLASSES[cls] = all(getattr(cls, k, None) is v for k, v in _PLAIN_COPY.items())
    original = module.__getstate__()  # type: ignore[no-untyped-call]
    if not plain or not isinstance(original, dict):
        return copy.deepcopy(module, memo)
    new = cls.__new__(cls)
    memo[id(module)] = new
    state: dict[str, Any] = {}
    for key, value in original.items():
        kind = type(value)
        if kind in _ATOMS:
            state[key] = value
        elif key in ("_parameters", "_buffers"):
            state[key] = kind((name, _clone_tensor(t, memo)) for name, t in value.items())
        elif key == "_modules":
            state[key] = kind((name, None if sub is None else _clone(sub, memo)) for name, sub in value.items())
        elif kind in _EMPTY and not value:  # most hook dicts
            state[key] = kind()
        else:
            state[key] = _copy_attribute(value, memo)
    new.__setstate__(state)  # type: ignore[no-untyped-call]
    return new


def _copy_attribute(value: Any, memo: dict[int, Any]) -> Any:
    """``copy.deepcopy(value, memo)`` for a module attribute, without its machinery for the common kinds.

    Tuples, sets and dicts of plain values (sizes, hook flags) are copied
    shallowly, hook dicts holding pruning methods by copying the methods' few
    fields; anything else goes through ``copy.deepcopy``.
    """
    kind = type(value)
    if kind in (dict, OrderedDict):
        if all(type(v) in _ATOMS for v in value.values()):
            return kind(value)
        if all(type(v) in _PLAIN_METHODS or _plain_method(v) for v in value.values()):
            return kind((k, _copy_method(v, memo)) for k, v in value.items())
    elif kind in (tuple, set, frozenset) and all(type(v) in _ATOMS for v in value):
        return value if kind is tuple else kind(value)
    return copy.deepcopy(value, memo)


_PLAIN_METHODS: set[type] = set()


def _plain_method(hook: Any) -> bool:
    """Whether ``hook`` is a pruning method that ``copy.deepcopy`` would copy field by field."""
    cls = type(hook)
    if not (isinstance(hook, prune.BasePruningMethod) and all(getattr(cls, k, None) is v
                                                                for k, v in _PLAIN_COPY.items())):
        return False
    _PLAIN_METHODS.add(cls)
    return True


def _copy_method(method: prune.BasePruningMethod, memo: dict[int, Any]) -> prune.BasePruningMethod:
    if id(method) in memo:
        return memo[id(method)]  # type: ignore[no-any-return]
    new = type(method).__new__(type(method))
    memo[id(method)] = new
    new.__dict__.update({k: v if type(v) in _ATOMS else copy.deepcopy(v, memo) for k, v in method.__dict__.items()})
    return new


def _clone_tensor(tensor: torch.Tensor | None, memo: dict[int, Any]) -> torch.Tensor | None:
    """What ``copy.deepcopy`` gives for a dense leaf tensor or parameter without a gradient or attributes."""
    if tensor is None:
        return None
    if id(tensor) in memo:
        return memo[id(tensor)]  # type: ignore[no-any-return]
    if not _plain(tensor):
        return copy.deepcopy(tensor, memo)
    with torch.no_grad():
        data = tensor.clone(memory_format=torch.preserve_format)
    new = nn.Parameter(data, tensor.requires_grad) if type(tensor) is nn.Parameter else data.requires_grad_(
        tensor.requires_grad)
    memo[id(tensor)] = new
    return new


def _plain(tensor: torch.Tensor) -> bool:
    """Whether ``copy.deepcopy`` of ``tensor`` is a clone (a dense leaf tensor or parameter, no gradient or attributes)."""
    return (type(tensor) in (torch.Tensor, nn.Parameter) and tensor.is_leaf and tensor.grad is None
            and tensor.layout == torch.strided and not tensor.is_quantized and not tensor.__dict__
            and not tensor.is_conj() and not tensor.is_neg() and tensor.device.type in ("cpu", "cuda"))
