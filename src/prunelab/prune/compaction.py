"""Physical removal of pruned channels (Torch-Pruning, the ``compact`` extra)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .errors import PruningError
from .copying import copy_model
from .masks import make_permanent
from .targets import current_mask

__all__ = ["compact"]


def compact(model: nn.Module, example_inputs: torch.Tensor) -> nn.Module:
    """Return a smaller copy of ``model`` without its fully pruned output channels.

    Every Conv or Linear output channel whose weights are all masked (as
    structured techniques leave them, bias included) is removed together with
    what depends on it (the next layer's input channels, normalisation
    channels), through Torch-Pruning's dependency graph, so the outputs are
    unchanged and the model is really faster. The layer producing the model's
    output is never shrunk. ``model`` itself is not modified.

    Parameters
    ----------
    model : nn.Module
        The pruned model (not modified).
    example_inputs : Tensor
        A batch of the shape the model takes (used to trace dependencies).

    Returns
    -------
    nn.Module
        The smaller copy, with its masks folded into plain parameters (:func:`make_permanent`).

    Raises
    ------
    PruningError
        If Torch-Pruning is not installed (``pip install 'prunelab[compact]'``).
    """
    try:
        import torch_pruning as tp
    except ImportError:
        raise PruningError("compact needs Torch-Pruning: pip install 'prunelab[compact]'.") from None
    dead: dict[str, list[int]] = {}
    layers = [(path, m) for path, m in model.named_modules() if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d,
                                                                               nn.Linear))]
    for path, module in layers[:-1]:
        mask = current_mask(module, "weight")
        dims = [d for d in range(mask.dim()) if d != 0]
        channels = (mask.sum(dim=dims) == 0).nonzero().squeeze(1).tolist()
        bias = getattr(module, "bias", None)
        if isinstance(bias, torch.Tensor):
            bias_mask = current_mask(module, "bias")
            channels = [c for c in channels if bias_mask[c] == 0 or getattr(module, "bias")[c] == 0]
        if channels and len(channels) < mask.shape[0]:
            dead[path] = channels
    compacted = make_permanent(copy_model(model))
    graph = tp.DependencyGraph().build_dependency(compacted, example_inputs=example_inputs)
    modules = dict(compacted.named_modules())
    for path, channels in dead.items():
        module = modules[path]
        handler: object = tp.prune_linear_out_channels if isinstance(module, nn.Linear) else tp.prune_conv_out_channels
        group = graph.get_pruning_group(module, handler, idxs=_indices(channels))
        if graph.check_pruning_group(group):
            group.prune()
    return compacted


def _indices(channels: Sequence[int]) -> list[int]:
    return sorted(int(c) for c in channels)
