"""Evaluation functions of pruning studies: per-class figures on val and test, sparsity, class shares."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

import prunelab as pl

from ..prune import sparsity_report
from .devices import resolve_device
from .state import ModelState

__all__ = ["evaluate", "sparsity", "class_shares", "evaluate_split"]


def evaluate_split(model: nn.Module, x: torch.Tensor, y: torch.Tensor, num_classes: int,
                   batch_size: int = 1024) -> dict[str, Any]:
    """Accuracy, loss, per-class accuracy, loss and counts, confusion matrix, per-class entropy, predictions.

    Parameters
    ----------
    model : nn.Module
        Evaluated in ``eval()`` mode, without gradients (left in ``eval()`` mode), on the device of its
        parameters (each batch is moved there; the logits come back to the CPU).
    x : Tensor, shape (n, *input_shape)
        The samples.
    y : Tensor of int64, shape (n,)
        Their labels, in ``0 .. num_classes - 1``.
    num_classes : int
        The number of classes (rows of the confusion matrix).
    batch_size : int, default=1024
        Samples per forward pass.

    Returns
    -------
    dict
        ``accuracy`` (``correct / count``), ``correct`` and ``count`` (ints),
        ``loss``, ``per_class_accuracy`` (``per_class_correct[c] /
        per_class_count[c]``, NaN for a class without samples),
        ``per_class_correct``, ``per_class_count``, ``confusion``,
        ``per_class_entropy``, ``per_class_loss`` and ``predictions`` (int16).

    Notes
    -----
    Accuracies are exact ratios of the integer counts, divided in float64, so
    342 correct of 360 is exactly the float ``0.95`` and a threshold means what
    it says. The predictive entropy of one sample is :math:`-\\sum_k p_k \\log p_k` of its
    softmax; ``per_class_entropy[c]`` averages it over the samples of true class
    ``c``, and ``per_class_loss[c]`` their cross-entropy. ``confusion[i][j]``
    counts samples of class ``i`` predicted as ``j``.
    """
    model.eval()
    where = next(model.parameters(), torch.empty(0)).device
    logits = []
    with torch.no_grad():
        for start in range(0, len(y), batch_size):
            logits.append(model(x[start:start + batch_size].to(where)).cpu())
    out = torch.cat(logits)
    losses = nn.functional.cross_entropy(out, y, reduction="none")
    loss = float(losses.mean())
    predicted = out.argmax(1)
    probabilities = out.softmax(1)
    entropy = -(probabilities * probabilities.clamp_min(1e-12).log()).sum(1)
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64)
    confusion.index_put_((y, predicted), torch.ones_like(y), accumulate=True)
    counts = [int(n) for n in confusion.sum(1)]
    correct = [int(c) for c in confusion.diag()]
    per_class = [c / n if n else float("nan") for c, n in zip(correct, counts)]
    per_entropy = [float(entropy[y == c].mean()) if n else float("nan") for c, n in enumerate(counts)]
    per_loss = [float(losses[y == c].mean()) if n else float("nan") for c, n in enumerate(counts)]
    return {"accuracy": sum(correct) / len(y), "correct": sum(correct), "count": len(y), "loss": loss,
            "per_class_accuracy": per_class, "per_class_correct": correct, "per_class_count": counts,
            "confusion": confusion.tolist(), "per_class_entropy": per_entropy, "per_class_loss": per_loss,
            "predictions": predicted.to(torch.int16)}


@pl.function(version=3)
def evaluate(state: ModelState, *, device: str = "auto") -> dict[str, Any]:
    """Evaluate on val and test: ``val_accuracy``, ``test_accuracy``, losses, and per-class figures.

    Scalars are at the top level (so frames show them as ``evaluate.test_accuracy``);
    the counts behind each accuracy, per-class lists, confusion matrices and
    predicted labels (a tensor blob) are under ``val`` and ``test``
    (:func:`evaluate_split`). Version 3: accuracies are exact ratios of the
    counts (version 2 averaged in float32).

    Parameters
    ----------
    state : ModelState
        The state whose model is evaluated (a private copy).
    device : str, default="auto"
        An option (recorded with the result, not hashed): where the forward passes run, ``"auto"``
        being CUDA when available, else the CPU; ``evaluate(node, device="cpu")`` sets it.

    Raises
    ------
    StateDefinitionError
        If ``device`` names no device, or a CUDA device this machine does not have.
    """
    model = state.model.to(resolve_device("evaluate", device))
    out: dict[str, Any] = {}
    for split in ("val", "test"):
        x, y = getattr(state.data, split)
        figures = evaluate_split(model, x, y, state.data.num_classes)
        out[f"{split}_accuracy"] = figures["accuracy"]
        out[f"{split}_loss"] = figures["loss"]
        out[split] = figures
    return out


@pl.function
def sparsity(state: ModelState) -> dict[str, Any]:
    """Explicit and effective sparsity of the model's Conv and Linear weights, and per tensor."""
    report = sparsity_report(state.model, input_shape=(1, *state.data.input_shape))
    return {"sparsity": report.sparsity, "effective_sparsity": report.effective_sparsity,
            "per_tensor": {row["parameter"]: row["sparsity"] for row in report.rows}}


@pl.function
def class_shares(state: ModelState) -> dict[str, Any]:
    """Each class's share of the training set (the representation analysis reads)."""
    y = state.data.train[1]
    counts = torch.bincount(y, minlength=state.data.num_classes)
    return {"class_shares": [float(c) / len(y) for c in counts], "class_names": list(state.data.class_names)}
