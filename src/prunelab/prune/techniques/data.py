"""Scores computed from data: SNIP, GraSP, Taylor (first order) and SynFlow (data-free, but run through the model)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import cast

import torch
from torch import nn

from ..errors import PruningError
from ..targets import Target
from .base import Context, Technique, register_technique

@contextlib.contextmanager
def _preserved(model: nn.Module) -> Iterator[None]:
    """Keep buffers (BatchNorm statistics) and parameter grads unchanged by a scoring pass."""
    buffers = {name: b.detach().clone() for name, b in model.named_buffers()}
    grads = {name: p.grad for name, p in model.named_parameters()}
    try:
        yield
    finally:
        with torch.no_grad():
            for name, b in model.named_buffers():
                if name in buffers:
                    b.copy_(buffers[name])
        for name, p in model.named_parameters():
            p.grad = grads.get(name)


def _loss(context: Context) -> torch.Tensor:
    assert context.inputs is not None
    output = context.model(context.inputs)
    loss_fn = context.loss_fn or nn.functional.cross_entropy
    if context.targets is None:
        raise PruningError("this technique needs targets= (labels for the loss) along with inputs=.")
    return loss_fn(output, context.targets)


def _gradients(targets: Sequence[Target], context: Context, create_graph: bool = False) -> list[torch.Tensor]:
    """d loss / d (effective weight), for the unpruned entries (zero elsewhere)."""
    params = [t.parameter for t in targets]
    loss = _loss(context)
    grads = torch.autograd.grad(loss, params, create_graph=create_graph, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]


@register_technique("snip")
class SNIP(Technique):
    """Connection sensitivity at initialisation, ranked globally.

    Notes
    -----
    Score :math:`|g \\odot w|` with :math:`g = \\partial L / \\partial w` on one batch
    (``inputs``, ``targets``, ``loss_fn``, default cross-entropy); the lowest go, over the whole set.

    References
    ----------
    Lee et al., "SNIP: Single-shot Network Pruning based on Connection Sensitivity", ICLR 2019, arXiv:1810.02340.
    """

    scope = "global"
    needs_data = True

    def scores(self, targets: Sequence[Target], context: Context) -> list[torch.Tensor]:
        with _preserved(context.model):
            grads = _gradients(targets, context)
        return [(g.detach() * t.weight).abs() for g, t in zip(grads, targets)]


@register_technique("grasp")
class GraSP(Technique):
    """Gradient Signal Preservation: keep the weights that preserve gradient flow.

    Notes
    -----
    With :math:`g = \\nabla L` and :math:`H` the Hessian of the loss, the score is
    :math:`S = -\\theta \\odot H g`, computed with one Hessian-vector product
    (:math:`Hg = \\nabla (g^\\top \\text{sg}(g))`). The weights with the *largest*
    scores are removed, over the whole set. ``temperature`` divides the logits (the paper uses 200).

    References
    ----------
    Wang et al., "Picking Winning Tickets Before Training by Preserving Gradient Flow", ICLR 2020,
    arXiv:2002.07376.
    """

    scope = "global"
    remove = "highest"
    needs_data = True
    options = {"temperature": 1.0}

    def scores(self, targets: Sequence[Target], context: Context) -> list[torch.Tensor]:
        temperature = float(self.settings["temperature"])
        model = context.model
        scaled = Context(_Tempered(model, temperature), context.inputs, context.targets, context.loss_fn)
        with _preserved(model):
            first = [g.detach() for g in _gradients(targets, scaled)]
            grads = _gradients(targets, scaled, create_graph=True)
            product = sum((g * f).sum() for g, f in zip(grads, first))
            params = [t.parameter for t in targets]
            hg = torch.autograd.grad(product, params, allow_unused=True)  # type: ignore[arg-type]
        return [-(t.weight * (torch.zeros_like(t.weight) if h is None else h.detach())) for t, h in zip(targets, hg)]


class _Tempered(nn.Module):
    def __init__(self, model: nn.Module, temperature: float):
        super().__init__()
        self.model = model
        self.temperature = temperature

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x) / self.temperature  # type: ignore[no-any-return]


@register_technique("taylor")
class Taylor(Technique):
    """First-order Taylor importance of output channels, ranked globally.

    Notes
    -----
    For output channel :math:`c`, :math:`I_c = \\left(\\sum_{i \\in c} g_i w_i\\right)^2`,
    the squared first-order estimate of the loss change when the channel is
    removed (a sum *inside* the square, so it is not SNIP); the lowest go, over the whole set.

    References
    ----------
    Molchanov et al., "Importance Estimation for Neural Network Pruning", CVPR 2019, arXiv:1906.10771.
    """

    structured = True
    scope = "global"
    needs_data = True

    def scores(self, targets: Sequence[Target], context: Context) -> list[torch.Tensor]:
        with _preserved(context.model):
            grads = _gradients(targets, context)
        out = []
        for g, t in zip(grads, targets):
            dims = [d for d in range(t.weight.dim()) if d != self.dim]
            out.append((g.detach() * t.weight).sum(dim=dims) ** 2)
        return out


@register_technique("synflow")
class SynFlow(Technique):
    """Iterative synaptic flow, data-free, ranked globally.

    Notes
    -----
    On a copy of the network with every parameter replaced by its absolute
    value (in float64, evaluation mode), :math:`R = \\mathbb{1}^\\top f(\\mathbb{1})`
    for an all-ones input, and the score is :math:`|\\theta \\odot \\partial R/\\partial \\theta|`;
    the lowest go, over the whole set. The paper prunes in ``iterations`` rounds
    (default 100), recomputing scores after each with an exponential schedule;
    ``prune_model`` does this when this technique is used. The input shape comes from
    ``inputs`` (only its shape is used) or the ``input_shape`` option.

    References
    ----------
    Tanaka et al., "Pruning neural networks without any data by iteratively conserving synaptic flow",
    NeurIPS 2020, arXiv:2006.05467.
    """

    scope = "global"
    options = {"iterations": 100, "input_shape": None}

    def scores(self, targets: Sequence[Target], context: Context) -> list[torch.Tensor]:
        shape = self.settings["input_shape"]
        if shape is None:
            if context.inputs is None:
                raise PruningError("synflow needs the input shape: pass inputs= (only its shape is used) or "
                                   "input_shape=(1, channels, height, width).")
            shape = (1, *context.inputs.shape[1:])
        from ..copying import copy_model

        model = copy_model(context.model).double().eval()
        paths = {module: path for path, module in context.model.named_modules()}
        copies = dict(model.named_modules())
        with torch.no_grad():
            for p in model.parameters():
                p.abs_()
        params: list[torch.Tensor] = []
        for target in targets:
            module = copies[paths[target.module]]
            suffix = "_orig" if hasattr(module, target.name + "_orig") else ""
            params.append(cast(torch.Tensor, getattr(module, target.name + suffix)))
        for frozen in model.parameters():
            frozen.requires_grad_(False)
        for leaf in params:
            leaf.requires_grad_(True)
        total = model(torch.ones(shape, dtype=torch.float64)).sum()
        grads = torch.autograd.grad(total, params, allow_unused=True)
        out = []
        for target, module_param, g in zip(targets, params, grads):
            mask = target.mask.double()
            grad = torch.zeros_like(module_param) if g is None else g
            out.append((module_param.detach() * mask * grad).abs())
        return out

