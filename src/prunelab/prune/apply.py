"""``prune_model``: the one entry point."""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

from .errors import PruningError, PruningWarning
from .selection import global_lowest, lowest_k, ordered_keys, units_for_sparsity
from .targets import Target, select_parameters
from .techniques import Context, Technique, get_technique

__all__ = ["prune_model"]


def _check_fraction(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or isinstance(value, numbers.Integral):
        hint = " (an int would be a count: use n_prune=)" if isinstance(value, numbers.Integral) else ""
        raise PruningError(f"{name} must be a float in [0, 1], got {value!r}{hint}.")
    if not 0.0 <= float(value) <= 1.0:
        raise PruningError(f"{name} must be in [0, 1], got {value!r}.")
    return float(value)


def prune_model(model: nn.Module, technique: str, *, amount: float | None = None, n_prune: int | None = None,
                sparsity: float | None = None, parameters: Iterable[tuple[nn.Module, str] | str] | None = None,
                inputs: torch.Tensor | None = None, targets: torch.Tensor | None = None,
                loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
                min_density: float | None = None, generator: torch.Generator | None = None,
                **options: Any) -> nn.Module:
    """Prune ``model`` in place with a registered technique and return it.

    Masks are applied with :func:`torch.nn.utils.prune.custom_from_mask`, so the
    model keeps PyTorch's reparametrisation (``weight_orig * weight_mask``) and
    masks only ever shrink. Nothing changes if an error is raised: every mask is
    computed before any is applied.

    Parameters
    ----------
    model : nn.Module
        Modified in place.
    technique : str
        A name from :func:`available_techniques`.
    amount : float in [0, 1], optional
        Fraction of the still-unpruned units to prune now (per tensor for layer-wise
        techniques, of the whole set for global ones). Compounds over calls.
    n_prune : int, optional
        Number of units to prune now (per tensor, or in total for global techniques).
    sparsity : float in [0, 1], optional
        Target fraction of zero weights, per tensor (layer-wise) or overall (global).
        Exactly one of ``amount``, ``n_prune``, ``sparsity`` is needed (none for ``nm``).
    parameters : iterable, optional
        ``(module, name)`` pairs or dotted paths; default every Conv and Linear weight.
    inputs, targets : Tensor, optional
        A batch and its labels, for data-dependent techniques (snip, grasp, taylor).
    loss_fn : callable, optional
        ``loss_fn(output, targets)``; default cross-entropy.
    min_density : float in [0, 1], optional
        Global techniques only: every tensor keeps at least this fraction of its units.
    generator : torch.Generator, optional
        Randomness of random techniques (default: torch's global generator).
    **options
        Technique options (e.g. ``n``/``m`` for ``nm``, ``temperature`` for ``grasp``).

    Returns
    -------
    nn.Module
        ``model``.

    Raises
    ------
    PruningError
        For an unknown technique, a missing or conflicting amount, values out of
        range, an unreachable target, missing data or parameters.

    Examples
    --------
    >>> import torch
    >>> from prunelab.prune import prune_model, sparsity_report
    >>> model = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    >>> _ = prune_model(model, "global_magnitude", sparsity=0.5)
    >>> round(sparsity_report(model).sparsity, 2)
    0.5
    """
    method = get_technique(technique, **options)
    chosen = [name for name, value in (("amount", amount), ("n_prune", n_prune), ("sparsity", sparsity))
              if value is not None]
    if technique == "nm":
        if chosen:
            raise PruningError(f"nm takes no {chosen[0]}: it keeps n of every m weights (options n=, m=).")
    elif len(chosen) != 1:
        raise PruningError(f"prune_model needs exactly one of amount, n_prune or sparsity; got "
                           f"{', '.join(chosen) if chosen else 'none'}.")
    if amount is not None:
        amount = _check_fraction("amount", amount)
    if sparsity is not None:
        sparsity = _check_fraction("sparsity", sparsity)
    if n_prune is not None and (isinstance(n_prune, bool) or not isinstance(n_prune, numbers.Integral)
                                or n_prune < 0):
        raise PruningError(f"n_prune must be a non-negative int, got {n_prune!r}.")
    if min_density is not None:
        min_density = _check_fraction("min_density", min_density)
        if method.scope != "global":
            raise PruningError(f"min_density is for global techniques; {technique} is layer-wise.")
    selected = select_parameters(model, parameters)
    if method.needs_data and inputs is None:
        raise PruningError(f"{technique} is data-dependent: pass inputs= and targets= (a batch and its labels).")
    context = Context(model, inputs, targets, loss_fn, generator, method.settings)
    if technique == "nm":
        _apply(selected, _nm_removed(selected, int(method.settings["n"]), int(method.settings["m"])), False, 0)
        return model
    rounds = int(method.settings.get("iterations", 1) or 1)
    if rounds > 1:
        final = _final_sparsity(selected, amount, n_prune, sparsity)
        start = _overall_sparsity(selected)
        for r in range(1, rounds + 1):
            density = (1 - start) * ((1 - final) / max(1 - start, 1e-12)) ** (r / rounds)
            removed = _removed(method, selected, context, None, None, 1 - density, min_density, technique)
            _apply(selected, removed, method.structured, method.dim)
        return model
    removed = _removed(method, selected, context, amount, n_prune, sparsity, min_density, technique)
    _apply(selected, removed, method.structured, method.dim)
    return model


def _overall_sparsity(selected: list[Target]) -> float:
    zeros = sum(int((~t.alive).sum()) for t in selected)
    return zeros / sum(t.alive.numel() for t in selected)


def _final_sparsity(selected: list[Target], amount: float | None, n_prune: int | None,
                    sparsity: float | None) -> float:
    if sparsity is not None:
        return sparsity
    total = sum(t.alive.numel() for t in selected)
    alive = sum(int(t.alive.sum()) for t in selected)
    removed = round(amount * alive) if amount is not None else int(n_prune or 0)
    return (total - alive + removed) / total


def _removed(method: Technique, selected: list[Target], context: Context, amount: float | None,
             n_prune: int | None, sparsity: float | None, min_density: float | None, name: str
             ) -> list[torch.Tensor | None]:
    """Decide which units go (nothing is applied here): one boolean tensor per target.

    The score tensors are turned into keys in place, one tensor at a time, so
    the peak extra memory is one integer per weight plus one boolean.
    """
    scores = method.scores(selected, context)
    if len(scores) != len(selected):
        raise PruningError(f"technique {name} gave {len(scores)} score tensors for {len(selected)} parameters.")
    dim = method.dim
    keys: list[torch.Tensor] = []
    eligible: list[torch.Tensor] = []
    unit_weights: list[torch.Tensor] = []
    for index, target in enumerate(selected):
        alive = target.alive
        if method.structured:
            dims = [d for d in range(alive.dim()) if d != dim]
            unit_weights.append(alive.sum(dim=dims))
            alive = unit_weights[-1] != 0
        score = scores[index]
        if score.shape != alive.shape:
            raise PruningError(f"technique {name} gave scores of shape {tuple(score.shape)} for {target.path}, "
                               f"expected {tuple(alive.shape)}.")
        if bool(torch.isnan(score).any()):
            raise PruningError(f"the {name} scores of {target.path} contain NaN; check the inputs (and the loss) "
                               "it was given.")
        shares = score.untyped_storage().data_ptr() == target.parameter.untyped_storage().data_ptr()
        if shares or score.dtype not in (torch.float32, torch.float64) or not score.is_contiguous():
            score = score.detach().to(torch.float64 if score.dtype == torch.float64 else torch.float32).clone()
        keys.append(ordered_keys(score.detach(), alive, negate=method.remove == "highest"))
        scores[index] = keys[-1]  # the score's memory is now the key's
        eligible.append(alive)
    del scores
    if method.scope == "layer":
        removed: list[torch.Tensor | None] = []
        for target, key, ok, index in zip(selected, keys, eligible, range(len(selected))):
            weights = unit_weights[index] if method.structured else None
            k = _layer_count(target, key, ok, weights, amount, n_prune, sparsity)
            removed.append(lowest_k(key, ok, k, target.path))
        return removed
    sizes = [e.numel() for e in eligible]
    alive_total = sum(int(e.sum()) for e in eligible)
    caps = None
    if min_density is not None:
        caps = [max(0, int(e.sum()) - math.ceil(min_density * size)) for e, size in zip(eligible, sizes)]
    if sparsity is not None:
        k = _global_count_for_sparsity(selected, keys, eligible, unit_weights, sparsity, method.structured)
    else:
        k = round(amount * alive_total) if amount is not None else int(n_prune or 0)
    if k > alive_total:
        raise PruningError(f"cannot prune {k} units: only {alive_total} remain unpruned.")
    return list(global_lowest(keys, eligible, k, caps))


def _layer_count(target: Target, key: torch.Tensor, eligible: torch.Tensor, weights: torch.Tensor | None,
                 amount: float | None, n_prune: int | None, sparsity: float | None) -> int:
    alive = int(eligible.sum())
    if amount is not None:
        return round(amount * alive)
    if n_prune is not None:
        if n_prune > alive:
            raise PruningError(f"cannot prune {n_prune} units of {target.path}: only {alive} remain.")
        return n_prune
    assert sparsity is not None
    total = target.alive.numel()
    zeros = total - int(target.alive.sum())
    if weights is None:
        k = round(sparsity * total) - zeros
        if k < 0:
            raise PruningError(f"{target.path} is already sparser ({zeros / total:.4f}) than sparsity={sparsity}; "
                               "masks only shrink: give a higher sparsity.")
        return k
    order = torch.argsort(key, stable=True)[:alive]
    return units_for_sparsity(weights[order], zeros, sparsity * total, target.path)


def _global_count_for_sparsity(selected: list[Target], keys: list[torch.Tensor], eligible: list[torch.Tensor],
                               weights: list[torch.Tensor], sparsity: float, structured: bool) -> int:
    total = sum(t.alive.numel() for t in selected)
    zeros = total - sum(int(t.alive.sum()) for t in selected)
    target_zeros = sparsity * total
    if not structured:
        k = round(target_zeros) - zeros  # a unit is a weight
        if k < 0:
            raise PruningError(f"the selected parameters are already sparser ({zeros / total:.4f}) than "
                               f"sparsity={sparsity}; masks only shrink: give a higher sparsity.")
        return k
    flat_keys = torch.cat([k.reshape(-1) for k in keys])  # channels: few, concatenating is fine
    flat_weights = torch.cat([w.reshape(-1) for w in weights])
    alive = int(torch.cat([e.reshape(-1) for e in eligible]).sum())
    order = torch.argsort(flat_keys, stable=True)[:alive]
    return units_for_sparsity(flat_weights[order], zeros, target_zeros, "the selected parameters")


def _nm_removed(selected: list[Target], n: int, m: int) -> list[torch.Tensor | None]:
    if not (isinstance(n, int) and isinstance(m, int) and 0 < n <= m):
        raise PruningError(f"nm needs integers 0 < n <= m, got n={n!r}, m={m!r}.")
    out: list[torch.Tensor | None] = []
    for target in selected:
        weight, alive = target.weight, target.alive
        if weight.dim() < 2 or weight.shape[1] % m:
            warnings.warn(f"nm: skipping {target.path}: its input dimension "
                          f"{weight.shape[1] if weight.dim() > 1 else 'none'} is not a multiple of m={m}.",
                          PruningWarning, stacklevel=3)
            out.append(None)
            continue
        order = [0, *range(2, weight.dim()), 1]  # input dimension last
        scores = (weight.abs() * alive).permute(order).reshape(-1, m)
        rank = torch.argsort(scores, dim=1, descending=True, stable=True)
        keep = torch.zeros_like(scores, dtype=torch.bool).scatter_(1, rank[:, :n], True)
        keep = keep.reshape(weight.permute(order).shape).permute([order.index(i) for i in range(weight.dim())])
        out.append(alive & ~keep)
    return out


def _apply(selected: list[Target], removed: list[torch.Tensor | None], structured: bool, dim: int) -> None:
    """Apply the removals tensor by tensor, freeing each as it goes (masks only shrink)."""
    for index, target in enumerate(selected):
        gone = removed[index]
        removed[index] = None
        if gone is None:
            continue
        weight = getattr(target.module, target.name)
        mask = target.alive.to(weight.dtype)
        if structured:
            where: list[slice | torch.Tensor] = [slice(None)] * mask.dim()
            where[dim] = gone
            mask[tuple(where)] = 0
        else:
            mask[gone] = 0
        del gone
        torch_prune.custom_from_mask(target.module, target.name, mask)  # type: ignore[no-untyped-call]
        bias = getattr(target.module, "bias", None)
        if structured and target.name == "weight" and isinstance(bias, torch.Tensor) and bias.dim() == 1:
            dims = [d for d in range(mask.dim()) if d != 0]
            channel = (mask.sum(dim=dims) != 0).to(bias.dtype)
            if bool((channel == 0).any()):
                torch_prune.custom_from_mask(target.module, "bias", channel)  # type: ignore[no-untyped-call]
