"""Frames: the experiment's outcomes as pandas tables, one row per state or per (state, class).

``class_frame`` is the table the Prune Responsibly analysis reads. Each outcome
state (lineage ``outcome=True``, set by a study) is joined with its *unpruned
reference*: the state itself when it is unpruned, else the nearest evaluated
ancestor with zero sparsity in the same training run (same ``root_id``).
Reference quantities (per-class accuracy, predictive entropy) come from the
validation split and outcomes from the test split, so that a class that was
lucky on one split does not regress towards the mean in the analysis.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..core.errors import PrunelabError
from ..core.prereg import BLINDED
from ..core.records import Status

if TYPE_CHECKING:
    import pandas

    from ..experiment import Experiment
    from ..core.nodes import Node

__all__ = ["state_frame", "class_frame", "AnalysisError", "CLASS_COLUMNS", "outcome_nodes"]

#: The columns of :func:`class_frame`, in order.
CLASS_COLUMNS = ["state_id", "root_id", "class", "accuracy", "reference_accuracy", "representation", "entropy",
                 "sparsity", "technique", "treatment", "round", "dataset_name", "model_name", "replicate",
                 "reference_id", "count", "reference_test_accuracy", "loss", "reference_loss", "population"]
_UNPRUNED = "none"


class AnalysisError(PrunelabError, ValueError):
    """The nodes given to an analysis lack what it needs (results, references, variation)."""


def _nodes(nodes: Experiment | Iterable[Node]) -> list[Node]:
    from ..experiment import Experiment

    return list(nodes.graph.nodes) if isinstance(nodes, Experiment) else list(nodes)


def outcome_nodes(nodes: Experiment | Iterable[Node]) -> list[Node]:
    """The stored outcome states among ``nodes`` (lineage ``outcome=True``).

    Parameters
    ----------
    nodes : Experiment or iterable of Node
        An experiment (all the nodes of its graph) or the nodes to look among.

    Returns
    -------
    list of Node
        The nodes whose status is ``"done"`` and whose lineage has ``outcome=True``, in the order given.
    """
    return [n for n in _nodes(nodes) if n.stored_status == Status.DONE and n.lineage.get("outcome") is True]


def _number(value: Any) -> float:
    """A figure as a float; NaN when missing or blinded (see :func:`prunelab.analysis.blind`)."""
    return float(value) if isinstance(value, (int, float)) else math.nan


def _sparsity(node: Node, results: dict[str, Any]) -> float:
    """Measured sparsity (the ``sparsity`` function), else 0 for a state no recipe pruned, else NaN."""
    figures = results.get("sparsity")
    if isinstance(figures, dict) and "sparsity" in figures:
        return _number(figures["sparsity"])
    return 0.0 if "technique" not in node.lineage else math.nan


def _reference(node: Node, cache: dict[str, dict[str, Any]]) -> Node | None:
    """The node itself if unpruned, else its nearest evaluated zero-sparsity ancestor in the same run."""
    root = node.lineage.get("root_id")
    current: Node | None = node
    while current is not None and current.lineage.get("root_id") == root:
        results = _results(current, cache)
        if "evaluate" in results and _sparsity(current, results) == 0.0:
            return current
        current = current.parent
    return None


def _results(node: Node, cache: dict[str, dict[str, Any]]) -> dict[str, Any]:
    if node.id not in cache:
        cache[node.id] = node.results if node.stored_status == Status.DONE else {}
    return cache[node.id]


def _shares(node: Node, cache: dict[str, dict[str, Any]]) -> list[float] | None:
    root = node
    while root.parent is not None:
        root = root.parent
    shares = _results(root, cache).get("class_shares")
    return list(shares["class_shares"]) if isinstance(shares, dict) else None


def state_frame(nodes: Experiment | Iterable[Node]) -> pandas.DataFrame:
    """One row per stored outcome state: identity, lineage, overall figures and its unpruned reference.

    Columns: ``state_id``, ``root_id``, ``dataset_name``, ``model_name``,
    ``replicate``, ``technique``, ``treatment``, ``round``, ``sparsity``,
    ``effective_sparsity``, ``val_accuracy``, ``test_accuracy``, ``val_loss``,
    ``test_loss``, ``reference_id`` and ``reference_val_accuracy``,
    ``reference_test_accuracy`` (NaN where the state has no reference),
    ``population`` (as in :func:`class_frame`) and ``tags``.

    Parameters
    ----------
    nodes : Experiment or iterable of Node
        Where to look for outcome states (lineage ``outcome=True``).

    Returns
    -------
    pandas.DataFrame
        One row per outcome state, with the columns listed above (empty, with those columns, when there is none).
    """
    import pandas as pd

    cache: dict[str, dict[str, Any]] = {}
    rows = []
    for node in outcome_nodes(nodes):
        results = _results(node, cache)
        figures = results.get("evaluate")
        reference = _reference(node, cache)
        ref_figures = _results(reference, cache).get("evaluate") if reference is not None else None
        rows.append({**_identity(node, results),
                     "effective_sparsity": _number(_get(results.get("sparsity"), "effective_sparsity")),
                     **{k: _number(_get(figures, k)) for k in
                        ("val_accuracy", "test_accuracy", "val_loss", "test_loss")},
                     "reference_id": reference.id if reference is not None else None,
                     "reference_val_accuracy": _number(_get(ref_figures, "val_accuracy")),
                     "reference_test_accuracy": _number(_get(ref_figures, "test_accuracy")),
                     "tags": ",".join(sorted(node.tags))})
    columns = ["state_id", "root_id", "dataset_name", "model_name", "replicate", "technique", "treatment", "round",
               "sparsity", "effective_sparsity", "val_accuracy", "test_accuracy", "val_loss", "test_loss",
               "reference_id", "reference_val_accuracy", "reference_test_accuracy", "population", "tags"]
    return pd.DataFrame(rows, columns=columns)


def _get(figures: Any, key: str) -> Any:
    return figures.get(key) if isinstance(figures, dict) else None


def _identity(node: Node, results: dict[str, Any]) -> dict[str, Any]:
    lineage, properties = node.lineage, node.properties
    pruned = "technique" in lineage
    population = "; ".join(f"{k}={v!r}" for k, v in sorted(properties.items()) if k != "replicate")
    return {"state_id": node.id, "root_id": lineage.get("root_id"), "population": population,
            "dataset_name": properties.get("dataset_name"), "model_name": properties.get("model_name"),
            "replicate": properties.get("replicate"),
            "technique": lineage.get("technique") if pruned else _UNPRUNED,
            "treatment": (lineage.get("treatment") or _UNPRUNED) if pruned else _UNPRUNED,
            "round": int(lineage.get("round", 0)) if pruned else 0, "sparsity": _sparsity(node, results)}


def _check_not_blinded(node: Node, figures: Any) -> None:
    parts = figures.values() if isinstance(figures, dict) else [figures]
    if any(isinstance(v, str) and v == BLINDED for v in parts):
        raise AnalysisError(
            f"the evaluate result of state {node.id[:12]} is blinded, so the class frame cannot be built yet; "
            "analyse what is not blinded, or record prunelab.analysis.unblind(exp) when the analysis is fixed."
        )


def _at(figures: dict[str, Any], key: str, c: int) -> float:
    values = figures.get(key)
    return float(values[c]) if values is not None else math.nan


def class_frame(nodes: Experiment | Iterable[Node]) -> pandas.DataFrame:
    """One row per (outcome state, class), joined with the unpruned reference and the class's share.

    Columns (:data:`CLASS_COLUMNS`): ``state_id``, ``root_id``, ``class``,
    ``accuracy`` (test, this state), ``reference_accuracy`` (val, the unpruned
    reference), ``representation`` (the class's share of the training set,
    from the root's ``class_shares`` result), ``entropy`` (the reference's mean
    predictive entropy on the class, val), ``sparsity``, ``technique``,
    ``treatment``, ``round`` (unpruned states: ``"none"``, ``"none"``, 0),
    ``dataset_name``, ``model_name``, ``replicate``, ``reference_id``,
    ``count`` (test samples of the class), and for the change metrics, all on
    test: ``reference_test_accuracy``, ``loss`` and ``reference_loss``
    (the class's mean cross-entropy, NaN for results older than ``evaluate`` v2);
    ``population``: the root's properties other than ``replicate`` (e.g. the
    dataset, model and class imbalance), which training runs of one population share.

    Parameters
    ----------
    nodes : Experiment or iterable of Node
        Where to look for outcome states (lineage ``outcome=True``).

    Returns
    -------
    pandas.DataFrame
        One row per (outcome state, class), with the columns :data:`CLASS_COLUMNS` described above.

    Raises
    ------
    AnalysisError
        If an outcome state has no ``evaluate`` result or no unpruned reference;
        the message names the state and what to declare. Also when the
        ``evaluate`` result of an outcome state or of its reference is blinded.
    """
    import pandas as pd

    cache: dict[str, dict[str, Any]] = {}
    rows = []
    for node in outcome_nodes(nodes):
        results = _results(node, cache)
        figures = results.get("evaluate")
        _check_not_blinded(node, figures)
        if not isinstance(figures, dict) or "test" not in figures:
            raise AnalysisError(
                f"outcome state {node.id[:12]} has no evaluate result; declare "
                "prunelab.recipes.evaluate(node) on every outcome state and run the experiment."
            )
        reference = _reference(node, cache)
        if reference is None:
            raise AnalysisError(
                f"outcome state {node.id[:12]} has no unpruned reference: no ancestor in its training run "
                "with zero sparsity has an evaluate result. Evaluate the dense model of each run."
            )
        _check_not_blinded(reference, _results(reference, cache)["evaluate"])
        ref_val = _results(reference, cache)["evaluate"]["val"]
        ref_test = _results(reference, cache)["evaluate"]["test"]
        shares = _shares(node, cache)
        identity = _identity(node, results)
        test = figures["test"]
        for c, accuracy in enumerate(test["per_class_accuracy"]):
            rows.append({**identity, "class": c, "accuracy": float(accuracy),
                         "reference_accuracy": float(ref_val["per_class_accuracy"][c]),
                         "representation": float(shares[c]) if shares is not None else math.nan,
                         "entropy": float(ref_val["per_class_entropy"][c]),
                         "reference_id": reference.id, "count": int(test["per_class_count"][c]),
                         "reference_test_accuracy": float(ref_test["per_class_accuracy"][c]),
                         "loss": _at(test, "per_class_loss", c), "reference_loss": _at(ref_test, "per_class_loss", c)})
    return pd.DataFrame(rows, columns=CLASS_COLUMNS)
