"""Magnitude and random scores, weight by weight: L1, global magnitude, random, and LAMP."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..targets import Target
from .base import Context, Technique, register_technique

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

