"""Population statistics: per-class tests with multiplicity control, paired tests, P(A > B), sample sizes.

Pruning studies compare *populations* of trained models (seeds): a pruned
population against the unpruned one, or two techniques against each other.
These functions say which rows form each population and how they pair; the
arithmetic is SciPy's and statsmodels'.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .frames import AnalysisError

if TYPE_CHECKING:
    import pandas

__all__ = ["welch_per_class", "paired_test", "prob_better", "noether_sample_size", "tost", "mcnemar",
           "pruning_identified_exemplars"]

_CORRECTIONS = {"bh": "fdr_bh", "holm": "holm"}


def welch_per_class(frame: pandas.DataFrame, correction: str = "bh", alpha: float = 0.05) -> pandas.DataFrame:
    """Welch's t-test per class: pruned population against the unpruned one, per comparison.

    A *comparison* is one (population, technique, treatment, round) of the class
    frame (a population: the training runs that share every root property but
    the replicate, e.g. one dataset, model and class balance). Its pruned population for class :math:`c` is the test accuracy
    on :math:`c` of its states (one per training run); its unpruned population
    is the test accuracy on :math:`c` of those states' unpruned references (each
    reference counted once). The p-values of the classes of one comparison form
    one family, corrected with Benjamini–Hochberg (``"bh"``, default) or Holm.

    Returns one row per (comparison, class) with both means, their difference,
    ``t``, ``p_value``, ``p_adjusted``, ``reject`` and both sizes.

    Parameters
    ----------
    frame : pandas.DataFrame
        A class frame (:func:`~prunelab.analysis.class_frame`): it needs ``population``,
        ``technique``, ``treatment``, ``round``, ``class``, ``accuracy``, ``reference_id`` and
        ``reference_test_accuracy``.
    correction : {"bh", "holm"}, default="bh"
        The multiplicity correction within each comparison: Benjamini–Hochberg or Holm.
    alpha : float, default=0.05
        The level of ``reject``: false discovery rate (``"bh"``) or family-wise error rate (``"holm"``).

    Returns
    -------
    pandas.DataFrame
        Columns ``population``, ``technique``, ``treatment``, ``round``, ``class``,
        ``mean_pruned``, ``mean_unpruned``, ``difference`` (pruned − unpruned), ``t``,
        ``p_value``, ``p_adjusted``, ``reject``, ``n_pruned`` and ``n_unpruned``; ``t`` and the
        p-values are NaN where a population has fewer than two values.

    Raises
    ------
    AnalysisError
        If ``correction`` is not ``"bh"`` or ``"holm"``.
    """
    import pandas as pd
    from scipy import stats
    from statsmodels.stats.multitest import multipletests

    if correction not in _CORRECTIONS:
        raise AnalysisError(f"correction {correction!r} is not one of {sorted(_CORRECTIONS)}.")
    keys = ["population", "technique", "treatment", "round"]
    pruned = frame[frame["technique"] != "none"]
    rows: list[dict[str, Any]] = []
    for key, group in pruned.groupby(keys, sort=True):
        family = []
        for c, cls_rows in group.groupby("class", sort=True):
            a = cls_rows["accuracy"].to_numpy(float)
            b = cls_rows.drop_duplicates("reference_id")["reference_test_accuracy"].to_numpy(float)
            if len(a) < 2 or len(b) < 2:
                t, p = math.nan, math.nan
            else:
                test = stats.ttest_ind(a, b, equal_var=False)
                t, p = float(test.statistic), float(test.pvalue)
            family.append({**dict(zip(keys, key)), "class": c, "mean_pruned": float(a.mean()),
                           "mean_unpruned": float(b.mean()) if len(b) else math.nan,
                           "difference": float(a.mean() - b.mean()) if len(b) else math.nan,
                           "t": t, "p_value": p, "n_pruned": len(a), "n_unpruned": len(b)})
        ps = np.array([r["p_value"] for r in family])
        finite = ~np.isnan(ps)
        adjusted = np.full(len(ps), math.nan)
        reject = np.zeros(len(ps), dtype=bool)
        if finite.any():
            reject[finite], adjusted[finite], _, _ = multipletests(ps[finite], alpha=alpha,
                                                                  method=_CORRECTIONS[correction])
        for row, p_adj, rej in zip(family, adjusted, reject):
            rows.append({**row, "p_adjusted": float(p_adj), "reject": bool(rej)})
    return pd.DataFrame(rows, columns=[*keys, "class", "mean_pruned", "mean_unpruned", "difference", "t",
                                       "p_value", "p_adjusted", "reject", "n_pruned", "n_unpruned"])


def paired_test(a: Sequence[float], b: Sequence[float], method: str = "t", *, n_resamples: int = 9999,
                seed: int = 0) -> dict[str, float]:
    """Test paired samples (e.g. two techniques on the same seeds): ``"t"``, ``"wilcoxon"`` or ``"permutation"``.

    The permutation test flips the signs of the paired differences (exactly when
    :math:`2^n \\le` ``n_resamples``) and uses their mean as the statistic.
    Returns ``statistic``, ``p_value`` (two-sided) and ``mean_difference``.

    Parameters
    ----------
    a, b : sequence of float
        The two samples, paired by position (same length, at least 2).
    method : {"t", "wilcoxon", "permutation"}, default="t"
        The paired t-test, the Wilcoxon signed-rank test or the sign-flip permutation test.
    n_resamples : int, default=9999
        Permutation test only: the number of random sign flips.
    seed : int, default=0
        Permutation test only: the seed of its random generator.

    Returns
    -------
    dict of str to float
        ``statistic``, ``p_value`` (two-sided) and ``mean_difference`` (mean of A − B).

    Raises
    ------
    AnalysisError
        If the samples are not 1-d, differ in length or have fewer than two values, or
        ``method`` is not one of the three.
    """
    from scipy import stats

    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape or x.ndim != 1 or len(x) < 2:
        raise AnalysisError(f"paired_test needs two 1-d samples of one length >= 2, got {x.shape} and {y.shape}.")
    if method == "t":
        result = stats.ttest_rel(x, y)
    elif method == "wilcoxon":
        result = stats.wilcoxon(x, y)
    elif method == "permutation":
        result = stats.permutation_test((x - y,), np.mean, permutation_type="samples", n_resamples=n_resamples,
                                        alternative="two-sided", rng=np.random.default_rng(seed))
    else:
        raise AnalysisError(f"method {method!r} is not one of 't', 'wilcoxon', 'permutation'.")
    return {"statistic": float(result.statistic), "p_value": float(result.pvalue),
            "mean_difference": float((x - y).mean())}


def prob_better(a: Sequence[float], b: Sequence[float], *, gamma: float = 0.75, confidence: float = 0.95,
                n_boot: int = 2000, seed: int = 0) -> dict[str, Any]:
    """P(A > B), its percentile-bootstrap interval, and Bouthillier et al.'s decision.

    Parameters
    ----------
    a, b : sequence of float
        The two samples (e.g. test accuracies of two populations of runs), at least two values each.
    gamma : float, default=0.75
        The estimate above which a significant difference counts as meaningful.
    confidence : float, default=0.95
        The coverage of the bootstrap interval.
    n_boot : int, default=2000
        The number of bootstrap resamples.
    seed : int, default=0
        The seed of the bootstrap's random generator.

    Returns
    -------
    dict
        ``estimate``, ``ci_low``, ``ci_high`` (floats), ``significant``, ``meaningful`` (bools)
        and ``conclusion`` (the decision in words).

    Raises
    ------
    AnalysisError
        If a sample has fewer than two values.

    Notes
    -----
    :math:`P(A > B) = \\frac{1}{nm}\\sum_{i,j} [a_i > b_j] + \\tfrac12 [a_i = b_j]`.
    The interval resamples both samples independently. Decision rule: A is
    *significantly* better when the interval's lower bound exceeds 0.5, and
    *meaningfully* better when the estimate also exceeds ``gamma`` (0.75).

    References
    ----------
    Bouthillier et al., "Accounting for Variance in Machine Learning Benchmarks", MLSys 2021, arXiv:2103.03098.
    """
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(x) < 2 or len(y) < 2:
        raise AnalysisError("prob_better needs at least two values in each sample.")
    rng = np.random.default_rng(seed)
    estimate = _p_greater(x, y)
    boots = np.array([_p_greater(rng.choice(x, len(x)), rng.choice(y, len(y))) for _ in range(n_boot)])
    tail = (1 - confidence) / 2
    low, high = np.quantile(boots, [tail, 1 - tail])
    significant = bool(low > 0.5)
    meaningful = significant and estimate > gamma
    conclusion = ("A is meaningfully better" if meaningful else "A is significantly but not meaningfully better"
                  if significant else "no significant difference in favour of A")
    return {"estimate": estimate, "ci_low": float(low), "ci_high": float(high), "significant": significant,
            "meaningful": meaningful, "conclusion": conclusion}


def _p_greater(x: np.ndarray, y: np.ndarray) -> float:
    diff = x[:, None] - y[None, :]
    return float(((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size)


def noether_sample_size(alpha: float = 0.05, beta: float = 0.05, gamma: float = 0.75) -> int:
    """Runs per population to detect P(A > B) = ``gamma`` with a one-sided test at level ``alpha``, power 1 − ``beta``.

    Parameters
    ----------
    alpha : float, default=0.05
        The level of the one-sided test, in (0, 1).
    beta : float, default=0.05
        One minus the power wanted, in (0, 1).
    gamma : float, default=0.75
        The P(A > B) to detect, in (0.5, 1).

    Returns
    -------
    int
        The number of training runs needed in each population.

    Raises
    ------
    AnalysisError
        If a value is outside its range.

    Notes
    -----
    Noether's formula for the Mann–Whitney test:
    :math:`n = \\lceil (z_{1-\\alpha} + z_{1-\\beta})^2 / (6 (\\gamma - \\tfrac12)^2) \\rceil`.

    References
    ----------
    Noether, "Sample Size Determination for Some Common Nonparametric Tests", JASA 1987.

    Examples
    --------
    >>> noether_sample_size(0.05, 0.05, 0.75)
    29
    """
    from scipy.stats import norm

    if not (0 < alpha < 1 and 0 < beta < 1) or not 0.5 < gamma < 1:
        raise AnalysisError("noether_sample_size needs 0 < alpha, beta < 1 and 0.5 < gamma < 1.")
    z = float(norm.ppf(1 - alpha) + norm.ppf(1 - beta))
    return math.ceil(z * z / (6 * (gamma - 0.5) ** 2))


def tost(a: Sequence[float], b: Sequence[float], bound: float, *, paired: bool = False) -> dict[str, Any]:
    """Two one-sided tests: is the mean difference A − B within ±``bound`` (equivalence)?

    Returns ``p_value`` (the larger of the two one-sided p-values),
    ``equivalent`` (at 5%) and ``mean_difference``.

    Parameters
    ----------
    a, b : sequence of float
        The two samples; of one length, paired by position, when ``paired``.
    bound : float
        The equivalence margin, positive, in the samples' units (e.g. 0.01 of accuracy).
    paired : bool, default=False
        Use paired t-tests instead of Welch's (unequal variances).

    Returns
    -------
    dict
        ``p_value`` (float), ``equivalent`` (bool) and ``mean_difference`` (mean of A − mean of B).

    Raises
    ------
    AnalysisError
        If ``bound`` is not positive.
    """
    from statsmodels.stats.weightstats import ttost_ind, ttost_paired

    if bound <= 0:
        raise AnalysisError(f"tost needs a positive equivalence bound, got {bound!r}.")
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if paired:
        p, _, _ = ttost_paired(x, y, -bound, bound)
    else:
        p, _, _ = ttost_ind(x, y, -bound, bound, usevar="unequal")
    return {"p_value": float(p), "equivalent": bool(p < 0.05), "mean_difference": float(x.mean() - y.mean())}


def mcnemar(predictions_a: Any, predictions_b: Any, labels: Any) -> dict[str, Any]:
    """McNemar's test: do two models err on different test samples more than chance allows?

    Uses the exact binomial test when fewer than 25 samples are discordant.
    Returns ``statistic``, ``p_value``, and the discordant counts ``only_a``
    (A right, B wrong) and ``only_b``.

    Parameters
    ----------
    predictions_a, predictions_b : array_like of int
        The labels models A and B predicted for each test sample (flattened).
    labels : array_like of int
        The true labels, in the same order (flattened).

    Returns
    -------
    dict
        ``statistic`` and ``p_value`` (floats), ``only_a`` and ``only_b`` (ints).

    Raises
    ------
    AnalysisError
        If the three have different lengths.
    """
    from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar

    pa, pb, y = (np.asarray(v).reshape(-1) for v in (predictions_a, predictions_b, labels))
    if not (len(pa) == len(pb) == len(y)):
        raise AnalysisError(f"mcnemar needs predictions and labels of one length, got {len(pa)}, {len(pb)}, {len(y)}.")
    right_a, right_b = pa == y, pb == y
    table = np.array([[np.sum(right_a & right_b), np.sum(right_a & ~right_b)],
                      [np.sum(~right_a & right_b), np.sum(~right_a & ~right_b)]])
    discordant = int(table[0, 1] + table[1, 0])
    result = sm_mcnemar(table, exact=discordant < 25)
    return {"statistic": float(result.statistic), "p_value": float(result.pvalue), "only_a": int(table[0, 1]),
            "only_b": int(table[1, 0])}


def pruning_identified_exemplars(pruned: Sequence[Any], unpruned: Sequence[Any]) -> np.ndarray:
    """Indices of the test samples whose modal predicted label differs between two populations.

    Each population is a list of predicted-label vectors (one per model), or of
    evaluated nodes, whose stored test predictions
    (``node.results["evaluate"]["test"]["predictions"]``) are used; a sample is
    a pruning-identified exemplar (PIE) when the most frequent label among the
    pruned models differs from the most frequent among the unpruned ones (ties
    go to the smallest label).

    Parameters
    ----------
    pruned : sequence of array_like or Node
        The pruned population: one predicted-label vector or evaluated node per model.
    unpruned : sequence of array_like or Node
        The unpruned population, the same way.

    Returns
    -------
    numpy.ndarray of int
        The indices of the PIEs, in increasing order.

    Raises
    ------
    AnalysisError
        If a population is empty, the two predicted different numbers of samples, or a node has
        no (unblinded) ``evaluate`` result with test predictions.

    References
    ----------
    Hooker et al., "What Do Compressed Deep Neural Networks Forget?", arXiv:1911.05248.
    """
    if not pruned or not unpruned:
        raise AnalysisError("pruning_identified_exemplars needs at least one model in each population.")
    a, b = (np.stack([_predictions(p) for p in population]) for population in (pruned, unpruned))
    if a.shape[1] != b.shape[1]:
        raise AnalysisError(f"the populations predicted different numbers of samples ({a.shape[1]}, {b.shape[1]}).")
    return np.flatnonzero(_mode(a) != _mode(b))


def _predictions(item: Any) -> np.ndarray:
    from ..core.nodes import Node

    if isinstance(item, Node):
        figures = item.results.get("evaluate")
        if not isinstance(figures, dict) or not isinstance(figures.get("test"), dict):
            raise AnalysisError(f"state {item.id[:12]} has no (unblinded) evaluate result with test predictions.")
        item = figures["test"]["predictions"]
    return np.asarray(item).reshape(-1)


def _mode(predictions: np.ndarray) -> np.ndarray:
    labels = int(predictions.max()) + 1
    counts = np.zeros((labels, predictions.shape[1]), dtype=np.int64)
    for row in predictions:
        counts[row, np.arange(predictions.shape[1])] += 1
    modes: np.ndarray = counts.argmax(0)
    return modes
