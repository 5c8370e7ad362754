"""Per-class change, disparity, Gini, Pareto fronts and mask similarity on hand-built cases."""

import math

import pandas as pd
import pytest
import torch

from prunelab.analysis import AnalysisError, class_change, disparity, gini, mask_similarity, pareto_front


def _frame():
    # one pruned state "s", two classes with 10 and 30 test samples
    return pd.DataFrame({"state_id": ["s", "s"], "class": [0, 1], "count": [10, 30],
                         "accuracy": [0.5, 0.9], "reference_test_accuracy": [1.0, 0.9],
                         "loss": [1.2, 0.3], "reference_loss": [0.2, 0.25]})


def test_class_change_and_its_normalised_form():
    out = class_change(_frame())
    assert out["change"].tolist() == pytest.approx([-0.5, 0.0])
    overall, reference = (0.5 * 10 + 0.9 * 30) / 40, (1.0 * 10 + 0.9 * 30) / 40  # count-weighted: 0.8, 0.925
    assert out["normalised_change"].tolist() == pytest.approx([0.5 - overall / reference, 1.0 - overall / reference])


def test_disparity_per_state():
    row = disparity(_frame()).iloc[0]
    assert row["worst_drop"] == pytest.approx(0.5) and row["worst_class"] == 0
    assert row["range"] == pytest.approx(0.5) and row["std"] == pytest.approx(0.25)
    assert row["gini"] == pytest.approx(gini([0.5, 0.9]))
    assert row["excess_loss_gap"] == pytest.approx(1.0 - 0.05)


def test_gini_known_values():
    assert gini([0.7, 0.7, 0.7]) == 0.0
    assert gini([0, 0, 1]) == pytest.approx(2 / 3)
    assert math.isnan(gini([]))
    with pytest.raises(AnalysisError, match="non-negative"):
        gini([-1, 2])


def test_pareto_front_keeps_only_undominated_rows():
    frame = pd.DataFrame({"name": list("abcde"), "accuracy": [0.9, 0.8, 0.85, 0.7, float("nan")],
                          "sparsity": [0.2, 0.5, 0.5, 0.4, 0.9]})
    front = pareto_front(frame, {"accuracy": "max", "sparsity": "max"})
    assert front["name"].tolist() == ["a", "c"]  # b and d are dominated by c; e has no accuracy
    assert pareto_front(frame, {"accuracy": "min"})["name"].tolist() == ["d"]


@pytest.mark.parametrize("objectives, message", [({}, "at least one objective"),
                                                 ({"accuracy": "up"}, "'up' is not 'max' or 'min'"),
                                                 ({"flops": "min"}, "needs the columns \\['flops'\\]")])
def test_pareto_front_bad_objectives(objectives, message):
    with pytest.raises(AnalysisError, match=message):
        pareto_front(pd.DataFrame({"accuracy": [1.0]}), objectives)


def test_mask_similarity_against_chance():
    generator = torch.Generator().manual_seed(0)
    first = {"w": (torch.rand(10_000, generator=generator) > 0.5).float()}
    second = {"w": (torch.rand(10_000, generator=generator) > 0.5).float()}
    table = mask_similarity({"a": first, "b": second, "a again": first})
    assert table[["a", "b"]].values.tolist() == [["a", "b"], ["a", "a again"], ["b", "a again"]]
    independent, identical = table.iloc[0], table.iloc[1]
    assert identical["jaccard"] == 1.0 and identical["lift"] > 2.5
    assert independent["chance"] == pytest.approx(1 / 3, abs=0.02)
    assert independent["lift"] == pytest.approx(1.0, abs=0.05)  # random masks overlap as chance says
