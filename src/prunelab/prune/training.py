"""Fast masked training: masks baked into the weights while training, no forward hooks."""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any, cast

import torch
from torch import nn
from torch.nn.utils import prune

from .masks import _recompute

__all__ = ["masked_training"]


@contextlib.contextmanager
def masked_training(model: nn.Module, optimizer: torch.optim.Optimizer | None = None) -> Iterator[nn.Module]:
    """Train a pruned model at dense speed; on exit it is in PyTorch's reparametrised form again.

    Inside the block every pruned parameter is a plain parameter holding
    ``orig * mask`` (the same tensor object as ``<name>_orig``, so the optimizer's
    state stays attached), and no forward pre-hook runs. If ``optimizer`` is
    given, the gradients of pruned weights are zeroed before each step and the
    masks are re-applied after it, so momentum and weight decay cannot revive
    a pruned weight; the surviving weights then evolve exactly as with PyTorch's
    hooks. On exit (also on error) the reparametrisation is restored, and the
    pruned entries of ``<name>_orig`` get back the values they had on entry.

    Parameters
    ----------
    model : nn.Module
        The pruned model to train; changed in place inside the block and restored on exit.
    optimizer : torch.optim.Optimizer, optional
        The optimizer training ``model``; given, its steps keep the pruned weights at zero.
        None: nothing is hooked, so the caller keeps the pruned weights at zero.

    Yields
    ------
    nn.Module
        ``model`` itself.
    """
    baked: list[tuple[nn.Module, str, Any, torch.Tensor, torch.Tensor, torch.Tensor]] = []
    order: dict[nn.Module, list[int]] = {}
    with torch.no_grad():
        for module in model.modules():
            if not module._forward_pre_hooks:
                continue
            order[module] = list(module._forward_pre_hooks)
            for key, hook in list(module._forward_pre_hooks.items()):
                if not isinstance(hook, prune.BasePruningMethod):
                    continue
                name = hook._tensor_name
                orig, mask = module._parameters[name + "_orig"], module._buffers[name + "_mask"]
                assert orig is not None and mask is not None
                # what the pruned entries held, 0 elsewhere: orig - orig * mask, in one pass (a new tensor)
                hidden = torch.addcmul(orig, orig, mask, value=-1)
                del module._forward_pre_hooks[key]
                module.__dict__.pop(name, None)
                del module._parameters[name + "_orig"]
                module._parameters[name] = orig
                orig.mul_(mask)
                baked.append((module, name, (key, hook), orig, mask, hidden))
    handles = []
    if optimizer is not None:
        def before_step(*_: Any) -> None:
            for _module, _name, _hook, param, mask, _hidden in baked:
                if param.grad is not None:
                    param.grad.mul_(mask)

        def after_step(*_: Any) -> None:
            with torch.no_grad():
                for _module, _name, _hook, param, mask, _hidden in baked:
                    param.mul_(mask)

        handles = [optimizer.register_step_pre_hook(before_step), optimizer.register_step_post_hook(after_step)]
    try:
        yield model
    finally:
        for handle in handles:
            handle.remove()
        with torch.no_grad():
            for module, name, (key, hook), param, mask, hidden in baked:
                del module._parameters[name]
                torch.addcmul(hidden, param, mask, out=param)  # param * mask + hidden, in one pass
                module._parameters[name + "_orig"] = cast(nn.Parameter, param)
                module._forward_pre_hooks[key] = hook
        for module, keys in order.items():  # hooks back in their original order
            hooks = cast("OrderedDict[int, Any]", module._forward_pre_hooks)
            if list(hooks) != keys:
                for key in [k for k in keys if k in hooks] + [k for k in hooks if k not in keys]:
                    hooks.move_to_end(key)
        _recompute(model, dict.fromkeys(module for module, *_ in baked))
