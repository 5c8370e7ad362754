"""``Train`` for a cohort: the members' models trained as one computation (see :mod:`.stacked`).

Each member keeps what makes it itself: its seed (its epochs' orders and its
augmentation draw from generators seeded as its solo run's are), its
learning rate and weight decay, its masks, its series, its checkpoints. The
updates and schedules are those of :mod:`.updates`, which round alike at any
cohort size, so every entry of a member's weights gets the same bits however
many members it is stacked with, and whether or not it resumed.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
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
from .updates import schedule_factor, update
from .state import ModelState

__all__ = ["Member", "Progress", "cohort_key", "run_train_cohort", "train_cohort"]

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


@dataclass
class Progress:
    """Where one member's training is: what its checkpoints hold, and what a resumed cohort continues from.

    Parameters
    ----------
    epoch, batch : int
        The epochs done, and the batches done of the next one.
    order : Tensor or None
        The order of the epoch begun (None between epochs).
    generator : Tensor or None
        The state of the member's order generator after its last order was drawn (None: none drawn yet).
    buffers : list of dict
        The optimizer's buffers of each of the member's parameters (momentum; Adam's ``m`` and ``v``).
    losses : list of float
        The mean loss of each epoch done.
    steps : list of float
        The losses of the steps done in the epoch begun.
    """

    epoch: int = 0
    batch: int = 0
    order: torch.Tensor | None = None
    generator: torch.Tensor | None = None
    buffers: list[dict[str, torch.Tensor]] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    steps: list[float] = field(default_factory=list)

    def done(self, per_epoch: int) -> int:
        """The optimizer steps done (what a checkpoint is labelled with)."""
        return self.epoch * per_epoch + self.batch

    def state_dict(self) -> dict[str, Any]:
        """Everything, as plain values and tensors (see :meth:`prunelab.Recipe.checkpoint`)."""
        return {"epoch": self.epoch, "batch": self.batch, "order": self.order, "generator": self.generator,
                "buffers": self.buffers, "losses": list(self.losses), "steps": list(self.steps)}

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        """Take back what :meth:`state_dict` gave."""
        self.epoch, self.batch, self.order, self.generator = saved["epoch"], saved["batch"], saved["order"], \
            saved["generator"]
        self.buffers, self.losses, self.steps = list(saved["buffers"]), list(saved["losses"]), list(saved["steps"])


Save = Callable[[list[list[float]]], None]


def train_cohort(models: Sequence[torch.nn.Module], members: Sequence[Member], progress: Sequence[Progress], *,
                 epochs: int, batch_size: int, optimizer: str, momentum: float, schedule: str, device: torch.device,
                 save: Save | None = None, every: float | None = None) -> list[list[list[float]]]:
    """Train stackable models of one structure together, in place; each member as its own seed says.

    The members continue from their ``progress`` (all at the same place: a
    fresh :class:`Progress` each, or what their checkpoints held), which is
    kept up to date whenever ``save`` is called: after every epoch but the
    last, and within an epoch once ``every`` seconds have passed since the
    last call or the process is asked to stop (see
    :func:`~prunelab.execution.preempt.requested`).

    Parameters
    ----------
    models : sequence of nn.Module
        The members' models (see :func:`~prunelab.recipes.stacked.stackable`), trained in place and left on
        the CPU in ``eval()`` mode.
    members : sequence of Member
        Aligned with ``models``.
    progress : sequence of Progress
        Aligned with ``models``: where each member is (updated in place).
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
    save : callable, optional
        Called with each member's step losses since the last call, once the models hold their weights and
        ``progress`` where they are (a checkpoint); None: no checkpoint, and training stops early when the
        process is asked to stop.
    every : float, optional
        Seconds between ``save`` calls within an epoch; None: at the ends of epochs only.

    Returns
    -------
    list
        Per member: ``[epoch mean losses, the step losses since the last save]``.

    Raises
    ------
    Preempted
        When ``save`` raises it (the process was asked to stop).
    """
    if len(models) == 1 and torch.get_num_threads() > 1:
        # One matrix product alone would be split over the threads, which rounds otherwise than the
        # one-thread-per-member products of a larger cohort: a lone member trains beside a copy of itself.
        lone = None if save is None else (lambda fresh: save(fresh[:1]))
        return train_cohort([models[0], copy.deepcopy(models[0])], [members[0], members[0]],
                            [progress[0], copy.deepcopy(progress[0])], epochs=epochs, batch_size=batch_size,
                            optimizer=optimizer, momentum=momentum, schedule=schedule, device=device, save=lone,
                            every=every)[:1]
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
    for g, p in zip(generators, progress):
        if p.generator is not None:
            g.set_state(p.generator)
    buffers = _buffers(progress, len(params), device)
    shared = all(m.x is members[0].x and m.y is members[0].y for m in members)
    losses = [list(p.losses) for p in progress]
    start = progress[0]
    done = start.done(per_epoch)
    rows = [r.to(device) for r in torch.tensor([p.steps for p in progress], dtype=torch.float32).T]
    fresh: list[torch.Tensor] = []  # the steps' losses not handed out yet
    orders = None if start.order is None else torch.stack([p.order for p in progress])  # type: ignore[misc]
    last = time.monotonic()

    def checkpoint(epoch: int, batch: int) -> None:
        nonlocal fresh, last
        assert save is not None
        stacked.write_back()
        kept = torch.stack(rows).T.cpu().tolist() if batch else [[] for _ in members]  # one transfer
        for i, p in enumerate(progress):
            p.epoch, p.batch, p.generator = epoch, batch, generators[i].get_state()
            p.order = None if batch == 0 or orders is None else orders[i].cpu()
            p.buffers = [{k: b[i].detach().to("cpu", copy=True) for k, b in state.items()} for state in buffers]
            p.losses, p.steps = list(losses[i]), kept[i]
        handed = torch.stack(fresh).T.cpu().tolist() if fresh else [[] for _ in members]
        fresh = []
        save(handed)
        last = time.monotonic()

    for epoch in range(start.epoch, epochs):
        if orders is None:
            orders = torch.stack([torch.randperm(n, generator=g) for g in generators])
        for batch in range(start.batch if epoch == start.epoch else 0, per_epoch):
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
                update(params, buffers, optimizer, lrs * factor, decays, momentum, done + 1)
            done += 1
            rows.append(loss.detach())
            fresh.append(rows[-1])
            if batch + 1 < per_epoch and (requested() or (every is not None and time.monotonic() - last >= every)):
                if save is None:
                    break
                checkpoint(epoch, batch + 1)
        totals = torch.zeros(count, dtype=torch.float64)  # summed step by step, as a solo run sums loss.item()s
        for batch, row in enumerate(torch.stack(rows).cpu()):  # one device sync an epoch
            totals += row.double() * min(batch_size, n - batch * batch_size)
        for i, total in enumerate((totals / n).tolist()):
            losses[i].append(total)
        rows, orders = [], None
        if save is None and requested():
            break
        if save is not None and epoch + 1 < epochs:  # after the last, the states themselves are stored
            checkpoint(epoch + 1, 0)
    stacked.write_back()
    for model in models:
        model.cpu().eval()
    per_step = torch.stack(fresh).T.cpu().tolist() if fresh else [[] for _ in members]
    return [[losses[i], per_step[i]] for i in range(count)]


def _buffers(progress: Sequence[Progress], count: int, device: torch.device) -> list[dict[str, torch.Tensor]]:
    """The stacked optimizer buffers of each parameter, from the members' progress (empty: none yet)."""
    if not progress[0].buffers:
        return [{} for _ in range(count)]
    return [{k: torch.stack([p.buffers[j][k] for p in progress]).to(device) for k in progress[0].buffers[j]}
            for j in range(count)]


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
    """``Train.run_cohort``: the stackable members trained together, by structure and place; any other alone.

    Each member resumes from its newest checkpoint, and members continue
    together from where they are (those at one place as one computation):
    after every epoch but the last, and within one every
    ``checkpoint_every`` seconds, each member's checkpoint is stored (its
    model, its part of the optimizer's buffers, its order generator and
    place, its losses and its series), so a cohort killed or preempted
    resumes where it stopped and stores what an uninterrupted one does.

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
        When the process was asked to stop during training (every member's checkpoint is stored first; the
        members stay declared).
    """
    groups: dict[Any, list[_Entry]] = {}
    for state in states:
        if not stackable(state.model):
            with recipe.member(state) as own:
                own.run(state)
            continue
        with recipe.member(state) as own:
            p = own.properties
            x, y = state.data.train
            seed = torch.initial_seed()  # the member's (the engine seeded torch's generator with it)
            progress = Progress()
            if own.resume(state, progress=progress) is None and p["rewind_epoch"] == 0:
                state.rewind_snapshot = snapshot(state.model)
            member = Member(x, y, seed, float(p["lr"]), float(p["weight_decay"]),
                            Augment(augmentation_steps(getattr(state, "augmentation", None))))
        key = (structure(state.model), len(y), tuple(x.shape[1:]), progress.epoch, progress.batch)
        groups.setdefault(key, []).append((state, member, progress, own))
    for group in groups.values():
        _train_group(recipe, group)
    return states


_Entry = tuple[ModelState, Member, Progress, pl.Recipe]  # a member's state, part, place and own recipe


def _log_losses(recipe: pl.Recipe, state: ModelState, steps: list[float]) -> None:
    with recipe.member(state):
        for value in steps:
            pl.log("loss", value)


def _train_group(recipe: pl.Recipe, group: list[_Entry]) -> None:
    p = recipe.properties

    def save(fresh: list[list[float]]) -> None:
        stopped = None
        for (state, _, progress, own), steps in zip(group, fresh):
            _log_losses(recipe, state, steps)
            with recipe.member(state):
                try:
                    own.checkpoint(state, progress.done(per_epoch), progress=progress)
                except Preempted as err:  # every member's checkpoint is written before the cohort stops
                    stopped = err
        if stopped is not None:
            raise Preempted(f"a cohort of {len(group)} was preempted; its members' checkpoints are stored",
                            [s.id for s, _, _, _ in group])

    per_epoch = math.ceil(len(group[0][1].y) / p["batch_size"])
    trained = train_cohort([e[0].model for e in group], [e[1] for e in group], [e[2] for e in group],
                           epochs=p["epochs"], batch_size=p["batch_size"], optimizer=p["optimizer"],
                           momentum=p["momentum"], schedule=p["schedule"], save=save,
                           every=recipe.options["checkpoint_every"],
                           device=resolve_device(type(recipe).__name__, recipe.options["device"]))
    for (state, _, _, own), (losses, steps) in zip(group, trained):
        _log_losses(recipe, state, steps)
        if own.properties["rewind_epoch"] == own.properties["epochs"] and own.properties["epochs"] > 0:
            state.rewind_snapshot = snapshot(state.model)
        state.train_config = [*state.train_config, {**own.properties, "losses": losses}]
