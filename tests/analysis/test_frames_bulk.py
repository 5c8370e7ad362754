"""The frames read results in bulk: the same figures as each node's results, the version each node shows,
only the fields asked for, and a clear error for a per-class figure that does not fit."""

from __future__ import annotations

import pytest

import prunelab as pl
from prunelab.analysis import AnalysisError, class_frame
from prunelab.analysis.frames import CLASS_COLUMNS
from prunelab.core.bulk import result_fields

CLASSES = 3


class Run(pl.ExperimentState):
    """A training run's identity; nothing is trained."""

    PROPERTIES = ["replicate"]
    NONHASHED_ATTRIBUTES = ["pruned"]

    def initialize_state(self, **kwargs):
        self.pruned = 0.0


class Dense(pl.Recipe):
    LINEAGE = {"outcome": True}

    def run(self, state):
        return state


class Pruned(pl.Recipe):
    PROPERTIES = ["round"]
    LINEAGE = {"technique": "l1_unstructured", "treatment": "finetune", "round": "round", "outcome": True}

    def run(self, state):
        state.pruned = 0.5 * self.round
        return state


def _split(level, classes=CLASSES):
    return {"per_class_accuracy": [level + c / 100 for c in range(classes)], "per_class_count": [10] * classes,
            "per_class_entropy": [0.1 * (c + 1) for c in range(classes)], "per_class_loss": [0.2] * classes,
            "confusion": [[1] * classes] * classes}


def _evaluate(version=1, classes=CLASSES, offset=0.0):
    @pl.function(name="evaluate", version=version)
    def evaluate(state):
        level = 0.9 - state.pruned / 2 + offset
        return {"val": _split(level), "test": _split(level - 0.01, classes), "test_accuracy": level}
    return evaluate


@pl.function(name="sparsity")
def sparsity(state):
    return {"sparsity": state.pruned}


@pl.function(name="class_shares")
def class_shares(state):
    return {"class_shares": [1 / CLASSES] * CLASSES}


def _study(directory, evaluate, runs=2, rounds=2):
    exp = pl.Experiment(directory, Run)
    for replicate in range(runs):
        root = exp.spawn_new_tree(replicate=replicate)
        class_shares(root)
        node = Dense()(root)
        evaluate(node)
        sparsity(node)
        for round_ in range(1, rounds + 1):
            node = Pruned(round=round_)(node)
            evaluate(node)
            sparsity(node)
    exp.run(quiet=True)
    return exp


def test_the_class_frame_holds_each_nodes_own_results(tmp_path):
    exp = _study(tmp_path / "exp", _evaluate())
    frame = class_frame(exp).set_index(["state_id", "class"])
    assert len(frame) == 2 * 3 * CLASSES
    for node in exp.graph.nodes:
        if node.lineage.get("outcome") is not True:
            continue
        results = node.results
        reference = exp.graph.node(frame.loc[(node.id, 0), "reference_id"])
        assert "technique" not in reference.lineage and reference.lineage["root_id"] == node.lineage["root_id"]
        for c in range(CLASSES):
            row = frame.loc[(node.id, c)]
            assert row["accuracy"] == results["evaluate"]["test"]["per_class_accuracy"][c]
            assert row["count"] == results["evaluate"]["test"]["per_class_count"][c]
            assert row["loss"] == results["evaluate"]["test"]["per_class_loss"][c]
            assert row["reference_accuracy"] == reference.results["evaluate"]["val"]["per_class_accuracy"][c]
            assert row["entropy"] == reference.results["evaluate"]["val"]["per_class_entropy"][c]
            assert row["representation"] == pytest.approx(1 / CLASSES)
            assert row["sparsity"] == results["sparsity"]["sparsity"]


def test_each_node_shows_its_declared_version_else_the_newest(tmp_path):
    exp = _study(tmp_path / "exp", _evaluate(version=1))
    newer = _evaluate(version=2, offset=0.05)
    dense = [n for n in exp.graph.nodes if n.depth == 1]
    for node in dense[:1]:
        newer(node)
    exp.run(quiet=True)
    fields = result_fields(exp.graph, list(exp.graph.nodes), "evaluate", ["test_accuracy", "test.per_class_count",
                                                                        "absent", "test.absent"])
    for node in exp.graph.nodes:
        if node.depth == 0:
            assert node.id not in fields  # no evaluate result
            continue
        assert fields[node.id] == {"test_accuracy": node.results["evaluate"]["test_accuracy"],
                                   "test.per_class_count": [10] * CLASSES}
    assert fields[dense[0].id]["test_accuracy"] == pytest.approx(0.95)  # v2, declared on it
    again = pl.Experiment.restore(tmp_path / "exp", Run)  # nothing declared: the newest stored
    assert result_fields(again.graph, [again.graph.node(dense[0].id)], "evaluate",
                                     ["test_accuracy"])[dense[0].id]["test_accuracy"] == pytest.approx(0.95)
    assert result_fields(again.graph, [again.graph.node(dense[1].id)], "evaluate",
                                     ["test_accuracy"])[dense[1].id]["test_accuracy"] == pytest.approx(0.9)


def test_a_per_class_figure_of_the_wrong_length_names_the_state(tmp_path):
    exp = _study(tmp_path / "exp", _evaluate(classes=CLASSES + 1), runs=1, rounds=1)
    dense = next(n for n in exp.graph.nodes if n.depth == 1)
    with pytest.raises(AnalysisError, match=f"state {dense.id[:12]} give val.per_class_accuracy .*one figure "
                                            f"per class \\({CLASSES + 1}\\)"):
        class_frame(exp)


def test_an_empty_experiment_gives_an_empty_frame_with_the_columns(tmp_path):
    frame = class_frame(pl.Experiment(tmp_path / "exp", Run))
    assert frame.empty and list(frame.columns) == CLASS_COLUMNS


SHAPES = [  # what each replicate's result holds: laid out as the first, a key missing, one more, moved, not a dict
    {"a": 1.0, "b": {"c": [1, 2], "d": "x"}},
    {"a": 2.0, "b": {"c": [3]}},
    {"a": 3.0, "b": {"c": [4, 5], "d": "y", "e": 0.5}},
    {"b": {"d": "z", "c": [6]}, "a": 4.0},
    {"a": 5.0, "b": [7, 8]},
    {"a": float("nan"), "b": {"c": [float("inf")], "d": None}},
]


@pl.function(name="shaped", version=1)
def shaped(state):
    return SHAPES[state.replicate]


def test_records_laid_out_otherwise_than_the_first_give_their_own_fields(tmp_path):
    exp = pl.Experiment(tmp_path / "exp", Run)
    nodes = [shaped(exp.spawn_new_tree(replicate=r)) for r in range(len(SHAPES))]
    exp.run(quiet=True)
    fields = ["a", "b.c", "b.d", "b.e", "b.c.x"]
    got = result_fields(exp.graph, nodes, "shaped", fields)
    for node, shape in zip(nodes, SHAPES):
        expected = {"a": shape["a"]} if "a" in shape else {}
        if isinstance(shape["b"], dict):
            expected.update({f"b.{k}": v for k, v in shape["b"].items()})
        assert repr(sorted(got[node.id].items())) == repr(sorted(expected.items())), node.properties  # NaN too
