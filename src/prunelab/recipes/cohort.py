"""``Train`` for a cohort: the members' models trained as one computation (see :mod:`.stacked`).

Each member keeps what makes it itself: its seed (its epochs' orders and its
augmentation draw from generators seeded as its solo run's are), its
learning rate and weight decay, its masks, its series. The updates are
written out as separate multiplications and additions (no fused
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

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.nn import functional as F

import prunelab as pl

from ..core.errors import Preempted
from ..execution.preempt import requested
from ..prune import snapshot
from ..zoo.augmentation import Augment, augmentation_steps
from .devices import resolve_device
from .loading import batch_generator
from .stacked import StackedModel, stackable, structure
from .state import ModelState

__all__ = ["Member", "cohort_key", "run_train_cohort", "schedule_factor", "train_cohort"]

_BETAS, _EPS = (0.9, 0.999), 1e-8


@dataclass
class Member:
    """One member's part in a cohort's training: its data, seed and hyperparameters.

    Parameters
    ----------
    x, y : Tensor
        Its training split (members share the length and the input shape).
    seed : int
        Its node's seed (draws its epochs' orders and augmentation).
    lr, weight_decay : float
        Its learning rate and weight decay.
    augmentation : Augment
        Its training augmentation (empty: none).
    """

    x: torch.Tensor
    y: torch.Tensor
    seed: int
    lr: float
    weight_decay: float
    augmentation: Augment


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


def train_cohort(models: Sequence[torch.nn.Module], members: Sequence[Member], *, epochs: int, batch_size: int,
                 optimizer: str, momentum: float, schedule: str, device: torch.device) -> list[list[list[float]]]:
    """Train stackable models of one structure together, in place; each member as its own seed says.

    Parameters
    ----------
    models : sequence of nn.Module
        The members' models (see :func:`~prunelab.recipes.stacked.stackable`), trained in place and left on
        the CPU in ``eval()`` mode.
    members : sequence of Member
        Aligned with ``models``.
    epochs, batch_size : int
        Shared by all members.
    optimizer : {"sgd", "adam"}
        The update rule (any other value: Adam).
    momentum : float
        SGD's momentum.
    schedule : str
        The learning-rate schedule (:func:`schedule_factor`).
    device : torch.device
        Where the computation runs.

    Returns
    -------
    list
        Per member: ``[epoch mean losses, per-step losses]``.

    Raises
    ------
    Preempted
        Never here: when the process is asked to stop, training ends early and
        :func:`~prunelab.execution.preempt.requested` tells the caller.
    """
    if len(models) == 1 and torch.get_num_threads() > 1:
        # One matrix product alone would be split over the threads, which rounds otherwise than the
        # one-thread-per-member products of a larger cohort: a lone member trains beside a copy of itself.
        return train_cohort([models[0], copy.deepcopy(models[0])], [members[0], members[0]], epochs=epochs,
                            batch_size=batch_size, optimizer=optimizer, momentum=momentum, schedule=schedule,
                            device=device)[:1]
    n = len(members[0].y)
    per_epoch = math.ceil(n / batch_size)
    steps = epochs * per_epoch
    for model in models:
        model.to(device)
    stacked = StackedModel(models)
    params = stacked.params
    count = len(members)
    lrs = torch.tensor([m.lr for m in members], dtype=torch.float32, device=device)
    decays = torch.tensor([m.weight_decay for m in members], dtype=torch.float32, device=device)
    generators = [torch.Generator().manual_seed(m.seed) for m in members]
    shared = all(m.x is members[0].x and m.y is members[0].y for m in members)
    buffers: list[dict[str, torch.Tensor]] = [{} for _ in params]
    losses: list[list[float]] = [[] for _ in members]
    step_losses: list[torch.Tensor] = []
    done = 0
    for epoch in range(epochs):
        orders = torch.stack([torch.randperm(n, generator=g) for g in generators])
        first = len(step_losses)
        for batch in range(per_epoch):
            index = orders[:, batch * batch_size:(batch + 1) * batch_size]
            xb, yb = _batch(members, index, shared, epoch, batch)
            xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
            logits = stacked(xb)
            width = yb.shape[1]
            loss = F.cross_entropy(logits.reshape(count * width, -1), yb.reshape(-1),
                                   reduction="none").reshape(count, width).mean(1)
            for param in params:
                param.grad = None
            loss.sum().backward()  # type: ignore[no-untyped-call]
            stacked.mask_gradients()
            factor = schedule_factor(schedule, done, steps)
            with torch.no_grad():
                _update(params, buffers, optimizer, lrs * factor, decays, momentum, done + 1)
            done += 1
            step_losses.append(loss.detach())
            if requested():
                break
        totals = torch.zeros(count, dtype=torch.float64)  # summed step by step, as a solo run sums loss.item()s
        for batch, row in enumerate(torch.stack(step_losses[first:]).cpu()):  # one device sync an epoch
            totals += row.double() * min(batch_size, n - batch * batch_size)
        for i, total in enumerate((totals / n).tolist()):
            losses[i].append(total)
        if requested():
            break
    stacked.write_back()
    for model in models:
        model.cpu().eval()
    per_step = torch.stack(step_losses).T.cpu().tolist() if step_losses else [[] for _ in members]
    return [[losses[i], per_step[i]] for i in range(count)]


def _batch(members: Sequence[Member], index: torch.Tensor, shared: bool, epoch: int, batch: int
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """Each member's batch ``[M, B, ...]`` (augmented with its own generator, as its solo run's batch is)."""
    if shared:
        xb, yb = members[0].x[index], members[0].y[index]
    else:
        xb = torch.stack([m.x[i] for m, i in zip(members, index)])
        yb = torch.stack([m.y[i] for m, i in zip(members, index)])
    if any(m.augmentation for m in members):
        xb = torch.stack([m.augmentation(x, batch_generator(m.seed, epoch, batch)) if m.augmentation else x
                          for m, x in zip(members, xb)])
    return xb, yb


def _update(params: list[torch.Tensor], buffers: list[dict[str, torch.Tensor]], optimizer: str,
            lrs: torch.Tensor, decays: torch.Tensor, momentum: float, step: int) -> None:
    """One optimizer step on every stacked parameter (unfused, so each entry rounds alike at any cohort size)."""
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



def cohort_key(properties: dict[str, Any], options: dict[str, Any]) -> tuple[Any, ...] | None:
    """``Train``'s cohort key: every property but the per-member ones (None where it trains alone).

    Members may differ in their learning rate and weight decay (and the
    lineage labels ``treatment`` and ``outcome``). Pruning while training,
    dynamic sparsity, mixed precision, a rewind snapshot taken mid-training
    and the per-epoch validation accuracy keep a node out of cohorts.

    Parameters
    ----------
    properties, options : dict
        The recipe's.

    Returns
    -------
    tuple or None
        The key, or None.
    """
    rewind = properties["rewind_epoch"]
    if (properties["prune_schedule"] is not None or properties["dynamic_sparsity"] is not None or options["amp"]
            or options["val_accuracy"] or rewind not in (None, 0, properties["epochs"])):
        return None
    shared = {k: v for k, v in properties.items() if k not in ("lr", "weight_decay", "treatment", "outcome")}
    return tuple(sorted((k, repr(v)) for k, v in shared.items())) + (("device", repr(options["device"])),)


def run_train_cohort(recipe: pl.Recipe, states: list[ModelState]) -> list[ModelState]:
    """``Train.run_cohort``: the stackable members trained together, by structure; any other alone.

    Parameters
    ----------
    recipe : Train
        The first member's recipe (each member's own is reached with ``recipe.member``).
    states : list of ModelState
        The members' states.

    Returns
    -------
    list of ModelState
        The trained states, aligned with ``states``.

    Raises
    ------
    Preempted
        When the process was asked to stop during training (the members stay declared).
    """
    groups: dict[Any, list[ModelState]] = {}
    for state in states:
        if stackable(state.model):
            x, _ = state.data.train
            groups.setdefault((structure(state.model), len(state.data.train[1]), tuple(x.shape[1:])), []).append(state)
        else:
            with recipe.member(state) as own:
                own.run(state)
    for group in groups.values():
        _train_group(recipe, group)
    if requested():
        raise Preempted(f"a cohort of {len(states)} was preempted before its training ended",
                        [s.id for s in states])
    return states


def _train_group(recipe: pl.Recipe, states: list[ModelState]) -> None:
    members, owns = [], []
    for state in states:
        with recipe.member(state) as own:
            p = own.properties
            x, y = state.data.train
            members.append(Member(x, y, torch.initial_seed(), float(p["lr"]), float(p["weight_decay"]),
                                  Augment(augmentation_steps(getattr(state, "augmentation", None)))))
            owns.append(own)
            if p["rewind_epoch"] == 0:
                state.rewind_snapshot = snapshot(state.model)
    p = recipe.properties
    trained = train_cohort([s.model for s in states], members, epochs=p["epochs"], batch_size=p["batch_size"],
                           optimizer=p["optimizer"], momentum=p["momentum"], schedule=p["schedule"],
                           device=resolve_device(type(recipe).__name__, recipe.options["device"]))
    for state, own, (losses, steps) in zip(states, owns, trained):
        with recipe.member(state):
            for value in steps:
                pl.log("loss", value)
        if own.properties["rewind_epoch"] == own.properties["epochs"] and own.properties["epochs"] > 0:
            state.rewind_snapshot = snapshot(state.model)
        state.train_config = [*state.train_config, {**own.properties, "losses": losses}]
