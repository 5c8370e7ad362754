"""Masks as data: sparsity accounting, mask similarity and multiply-add counts."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from .copying import copy_model
from .masks import get_masks
from .targets import current_mask, select_parameters

if TYPE_CHECKING:
    import pandas

__all__ = ["SparsityReport", "sparsity_report", "JaccardResult", "jaccard", "flops"]


@dataclass(frozen=True)
class SparsityReport:
    """Zero weights per tensor and overall; effective figures when an input shape was given.

    Made by :func:`sparsity_report`; the constructor's parameters are the attributes.

    Parameters
    ----------
    rows : list of dict
        Per tensor: ``parameter``, ``size``, ``zeros``, ``sparsity`` and, with an
        input shape, ``effective_zeros``, ``effective_sparsity``, ``bias_size``
        and ``effective_bias_zeros`` (biases of units that cannot reach the output).
    sparsity : float
        Fraction of masked weights over the selected parameters.
    effective_sparsity : float or None, default=None
        Fraction of selected weights that cannot affect the output, masked ones
        included (see Notes of :func:`sparsity_report`); never below ``sparsity``.
        None when no input shape was given.
    """

    rows: list[dict[str, Any]]
    sparsity: float
    effective_sparsity: float | None = None

    def to_frame(self) -> pandas.DataFrame:
        """One row per tensor.

        Returns
        -------
        pandas.DataFrame
            The :attr:`rows` as a table, one column per key.
        """
        import pandas as pd

        return pd.DataFrame(self.rows)


def sparsity_report(model: nn.Module, parameters: Iterable[tuple[nn.Module, str] | str] | None = None,
                    input_shape: Sequence[int] | None = None) -> SparsityReport:
    """Count masked weights per selected tensor and overall (the model is not modified).

    Parameters
    ----------
    model : nn.Module
        The model, pruned or not.
    parameters : iterable of (nn.Module, str) pairs or str, optional
        As for :func:`prune_model`; default every Conv and Linear weight.
    input_shape : sequence of int, optional
        Shape of one input batch (e.g. ``(1, 1, 28, 28)``); enables effective sparsity.

    Returns
    -------
    SparsityReport
        The figures per tensor and overall; ``effective_sparsity`` is None without ``input_shape``.

    Raises
    ------
    PruningError
        If ``parameters`` names something not in the model, a parameter that is not floating point
        or one twice, or no parameter is selected.

    Notes
    -----
    A weight is *effective* when some path from the input to the output runs
    through it: the unit it reads from has a surviving input and the unit it
    feeds has a surviving output. This is computed on a copy whose weights
    are their masks (0/1), whose biases are zero, whose normalisation layers
    are identities, evaluated on an all-ones input: the gradient of the summed
    output with respect to a weight is then positive exactly for effective
    weights, and with respect to a kept bias exactly when its unit reaches the output.
    Max pooling is swapped for average pooling on the copy (a max passes its
    gradient to one of several tied inputs); pooling done with functions inside
    ``forward`` is not swapped.

    References
    ----------
    Vysogorets & Kempe, "Connectivity Matters: Neural Network Pruning Through the Lens of Effective
    Sparsity", JMLR 2023, arXiv:2107.02306.
    """
    targets = select_parameters(model, parameters)
    rows: list[dict[str, Any]] = []
    zeros_total = size_total = 0
    for target in targets:
        mask = target.mask
        zeros = int((mask == 0).sum())
        rows.append({"parameter": target.path, "size": mask.numel(), "zeros": zeros, "sparsity": zeros / mask.numel()})
        zeros_total += zeros
        size_total += mask.numel()
    effective = None
    if input_shape is not None:
        counts = _effective_counts(model, [t.path for t in targets], tuple(input_shape))
        alive = 0
        for row in rows:
            kept, size, bias_kept, bias_size = counts[row["parameter"]]
            row["effective_zeros"] = size - kept
            row["effective_sparsity"] = (size - kept) / size
            row["bias_size"], row["effective_bias_zeros"] = bias_size, bias_size - bias_kept
            alive += kept
        effective = 1 - alive / size_total
    return SparsityReport(rows, zeros_total / size_total, effective)


def _effective_counts(model: nn.Module, paths: list[str],
                      input_shape: tuple[int, ...]) -> dict[str, tuple[int, int, int, int]]:
    probe = copy_model(model).double().eval()
    _average_pooling(probe)
    modules = dict(probe.named_modules())
    leaves: dict[str, torch.Tensor] = {}
    biases: dict[str, torch.Tensor] = {}
    bias_masks: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for module in probe.modules():
            if isinstance(module, nn.modules.batchnorm._NormBase):
                module.running_mean.zero_() if module.running_mean is not None else None
                module.running_var.fill_(1.0) if module.running_var is not None else None
                module.eps = 0.0
                if module.affine:
                    module.weight.fill_(1.0)
                    module.bias.zero_()
        for param in probe.parameters():
            param.requires_grad_(False)
    for path in paths:
        module_path, _, name = path.rpartition(".")
        module = modules[module_path]
        mask = current_mask(module, name).double()
        weight = mask.clone().requires_grad_(True)
        _replace(module, name, weight)
        leaves[path] = weight
        bias = getattr(module, "bias", None)
        if name == "weight" and isinstance(bias, torch.Tensor):
            bias_masks[path] = current_mask(module, "bias")
            bias_leaf = torch.zeros_like(bias_masks[path], dtype=torch.float64).requires_grad_(True)
            _replace(module, "bias", bias_leaf)  # zero: a unit without surviving inputs stays silent
            biases[path] = bias_leaf
    def backward(leaves_wanted: list[torch.Tensor]) -> tuple[torch.Tensor | None, ...]:
        output = probe(torch.ones(input_shape, dtype=torch.float64))
        flat = output if isinstance(output, torch.Tensor) else torch.cat([o.reshape(-1) for o in output])
        return torch.autograd.grad(flat.sum(), leaves_wanted, allow_unused=True)

    weight_grads = dict(zip(leaves, backward(list(leaves.values()))))
    bias_grads: dict[str, torch.Tensor | None] = {}
    if biases:  # second pass with every bias at 1, so that every unit is active and a bias's gradient
        with torch.no_grad():  # is positive exactly when its unit reaches the output
            for leaf in biases.values():
                leaf.fill_(1.0)
        bias_grads = dict(zip(biases, backward(list(biases.values()))))
    out = {}
    for path, leaf in leaves.items():
        g = weight_grads[path]
        kept = int(((leaf.detach() != 0) & (g > 0)).sum()) if g is not None else 0
        bias_kept = bias_size = 0
        if path in biases:
            gb = bias_grads[path]
            bias_size = biases[path].numel()
            bias_kept = int(((bias_masks[path] != 0) & (gb > 0)).sum()) if gb is not None else 0
        out[path] = (kept, leaf.numel(), bias_kept, bias_size)
    return out


_AVERAGE: dict[type, Any] = {nn.MaxPool1d: nn.AvgPool1d, nn.MaxPool2d: nn.AvgPool2d, nn.MaxPool3d: nn.AvgPool3d}
_ADAPTIVE: dict[type, Any] = {nn.AdaptiveMaxPool1d: nn.AdaptiveAvgPool1d, nn.AdaptiveMaxPool2d: nn.AdaptiveAvgPool2d,
             nn.AdaptiveMaxPool3d: nn.AdaptiveAvgPool3d}


def _average_pooling(model: nn.Module) -> None:
    """Swap max pooling for average pooling: on non-negative inputs, a path survives either way,
    but a max sends its gradient to one of several tied inputs only."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            pooling: Any = child
            if type(child) in _AVERAGE:
                swapped: nn.Module = _AVERAGE[type(child)](pooling.kernel_size, pooling.stride, pooling.padding)
            elif type(child) in _ADAPTIVE:
                swapped = _ADAPTIVE[type(child)](pooling.output_size)
            else:
                continue
            setattr(parent, name, swapped)


def _replace(module: nn.Module, name: str, value: torch.Tensor) -> None:
    """Make ``module.<name>`` a plain tensor attribute (dropping pruning hooks for it on this copy)."""
    for key, hook in list(module._forward_pre_hooks.items()):
        if getattr(hook, "_tensor_name", None) == name:
            del module._forward_pre_hooks[key]
    for suffix in ("", "_orig"):
        module._parameters.pop(name + suffix, None)
    module._buffers.pop(name + "_mask", None)
    module.__dict__.pop(name, None)
    setattr(module, name, value)


@dataclass(frozen=True)
class JaccardResult:
    """Similarity of two sets of kept weights.

    Made by :func:`jaccard`; the constructor's parameters are the attributes.

    Parameters
    ----------
    pooled : float
        :math:`|A \\cap B| / |A \\cup B|` over all tensors together.
    per_tensor : dict of str to float, optional
        The same per tensor, keyed by parameter path; default empty.
    chance : float, default=0.0
        The expected pooled value for independent masks of the same densities,
        :math:`d_1 d_2 / (d_1 + d_2 - d_1 d_2)`.
    """

    pooled: float
    per_tensor: dict[str, float] = field(default_factory=dict)
    chance: float = 0.0


def jaccard(first: Mapping[str, torch.Tensor] | nn.Module, second: Mapping[str, torch.Tensor] | nn.Module
            ) -> JaccardResult:
    """Jaccard index of the kept weights of two masks (or two pruned models), with its chance level.

    Parameters
    ----------
    first : mapping of str to Tensor, or nn.Module
        Parameter path to mask (non-zero entries are kept), or a model whose masks (:func:`get_masks`) are used.
    second : mapping of str to Tensor, or nn.Module
        The same, covering the same parameters.

    Returns
    -------
    JaccardResult
        The pooled and per-tensor index (1 where neither keeps a weight) and the chance level.

    Raises
    ------
    PruningError
        If the two cover different parameters.

    Examples
    --------
    >>> import torch
    >>> a = {"w": torch.tensor([1., 1., 0., 0.])}
    >>> round(jaccard(a, {"w": torch.tensor([1., 0., 1., 0.])}).pooled, 3)
    0.333
    """
    a = get_masks(first) if isinstance(first, nn.Module) else dict(first)
    b = get_masks(second) if isinstance(second, nn.Module) else dict(second)
    if a.keys() != b.keys():
        from .errors import PruningError

        raise PruningError(f"the masks cover different parameters: {sorted(a.keys() ^ b.keys())}.")
    inter = union = kept_a = kept_b = size = 0
    per_tensor = {}
    for name in a:
        x, y = a[name] != 0, b[name] != 0
        i, u = int((x & y).sum()), int((x | y).sum())
        per_tensor[name] = i / u if u else 1.0
        inter, union = inter + i, union + u
        kept_a, kept_b, size = kept_a + int(x.sum()), kept_b + int(y.sum()), size + x.numel()
    d1, d2 = kept_a / size, kept_b / size
    denominator = d1 + d2 - d1 * d2
    return JaccardResult(inter / union if union else 1.0, per_tensor, d1 * d2 / denominator if denominator else 1.0)


def flops(model: nn.Module, input_shape: Sequence[int]) -> dict[str, int]:
    """Count multiply-adds of Conv and Linear layers for one input, dense and with masks.

    Parameters
    ----------
    model : nn.Module
        Not modified (a copy runs the forward pass).
    input_shape : sequence of int
        Including the batch dimension; counts are per sample.

    Returns
    -------
    dict
        ``{"dense": ..., "effective": ...}``: every weight, and only the kept ones.
    """
    probe = copy_model(model).eval()
    totals = {"dense": 0, "effective": 0}
    batch = int(input_shape[0])

    def count(module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
        mask = current_mask(module, "weight")
        if isinstance(module, nn.Linear):
            positions = output.numel() // (batch * module.out_features)
            totals["dense"] += positions * module.weight.numel()
            totals["effective"] += positions * int((mask != 0).sum())
        else:
            positions = output[0, 0].numel()
            totals["dense"] += positions * mask.numel()
            totals["effective"] += positions * int((mask != 0).sum())

    handles = [m.register_forward_hook(count) for m in probe.modules()
               if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d))]
    try:
        with torch.no_grad():
            probe(torch.zeros(tuple(input_shape)))
    finally:
        for handle in handles:
            handle.remove()
    return totals
