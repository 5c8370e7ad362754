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

from ..core.bulk import load_records, result_fields
from ..core.errors import PrunelabError
from ..core.heap import paused
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
    candidates = [n for n in _nodes(nodes) if n.stored_status == Status.DONE]
    if candidates:
        load_records(candidates[0].experiment.graph, candidates)
    return [n for n in candidates if n.lineage.get("outcome") is True]


def _number(value: Any) -> float:
    """A figure as a float; NaN when missing or blinded (see :func:`prunelab.analysis.blind`)."""
    return float(value) if isinstance(value, (int, float)) else math.nan


_EVALUATE_CLASSES = ("test.per_class_accuracy", "test.per_class_count", "test.per_class_loss",
                     "val.per_class_accuracy", "val.per_class_entropy")
_EVALUATE_STATES = ("val_accuracy", "test_accuracy", "val_loss", "test_loss")


class _Results:
    """The result fields a frame reads, for its outcome states and their ancestors, each read in one query.

    ``evaluate`` holds the fields asked for; a state with an ``evaluate``
    result is in it even when the result holds none of them (it can then be
    a reference, see :meth:`reference`).
    """

    def __init__(self, outcomes: list[Node], evaluate: tuple[str, ...]):
        self._populations: dict[Any, tuple[dict[str, Any], str]] = {}  # root id -> properties and label
        self._references: dict[str, Node | None] = {}  # node id -> its reference (see reference())
        scope: dict[str, Node] = {}
        for node in outcomes:
            current: Node | None = node
            while current is not None and current.id not in scope:
                scope[current.id] = current
                current = current.parent
        nodes = list(scope.values())
        if nodes:
            graph = nodes[0].experiment.graph
            load_records(graph, nodes)
            self.evaluate = result_fields(graph, nodes, "evaluate", evaluate)
            self.sparsity = result_fields(graph, nodes, "sparsity", ("sparsity", "effective_sparsity"))
            self.shares = result_fields(graph, [n for n in nodes if n.parent_id is None], "class_shares",
                                        ("class_shares",))
        else:
            self.evaluate, self.sparsity, self.shares = {}, {}, {}

    def sparsity_of(self, node: Node) -> float:
        """Measured sparsity (the ``sparsity`` function), else 0 for a state no recipe pruned, else NaN."""
        figures = self.sparsity.get(node.id, {})
        if "sparsity" in figures:
            return _number(figures["sparsity"])
        return 0.0 if "technique" not in node.record.get("lineage", {}) else math.nan

    def reference(self, node: Node) -> Node | None:
        """The node itself if unpruned, else its nearest evaluated zero-sparsity ancestor in the same run.

        Found once per node: the nodes passed on the way up share the answer.
        """
        root = node.record.get("root_id")
        passed: list[str] = []
        current: Node | None = node
        found = None
        while current is not None and current.record.get("root_id") == root:
            if current.id in self._references:
                found = self._references[current.id]
                break
            passed.append(current.id)
            if current.id in self.evaluate and self.sparsity_of(current) == 0.0:
                found = current
                break
            current = current.parent
        self._references.update(dict.fromkeys(passed, found))
        return found

    def population_of(self, node: Node) -> tuple[dict[str, Any], str]:
        """The node's properties (its root's: decoded once per root) and its population's label."""
        root = node.record.get("root_id")
        found = self._populations.get(root)
        if found is None:
            properties = node.properties
            found = properties, "; ".join(f"{k}={v!r}" for k, v in sorted(properties.items()) if k != "replicate")
            if root is not None:
                self._populations[root] = found
        return found

    def shares_of(self, node: Node) -> list[float] | None:
        """The class shares of the node's root (its ``class_shares`` result), if it has them."""
        root = node.record.get("root_id")
        shares = self.shares.get(root, {}).get("class_shares") if isinstance(root, str) else None
        return list(shares) if isinstance(shares, list) else None


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

    outcomes = outcome_nodes(nodes)
    results = _Results(outcomes, _EVALUATE_STATES)
    rows = []
    for node in outcomes:
        figures = results.evaluate.get(node.id, {})
        reference = results.reference(node)
        ref_figures = results.evaluate.get(reference.id, {}) if reference is not None else {}
        rows.append({**_identity(node, results),
                     "effective_sparsity": _number(results.sparsity.get(node.id, {}).get("effective_sparsity")),
                     **{k: _number(figures.get(k)) for k in _EVALUATE_STATES},
                     "reference_id": reference.id if reference is not None else None,
                     "reference_val_accuracy": _number(ref_figures.get("val_accuracy")),
                     "reference_test_accuracy": _number(ref_figures.get("test_accuracy")),
                     "tags": ",".join(sorted(node.tags))})
    columns = ["state_id", "root_id", "dataset_name", "model_name", "replicate", "technique", "treatment", "round",
               "sparsity", "effective_sparsity", "val_accuracy", "test_accuracy", "val_loss", "test_loss",
               "reference_id", "reference_val_accuracy", "reference_test_accuracy", "population", "tags"]
    return pd.DataFrame(rows, columns=columns)


def _identity(node: Node, results: _Results) -> dict[str, Any]:
    lineage = node.lineage
    properties, population = results.population_of(node)
    pruned = "technique" in lineage
    return {"state_id": node.id, "root_id": lineage.get("root_id"), "population": population,
            "dataset_name": properties.get("dataset_name"), "model_name": properties.get("model_name"),
            "replicate": properties.get("replicate"),
            "technique": lineage.get("technique") if pruned else _UNPRUNED,
            "treatment": (lineage.get("treatment") or _UNPRUNED) if pruned else _UNPRUNED,
            "round": int(lineage.get("round", 0)) if pruned else 0, "sparsity": results.sparsity_of(node)}


def _check_not_blinded(node: Node, figures: dict[str, Any]) -> None:
    if any(isinstance(v, str) and v == BLINDED for v in figures.values()):
        raise AnalysisError(
            f"the evaluate result of state {node.id[:12]} is blinded, so the class frame cannot be built yet; "
            "analyse what is not blinded, or record prunelab.analysis.unblind(exp) when the analysis is fixed."
        )


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
    with paused():  # a million rows' worth of lists and dicts made, none of them in a cycle
        return _class_frame(outcome_nodes(nodes))


def _class_frame(outcomes: list[Node]) -> pandas.DataFrame:
    results = _Results(outcomes, _EVALUATE_CLASSES)
    identities, references, per_class = [], [], []
    for node in outcomes:
        figures = results.evaluate.get(node.id, {})
        _check_not_blinded(node, figures)
        if "test.per_class_accuracy" not in figures:
            raise AnalysisError(
                f"outcome state {node.id[:12]} has no evaluate result; declare "
                "prunelab.recipes.evaluate(node) on every outcome state and run the experiment."
            )
        reference = results.reference(node)
        if reference is None:
            raise AnalysisError(
                f"outcome state {node.id[:12]} has no unpruned reference: no ancestor in its training run "
                "with zero sparsity has an evaluate result. Evaluate the dense model of each run."
            )
        ref = results.evaluate[reference.id]
        _check_not_blinded(reference, ref)
        accuracy = _column(figures, "test.per_class_accuracy", None, node)
        classes = len(accuracy)
        shares = results.shares_of(node)
        per_class.append((accuracy, _column(ref, "val.per_class_accuracy", classes, reference),
                          _column({"": shares} if shares is not None else {}, "", classes, node, missing=True),
                          _column(ref, "val.per_class_entropy", classes, reference),
                          _column(figures, "test.per_class_count", classes, node),
                          _column(ref, "test.per_class_accuracy", classes, reference),
                          _column(figures, "test.per_class_loss", classes, node, missing=True),
                          _column(ref, "test.per_class_loss", classes, reference, missing=True)))
        identities.append(_identity(node, results))
        references.append(reference.id)
    return _class_table(identities, references, per_class)


def _column(figures: dict[str, Any], field: str, classes: int | None, node: Node, *, missing: bool = False
            ) -> list[Any]:
    """A per-class figure of a result: a list of ``classes`` values.

    With ``missing``, a result without it gives NaNs (older ``evaluate``
    versions have no per-class loss; a run without ``class_shares`` no shares).
    """
    values = figures.get(field)
    if values is None and missing and classes is not None:
        return [math.nan] * classes
    if not isinstance(values, list) or (classes is not None and len(values) != classes):
        raise AnalysisError(
            f"the results of state {node.id[:12]} give {field or 'class_shares'} as "
            f"{'nothing' if values is None else repr(values)[:40]}, not one figure per class"
            f"{f' ({classes})' if classes is not None else ''}; re-evaluate it with prunelab.recipes.evaluate "
            "(and class_shares on its root)."
        )
    return values


def _class_table(identities: list[dict[str, Any]], references: list[str], per_class: list[tuple[Any, ...]]
                 ) -> pandas.DataFrame:
    """The class frame's columns, each built at once: a state's identity repeated over its classes."""
    import itertools

    import numpy as np
    import pandas as pd

    if not identities:
        return pd.DataFrame([], columns=CLASS_COLUMNS)
    counts = np.array([len(parts[0]) for parts in per_class])
    total = int(counts.sum())
    rows = np.repeat(np.arange(len(identities)), counts)  # each row's state
    columns: dict[str, Any] = {}
    for key in identities[0]:
        columns[key] = _repeated([identity[key] for identity in identities], rows)
    columns["reference_id"] = _repeated(references, rows)
    columns["class"] = np.concatenate([np.arange(n) for n in counts])
    names = ("accuracy", "reference_accuracy", "representation", "entropy", "count", "reference_test_accuracy",
             "loss", "reference_loss")
    for i, name in enumerate(names):
        columns[name] = np.fromiter(itertools.chain.from_iterable(parts[i] for parts in per_class),
                                    np.int64 if name == "count" else float, count=total)
    return pd.DataFrame({name: columns[name] for name in CLASS_COLUMNS})


def _repeated(values: list[Any], rows: Any) -> Any:
    """Per-state values spread over the states' rows (strings made into pandas' strings once per state)."""
    import pandas as pd

    array = _array(values)
    return array[rows] if array.dtype != object else pd.Series(array).array.take(rows)


def _array(values: list[Any]) -> Any:
    """Values as an array of the type pandas would infer for them (int, float, else object)."""
    import numpy as np

    kinds = {type(v) for v in values}
    if kinds == {int}:
        return np.array(values, dtype=np.int64)
    if kinds <= {int, float} and kinds:
        return np.array(values, dtype=float)
    return np.array(values, dtype=object)
