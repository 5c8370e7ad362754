"""Structured scores, one per output channel (Ln norms, random, global), and N:M semi-structured sparsity."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

import torch

from ..targets import Target
from .base import Context, Technique, alive_channels, channel_norm, register_technique

class _LnStructured(Technique):
    p: ClassVar[float] = 1.0
    structured = True

    def scores(self, targets: Sequence[Target], context: Context) -> list[torch.Tensor]:
        return [channel_norm(t.weight, self.p, self.dim) for t in targets]


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
            alive = alive_channels(target.mask, self.dim)
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
