"""Pruning while training: the events of a gradual schedule, and RigL's dynamic sparsity, between optimizer steps.

Gradual magnitude pruning (Zhu & Gupta 2017; Gale et al. 2019) raises the
sparsity along a schedule — :func:`prunelab.prune.cubic` — while the model
trains, instead of pruning a trained model at once. A schedule is data: the
events ``[[step, sparsity], ...]`` (steps count optimizer steps), hashed with
the recipe's properties, so it is part of the state's identity and lineage.
An event at step ``t`` happens when ``t`` steps are done, before the next one
(``t = 0``: before training; ``t`` = the last step: after it); it prunes with
:func:`prunelab.prune.prune_model` to ``sparsity=`` the event's target, so
any registered technique can be used, and masks only ever shrink.

Dynamic sparsity (:class:`prunelab.prune.RigL`, Evci et al. 2020) instead
keeps the sparsity constant and moves connections: it is data too, stored
as ``{"method": "rigl", "sparsity": ..., "update_every": ..., ...}``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

import prunelab as pl

from ..prune import masked_training, prune_model, pruned_parameters
from ..prune.errors import PruningError
from ..prune.rigl import RigL, initial_masks, rigl_update
from ..prune.schedules import Schedule
from ..prune.targets import DEFAULT_TYPES as _PRUNABLE
from ..prune.techniques import available_techniques, get_technique

__all__ = ["DynamicSparsity", "GradualPruning", "Segment", "dynamic_settings", "prune_state", "schedule_events",
           "sparse_training"]


def prune_state(state: Any, technique: str, batch_size: int, **how: Any) -> None:
    """Prune ``state.model`` in place with ``technique``, given what the technique declares it needs.

    One training batch of ``batch_size`` when it ``needs_data``, the data's
    input shape when it has an ``input_shape`` option; structured techniques
    leave the output layer alone (its output channels are the classes).

    Parameters
    ----------
    state : ModelState
        Its ``model`` is pruned; its ``data.train`` gives the batch.
    technique : str
        A registered technique.
    batch_size : int
        The batch a data-dependent technique scores on (the first samples of the training split).
    **how
        ``amount=`` or ``sparsity=``, as :func:`prunelab.prune.prune_model` takes them.
    """
    chosen = get_technique(technique)
    x, y = state.data.train
    extra: dict[str, Any] = {}
    if chosen.needs_data:  # on the model's device
        where = next(state.model.parameters()).device
        extra = {"inputs": x[:batch_size].to(where), "targets": y[:batch_size].to(where)}
    if "input_shape" in chosen.options:
        extra["input_shape"] = (1, *x.shape[1:])
    parameters = None
    if chosen.structured:
        layers = [name for name, m in state.model.named_modules() if isinstance(m, _PRUNABLE)]
        parameters = [f"{name}.weight" for name in layers[:-1]]
    prune_model(state.model, technique, parameters=parameters, **how, **extra)


def sparse_training(owner: str, schedule: Any, technique: Any, dynamic: Any
                    ) -> tuple[list[list[int | float]] | None, str | None, dict[str, Any] | None]:
    """Train's ``prune_schedule``, ``prune_technique`` and ``dynamic_sparsity`` as data, checked together.

    The technique is what the lineage records: the events' (default
    ``"global_magnitude"``) with a schedule, ``"rigl"`` with dynamic sparsity.

    Parameters
    ----------
    owner : str
        The recipe, for errors.
    schedule, technique, dynamic : Any
        The properties as given (see :func:`schedule_events` and :func:`dynamic_settings`).

    Returns
    -------
    tuple
        ``(events or None, technique or None, RigL's settings or None)``.

    Raises
    ------
    StateDefinitionError
        For a bad schedule, technique or RigL; for both a schedule and dynamic sparsity; for a
        technique given with neither.
    """
    events, settings = schedule_events(owner, schedule), dynamic_settings(owner, dynamic)
    if events is not None and settings is not None:
        raise pl.StateDefinitionError(f"{owner} was given both a prune_schedule and dynamic_sparsity; gradual "
                                      "pruning raises the sparsity, RigL keeps it constant: give one of them.")
    if settings is not None:
        if technique not in (None, "rigl"):
            raise pl.StateDefinitionError(f"{owner} property 'prune_technique' is {technique!r}, but with "
                                          "dynamic_sparsity the technique is RigL; leave it out.")
        return None, "rigl", settings
    if events is not None:
        technique = technique or "global_magnitude"
        GradualPruning(events, technique, owner)  # an unknown technique is refused now, not at the first event
        return events, technique, None
    if technique is not None:
        raise pl.StateDefinitionError(f"{owner} property 'prune_technique' is given without a prune_schedule; "
                                      "give the schedule of pruning events too, or leave the technique out.")
    return None, None, None


def schedule_events(owner: str, value: Any) -> list[list[int | float]] | None:
    """A ``prune_schedule`` property as data: ``[[step, sparsity], ...]`` (None stays None).

    Parameters
    ----------
    owner : str
        The recipe, for errors.
    value : None, Schedule or sequence of (int, float)
        What :func:`prunelab.prune.cubic` returns, or its events.

    Raises
    ------
    StateDefinitionError
        Unless the steps are ints ≥ 0 in increasing order and the sparsities numbers in [0, 1], not decreasing.
    """
    if value is None:
        return None
    events = value.steps if isinstance(value, Schedule) else value if isinstance(value, (list, tuple)) else None
    what = ("a schedule from prunelab.prune.cubic(...) or [[step, sparsity], ...]: steps (optimizer steps) ints "
            ">= 0 in increasing order, sparsities in [0, 1] that do not decrease")
    try:
        out = [[_step(t), _fraction(s)] for t, s in events] if events else None
    except (TypeError, ValueError):
        out = None
    if not out or any(b[0] <= a[0] or b[1] < a[1] for a, b in zip(out, out[1:])):
        raise pl.StateDefinitionError(f"{owner} property 'prune_schedule' must be {what}, got {value!r}.")
    return out


def _step(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(value)
    return value


def _fraction(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ValueError(value)
    return float(value)


class GradualPruning:
    """The events of one training run's schedule, and applying them.

    Parameters
    ----------
    events : list of [step, sparsity]
        As :func:`schedule_events` gives them.
    technique : str
        The registered technique each event prunes with.
    owner : str
        The recipe, for errors.
    """

    def __init__(self, events: list[list[int | float]], technique: str, owner: str):
        if technique not in available_techniques() or technique == "nm":
            raise pl.StateDefinitionError(
                f"{owner} property 'prune_technique' must be a registered technique that prunes to a sparsity "
                f"(not nm, whose pattern is fixed), got {technique!r}; choose one of "
                f"{', '.join(t for t in available_techniques() if t != 'nm')}.")
        self.events = {int(t): float(s) for t, s in events}
        self.technique = technique
        self.owner = owner

    def check(self, steps: int) -> None:
        """Refuse a schedule whose last event comes after the run's ``steps`` optimizer steps."""
        last = max(self.events)
        if last > steps:
            raise pl.StateDefinitionError(
                f"{self.owner} property 'prune_schedule' has its last event at step {last}, but this run takes only "
                f"{steps} optimizer steps (epochs x ceil(training samples / batch_size)); end the schedule by step "
                f"{steps}.")

    def prune_if_due(self, state: Any, segment: Segment, optimizer: torch.optim.Optimizer, done: int,
                     batch_size: int) -> None:
        """Apply the event at ``done`` steps, if there is one, and log the sparsity it reached (series ``sparsity``).

        Pruning reads and writes the reparametrised form, so it happens with
        masked training paused; from then on the model trains masked.
        """
        target = self.events.get(done)
        if target is None:
            return
        with segment.paused():
            reached = self.apply(state, target, batch_size)
            segment.optimizer = optimizer
        pl.log("sparsity", reached, step=done)

    def apply(self, state: Any, sparsity: float, batch_size: int) -> float:
        """Prune ``state.model`` to ``sparsity``; return the sparsity reached over the pruned weights."""
        prune_state(state, self.technique, batch_size, sparsity=sparsity)
        return masked_fraction(state.model)


def masked_fraction(model: nn.Module) -> float:
    """The fraction of zeros in the masks of ``model``'s pruned weights (0 when none is pruned)."""
    zeros = total = 0
    for module in model.modules():
        for name in pruned_parameters(module) if module._forward_pre_hooks else ():
            mask = module._buffers[name + "_mask"]
            assert mask is not None
            total += mask.numel()
            # 0s and 1s: a sum is the quick count, exact in float32 up to 2**24 entries (float64 beyond)
            zeros += mask.numel() - int(mask.sum(dtype=torch.float64 if mask.numel() > 2**24 else torch.float32))
    return zeros / total if total else 0.0


def dynamic_settings(owner: str, value: Any) -> dict[str, Any] | None:
    """A ``dynamic_sparsity`` property as data: ``{"method": "rigl", **RigL's fields}`` (None stays None).

    Parameters
    ----------
    owner : str
        The recipe, for errors.
    value : None, RigL or dict
        ``prunelab.prune.RigL(...)``, or the dict this returns.

    Raises
    ------
    StateDefinitionError
        If it is neither, or RigL refuses its settings (the message says which and why).
    """
    if value is None:
        return None
    if isinstance(value, dict) and value.get("method") == "rigl":
        fields = {k: v for k, v in value.items() if k != "method"}
    elif isinstance(value, RigL):
        fields = {k: getattr(value, k) for k in ("sparsity", "update_every", "fraction", "end", "distribution")}
    else:
        raise pl.StateDefinitionError(f"{owner} property 'dynamic_sparsity' must be prunelab.prune.RigL(sparsity, "
                                      f"update_every, ...) or None, got {value!r}.")
    try:
        settings = RigL(**fields)
    except (TypeError, PruningError) as err:
        raise pl.StateDefinitionError(f"{owner} property 'dynamic_sparsity': {err}") from None
    return {"method": "rigl", "sparsity": float(settings.sparsity), "update_every": settings.update_every,
            "fraction": float(settings.fraction), "end": settings.end, "distribution": settings.distribution}


class DynamicSparsity:
    """RigL during one training run: the starting topology, and the mask updates at their steps.

    Parameters
    ----------
    settings : dict
        As :func:`dynamic_settings` gives them.
    steps : int
        The run's optimizer steps (``end`` defaults to 75% of them).
    owner : str
        The recipe, for errors.

    Raises
    ------
    StateDefinitionError
        If ``end`` comes after the run's last step, or no update would happen before it.
    """

    def __init__(self, settings: dict[str, Any], steps: int, owner: str):
        self.rigl = RigL(**{k: v for k, v in settings.items() if k != "method"})
        self.end = self.rigl.end if self.rigl.end is not None else max(1, int(0.75 * steps))
        if self.end > steps or self.rigl.update_every >= self.end:
            raise pl.StateDefinitionError(
                f"{owner} property 'dynamic_sparsity': this run takes {steps} optimizer steps, and RigL updates "
                f"every {self.rigl.update_every} until step {self.end}, so "
                f"{'its end comes after the run' if self.end > steps else 'no update would happen'}; choose "
                f"update_every < end <= {steps}.")

    def start(self, state: Any) -> None:
        """Make the dense model sparse at random (the distribution's densities); log the sparsity at step 0."""
        initial_masks(state.model, self.rigl)
        pl.log("sparsity", masked_fraction(state.model), step=0)

    def update_if_due(self, state: Any, segment: Segment, optimizer: torch.optim.Optimizer, done: int) -> bool:
        """At an update step, move connections (after backward; logged as ``moved``); whether it did.

        Such a step applies no optimizer update (RigL's Algorithm 1).
        """
        fraction = self.rigl.moved(done, self.end)
        if fraction == 0:
            return False
        with segment.paused():
            moved = rigl_update(state.model, fraction, optimizer)
        pl.log("moved", moved, step=done)
        return True


class Segment:
    """Masked training (for a pruned model) that a checkpoint or a pruning event can step out of and back into.

    Parameters
    ----------
    model : nn.Module
        The model trained.
    optimizer : Optimizer or None
        Its optimizer while the model is pruned (trained inside :func:`prunelab.prune.masked_training`);
        None while it is not (trained as it is).
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer | None):
        self.model, self.optimizer = model, optimizer
        self.stack = contextlib.ExitStack()

    def __enter__(self) -> Segment:
        if self.optimizer is not None:
            self.stack.enter_context(masked_training(self.model, self.optimizer))
        return self

    def __exit__(self, *exc: object) -> None:
        self.stack.close()

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Step out of masked training for the block (the model in its reparametrised form), then back in."""
        self.stack.close()
        try:
            yield
        finally:
            self.__enter__()
