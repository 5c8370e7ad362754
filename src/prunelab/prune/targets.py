"""What pruning acts on: the selected parameters of a model, with their current masks."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import cast

import torch
from torch import nn

from .errors import PruningError

__all__ = ["Target", "select_parameters", "current_mask", "current_weight", "DEFAULT_TYPES"]

#: Module types whose ``weight`` is selected when ``parameters`` is not given.
DEFAULT_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


@dataclass(frozen=True)
class Target:
    """One parameter to prune: its module, its name there and its dotted path in the model."""

    module: nn.Module
    name: str
    path: str

    @property
    def weight(self) -> torch.Tensor:
        """The current effective values (``<name>_orig * <name>_mask`` when pruned), detached."""
        return current_weight(self.module, self.name)

    @property
    def mask(self) -> torch.Tensor:
        """The current mask (ones when the parameter is not pruned yet)."""
        return current_mask(self.module, self.name)

    @property
    def alive(self) -> torch.Tensor:
        """Boolean: which entries are not pruned (no float mask is made for an unpruned parameter)."""
        mask = getattr(self.module, self.name + "_mask", None)
        if isinstance(mask, torch.Tensor):
            return mask != 0
        return torch.ones(cast(torch.Tensor, getattr(self.module, self.name)).shape, dtype=torch.bool)

    @property
    def parameter(self) -> torch.Tensor:
        """The trainable tensor: ``<name>_orig`` when pruned, else ``<name>``."""
        suffix = "_orig" if self.is_pruned else ""
        return cast(torch.Tensor, getattr(self.module, self.name + suffix))

    @property
    def is_pruned(self) -> bool:
        """Whether the parameter is reparametrised by ``torch.nn.utils.prune``."""
        return hasattr(self.module, self.name + "_mask") and hasattr(self.module, self.name + "_orig")


def current_mask(module: nn.Module, name: str) -> torch.Tensor:
    """Return the mask of ``module.<name>`` (a fresh tensor of ones when it is not pruned)."""
    mask = getattr(module, name + "_mask", None)
    if isinstance(mask, torch.Tensor):
        return mask.detach()
    return torch.ones_like(cast(torch.Tensor, getattr(module, name)))


def current_weight(module: nn.Module, name: str) -> torch.Tensor:
    """Return the effective values of ``module.<name>`` now, not as of the last forward pass.

    PyTorch recomputes ``module.weight`` only in the forward pre-hook, so after an
    optimizer step it is stale; this reads ``weight_orig * weight_mask`` instead.
    """
    orig = getattr(module, name + "_orig", None)
    if isinstance(orig, torch.Tensor):
        return (orig * cast(torch.Tensor, getattr(module, name + "_mask"))).detach()
    return cast(torch.Tensor, getattr(module, name)).detach()


def select_parameters(model: nn.Module, parameters: Iterable[tuple[nn.Module, str] | str] | None) -> list[Target]:
    """Resolve ``parameters`` (None, ``(module, name)`` pairs or dotted paths) into targets.

    Raises
    ------
    PruningError
        If a parameter is not found in ``model``, is not floating point, or none is selected.
    """
    paths = {module: path for path, module in model.named_modules()}
    targets: list[Target] = []
    if parameters is None:
        for path, module in model.named_modules():
            if isinstance(module, DEFAULT_TYPES) and getattr(module, "weight", None) is not None:
                targets.append(Target(module, "weight", f"{path}.weight" if path else "weight"))
    else:
        for item in parameters:
            if isinstance(item, str):
                module_path, _, name = item.rpartition(".")
                try:
                    module = model.get_submodule(module_path)
                except AttributeError:
                    raise PruningError(f"parameter {item!r} is not in the model: it has no submodule "
                                       f"{module_path!r}; pass paths from model.named_parameters().") from None
            else:
                module, name = item
                if module not in paths:
                    raise PruningError(f"parameters names a {type(module).__qualname__} that is not part of the "
                                       "model; pass (module, name) pairs of modules inside it.")
                module_path = paths[module]
            path = f"{module_path}.{name}" if module_path else name
            if not isinstance(getattr(module, name, None), torch.Tensor):
                raise PruningError(f"parameter {path!r} is not in the model; pass names from "
                                   "model.named_parameters() (without the _orig suffix).")
            targets.append(Target(module, name, path))
    if not targets:
        raise PruningError("no parameter to prune: the model has no Conv or Linear weight; pass parameters=.")
    for target in targets:
        if not torch.is_floating_point(getattr(target.module, target.name)):
            raise PruningError(f"parameter {target.path!r} is {getattr(target.module, target.name).dtype}; "
                               "pruning needs floating-point weights.")
    seen: set[tuple[int, str]] = set()
    for target in targets:
        key = (id(target.module), target.name)
        if key in seen:
            raise PruningError(f"parameter {target.path!r} is listed twice; list each parameter once.")
        seen.add(key)
    return targets
