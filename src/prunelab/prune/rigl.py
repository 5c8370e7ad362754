"""RigL: dynamic sparse training at a constant sparsity (Evci et al. 2020).

The network starts sparse — each layer at the density the Erdős–Rényi-kernel
rule gives it, with a random mask — and trains at that sparsity throughout;
every ``update_every`` steps until ``end`` it moves some of its connections:
in each layer it *drops* the surviving weights of smallest magnitude and
*grows* as many pruned ones, those with the largest gradient magnitude, so
the sparsity of every layer stays what it was. Grown weights start at zero
(and so do their optimizer moments), so growing does not change the function.

Masks are PyTorch's (``weight_orig * weight_mask``), as everywhere in
:mod:`prunelab.prune`; :func:`rigl_update` works on that form and reads the
dense gradient from ``weight_orig.grad``, which a step inside
:func:`~prunelab.prune.masked_training` computes for every weight, pruned or not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from .apply import prune_model
from .errors import PruningError
from .targets import select_parameters

__all__ = ["RigL", "erk_densities", "initial_masks", "rigl_update"]

_DISTRIBUTIONS = ("erk", "uniform")


@dataclass(frozen=True)
class RigL:
    """RigL's settings: the sparsity it trains at, and how its connections move.

    Parameters
    ----------
    sparsity : float
        The fraction of zero weights over the selected parameters, in (0, 1).
    update_every : int
        Steps (optimizer steps) between mask updates, ΔT, at least 1.
    fraction : float, default=0.3
        α, the fraction of each layer's surviving weights moved at the first
        update; it decays with a cosine to 0 at ``end``.
    end : int, optional
        T_end, the step after which the masks stay fixed; None: 75% of the run's steps (as in the paper).
    distribution : {"erk", "uniform"}, default="erk"
        How the sparsity is spread over layers: Erdős–Rényi-kernel, or the same in every layer
        (Evci et al.'s uniform keeps the first layer dense; this one does not, so that the
        sparsity is the one asked for).

    Notes
    -----
    At step :math:`t` (a multiple of :math:`\\Delta T`, :math:`0 < t < T_{end}`) each layer moves

    .. math:: k_t = \\left\\lfloor f_t\\, n_{alive} \\right\\rfloor, \\qquad
              f_t = \\frac{\\alpha}{2}\\left(1 + \\cos\\frac{\\pi t}{T_{end}}\\right)

    connections: the :math:`k_t` alive weights of smallest :math:`|\\theta|` are
    dropped, then the :math:`k_t` pruned weights (the ones just dropped
    included) of largest :math:`|\\nabla_\\theta L|` on that step's batch grow,
    with :math:`\\theta = 0`. That step's optimizer update is not applied.

    References
    ----------
    Evci, Gale, Menick, Castro & Elsen, "Rigging the Lottery: Making All Tickets Winners", ICML 2020,
    arXiv:1911.11134.
    """

    sparsity: float
    update_every: int
    fraction: float = 0.3
    end: int | None = None
    distribution: str = "erk"

    def __post_init__(self) -> None:
        if isinstance(self.sparsity, bool) or not isinstance(self.sparsity, (int, float)) \
                or not 0 < self.sparsity < 1:
            raise PruningError(f"RigL sparsity must be a fraction in (0, 1), got {self.sparsity!r}.")
        for name, value, optional in (("update_every", self.update_every, False), ("end", self.end, True)):
            if not (optional and value is None) and (isinstance(value, bool) or not isinstance(value, int)
                                                     or value < 1):
                raise PruningError(f"RigL {name} must be a positive int (optimizer steps), got {value!r}.")
        if isinstance(self.fraction, bool) or not isinstance(self.fraction, (int, float)) \
                or not 0 < self.fraction <= 1:
            raise PruningError(f"RigL fraction must be in (0, 1], got {self.fraction!r}.")
        if self.distribution not in _DISTRIBUTIONS:
            raise PruningError(f"RigL distribution must be one of {_DISTRIBUTIONS}, got {self.distribution!r}.")

    def moved(self, step: int, end: int) -> float:
        """:math:`f_t`, the fraction of each layer's alive weights moved at ``step`` (0 when no update is due).

        Parameters
        ----------
        step : int
            The optimizer steps done.
        end : int
            :math:`T_{end}` (``self.end``, or the run's default for it).

        Returns
        -------
        float
            :math:`f_t` at an update step (a multiple of ``update_every`` in (0, ``end``)), else 0.
        """
        if step <= 0 or step >= end or step % self.update_every:
            return 0.0
        return self.fraction / 2 * (1 + math.cos(math.pi * step / end))


def erk_densities(shapes: dict[str, tuple[int, ...]], density: float) -> dict[str, float]:
    """Per layer, the density the Erdős–Rényi-kernel rule gives for an overall ``density``.

    Parameters
    ----------
    shapes : dict of str to tuple of int
        Each weight's shape: ``(out, in)`` or ``(out, in, *kernel)``.
    density : float
        The overall fraction of nonzero weights, in (0, 1].

    Returns
    -------
    dict of str to float
        Each layer's density, at most 1, with :math:`\\sum_l d_l N_l = d \\sum_l N_l`.

    Notes
    -----
    :math:`d_l = \\epsilon\\, \\frac{\\sum_i s_i}{\\prod_i s_i}` over the
    dimensions :math:`s_i` of layer :math:`l` (for a linear layer, Erdős–Rényi's
    :math:`(n_{in} + n_{out}) / (n_{in} n_{out})`); a layer whose density would
    exceed 1 is kept dense and :math:`\\epsilon` is solved again for the rest.
    """
    sizes = {name: math.prod(shape) for name, shape in shapes.items()}
    scores = {name: sum(shape) / sizes[name] for name, shape in shapes.items()}
    dense: set[str] = set()
    while True:
        budget = density * sum(sizes.values()) - sum(sizes[n] for n in dense)
        epsilon = budget / sum(scores[n] * sizes[n] for n in shapes if n not in dense)
        over = {n for n in shapes if n not in dense and epsilon * scores[n] > 1}
        if not over:
            return {n: 1.0 if n in dense else epsilon * scores[n] for n in shapes}
        dense |= over


def initial_masks(model: nn.Module, settings: RigL, parameters: list[str] | None = None,
                  generator: torch.Generator | None = None) -> None:
    """Prune a dense ``model`` at random to RigL's starting topology (``settings.distribution`` over its layers).

    Parameters
    ----------
    model : nn.Module
        Not pruned yet; pruned in place.
    settings : RigL
        The sparsity and how it is spread.
    parameters : list of str, optional
        The weights to make sparse (default: every Conv and Linear weight).
    generator : torch.Generator, optional
        The randomness of the masks (default: torch's global generator, seeded per state by the engine).
    """
    targets = select_parameters(model, parameters)
    if any(t.is_pruned for t in targets):
        raise PruningError("RigL starts from a dense model, but this one is pruned already; train it dense, or "
                           "keep its masks and train without dynamic_sparsity.")
    density = 1 - float(settings.sparsity)
    if settings.distribution == "uniform":
        densities = {t.path: density for t in targets}
    else:
        densities = erk_densities({t.path: tuple(t.parameter.shape) for t in targets}, density)
    for target in targets:
        prune_model(model, "random_unstructured", sparsity=1 - densities[target.path], parameters=[target.path],
                    generator=generator)


def rigl_update(model: nn.Module, fraction: float, optimizer: torch.optim.Optimizer | None = None) -> int:
    """Move ``fraction`` of each pruned layer's alive weights: drop by magnitude, grow by gradient.

    Works on PyTorch's reparametrised form (outside masked training), after
    a backward pass has left the dense gradient in each ``weight_orig.grad``.
    Ties are broken by the lowest flat index. Grown weights are set to zero,
    and so are their entries of the optimizer's state (momentum, moments).
    Layers with no pruned weight (kept dense by the distribution) are left alone.

    Parameters
    ----------
    model : nn.Module
        Pruned (masks are changed in place).
    fraction : float
        :math:`f_t`, in [0, 1].
    optimizer : Optimizer, optional
        Its per-weight state for the grown weights is zeroed.

    Returns
    -------
    int
        The number of connections moved over all layers: dropped and not grown back (as many
        were grown that were not alive before).

    Raises
    ------
    PruningError
        If a pruned layer has no gradient (call it after ``loss.backward()``).
    """
    moved = 0
    for target in select_parameters(model, None):
        if not target.is_pruned:
            continue
        orig, mask = target.parameter, getattr(target.module, target.name + "_mask")
        if orig.grad is None:
            raise PruningError(f"RigL needs the gradient of {target.path}; update the masks after loss.backward().")
        alive = mask.reshape(-1) != 0
        count = int(fraction * int(alive.sum()))
        if count == 0 or bool(alive.all()):  # a layer the distribution keeps dense has nothing to grow into
            continue
        with torch.no_grad():
            flat = orig.detach().view(-1)
            drop_score = torch.where(alive, flat.abs(), torch.full_like(flat, math.inf))
            dropped = torch.argsort(drop_score, stable=True)[:count]
            kept = alive.clone()
            kept[dropped] = False
            grow_score = torch.where(kept, torch.full_like(flat, -math.inf), orig.grad.reshape(-1).abs())
            grown = torch.argsort(grow_score, descending=True, stable=True)[:count]
            kept[grown] = True
            moved += int((kept & ~alive).sum())
            mask.copy_(kept.reshape(mask.shape).to(mask.dtype))
            flat[grown] = 0
            state = optimizer.state.get(orig, {}) if optimizer is not None else {}
            for value in state.values():
                if isinstance(value, torch.Tensor) and value.shape == orig.shape:
                    value.view(-1)[grown] = 0
    return moved
