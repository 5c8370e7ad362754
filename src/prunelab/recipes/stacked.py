"""Many models of one structure as one computation: stacked weights, batched matrix products.

A cohort's members (see :meth:`prunelab.Recipe.run_cohort`) have the same
layers and parameter shapes; :class:`StackedModel` holds member ``m``'s
parameter ``p`` as slice ``m`` of one tensor ``P`` of shape ``[M, *p.shape]``
and evaluates every member on its own batch, ``x`` of shape ``[M, B, ...]``:

* Linear: :math:`y_m = x_m W_m^\\top + b_m`, one ``baddbmm`` for all members.
* Conv2d: im2col, then one ``bmm``:
  :math:`y_m = W_m \\cdot \\mathrm{unfold}(x_m) + b_m`. (A vectorised
  convolution would be a grouped convolution, whose kernels round each
  member differently with the number of groups.)
* Everything else (activations, pooling, flatten) acts on each sample alone
  and runs on the ``M·B`` samples at once.

Each member's numbers go through the same kernels whatever the other members
are: a member's results, and its gradients, are the same bits in a cohort of
one and in a cohort of eight (they may differ, by rounding, from the
per-model ``nn.Module`` forward, whose kernels are other ones).

Pruned layers (``torch.nn.utils.prune``'s ``<name>_orig`` and ``<name>_mask``)
are stacked as their effective weights ``orig * mask``, with the masks, so
that :meth:`StackedModel.mask_gradients` keeps the pruned weights at zero;
:meth:`StackedModel.write_back` gives each member its trained weights in the
form it came in (the pruned entries of ``<name>_orig`` keep what they held).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import cast

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["StackedModel", "stackable", "structure"]

# Layers acting on each sample alone, without parameters or state: run on M·B samples at once.
_ELEMENTWISE = (nn.ReLU, nn.LeakyReLU, nn.Tanh, nn.Sigmoid, nn.GELU, nn.ELU, nn.SiLU, nn.Identity)
_PER_SAMPLE = (*_ELEMENTWISE, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
Step = Callable[[torch.Tensor, bool], tuple[torch.Tensor, bool]]


def _leaves(model: nn.Module) -> list[nn.Module] | None:
    """The layers of a (nested) ``nn.Sequential`` in the order they run; None for any other model."""
    if not isinstance(model, nn.Sequential):
        return None
    out: list[nn.Module] = []
    for child in model:
        if isinstance(child, nn.Sequential):
            inner = _leaves(child)
            if inner is None:
                return None
            out.extend(inner)
        else:
            out.append(child)
    return out


def _supported(layer: nn.Module) -> bool:
    if isinstance(layer, nn.Linear):
        return True
    if isinstance(layer, nn.Conv2d):
        return layer.groups == 1 and layer.padding_mode == "zeros" and isinstance(layer.padding, tuple)
    if isinstance(layer, nn.Flatten):
        return layer.start_dim == 1 and layer.end_dim == -1
    return isinstance(layer, _PER_SAMPLE) and not list(layer.parameters())


def stackable(model: nn.Module) -> bool:
    """Whether :class:`StackedModel` can train ``model``.

    It can when the model is an ``nn.Sequential`` (nested ones allowed) of
    Linear, Conv2d (zero padding, one group), Flatten and parameter-free
    per-sample layers (activations, pooling): the zoo's MLPs, LeNets and
    Conv-n, not models with batch normalisation or dropout, whose statistics
    and randomness are not per member.

    Parameters
    ----------
    model : nn.Module
        The model.

    Returns
    -------
    bool
        True when every layer is one of those.
    """
    leaves = _leaves(model)
    return leaves is not None and all(_supported(layer) for layer in leaves)


def structure(model: nn.Module) -> tuple[tuple[str, ...], ...]:
    """What members must share to be stacked: per layer, its type, its parameters' names and shapes.

    Parameters
    ----------
    model : nn.Module
        A stackable model.

    Returns
    -------
    tuple of tuple of str
        One entry per layer (type name, then ``name:shape`` of each parameter, pruned ones marked).
    """
    out = []
    for layer in _leaves(model) or []:
        params = [f"{name}:{tuple(p.shape)}" for name, p in layer.named_parameters(recurse=False)]
        out.append((type(layer).__name__, repr(layer), *params))
    return tuple(out)


def _weight(layer: nn.Module, name: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A layer's parameter as it computes with (``orig * mask`` when pruned), and its mask (None: not pruned)."""
    mask = layer._buffers.get(name + "_mask")
    if mask is None:
        return layer._parameters[name].detach(), None  # type: ignore[union-attr]
    orig = layer._parameters[name + "_orig"]
    assert orig is not None
    return orig.detach() * mask, mask


class StackedModel:
    """The members' parameters stacked (leaf tensors that require grad), and their forward pass.

    Parameters
    ----------
    members : sequence of nn.Module
        Stackable models of one :func:`structure` (their parameters are read, not changed, until
        :meth:`write_back`).
    """

    def __init__(self, members: Sequence[nn.Module]):
        self.members = list(members)
        self.layers = [_leaves(m) or [] for m in self.members]
        self.params: list[torch.Tensor] = []  # stacked, in order: each Linear/Conv2d's weight then bias
        self.masks: list[torch.Tensor | None] = []  # aligned with params
        self.steps: list[Step] = []
        for position, layer in enumerate(self.layers[0]):
            self.steps.append(self._step(layer, position))

    def _stack(self, position: int, name: str) -> int:
        pairs = [_weight(layers[position], name) for layers in self.layers]
        self.params.append(torch.stack([w for w, _ in pairs]).requires_grad_(True))
        masks = [m for _, m in pairs]
        self.masks.append(None if masks[0] is None else torch.stack([m for m in masks if m is not None]))
        return len(self.params) - 1

    def _step(self, layer: nn.Module, position: int) -> Step:
        if isinstance(layer, (nn.Linear, nn.Conv2d)):
            w = self._stack(position, "weight")
            b = None if layer.bias is None else self._stack(position, "bias")
            if isinstance(layer, nn.Linear):
                return lambda x, planar: (self._linear(x, w, b), False)
            return lambda x, planar: (self._conv(x if planar else x.transpose(1, 2), layer, w, b), True)
        if isinstance(layer, nn.Flatten):
            return lambda x, planar: (_flatten(x.transpose(1, 2) if planar else x), False)
        if isinstance(layer, _ELEMENTWISE):
            return lambda x, planar: (layer(x), planar)
        return lambda x, planar: (_per_plane(layer, x) if planar else _per_sample(layer, x), planar)

    def _linear(self, x: torch.Tensor, w: int, b: int | None) -> torch.Tensor:
        weight = self.params[w].transpose(1, 2)
        if b is None:
            return torch.bmm(x, weight)
        return torch.baddbmm(self.params[b].unsqueeze(1), x, weight)

    def _conv(self, x: torch.Tensor, layer: nn.Conv2d, w: int, b: int | None) -> torch.Tensor:
        """A convolution of planar activations ``[M, C, B, H, W]``, giving planar ``[M, O, B, H', W']``."""
        m, channels, batch = x.shape[:3]
        kh, kw = layer.kernel_size
        (ph, pw) = cast(tuple[int, int], layer.padding)  # a string ("same") is not stackable
        (sh, sw), (dh, dw) = layer.stride, layer.dilation
        if ph or pw:
            x = F.pad(x, (pw, pw, ph, ph))
        # the patches as a view (a window per output place), then one copy into im2col's [M, C·kh·kw, B·L]
        patches = x.unfold(3, dh * (kh - 1) + 1, sh).unfold(4, dw * (kw - 1) + 1, sw)[..., ::dh, ::dw]
        out_h, out_w = patches.shape[3], patches.shape[4]
        k, length = channels * kh * kw, batch * out_h * out_w
        cols = patches.permute(0, 1, 5, 6, 2, 3, 4).reshape(m, k, length)
        weight = self.params[w].reshape(m, -1, k)
        out = weight.shape[1]
        if b is None:
            y = torch.bmm(weight, cols)  # [M, O, B·L]
        else:  # the bias through baddbmm: its gradient is then a sum along rows, alike at any cohort size
            y = torch.baddbmm(self.params[b].unsqueeze(2).expand(m, out, length), weight, cols)
        return y.view(m, out, batch, out_h, out_w)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Every member's output on its own batch: ``x`` ``[M, B, ...]`` gives ``[M, B, outputs]``.

        Between convolutions the activations are kept planar, ``[M, C, B, H, W]``
        (each channel's planes of the whole batch side by side, as the batched
        product gives them), and put back in sample order at ``Flatten``.
        """
        planar = False
        for step in self.steps:
            x, planar = step(x, planar)
        return x

    def mask_gradients(self) -> None:
        """Zero the gradients of pruned weights (so no update, momentum or decay revives them)."""
        for param, mask in zip(self.params, self.masks):
            if mask is not None and param.grad is not None:
                param.grad.mul_(mask)

    @torch.no_grad()
    def write_back(self) -> None:
        """Give each member its trained parameters, in its own form (pruned ones as ``orig`` and ``mask``)."""
        index = 0
        for position, layer in enumerate(self.layers[0]):
            if not isinstance(layer, (nn.Linear, nn.Conv2d)):
                continue
            for name in ("weight", "bias") if layer.bias is not None else ("weight",):
                for member, layers in enumerate(self.layers):
                    _assign(layers[position], name, self.params[index][member])
                index += 1


def _per_sample(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    y: torch.Tensor = layer(x.reshape(-1, *x.shape[2:]))
    return y.reshape(x.shape[0], x.shape[1], *y.shape[1:])


def _flatten(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0], x.shape[1], -1)


def _per_plane(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """A pooling layer on planar activations: each ``[H, W]`` plane on its own."""
    y: torch.Tensor = layer(x.reshape(-1, *x.shape[3:]))
    return y.reshape(*x.shape[:3], *y.shape[1:])


def _assign(layer: nn.Module, name: str, trained: torch.Tensor) -> None:
    mask = layer._buffers.get(name + "_mask")
    if mask is None:
        layer._parameters[name].copy_(trained)  # type: ignore[union-attr]
        return
    orig = layer._parameters[name + "_orig"]
    assert orig is not None
    hidden = orig - orig * mask  # what the pruned entries held (trained is 0 there, orig's survivors go)
    orig.copy_(trained * mask + hidden)
    setattr(layer, name, orig * mask)
