"""The optimizer updates and learning-rate schedules of a cohort's training (:mod:`.cohort`).

The updates are written out as separate multiplications and additions (no fused
multiply-adds, whose rounding differs between a kernel's vector body and its
scalar tail), so every entry of a member's weights gets the same bits however
many members it is stacked with.

SGD with momentum :math:`\\mu` and weight decay :math:`\\lambda` (PyTorch's
formulation), per member with its learning rate :math:`\\eta_t`:

.. math::
    d = g + \\lambda w, \\quad b \\leftarrow \\mu b + d \\ (b = d \\text{ at the first step}), \\quad
    w \\leftarrow w - \\eta_t b

Adam (:math:`\\beta = (0.9, 0.999)`, :math:`\\epsilon = 10^{-8}`, L2 weight decay), at step :math:`t`:

.. math::
    d = g + \\lambda w, \\quad m \\leftarrow \\beta_1 m + (1-\\beta_1) d, \\quad
    v \\leftarrow \\beta_2 v + (1-\\beta_2) d^2, \\quad
    w \\leftarrow w - \\frac{\\eta_t}{1-\\beta_1^t} \\cdot \\frac{m}{\\sqrt{v}/\\sqrt{1-\\beta_2^t} + \\epsilon}

Schedules in closed form over the :math:`T` steps: constant; cosine
:math:`\\eta_t = \\eta (1 + \\cos(\\pi t / T)) / 2`; step
:math:`\\eta_t = \\eta \\cdot 0.1^{\\lfloor t / \\lceil T/3 \\rceil \\rfloor}`.
"""

from __future__ import annotations

import math

import torch

__all__ = ["schedule_factor", "update"]

_BETAS, _EPS = (0.9, 0.999), 1e-8


def schedule_factor(schedule: str, step: int, steps: int) -> float:
    """The learning rate's factor at ``step`` of ``steps`` (constant, cosine or step; see the module's text).

    Parameters
    ----------
    schedule : str
        ``"constant"``, ``"cosine"`` or ``"step"`` (any other value: constant).
    step, steps : int
        The optimizer steps done, and in all.

    Returns
    -------
    float
        What multiplies the initial learning rate.
    """
    if schedule == "cosine":
        return (1 + math.cos(math.pi * step / max(steps, 1))) / 2
    if schedule == "step":
        return 0.1 ** (step // max(steps // 3, 1))
    return 1.0


def update(params: list[torch.Tensor], buffers: list[dict[str, torch.Tensor]], optimizer: str,
            lrs: torch.Tensor, decays: torch.Tensor, momentum: float, step: int) -> None:
    """One optimizer step on every stacked parameter, in place (unfused: each entry rounds alike at any cohort size).

    Parameters
    ----------
    params : list of Tensor
        The stacked parameters ``[M, ...]``, with their gradients.
    buffers : list of dict
        Aligned with ``params``: each one's buffers (filled at the first step).
    optimizer : {"sgd", "adam"}
        The rule (any other value: Adam).
    lrs, decays : Tensor
        ``[M]``: each member's learning rate at this step, and weight decay.
    momentum : float
        SGD's momentum.
    step : int
        The step being taken, from 1 (Adam's bias corrections).
    """
    for param, state in zip(params, buffers):
        grad = param.grad
        if grad is None:
            continue
        view = (-1,) + (1,) * (param.dim() - 1)
        d = grad + param * decays.view(view)
        if optimizer == "sgd":
            buffer = state.get("momentum")
            state["momentum"] = d.clone() if buffer is None else buffer.mul_(momentum).add_(d)
            param.sub_(state["momentum"] * lrs.view(view))
            continue
        beta1, beta2 = _BETAS
        if "m" not in state:
            state["m"], state["v"] = torch.zeros_like(param), torch.zeros_like(param)
        m = state["m"].mul_(beta1).add_(d * (1 - beta1))
        v = state["v"].mul_(beta2).add_(d * d * (1 - beta2))
        step_size = lrs.view(view) / (1 - beta1 ** step)
        denom = v.sqrt() / math.sqrt(1 - beta2 ** step) + _EPS
        param.sub_(m / denom * step_size)
