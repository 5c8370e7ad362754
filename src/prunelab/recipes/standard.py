"""The standard recipes of pruning studies: train, prune, rewind, reinitialise, rewind the learning rate."""

from __future__ import annotations

import contextlib
import math
import sys
import time
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

import prunelab as pl

from ..execution.preempt import requested
from ..prune import get_masks, reinit, rewind, snapshot
from .gradual import DynamicSparsity, GradualPruning, Segment, prune_state, sparse_training
from .state import ModelState

__all__ = ["Train", "Prune", "Rewind", "Reinit", "LRRewind", "train_model"]

_OPTIMIZERS = ("sgd", "adam")
_SCHEDULES = ("constant", "cosine", "step")


def _check(owner: str, name: str, value: Any, ok: bool, what: str) -> None:
    if not ok:
        raise pl.StateDefinitionError(f"{owner} property {name!r} must be {what}, got {value!r}.")


def train_model(state: ModelState, *, epochs: int, lr: float, batch_size: int, optimizer: str, momentum: float,
                weight_decay: float, schedule: str, rewind_epoch: int | None, recipe: pl.Recipe | None = None,
                checkpoint_every: float | None = None, val_accuracy: bool = False,
                prune_schedule: list[list[int | float]] | None = None, prune_technique: str | None = None,
                dynamic_sparsity: dict[str, Any] | None = None) -> list[float]:
    """Train ``state.model`` in place; return the mean training loss of each epoch.

    Shuffling draws from torch's global generator (seeded per state by the
    engine). Pruned models train inside :func:`prunelab.prune.masked_training`
    (dense speed, masks exact). With ``rewind_epoch`` = k, a snapshot is taken
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

    Returns
    -------
    list of float
        The mean training loss of each epoch (cross-entropy), ``epochs`` values.
    """
    model = state.model
    x, y = state.data.train
    parameters = list(model.parameters())
    if optimizer == "sgd":
        opt: torch.optim.Optimizer = torch.optim.SGD(parameters, lr=lr, momentum=momentum, weight_decay=weight_decay)
    else:
        opt = torch.optim.Adam(parameters, lr=lr, weight_decay=weight_decay)
    steps = epochs * math.ceil(len(y) / batch_size)
    owner = type(recipe).__name__ if recipe is not None else "train_model"
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
    place = _Place()
    objects = {"optimizer": opt, "place": place, **({"scheduler": scheduler} if scheduler is not None else {})}
    if recipe is not None:
        recipe.resume(state, **objects)
    dynamic = None if dynamic_sparsity is None else DynamicSparsity(dynamic_sparsity, steps, owner)
    if dynamic is not None and place.step(len(y), batch_size) == 0:  # not resumed: the model starts sparse
        dynamic.start(state)
    sparse = pruning is not None or dynamic is not None  # whose events need the step count
    segment = Segment(model, opt if get_masks(model) else None)
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
                    state.rewind_snapshot = snapshot(model) if segment.optimizer is None else _snapshot_outside(model)
                place.order = torch.randperm(len(y))
            model.train()
            for start in range(place.position, len(y), batch_size):
                done = place.step(len(y), batch_size) if sparse else 0
                if pruning is not None:
                    pruning.prune_if_due(state, segment, opt, done, batch_size)
                index = place.order[start:start + batch_size]
                loss = nn.functional.cross_entropy(model(x[index]), y[index])
                opt.zero_grad()
                loss.backward()  # type: ignore[no-untyped-call]
                if dynamic is None or not dynamic.update_if_due(state, segment, opt, done):
                    opt.step()
                if scheduler is not None:
                    scheduler.step()
                place.total += loss.item() * len(index)
                place.position = start + len(index)
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
        state.rewind_snapshot = snapshot(model)
    model.eval()
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
    with torch.no_grad():
        accuracy = float((model(x).argmax(1) == y).float().mean())
    model.train(was_training)
    return accuracy


def _snapshot_outside(model: nn.Module) -> dict[str, torch.Tensor]:
    # inside masked_training the weights are plain parameters named "weight": same names as snapshot() gives
    return {name: t.detach().clone() for name, t in [*model.named_parameters(), *model.named_buffers()]
            if not name.endswith("_mask")}


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


class Train(pl.Recipe):
    """Train the model (SGD with momentum or Adam, an optional LR schedule).

    ``rewind_epoch`` (optional) takes the snapshot later rewound to by
    ``Rewind(to="snapshot")`` after that many epochs (Frankle et al.'s
    late rewinding). ``treatment`` (e.g. ``"finetune"``) and ``outcome``
    only label the lineage: a study marks the states it analyses with
    ``outcome=True``; every other recipe resets ``outcome`` to False.

    It logs the loss of every step (the series ``loss``) and, with the
    option ``val_accuracy=True``, the validation accuracy after each epoch.
    It checkpoints after every epoch and, within one, every
    ``checkpoint_every`` seconds (an option, default 600; None: epochs
    only), so a run killed or preempted resumes where it stopped and stores
    what an uninterrupted run stores (see :func:`train_model`).

    ``prune_schedule`` prunes while training: gradual magnitude pruning with
    ``Train(prune_schedule=prune.cubic(0.0, 0.9, 0, 2000, 100))``, each
    event through :func:`prunelab.prune.prune_model` with
    ``prune_technique`` (default ``"global_magnitude"``, any registered
    technique) and logged as the series ``sparsity``. The events are
    properties (part of the id) and lineage (``prune_schedule``, ``technique``).
    ``dynamic_sparsity=prune.RigL(0.9, 100)`` trains at a constant sparsity
    instead, moving connections (Evci et al.'s RigL; lineage ``dynamic_sparsity``, and
    ``technique`` ``"rigl"``).

    References
    ----------
    Zhu & Gupta, "To prune, or not to prune", arXiv:1710.01878; Gale et al.,
    "The State of Sparsity in Deep Neural Networks", arXiv:1902.09574; Evci et al.,
    "Rigging the Lottery: Making All Tickets Winners", arXiv:1911.11134.
    """

    PROPERTIES = {"epochs": 1, "lr": 0.1, "batch_size": 64, "optimizer": "sgd", "momentum": 0.9,
                  "weight_decay": 5e-4, "schedule": "constant", "rewind_epoch": None, "treatment": None,
                  "outcome": False, "prune_schedule": pl.added(None), "prune_technique": pl.added(None),
                  "dynamic_sparsity": pl.added(None)}
    OPTIONS = {"checkpoint_every": 600.0, "val_accuracy": False}
    LINEAGE = {"treatment": "treatment", "outcome": "outcome", "technique": "prune_technique",
               "prune_schedule": "prune_schedule", "dynamic_sparsity": "dynamic_sparsity"}

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        name, p = type(self).__name__, self.properties
        every = self.options["checkpoint_every"]
        _check(name, "checkpoint_every", every, every is None or (
            isinstance(every, (int, float)) and not isinstance(every, bool) and every > 0), "None or positive seconds")
        _check(name, "epochs", p["epochs"], isinstance(p["epochs"], int) and p["epochs"] >= 0, "a non-negative int")
        _check(name, "lr", p["lr"], isinstance(p["lr"], (int, float)) and p["lr"] > 0, "a positive number")
        _check(name, "batch_size", p["batch_size"], isinstance(p["batch_size"], int) and p["batch_size"] > 0,
               "a positive int")
        _check(name, "optimizer", p["optimizer"], p["optimizer"] in _OPTIMIZERS, f"one of {_OPTIMIZERS}")
        _check(name, "schedule", p["schedule"], p["schedule"] in _SCHEDULES, f"one of {_SCHEDULES}")
        _check(name, "rewind_epoch", p["rewind_epoch"], p["rewind_epoch"] is None or (
            isinstance(p["rewind_epoch"], int) and 0 <= p["rewind_epoch"] <= p["epochs"]), "None or 0..epochs")
        self.prune_schedule, self.prune_technique, self.dynamic_sparsity = sparse_training(
            name, p["prune_schedule"], p["prune_technique"], p["dynamic_sparsity"])

    def run(self, state: ModelState) -> ModelState:  # type: ignore[override]
        settings = {k: v for k, v in self.properties.items() if k not in ("treatment", "outcome")}
        options = self.options
        losses = train_model(state, **settings, recipe=self, checkpoint_every=options["checkpoint_every"],
                             val_accuracy=bool(options["val_accuracy"]))
        state.train_config = [*state.train_config, {**self.properties, "losses": losses}]
        return state


class LRRewind(Train):
    """Retrain a pruned model with the original learning-rate schedule from its pruned weights.

    References
    ----------
    Renda et al., "Comparing Rewinding and Fine-tuning in Neural Network Pruning", ICLR 2020, arXiv:2003.02389.
    """

    LINEAGE = {"treatment": "lr_rewind", "outcome": "outcome"}


class Prune(pl.Recipe):
    """Prune with a technique of :mod:`prunelab.prune` (``amount`` of what remains, per call).

    Every Conv and Linear weight is pruned, except that structured techniques
    leave the output layer alone (its output channels are the classes).
    What a technique declares in the registry
    (:func:`prunelab.prune.register_technique`) decides what it is given:
    one training batch of ``batch_size`` when it ``needs_data`` (a user's
    technique as well as SNIP, GraSP, Taylor), the data's input shape when it
    has an ``input_shape`` option (SynFlow). Random techniques draw from
    torch's generator, which the engine seeds per state.
    """

    PROPERTIES = {"technique": "l1_unstructured", "amount": 0.2, "round": 1, "batch_size": 256}
    LINEAGE = {"technique": "technique", "amount": "amount", "round": "round", "outcome": False}

    def run(self, state: ModelState) -> ModelState:  # type: ignore[override]
        p = self.properties
        prune_state(state, p["technique"], p["batch_size"], amount=float(p["amount"]))
        return state


class Rewind(pl.Recipe):
    """Set the surviving weights back to initialisation (``to="init"``) or the training snapshot."""

    PROPERTIES = {"to": "init"}
    LINEAGE = {"treatment": "rewind", "rewind_to": "to", "outcome": False}

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        to = self.properties["to"]
        _check("Rewind", "to", to, to in ("init", "snapshot"), "'init' or 'snapshot'")

    def run(self, state: ModelState) -> ModelState:  # type: ignore[override]
        saved = state.init_weights if self.properties["to"] == "init" else state.rewind_snapshot
        if saved is None:
            raise pl.StateDefinitionError("Rewind(to='snapshot') needs a snapshot: train with rewind_epoch=k first.")
        rewind(state.model, saved)
        return state


class Reinit(pl.Recipe):
    """Re-initialise the surviving weights (the random-reinitialisation control of the lottery ticket)."""

    LINEAGE = {"treatment": "reinit", "outcome": False}

    def run(self, state: ModelState) -> ModelState:  # type: ignore[override]
        reinit(state.model)
        return state
