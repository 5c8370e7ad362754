"""The standard recipes of pruning studies: train, prune, rewind, reinitialise, rewind the learning rate."""

from __future__ import annotations

import contextlib
import math
import sys
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

import prunelab as pl

from ..prune import get_masks, masked_training, prune_model, reinit, rewind, snapshot
from ..prune.targets import DEFAULT_TYPES as _PRUNABLE
from ..prune.techniques import get_technique
from .state import ModelState

__all__ = ["Train", "Prune", "Rewind", "Reinit", "LRRewind", "train_model"]

_OPTIMIZERS = ("sgd", "adam")
_SCHEDULES = ("constant", "cosine", "step")


def _check(owner: str, name: str, value: Any, ok: bool, what: str) -> None:
    if not ok:
        raise pl.StateDefinitionError(f"{owner} property {name!r} must be {what}, got {value!r}.")


def train_model(state: ModelState, *, epochs: int, lr: float, batch_size: int, optimizer: str, momentum: float,
                weight_decay: float, schedule: str, rewind_epoch: int | None) -> list[float]:
    """Train ``state.model`` in place; return the mean training loss of each epoch.

    Shuffling draws from torch's global generator (seeded per state by the
    engine). Pruned models train inside :func:`prunelab.prune.masked_training`
    (dense speed, masks exact). With ``rewind_epoch`` = k, a snapshot is taken
    into ``state.rewind_snapshot`` after k epochs (k = 0: before training).

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
    if schedule == "cosine":
        scheduler: Any = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(steps, 1))
    elif schedule == "step":
        scheduler = torch.optim.lr_scheduler.StepLR(opt, step_size=max(steps // 3, 1), gamma=0.1)
    else:
        scheduler = None
    losses = []
    pruned = bool(get_masks(model))
    with (masked_training(model, opt) if pruned else contextlib.nullcontext()), _progress(epochs) as tick:
        for epoch in range(epochs):
            if rewind_epoch == epoch:
                state.rewind_snapshot = snapshot(model) if not pruned else _snapshot_outside(model)
            model.train()
            order = torch.randperm(len(y))
            total = 0.0
            for start in range(0, len(y), batch_size):
                index = order[start:start + batch_size]
                loss = nn.functional.cross_entropy(model(x[index]), y[index])
                opt.zero_grad()
                loss.backward()  # type: ignore[no-untyped-call]
                opt.step()
                if scheduler is not None:
                    scheduler.step()
                total += loss.item() * len(index)
            losses.append(total / len(y))
            tick(epoch, losses[-1])
    if rewind_epoch == epochs:
        state.rewind_snapshot = snapshot(model)
    model.eval()
    return losses


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
    """

    PROPERTIES = {"epochs": 1, "lr": 0.1, "batch_size": 64, "optimizer": "sgd", "momentum": 0.9,
                  "weight_decay": 5e-4, "schedule": "constant", "rewind_epoch": None, "treatment": None,
                  "outcome": False}
    LINEAGE = {"treatment": "treatment", "outcome": "outcome"}

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        name, p = type(self).__name__, self.properties
        _check(name, "epochs", p["epochs"], isinstance(p["epochs"], int) and p["epochs"] >= 0, "a non-negative int")
        _check(name, "lr", p["lr"], isinstance(p["lr"], (int, float)) and p["lr"] > 0, "a positive number")
        _check(name, "batch_size", p["batch_size"], isinstance(p["batch_size"], int) and p["batch_size"] > 0,
               "a positive int")
        _check(name, "optimizer", p["optimizer"], p["optimizer"] in _OPTIMIZERS, f"one of {_OPTIMIZERS}")
        _check(name, "schedule", p["schedule"], p["schedule"] in _SCHEDULES, f"one of {_SCHEDULES}")
        _check(name, "rewind_epoch", p["rewind_epoch"], p["rewind_epoch"] is None or (
            isinstance(p["rewind_epoch"], int) and 0 <= p["rewind_epoch"] <= p["epochs"]), "None or 0..epochs")

    def run(self, state: ModelState) -> ModelState:  # type: ignore[override]
        settings = {k: v for k, v in self.properties.items() if k not in ("treatment", "outcome")}
        losses = train_model(state, **settings)
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
        technique = get_technique(p["technique"])
        x, y = state.data.train
        extra: dict[str, Any] = {}
        if technique.needs_data:
            extra = {"inputs": x[: p["batch_size"]], "targets": y[: p["batch_size"]]}
        if "input_shape" in technique.options:
            extra["input_shape"] = (1, *x.shape[1:])
        parameters = None
        if technique.structured:
            layers = [name for name, m in state.model.named_modules() if isinstance(m, _PRUNABLE)]
            parameters = [f"{name}.weight" for name in layers[:-1]]
        prune_model(state.model, p["technique"], amount=float(p["amount"]), parameters=parameters, **extra)
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
