"""Masks as data: loading the state of pruned modules.

PyTorch stores a pruned parameter ``weight`` as ``weight_orig`` (a parameter)
and ``weight_mask`` (a buffer), with a forward pre-hook that recomputes
``weight = weight_orig * weight_mask``. A fresh, unpruned module cannot load such
a state dict; :func:`load_pruned_state_dict` re-applies the reparametrisation
first, so prunelab and ``torch.nn.utils.prune`` state dicts interoperate.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn
from torch.nn.utils import prune

__all__ = ["load_pruned_state_dict", "pruned_parameters"]


def pruned_parameters(module: nn.Module) -> list[str]:
    """Return the names of ``module``'s own parameters that are pruned (reparametrised)."""
    names: list[str] = []
    for hook in module._forward_pre_hooks.values():
        if isinstance(hook, prune.PruningContainer):
            names.extend(method._tensor_name for method in hook._pruning_methods)
        elif isinstance(hook, prune.BasePruningMethod):
            names.append(hook._tensor_name)
    return sorted(set(names))


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
    wanted: dict[str, set[str]] = {}
    for key in state_dict:
        if key.endswith("_mask") and key[: -len("_mask")] + "_orig" in state_dict:
            module_path, _, name = key[: -len("_mask")].rpartition(".")
            wanted.setdefault(module_path, set()).add(name)
    for module_path, module in model.named_modules():
        current = set(pruned_parameters(module))
        prefix = f"{module_path}." if module_path else ""
        for name in current - wanted.get(module_path, set()):
            if prefix + name in state_dict:
                prune.remove(module, name)  # type: ignore[no-untyped-call]
        for name in wanted.get(module_path, set()) - current:
            prune.identity(module, name)  # type: ignore[no-untyped-call]
    missing = set(wanted) - {path for path, _ in model.named_modules()}
    if missing:
        raise KeyError(f"the state dict has pruning masks for submodules {sorted(missing)} that the model lacks")
    model.load_state_dict(state_dict, strict=strict)
    for module in model.modules():
        for hook in list(module._forward_pre_hooks.values()):
            if isinstance(hook, prune.BasePruningMethod):
                setattr(module, hook._tensor_name, hook.apply_mask(module))  # type: ignore[no-untyped-call]
    return model
