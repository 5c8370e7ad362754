"""Masks as data: read from a pruned model, applied to another, made permanent, saved and loaded.

PyTorch stores a pruned parameter ``weight`` as ``weight_orig`` (a parameter)
and ``weight_mask`` (a buffer), with a forward pre-hook that recomputes
``weight = weight_orig * weight_mask``; a mask here is that buffer, by the
parameter's qualified name. Copying and loading pruned models is :mod:`.copying`'s.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils import prune

from .errors import PruningError

__all__ = ["pruned_parameters", "get_masks", "apply_masks", "make_permanent", "save_masks", "load_masks"]


def pruned_parameters(module: nn.Module) -> list[str]:
    """Return the names of ``module``'s own parameters that are pruned (reparametrised).

    Parameters
    ----------
    module : nn.Module
        The module to look at; its submodules are not.

    Returns
    -------
    list of str
        Plain names (``"weight"``, not ``"weight_orig"``), sorted; empty when nothing is pruned.
    """
    names: list[str] = []
    for hook in module._forward_pre_hooks.values():
        if isinstance(hook, prune.PruningContainer):
            names.extend(method._tensor_name for method in hook._pruning_methods)
        elif isinstance(hook, prune.BasePruningMethod):
            names.append(hook._tensor_name)
    return sorted(set(names))


def _prune_hooks(module: nn.Module) -> list[prune.BasePruningMethod]:
    return [h for h in module._forward_pre_hooks.values() if isinstance(h, prune.BasePruningMethod)]


def _recompute(model: nn.Module, modules: Iterable[nn.Module] | None = None) -> None:
    for module in model.modules() if modules is None else modules:
        for hook in _prune_hooks(module):
            setattr(module, hook._tensor_name, hook.apply_mask(module))  # type: ignore[no-untyped-call]


def get_masks(model: nn.Module) -> dict[str, torch.Tensor]:
    """Return a copy of every pruning mask, keyed by parameter path (``"0.weight"``).

    Parameters
    ----------
    model : nn.Module
        The model, pruned or not (it is not modified).

    Returns
    -------
    dict of str to Tensor
        Each pruned parameter's path to a detached copy of its mask; empty for an unpruned model.
    """
    out = {}
    for path, module in model.named_modules():
        for name in pruned_parameters(module):
            out[f"{path}.{name}" if path else name] = getattr(module, name + "_mask").detach().clone()
    return out


def apply_masks(model: nn.Module, masks: Mapping[str, torch.Tensor]) -> nn.Module:
    """Apply masks (from :func:`get_masks` or :func:`load_masks`) to ``model`` in place; return it.

    Each mask multiplies the parameter's existing mask, so masks only shrink.
    Everything is checked before anything is applied.

    Parameters
    ----------
    model : nn.Module
        Modified in place.
    masks : mapping of str to Tensor
        Parameter path (``"0.weight"``) to a mask of 0 and 1 of the parameter's shape.

    Returns
    -------
    nn.Module
        ``model``.

    Raises
    ------
    PruningError
        For a path not in the model, a shape mismatch or entries other than 0 and 1.
    """
    resolved = []
    for path, mask in masks.items():
        module_path, _, name = path.rpartition(".")
        try:
            module = model.get_submodule(module_path)
        except AttributeError:
            module = None
        current = getattr(module, name, None) if module is not None else None
        if not isinstance(current, torch.Tensor):
            raise PruningError(f"mask {path!r} names no parameter of the model; its masks are for "
                               f"{sorted(masks)[:5]}…; was it saved from another architecture?")
        if tuple(mask.shape) != tuple(current.shape):
            raise PruningError(f"mask {path!r} has shape {tuple(mask.shape)}, the parameter {tuple(current.shape)}.")
        if not bool(((mask == 0) | (mask == 1)).all()):
            raise PruningError(f"mask {path!r} has entries other than 0 and 1.")
        assert module is not None
        resolved.append((module, name, mask.to(dtype=current.dtype, device=current.device)))
    for module, name, mask in resolved:
        prune.custom_from_mask(module, name, mask)  # type: ignore[no-untyped-call]
    return model


def make_permanent(model: nn.Module) -> nn.Module:
    """Fold every mask into its parameter and drop the reparametrisation (in place); return ``model``.

    Parameters
    ----------
    model : nn.Module
        Modified in place; its pruned weights become plain parameters holding zeros where masked.

    Returns
    -------
    nn.Module
        ``model``.
    """
    for module in model.modules():
        for name in pruned_parameters(module):
            prune.remove(module, name)  # type: ignore[no-untyped-call]
    return model


def save_masks(masks: Mapping[str, torch.Tensor] | nn.Module, path: str | Path) -> None:
    """Write masks (or a model's masks) to a safetensors file, one uint8 tensor per parameter.

    Parameters
    ----------
    masks : mapping of str to Tensor, or nn.Module
        Parameter path to mask (any non-zero entry counts as kept), or a model whose masks
        (:func:`get_masks`) are written.
    path : str or Path
        The file to write (replaced if it exists).
    """
    if isinstance(masks, nn.Module):
        masks = get_masks(masks)
    from safetensors.torch import save_file

    data = {name: (mask != 0).to(torch.uint8).contiguous().cpu() for name, mask in masks.items()}
    save_file(data, str(path), metadata={"format": "prunelab-masks", "version": "1"})


def load_masks(path: str | Path) -> dict[str, torch.Tensor]:
    """Read masks written by :func:`save_masks`, as float32 tensors of 0 and 1.

    Parameters
    ----------
    path : str or Path
        A file written by :func:`save_masks`.

    Returns
    -------
    dict of str to Tensor
        Parameter path to mask, as :func:`apply_masks` takes them.

    Raises
    ------
    PruningError
        If the file is not a prunelab mask file or holds values other than 0 and 1,
        or cannot be read as a safetensors file.
    """
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            masks = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
    except Exception as err:  # noqa: BLE001 - safetensors raises several kinds
        raise PruningError(f"{path} is not a readable safetensors file ({err}).") from err
    if metadata.get("format") != "prunelab-masks":
        raise PruningError(f"{path} is not a prunelab mask file (no 'prunelab-masks' metadata).")
    for name, mask in masks.items():
        if not bool(((mask == 0) | (mask == 1)).all()):
            raise PruningError(f"{path}: mask {name!r} has entries other than 0 and 1; the file is damaged.")
    return {name: mask.to(torch.float32) for name, mask in masks.items()}
