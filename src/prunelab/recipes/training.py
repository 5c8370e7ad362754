"""The training loop of ``Train``: loaders, devices, mixed precision, checkpoints, pruning while training."""

from __future__ import annotations

import contextlib
import math
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

import prunelab as pl

from ..execution.preempt import requested
from ..prune import get_masks, snapshot
from ..zoo.augmentation import Augment, augmentation_steps
from .devices import amp_dtype, resolve_device
from .gradual import DynamicSparsity, GradualPruning, Segment
from .loading import EpochBatches
from .state import ModelState

__all__ = ["train_model"]


def train_model(state: ModelState, *, epochs: int, lr: float, batch_size: int, optimizer: str, momentum: float,
                weight_decay: float, schedule: str, rewind_epoch: int | None, recipe: pl.Recipe | None = None,
                checkpoint_every: float | None = None, val_accuracy: bool = False,
                prune_schedule: list[list[int | float]] | None = None, prune_technique: str | None = None,
                dynamic_sparsity: dict[str, Any] | None = None, num_workers: int = 0, device: str = "cpu",
                amp: bool | str = False) -> list[float]:
    """Train ``state.model`` in place; return the mean training loss of each epoch.

    Batches come from a ``DataLoader`` (:mod:`prunelab.recipes.loading`):
    each epoch's order draws from torch's global generator (seeded per state
    by the engine), and each training batch is augmented as
    ``state.augmentation`` says (:mod:`prunelab.zoo.augmentation`), with a
    generator of its own seeded from the run's seed (the seed torch's
    generator started from), the epoch and the batch number, so that the
    batches are the same bits for any ``num_workers`` and across resumes.
    The model trains on ``device`` (and is moved back to the CPU at the end,
    so a stored state does not depend on where it was trained); with ``amp``
    the forward pass runs under ``torch.autocast``, float16 with a gradient
    scaler that is checkpointed with the optimizer. Pruned models train
    inside :func:`prunelab.prune.masked_training` (dense speed, masks exact).
    With ``rewind_epoch`` = k, a snapshot is taken
    into ``state.rewind_snapshot`` after k epochs (k = 0: before training).
    Each step's loss is logged as the series ``loss`` (see :func:`prunelab.log`).
    With ``prune_schedule``, the model is pruned while it trains (see
    :mod:`prunelab.recipes.gradual`): each event prunes with
    ``prune_technique`` to its sparsity, and the sparsity reached is logged
    as the series ``sparsity`` at the event's step. With ``dynamic_sparsity``
    (RigL), a dense model is made sparse before training and its connections
    move at the update steps (the series ``moved``; those steps apply no
    optimizer update).

    Given the ``recipe`` that trains, the run resumes from its newest
    checkpoint and checkpoints after every epoch, and within an epoch
    whenever ``checkpoint_every`` seconds have passed since the last one (or
    the process is asked to stop): the model, the optimizer and schedule,
    the epoch's order and place, the losses so far, the generators and the
    series. A resumed run stores what an uninterrupted one does, bit for bit.

    Parameters
    ----------
    state : ModelState
        Its ``model`` is trained in place on ``state.data.train`` (and left in ``eval()`` mode).
    epochs : int
        Passes over the training split.
    lr : float
        The (initial) learning rate.
    batch_size : int
        Samples per step.
    optimizer : {"sgd", "adam"}
        SGD with momentum, or Adam (any other value also gives Adam).
    momentum : float
        SGD's momentum (unused by Adam).
    weight_decay : float
        The optimizer's weight decay (L2 penalty).
    schedule : {"constant", "cosine", "step"}
        The learning rate over the steps: constant, cosine annealing to 0 over all steps, or
        multiplied by 0.1 after every third of the steps (any other value: constant).
    rewind_epoch : int or None
        After how many epochs to take the rewind snapshot, 0 .. ``epochs``; None: no snapshot.
    recipe : Recipe, optional
        The recipe running this (its checkpoints are used); None: no checkpoint, no resume.
    checkpoint_every : float, optional
        Seconds between checkpoints within an epoch; None: at the ends of epochs only.
    val_accuracy : bool, default=False
        Also log the accuracy on ``state.data.val`` after each epoch, as the series ``val_accuracy``.
    prune_schedule : list of [step, sparsity], optional
        Pruning events (:func:`~prunelab.recipes.gradual.schedule_events`); steps count optimizer steps.
    prune_technique : str, optional
        The technique of the events (default ``"global_magnitude"``).
    dynamic_sparsity : dict, optional
        RigL's settings (:func:`~prunelab.recipes.gradual.dynamic_settings`).

    num_workers : int, default=0
        Loader worker processes making the batches (0: this process).
    device : str, default="cpu"
        Where to train: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ``"cuda:<n>"``.
    amp : {False, True, "bf16", "fp16"}, default=False
        Mixed precision (:func:`~prunelab.recipes.devices.amp_dtype`); False: full precision.

    Returns
    -------
    list of float
        The mean training loss of each epoch (cross-entropy), ``epochs`` values.
    """
    seed = torch.initial_seed()  # the node's: the engine seeded torch's generator with it (before any resume)
    owner = type(recipe).__name__ if recipe is not None else "train_model"
    where = resolve_device(owner, device)
    model = state.model.to(where)
    x, y = state.data.train
    parameters = list(model.parameters())
    if optimizer == "sgd":
        opt: torch.optim.Optimizer = torch.optim.SGD(parameters, lr=lr, momentum=momentum, weight_decay=weight_decay)
    else:
        opt = torch.optim.Adam(parameters, lr=lr, weight_decay=weight_decay)
    steps = epochs * math.ceil(len(y) / batch_size)
    pruning = None
    if prune_schedule is not None:
        pruning = GradualPruning(prune_schedule, prune_technique or "global_magnitude", owner)
        pruning.check(steps)
    if schedule == "cosine":
        scheduler: Any = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(steps, 1))
    elif schedule == "step":
        scheduler = torch.optim.lr_scheduler.StepLR(opt, step_size=max(steps // 3, 1), gamma=0.1)
    else:
        scheduler = None
    dtype = amp_dtype(amp, where)
    scaler = torch.amp.GradScaler(where.type) if dtype is torch.float16 else None
    place = _Place()
    objects = {"optimizer": opt, "place": place, **({"scheduler": scheduler} if scheduler is not None else {}),
               **({"scaler": scaler} if scaler is not None else {})}
    if recipe is not None:
        recipe.resume(state, **objects)
    dynamic = None if dynamic_sparsity is None else DynamicSparsity(dynamic_sparsity, steps, owner)
    if dynamic is not None and place.step(len(y), batch_size) == 0:  # not resumed: the model starts sparse
        dynamic.start(state)
    sparse = pruning is not None or dynamic is not None  # whose events need the step count
    segment = Segment(model, opt if get_masks(model) else None)
    batches = EpochBatches(x, y, batch_size, Augment(augmentation_steps(getattr(state, "augmentation", None))), seed)
    autocast: Callable[[], Any] = contextlib.nullcontext if dtype is None else (
        lambda: torch.autocast(where.type, dtype=dtype))
    last = time.monotonic()

    def save() -> None:  # outside masked training, so the model is stored in its pruned form
        nonlocal last
        assert recipe is not None
        with segment.paused():
            recipe.checkpoint(state, place.step(len(y), batch_size), **objects)
        last = time.monotonic()

    with segment, _progress(epochs) as tick:
        for epoch in range(place.epoch, epochs):
            if place.order is None:  # the epoch begins
                if rewind_epoch == epoch:
                    state.rewind_snapshot = _on_cpu(
                        snapshot(model) if segment.optimizer is None else _snapshot_outside(model))
                place.order = torch.randperm(len(y))
            model.train()
            first = place.position // batch_size
            loader = batches.loader(epoch, place.order, first, num_workers, where.type == "cuda")
            for batch, (xb, yb) in enumerate(loader, start=first):
                done = place.step(len(y), batch_size) if sparse else 0
                if pruning is not None:
                    pruning.prune_if_due(state, segment, opt, done, batch_size)
                xb, yb = xb.to(where, non_blocking=True), yb.to(where, non_blocking=True)
                with autocast():
                    loss = nn.functional.cross_entropy(model(xb), yb)
                opt.zero_grad()
                (loss if scaler is None else scaler.scale(loss)).backward()  # type: ignore[no-untyped-call]
                if dynamic is None or not dynamic.update_if_due(state, segment, opt, done):
                    if scaler is None:
                        opt.step()
                    else:
                        scaler.step(opt)
                        scaler.update()
                if scheduler is not None:
                    scheduler.step()
                place.total += loss.item() * len(yb)
                place.position = batch * batch_size + len(yb)
                pl.log("loss", loss.detach())
                if recipe is not None and place.position < len(y) and (requested() or (
                        checkpoint_every is not None and time.monotonic() - last >= checkpoint_every)):
                    save()
            place.end_epoch(len(y))
            tick(epoch, place.losses[-1])
            if val_accuracy:
                pl.log("val_accuracy", _accuracy(model, *state.data.val), step=epoch + 1)
            if recipe is not None and epoch + 1 < epochs:  # after the last, the state itself is stored
                save()
        if pruning is not None:  # an event at the last step
            pruning.prune_if_due(state, segment, opt, steps, batch_size)
    if rewind_epoch == epochs:
        state.rewind_snapshot = _on_cpu(snapshot(model))
    model.eval()
    state.model = model.cpu()
    return list(place.losses)


class _Place:
    """Where training is: the epoch, its order and position, the loss summed so far, the epochs' mean losses."""

    def __init__(self) -> None:
        self.epoch, self.position, self.total = 0, 0, 0.0
        self.order: torch.Tensor | None = None
        self.losses: list[float] = []

    def step(self, n: int, batch_size: int) -> int:
        """The steps done (what a checkpoint is labelled with)."""
        return self.epoch * math.ceil(n / batch_size) + math.ceil(self.position / batch_size)

    def end_epoch(self, n: int) -> None:
        self.losses.append(self.total / n)
        self.epoch, self.position, self.total, self.order = self.epoch + 1, 0, 0.0, None

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "position": self.position, "total": self.total, "order": self.order,
                "losses": list(self.losses)}

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        self.epoch, self.position, self.total = saved["epoch"], saved["position"], saved["total"]
        self.order, self.losses = saved["order"], list(saved["losses"])


def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    was_training = model.training
    model.eval()
    where = next(model.parameters()).device
    with torch.no_grad():
        accuracy = float((model(x.to(where)).argmax(1) == y.to(where)).float().mean())
    model.train(was_training)
    return accuracy


def _snapshot_outside(model: nn.Module) -> dict[str, torch.Tensor]:
    # inside masked_training the weights are plain parameters named "weight": same names as snapshot() gives
    return {name: t.detach().clone() for name, t in [*model.named_parameters(), *model.named_buffers()]
            if not name.endswith("_mask")}


def _on_cpu(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {name: t.cpu() for name, t in tensors.items()}


@contextlib.contextmanager
def _progress(epochs: int) -> Iterator[Any]:
    """Epoch progress on a terminal (rich), nothing otherwise."""
    if not sys.stderr.isatty():
        yield lambda epoch, loss: None
        return
    from rich.progress import Progress

    with Progress(transient=True) as bar:
        task = bar.add_task("training", total=epochs)

        def tick(epoch: int, loss: float) -> None:
            bar.update(task, completed=epoch + 1, description=f"training (loss {loss:.3f})")

        yield tick
