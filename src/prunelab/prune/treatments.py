"""What follows pruning: snapshots, rewinding surviving weights, reinitialising them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from .errors import PruningError
from .masks import _recompute, pruned_parameters

__all__ = ["snapshot", "rewind", "reinit"]


def _trainable(model: nn.Module) -> dict[str, torch.Tensor]:
    """Parameters and buffers by plain name (``0.weight`` for ``0.weight_orig``), masks left out."""
    out: dict[str, torch.Tensor] = {}
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        if name.endswith("_mask") and name[:-5] + "_orig" in dict(model.named_parameters()):
            continue
        out[name[:-5] if name.endswith("_orig") else name] = tensor
    return out


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    """Return a copy of every parameter and buffer (not the masks), for :func:`rewind`.

    A pruned parameter is saved as its ``_orig`` tensor under its plain name.

    Parameters
    ----------
    model : nn.Module
        The model, pruned or not (it is not modified).

    Returns
    -------
    dict of str to Tensor
        Plain parameter or buffer name (``"0.weight"``) to a detached copy.
    """
    return {name: tensor.detach().clone() for name, tensor in _trainable(model).items()}


def rewind(model: nn.Module, saved: Mapping[str, torch.Tensor]) -> nn.Module:
    """Set every parameter and buffer back to ``saved`` (in place), keeping the masks; return ``model``.

    The surviving weights equal the snapshot exactly; pruned ones stay zero.
    This is the "rewinding" of Frankle et al. (Linear Mode Connectivity and the
    Lottery Ticket Hypothesis, ICML 2020, arXiv:1912.05671).

    Parameters
    ----------
    model : nn.Module
        Modified in place.
    saved : mapping of str to Tensor
        From :func:`snapshot` of a model of the same architecture; extra entries are ignored.

    Returns
    -------
    nn.Module
        ``model``.

    Raises
    ------
    PruningError
        If the snapshot lacks a tensor of the model or a shape differs (nothing is changed).
    """
    current = _trainable(model)
    missing = sorted(set(current) - set(saved))
    if missing:
        raise PruningError(f"the snapshot has no {missing[:5]}; take it with snapshot() of this architecture.")
    for name, tensor in current.items():
        if tuple(saved[name].shape) != tuple(tensor.shape):
            raise PruningError(f"snapshot tensor {name!r} has shape {tuple(saved[name].shape)}, the model's "
                               f"{tuple(tensor.shape)}.")
    with torch.no_grad():
        for name, tensor in current.items():
            tensor.copy_(saved[name])
    _recompute(model)
    return model


def reinit(model: nn.Module, *, generator: torch.Generator | None = None) -> nn.Module:
    """Re-initialise every module that has a pruned parameter (in place), keeping masks; return ``model``.

    Each module's own ``reset_parameters()`` draws new values into
    ``weight_orig`` (and the bias), so the values follow the layer's
    initialisation distribution; PyTorch's pitfall of resetting the transient
    ``weight`` attribute instead is avoided. Randomness comes from
    ``generator`` (default: torch's global generator), so a seeded generator
    gives the same values every time.

    Parameters
    ----------
    model : nn.Module
        Modified in place; modules without a pruned parameter keep their values.
    generator : torch.Generator, optional
        Where the new values come from (default: torch's global generator).

    Returns
    -------
    nn.Module
        ``model``.
    """
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for module in model.modules():
            names = pruned_parameters(module)
            if not names or not hasattr(module, "reset_parameters"):
                continue
            swapped = {}
            for name in names:  # expose the _orig tensors under their plain names for reset_parameters
                orig = module._parameters.pop(name + "_orig")
                module.__dict__.pop(name, None)
                module._parameters[name] = orig
                swapped[name] = orig
            try:
                reset: Any = getattr(module, "reset_parameters")
                reset()
            finally:
                for name, orig in swapped.items():
                    module._parameters.pop(name)
                    module._parameters[name + "_orig"] = orig
    _recompute(model)
    return model
