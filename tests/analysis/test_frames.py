"""state_frame and class_frame on a real study: rows, references, shares, lineage, and bad input."""

import math

import pytest

import prunelab as pl
from prunelab.analysis import AnalysisError, class_frame, state_frame
from prunelab.analysis.frames import CLASS_COLUMNS
from prunelab.recipes import ModelState, Prune, Train, class_shares, evaluate, sparsity


def test_class_frame_has_one_row_per_outcome_and_class_joined_with_its_reference(quick_study):
    exp, outcomes = quick_study
    frame = class_frame(exp)
    assert list(frame.columns) == CLASS_COLUMNS
    assert len(frame) == len(outcomes) * 10 and set(frame["state_id"]) == {n.id for n in outcomes}
    dense = {n.lineage["root_id"]: n for n in outcomes if "technique" not in n.lineage}
    for node in outcomes[:8]:
        rows = frame[frame["state_id"] == node.id].sort_values("class")
        reference = dense[node.lineage["root_id"]]  # the dense model of the same run
        assert set(rows["reference_id"]) == {reference.id}
        ref = reference.results["evaluate"]
        assert rows["reference_accuracy"].tolist() == ref["val"]["per_class_accuracy"]  # reference: val
        assert rows["entropy"].tolist() == pytest.approx(ref["val"]["per_class_entropy"])
        assert rows["reference_test_accuracy"].tolist() == ref["test"]["per_class_accuracy"]
        assert rows["accuracy"].tolist() == node.results["evaluate"]["test"]["per_class_accuracy"]  # outcome: test
        assert rows["count"].tolist() == node.results["evaluate"]["test"]["per_class_count"]
        root = exp.graph.node(node.lineage["root_id"])
        assert rows["representation"].tolist() == root.results["class_shares"]["class_shares"]
        if "technique" in node.lineage:
            assert set(rows["technique"]) == {node.lineage["technique"]}
            assert set(rows["treatment"]) == {node.lineage["treatment"]}
            assert set(rows["round"]) == {1} and rows["sparsity"].iloc[0] == node.results["sparsity"]["sparsity"]
        else:
            assert set(rows["technique"]) == {"none"} and set(rows["sparsity"]) == {0.0}
            assert reference.id == node.id  # an unpruned state is its own reference


def test_the_imbalanced_arm_shows_in_representation_and_population(quick_study):
    exp, _ = quick_study
    frame = class_frame(exp)
    marked = frame["population"].str.contains("imbalance=(0.2", regex=False)
    imbalanced, balanced = frame[marked], frame[~marked]
    assert len(imbalanced) and len(balanced)
    assert imbalanced.loc[imbalanced["class"] == 0, "representation"].max() < 0.05
    assert balanced["representation"].between(0.08, 0.12).all()
    assert frame.groupby("population")["replicate"].nunique().tolist() == [2, 2]


def test_state_frame_has_one_row_per_outcome_with_overall_figures(quick_study):
    exp, outcomes = quick_study
    frame = state_frame(exp)
    assert len(frame) == len(outcomes)
    row = frame.set_index("state_id").loc[outcomes[1].id]
    figures = outcomes[1].results["evaluate"]
    assert row["test_accuracy"] == figures["test_accuracy"] and row["val_loss"] == figures["val_loss"]
    assert row["reference_test_accuracy"] == exp.graph.node(row["reference_id"]).results["evaluate"]["test_accuracy"]
    assert 0.15 < row["sparsity"] < 0.25 and row["effective_sparsity"] >= row["sparsity"]
    assert "outcome" in row["tags"]


def _tiny(exp_dir, evaluate_outcome=True, evaluate_dense=True):
    """root -> Train (dense) -> Prune -> Train (outcome): a one-run study on the digits."""
    exp = pl.Experiment(exp_dir, ModelState)
    root = exp.spawn_new_tree(dataset_name="digits", model_name="mlp", replicate=0, split_seed=0,
                              val_fraction=0.1, imbalance=None)
    class_shares(root)
    dense = Train(epochs=1)(root)
    if evaluate_dense:
        evaluate(dense)
    outcome = Train(epochs=0, outcome=True)(Prune(technique="l1_unstructured", amount=0.5, round=1)(dense))
    if evaluate_outcome:
        evaluate(outcome)
        sparsity(outcome)
    exp.run(quiet=True)
    return exp, dense, outcome


def test_the_reference_is_the_nearest_evaluated_unpruned_ancestor(exp_dir):
    exp, dense, outcome = _tiny(exp_dir)
    frame = class_frame(exp)
    assert len(frame) == 10 and set(frame["reference_id"]) == {dense.id}
    assert frame["sparsity"].iloc[0] == pytest.approx(0.5, abs=0.01) and set(frame["round"]) == {1}
    assert not math.isnan(frame["entropy"].iloc[0])


def test_an_outcome_without_evaluate_is_named(exp_dir):
    exp, _, outcome = _tiny(exp_dir, evaluate_outcome=False)
    with pytest.raises(AnalysisError, match=f"{outcome.id[:12]} has no evaluate result.*evaluate\\(node\\)"):
        class_frame(exp)


def test_an_outcome_without_an_unpruned_reference_is_named(exp_dir):
    exp, _, outcome = _tiny(exp_dir, evaluate_dense=False)
    with pytest.raises(AnalysisError, match=f"{outcome.id[:12]} has no unpruned reference.*dense model"):
        class_frame(exp)
    assert state_frame(exp)["reference_id"].isna().all()  # the state frame shows the gap instead
