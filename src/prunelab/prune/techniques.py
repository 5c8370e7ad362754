"""Pruning techniques: each computes scores; :mod:`.selection` does the rest.

A technique is a :class:`Technique` subclass with one method, :meth:`~Technique.scores`,
registered under a name with :func:`register_technique`. Its class attributes
say how its scores are used: ``structured`` (one score per output channel
instead of per weight), ``scope`` (``"layer"``: each tensor on its own;
``"global"``: ranked across tensors), ``remove`` (``"lowest"`` or
``"highest"`` scores go first) and ``needs_data``.
"""

from __future__ import annotations

import contextlib
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, cast

import torch
from torch import nn

from .errors import PruningError
from .targets import Target

__all__ = ["Technique", "Context", "register_technique", "available_techniques", "get_technique"]

_REGISTRY: dict[str, type[Technique]] = {}


@dataclass
class Context:
    """What a technique may use besides the weights."""

    model: nn.Module
    inputs: torch.Tensor | None = None
    targets: torch.Tensor | None = None
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None
    generator: torch.Generator | None = None
    options: dict[str, Any] = field(default_factory=dict)


class Technique(ABC):
    """Base class of pruning techniques: implement :meth:`scores`."""

    structured: ClassVar[bool] = False
    scope: ClassVar[Literal["layer", "global"]] = "layer"
    remove: ClassVar[Literal["lowest", "highest"]] = "lowest"
    needs_data: ClassVar[bool] = False
    options: ClassVar[dict[str, Any]] = {}
    dim: ClassVar[int] = 0

    def __init__(self, **options: Any):
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            raise PruningError(f"technique {type(self).__name__} takes no option(s) {unknown}; its options are "
                               f"{sorted(self.options) or 'none'}.")
        self.settings = {**self.options, **options}

    @abstractmethod
    def scores(self, targets: Sequence[Target], context: Context) -> list[torch.Tensor]:
        """Return one score tensor per target: the weight's shape, or ``(channels,)`` when structured.

        Scores of already-pruned units are ignored by the selection.
        """


def register_technique(name: str) -> Callable[[type[Technique]], type[Technique]]:
    """Register a :class:`Technique` subclass under ``name`` (snake_case)."""

    def decorator(cls: type[Technique]) -> type[Technique]:
        if not (isinstance(cls, type) and issubclass(cls, Technique)):
            raise PruningError(f"register_technique({name!r}) needs a Technique subclass, got {cls!r}.")
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise PruningError(f"a technique named {name!r} is already registered ({_REGISTRY[name].__name__}).")
        _REGISTRY[name] = cls
        return cls

    return decorator


def available_techniques() -> list[str]:
    """Return the registered technique names, sorted."""
    return sorted(_REGISTRY)


def get_technique(name: str, **options: Any) -> Technique:
    """Return an instance of the technique registered as ``name``."""
    if name not in _REGISTRY:
        import difflib

        close = difflib.get_close_matches(str(name), _REGISTRY, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise PruningError(f"unknown pruning technique {name!r}.{hint} Available: {', '.join(available_techniques())}.")
    return _REGISTRY[name](**options)


def _channel_norm(weight: torch.Tensor, p: float, dim: int) -> torch.Tensor:
    dims = [d for d in range(weight.dim()) if d != dim]
    norm: torch.Tensor = torch.linalg.vector_norm(weight, ord=p, dim=dims)
    return norm


# --------------------------------------------------------------------------- magnitude
@register_technique("l1_unstructured")
class L1Unstructured(Technique):
    """Remove the weights of smallest magnitude in each tensor.

    Notes
    -----
    Score :math:`|w|`; the lowest go first; layer-wise. Agrees with
    :func:`torch.nn.utils.prune.l1_unstructured`.

    References
    ----------
    Han et al., "Learning both Weights and Connections for Efficient Neural Networks", NeurIPS 2015.
    """

    def scores(self, targets: Sequence[Target], context: Context) -> list[torch.Tensor]:
        return [t.weight.abs() for t in targets]


@register_technique("global_magnitude")
class GlobalMagnitude(L1Unstructured):
    """Remove the weights of smallest magnitude across all selected tensors.

    Notes
    -----
    Score :math:`|w|`; the lowest go first over the whole set. Agrees with
    :func:`torch.nn.utils.prune.global_unstructured` with ``L1Unstructured``.

    References
    ----------
    Frankle & Carbin, "The Lottery Ticket Hypothesis", ICLR 2019 (global variant for deep networks).
    """

    scope = "global"


def _random_over_unpruned(targets: Sequence[Target], context: Context) -> list[torch.Tensor]:
    """Uniform draws over the still-unpruned units, tensor by tensor, in module order (as PyTorch)."""
    out = []
    for target in targets:
        mask = target.mask
        scores = torch.zeros(mask.shape, dtype=torch.float32)
        alive = mask.reshape(-1) != 0
        scores.view(-1)[alive] = torch.rand(int(alive.sum()), generator=context.generator)
        out.append(scores)
    return out


@register_technique("random_unstructured")
class RandomUnstructured(Technique):
    """Remove weights uniformly at random in each tensor.

    Notes
    -----
    Score: a uniform draw per unpruned weight, from ``generator`` (default:
    torch's global generator); the *highest* draws go, exactly as
    :func:`torch.nn.utils.prune.random_unstructured` does, so both agree for one generator state.

    References
    ----------
    Liu et al., "The Unreasonable Effectiveness of Random Pruning", ICLR 2022 (random pruning as a baseline).
    """

    remove = "highest"

    def scores(self, targets: Sequence[Target], context: Context) -> list[torch.Tensor]:
        return _random_over_unpruned(targets, context)


@register_technique("global_random")
class GlobalRandom(Technique):
    """Remove weights uniformly at random over the whole set (layer sizes decide the layer sparsities).

    Notes
    -----
    Score: a uniform draw per unpruned weight, tensor by tensor in module order; the highest go.

    References
    ----------
    Liu et al., "The Unreasonable Effectiveness of Random Pruning", ICLR 2022.
    """

    remove = "highest"
    scope = "global"

    def scores(self, targets: Sequence[Target], context: Context) -> list[torch.Tensor]:
        return _random_over_unpruned(targets, context)


# --------------------------------------------------------------------------- structured
class _LnStructured(Technique):
    p: ClassVar[float] = 1.0
    structured = True

    def scores(self, targets: Sequence[Target], context: Context) -> list[torch.Tensor]:
        return [_channel_norm(t.weight, self.p, self.dim) for t in targets]


@register_technique("l1_structured")
class L1Structured(_LnStructured):
    """Remove the output channels of smallest L1 norm in each tensor.

    Notes
    -----
    Score :math:`\\|W_c\\|_1` over each output channel :math:`c` (slice along dim 0);
    the lowest go. Agrees with :func:`torch.nn.utils.prune.ln_structured` (``n=1, dim=0``).

    References
    ----------
    Li et al., "Pruning Filters for Efficient ConvNets", ICLR 2017.
    """

    p = 1.0


@register_technique("l2_structured")
class L2Structured(_LnStructured):
    """Remove the output channels of smallest L2 norm in each tensor.

    Notes
    -----
    Score :math:`\\|W_c\\|_2`; the lowest go. Agrees with ``ln_structured(n=2, dim=0)``.

    References
    ----------
    Li et al., "Pruning Filters for Efficient ConvNets", ICLR 2017 (the L2 variant of its filter norm).
    """

    p = 2.0


@register_technique("linf_structured")
class LinfStructured(_LnStructured):
    """Remove the output channels of smallest max-magnitude in each tensor.

    Notes
    -----
    Score :math:`\\|W_c\\|_\\infty`; the lowest go. Agrees with ``ln_structured(n=float('inf'), dim=0)``.

    References
    ----------
    Li et al., "Pruning Filters for Efficient ConvNets", ICLR 2017 (the max-norm variant of its filter norm).
    """

    p = math.inf


@register_technique("random_structured")
class RandomStructured(Technique):
    """Remove output channels uniformly at random in each tensor.

    Notes
    -----
    Score: a uniform draw per unpruned channel from ``generator``; the lowest go,
    as :func:`torch.nn.utils.prune.random_structured` does.

    References
    ----------
    Mittal et al., "Recovering from Random Pruning: On the Plasticity of Deep Convolutional Neural Networks",
    WACV 2018.
    """

    structured = True

    def scores(self, targets: Sequence[Target], context: Context) -> list[torch.Tensor]:
        out = []
        for target in targets:
            alive = _alive_channels(target.mask, self.dim)
            scores = torch.zeros(alive.shape, dtype=torch.float32)
            scores[alive] = torch.rand(int(alive.sum()), generator=context.generator)
            out.append(scores)
        return out


@register_technique("global_structured")
class GlobalStructured(Technique):
    """Remove the output channels of smallest mean magnitude across all tensors.

    Notes
    -----
    Score :math:`\\frac{1}{|W_c|}\\sum_{i \\in c} |w_i|`, the mean absolute weight
    of the channel (the mean, not the sum, so channels of layers with different
    fan-in compare fairly); the lowest go over the whole set.

    References
    ----------
    Li et al., "Pruning Filters for Efficient ConvNets", ICLR 2017 (filter magnitude), ranked globally as in
    Molchanov et al., "Importance Estimation for Neural Network Pruning", CVPR 2019.
    """

    structured = True
    scope = "global"

    def scores(self, targets: Sequence[Target], context: Context) -> list[torch.Tensor]:
        out = []
        for target in targets:
            dims = [d for d in range(target.weight.dim()) if d != self.dim]
            out.append(target.weight.abs().mean(dim=dims))
        return out


def _alive_channels(mask: torch.Tensor, dim: int) -> torch.Tensor:
    dims = [d for d in range(mask.dim()) if d != dim]
    return mask.sum(dim=dims) != 0


# --------------------------------------------------------------------------- LAMP
@register_technique("lamp")
class LAMP(Technique):
    """Layer-adaptive magnitude-based pruning: a magnitude score normalised per layer, ranked globally.

    Notes
    -----
    Sort a layer's surviving weights by magnitude, :math:`|w_1| \\le |w_2| \\le \\dots`;
    the score of the :math:`u`-th is

    .. math:: \\text{score}(u) = \\frac{w_u^2}{\\sum_{v \\ge u} w_v^2}

    and the lowest scores go, over the whole set. Each layer's largest weight
    scores 1, so no layer is emptied before others have lost their small weights.

    References
    ----------
    Lee et al., "Layer-adaptive Sparsity for the Magnitude-based Pruning", ICLR 2021, arXiv:2010.07611.
    """

    scope = "global"

    def scores(self, targets: Sequence[Target], context: Context) -> list[torch.Tensor]:
        out = []
        for target in targets:
            alive = target.mask.reshape(-1) != 0
            squares = (target.weight.reshape(-1).double() ** 2)[alive]
            order = torch.argsort(squares, stable=True)
            ordered = squares[order]
            tail = ordered.flip(0).cumsum(0).flip(0)  # sum over v >= u
            lamp = torch.zeros_like(ordered)
            nonzero = tail > 0
            lamp[nonzero] = ordered[nonzero] / tail[nonzero]
            scores = torch.zeros(target.weight.numel(), dtype=torch.float64)
            alive_index = alive.nonzero().squeeze(1)
            scores[alive_index[order]] = lamp
            out.append(scores.view(target.weight.shape))
        return out


# --------------------------------------------------------------------------- data-dependent
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
        from .masks import copy_model

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


# --------------------------------------------------------------------------- N:M
@register_technique("nm")
class NM(Technique):
    """N:M semi-structured sparsity: at most N non-zeros in every M consecutive input weights.

    Notes
    -----
    Within each block of ``m`` consecutive weights along the input dimension
    (input channels of a convolution, features of a linear layer), the ``n``
    of largest magnitude are kept. A tensor whose input dimension ``m`` does not
    divide is skipped with a warning. Takes no ``amount``/``sparsity``.

    References
    ----------
    Mishra et al., "Accelerating Sparse Deep Neural Networks", arXiv:2104.08378 (2:4 on Ampere).
    """

    options = {"n": 2, "m": 4}

    def scores(self, targets: Sequence[Target], context: Context) -> list[torch.Tensor]:
        return [t.weight.abs() for t in targets]
