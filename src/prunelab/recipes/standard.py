"""The standard recipes of pruning studies: train, prune, rewind, reinitialise, rewind the learning rate."""

from __future__ import annotations

from typing import Any

import prunelab as pl

from ..prune import reinit, rewind
from .cohort import cohort_key, run_train_cohort
from .devices import check_amp, check_device, resolve_device
from .gradual import prune_state, sparse_training
from .state import ModelState
from .training import train_model

__all__ = ["Train", "Prune", "Rewind", "Reinit", "LRRewind", "train_model"]

_OPTIMIZERS = ("sgd", "adam")
_SCHEDULES = ("constant", "cosine", "step")


def _check(owner: str, name: str, value: Any, ok: bool, what: str) -> None:
    if not ok:
        raise pl.StateDefinitionError(f"{owner} property {name!r} must be {what}, got {value!r}.")


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

    Batches come through a ``DataLoader`` with ``num_workers`` worker
    processes (an option, default 0), augmented as the state's
    ``augmentation`` property says; the batches are the same bits whatever
    the worker count, the executor or the resumes. The options ``device``
    (default ``"auto"``: CUDA when available) and ``amp`` (False, True,
    ``"bf16"``, ``"fp16"``) say where and in which precision it trains; they
    are recorded, not part of the id (a GPU's result need not be the CPU's
    bits: see :func:`prunelab.verify`).

    ``prune_schedule`` prunes while training: gradual magnitude pruning with
    ``Train(prune_schedule=prune.cubic(0.0, 0.9, 0, 2000, 100))``, each
    event through :func:`prunelab.prune.prune_model` with
    ``prune_technique`` (default ``"global_magnitude"``, any registered
    technique) and logged as the series ``sparsity``. The events are
    properties (part of the id) and lineage (``prune_schedule``, ``technique``).
    ``dynamic_sparsity=prune.RigL(0.9, 100)`` trains at a constant sparsity
    instead, moving connections (Evci et al.'s RigL; lineage ``dynamic_sparsity``, and
    ``technique`` ``"rigl"``).

    With cohorts on (``LocalExecutor(max_cohort=...)``), the nodes of a round
    that share every property but ``lr`` and ``weight_decay`` train as one
    computation (:mod:`prunelab.recipes.cohort`): the stackable models (the
    zoo's MLPs, LeNets and Conv-n) together, any other alone. Pruning while
    training, RigL, ``amp``, ``val_accuracy`` and a rewind snapshot taken
    mid-training train alone. Each member of a cohort checkpoints as a
    lone ``Train`` does and resumes where it stopped (members at one place
    continue together).

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
    OPTIONS = {"checkpoint_every": 600.0, "val_accuracy": False, "num_workers": 0, "device": "auto", "amp": False}
    LINEAGE = {"treatment": "treatment", "outcome": "outcome", "technique": "prune_technique",
               "prune_schedule": "prune_schedule", "dynamic_sparsity": "dynamic_sparsity"}

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        name, p = type(self).__name__, self.properties
        every = self.options["checkpoint_every"]
        _check(name, "checkpoint_every", every, every is None or (
            isinstance(every, (int, float)) and not isinstance(every, bool) and every > 0), "None or positive seconds")
        workers = self.options["num_workers"]
        _check(name, "num_workers", workers,
               isinstance(workers, int) and not isinstance(workers, bool) and workers >= 0, "a non-negative int")
        check_device(name, self.options["device"])
        check_amp(name, self.options["amp"])
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
                             val_accuracy=bool(options["val_accuracy"]), num_workers=options["num_workers"],
                             device=options["device"], amp=options["amp"])
        state.train_config = [*state.train_config, {**self.properties, "losses": losses}]
        return state

    def cohort_key(self) -> tuple[Any, ...] | None:
        """Members share every property but ``lr`` and ``weight_decay`` (see :func:`.cohort.cohort_key`)."""
        return cohort_key(self.properties, self.options)

    def run_cohort(self, states: list[ModelState]) -> list[ModelState]:  # type: ignore[override]
        """Train the members' models as one computation (see :mod:`prunelab.recipes.cohort`)."""
        return run_train_cohort(self, states)


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
    torch's generator, which the engine seeds per state. The option
    ``device`` (default ``"auto"``) is where the scores are computed; the
    pruned model is left on the CPU.
    """

    PROPERTIES = {"technique": "l1_unstructured", "amount": 0.2, "round": 1, "batch_size": 256}
    OPTIONS = {"device": "auto"}
    LINEAGE = {"technique": "technique", "amount": "amount", "round": "round", "outcome": False}

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        check_device(type(self).__name__, self.options["device"])

    def run(self, state: ModelState) -> ModelState:  # type: ignore[override]
        p = self.properties
        state.model.to(resolve_device(type(self).__name__, self.options["device"]))
        prune_state(state, p["technique"], p["batch_size"], amount=float(p["amount"]))
        state.model.cpu()
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
