"""Per-class change, disparity between classes, Pareto fronts and mask similarity.

All take the frames of :mod:`prunelab.analysis.frames` (test-split figures of
each outcome state and of its unpruned reference).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from .frames import AnalysisError

if TYPE_CHECKING:
    import pandas

__all__ = ["class_change", "disparity", "gini", "pareto_front", "mask_similarity"]


def class_change(frame: pandas.DataFrame) -> pandas.DataFrame:
    """Add ``change`` and ``normalised_change`` to a class frame (a copy).

    Parameters
    ----------
    frame : pandas.DataFrame
        A class frame (:func:`~prunelab.analysis.class_frame`); it needs ``state_id``,
        ``accuracy``, ``reference_test_accuracy`` and ``count``.

    Returns
    -------
    pandas.DataFrame
        A copy of ``frame`` with the columns ``change`` and ``normalised_change`` added.

    Raises
    ------
    AnalysisError
        If a column it needs is missing from ``frame``.

    Notes
    -----
    For class :math:`c` of a state with test accuracy :math:`A` whose reference
    has :math:`R` (per class :math:`a_c`, :math:`r_c`):
    ``change`` :math:`= a_c - r_c`, and ``normalised_change``
    :math:`= a_c / r_c - A / R`, the class's relative change beyond the model's
    (positive: the class fared better than the model overall; Hooker et al.'s
    normalised recall difference). It is NaN where :math:`r_c = 0`.

    References
    ----------
    Hooker et al., "What Do Compressed Deep Neural Networks Forget?", arXiv:1911.05248.
    """
    _require(frame, ["state_id", "accuracy", "reference_test_accuracy", "count"], "class_change")
    out = frame.copy()
    out["change"] = out["accuracy"] - out["reference_test_accuracy"]
    weights = out["count"].astype(float)
    overall = (out["accuracy"] * weights).groupby(out["state_id"]).transform("sum") / weights.groupby(
        out["state_id"]).transform("sum")
    reference = (out["reference_test_accuracy"] * weights).groupby(out["state_id"]).transform("sum") / \
        weights.groupby(out["state_id"]).transform("sum")
    ratio = out["accuracy"] / out["reference_test_accuracy"].where(out["reference_test_accuracy"] != 0)
    out["normalised_change"] = ratio - overall / reference
    return out


def gini(values: Any) -> float:
    """The Gini coefficient of non-negative values: 0 when all are equal, towards 1 when one holds everything.

    Parameters
    ----------
    values : array_like of float
        The values (e.g. per-class accuracies); NaN entries are left out.

    Returns
    -------
    float
        The coefficient, in [0, 1); NaN when no value remains or their mean is 0.

    Raises
    ------
    AnalysisError
        If a value is negative.

    Notes
    -----
    :math:`G = \\sum_i \\sum_j |x_i - x_j| / (2 n^2 \\bar{x})`; NaN for an empty
    input or a zero mean.
    """
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if x.size == 0 or x.mean() == 0:
        return float("nan")
    if (x < 0).any():
        raise AnalysisError("gini needs non-negative values (e.g. accuracies or drops clipped at 0).")
    return float(np.abs(x[:, None] - x[None, :]).sum() / (2 * x.size ** 2 * x.mean()))


def disparity(frame: pandas.DataFrame) -> pandas.DataFrame:
    """Per outcome state, how unevenly pruning hit the classes.

    Columns: ``state_id``, ``worst_drop`` (largest :math:`r_c - a_c`),
    ``worst_class``, ``range`` and ``std`` of the per-class change,
    ``gini`` (of the per-class accuracies), and ``excess_loss_gap``: with
    per-class excess loss :math:`e_c = \\ell_c - \\ell^{ref}_c` (test
    cross-entropy), :math:`\\max_c e_c - \\min_c e_c`.

    Parameters
    ----------
    frame : pandas.DataFrame
        A class frame (:func:`~prunelab.analysis.class_frame`), with the columns
        :func:`class_change` needs and ``class``, ``loss`` and ``reference_loss``.

    Returns
    -------
    pandas.DataFrame
        One row per outcome state, with the columns listed above.

    Raises
    ------
    AnalysisError
        If a column :func:`class_change` needs is missing from ``frame``.

    References
    ----------
    Tran et al., "Pruning has a disparate impact on model accuracy", NeurIPS 2022, arXiv:2205.13574.
    """
    import pandas as pd

    changed = class_change(frame)
    rows = []
    for state_id, group in changed.groupby("state_id", sort=False):
        drops = -group["change"]
        excess = group["loss"] - group["reference_loss"]
        rows.append({"state_id": state_id, "worst_drop": float(drops.max()),
                     "worst_class": int(group["class"].iloc[int(np.argmax(drops.to_numpy()))]),
                     "range": float(group["change"].max() - group["change"].min()),
                     "std": float(group["change"].std(ddof=0)), "gini": gini(group["accuracy"]),
                     "excess_loss_gap": float(excess.max() - excess.min())})
    return pd.DataFrame(rows, columns=["state_id", "worst_drop", "worst_class", "range", "std", "gini",
                                       "excess_loss_gap"])


def pareto_front(frame: pandas.DataFrame, objectives: Mapping[str, str]) -> pandas.DataFrame:
    """The rows no other row dominates, e.g. ``{"test_accuracy": "max", "sparsity": "max", "worst_drop": "min"}``.

    A row dominates another when it is at least as good on every objective and
    better on one. Rows with a NaN objective are left out.

    Parameters
    ----------
    frame : pandas.DataFrame
        Any frame with the objective columns, e.g. a state frame merged with
        :func:`disparity` on ``state_id``.
    objectives : mapping of str to {"max", "min"}
        Each column to use, and whether larger (``"max"``) or smaller (``"min"``) is better.

    Returns
    -------
    pandas.DataFrame
        The rows of ``frame`` on the front, with all their columns and their index.

    Raises
    ------
    AnalysisError
        If ``objectives`` is empty, a sense is not ``"max"`` or ``"min"``, or an
        objective column is missing from ``frame``.
    """
    if not objectives:
        raise AnalysisError("pareto_front needs at least one objective, e.g. {'test_accuracy': 'max'}.")
    for column, sense in objectives.items():
        if sense not in ("max", "min"):
            raise AnalysisError(f"objective {column!r}: sense {sense!r} is not 'max' or 'min'.")
    _require(frame, list(objectives), "pareto_front")
    data = frame.dropna(subset=list(objectives))
    values = np.column_stack([data[c].to_numpy(float) * (1 if s == "max" else -1) for c, s in objectives.items()])
    keep = []
    for i, row in enumerate(values):
        dominated = np.all(values >= row, axis=1) & np.any(values > row, axis=1)
        keep.append(not dominated.any())
    return data[np.array(keep, dtype=bool)]


def mask_similarity(masks: Mapping[str, Any]) -> pandas.DataFrame:
    """Pairwise Jaccard index of the kept weights of several masks (or pruned models), against chance.

    One row per pair: ``a``, ``b``, ``jaccard`` (pooled over tensors),
    ``chance`` (the expected value for independent masks of the same
    densities, see :func:`prunelab.prune.jaccard`) and ``lift`` =
    jaccard / chance (1: no more overlap than chance).

    Parameters
    ----------
    masks : mapping of label to masks or nn.Module
        E.g. ``{technique: get_masks(state.model)}`` for states of one sparsity.

    Returns
    -------
    pandas.DataFrame
        One row per pair of labels, with the columns ``a``, ``b``, ``jaccard``, ``chance`` and ``lift``.

    Raises
    ------
    PruningError
        If two of the masks cover different parameters.
    """
    import itertools

    import pandas as pd

    from ..prune import jaccard

    rows = []
    for (name_a, a), (name_b, b) in itertools.combinations(masks.items(), 2):
        result = jaccard(a, b)
        rows.append({"a": name_a, "b": name_b, "jaccard": result.pooled, "chance": result.chance,
                     "lift": result.pooled / result.chance if result.chance else float("nan")})
    return pd.DataFrame(rows, columns=["a", "b", "jaccard", "chance", "lift"])


def _require(frame: pandas.DataFrame, columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise AnalysisError(f"{what} needs the columns {missing}; pass a frame from class_frame/state_frame.")
