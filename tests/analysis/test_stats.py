"""Population statistics on hand-built frames with known answers: which rows, which pairs, which family."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from prunelab.analysis import (AnalysisError, mcnemar, noether_sample_size, paired_test, prob_better,
                               pruning_identified_exemplars, tost, welch_per_class)


def _rows(population, technique, round_, state, reference, accuracies, reference_accuracies):
    return [{"population": population, "technique": technique, "treatment": "finetune", "round": round_,
             "state_id": state, "reference_id": reference, "class": c, "accuracy": a,
             "reference_test_accuracy": r} for c, (a, r) in enumerate(zip(accuracies, reference_accuracies))]


def _frame():
    rows = []
    refs = {"r1": [0.90, 0.80], "r2": [0.92, 0.85], "r3": [0.94, 0.82]}
    pruned_1 = {"s1": [0.70, 0.79], "s2": [0.72, 0.84], "s3": [0.69, 0.80]}
    pruned_2 = {"u1": [0.50, 0.60], "u2": [0.55, 0.62], "u3": [0.52, 0.59]}
    for (state, acc), ref in zip(pruned_1.items(), refs):
        rows += _rows("P", "l1", 1, state, ref, acc, refs[ref])
    for (state, acc), ref in zip(pruned_2.items(), refs):
        rows += _rows("P", "l1", 2, state, ref, acc, refs[ref])
    rows += _rows("P", "l1", 1, "s4", "r1", [0.71, 0.81], refs["r1"])  # a 4th state sharing reference r1
    for ref, acc in refs.items():  # unpruned rows: excluded from the pruned populations
        rows += _rows("P", "none", 0, ref, ref, acc, acc)
    rows += _rows("Q", "l1", 1, "q1", "x1", [0.1, 0.1], [0.9, 0.9])  # another population: its own comparison
    rows += _rows("Q", "l1", 1, "q2", "x2", [0.2, 0.15], [0.85, 0.8])
    return pd.DataFrame(rows), refs, pruned_1


@pytest.mark.parametrize("correction, method", [("bh", "fdr_bh"), ("holm", "holm")])
def test_welch_per_class_uses_the_right_populations_and_family(correction, method):
    frame, refs, pruned_1 = _frame()
    table = welch_per_class(frame, correction=correction)
    assert len(table) == 2 * 3  # (P, round 1), (P, round 2), (Q, round 1) x 2 classes
    first = table[(table["population"] == "P") & (table["round"] == 1)].sort_values("class")
    expected_p = []
    for c in (0, 1):
        a = [acc[c] for acc in pruned_1.values()] + [[0.71, 0.81][c]]
        b = [acc[c] for acc in refs.values()]  # each reference once, though r1 serves two states
        test = stats.ttest_ind(a, b, equal_var=False)
        row = first.iloc[c]
        assert (row["n_pruned"], row["n_unpruned"]) == (4, 3)
        assert row["t"] == pytest.approx(test.statistic) and row["p_value"] == pytest.approx(test.pvalue)
        assert row["difference"] == pytest.approx(np.mean(a) - np.mean(b))
        expected_p.append(test.pvalue)
    reject, adjusted, _, _ = multipletests(expected_p, method=method)  # the family: this comparison's classes
    assert first["p_adjusted"].tolist() == pytest.approx(list(adjusted))
    assert first["reject"].tolist() == list(reject)
    assert first["reject"].iloc[0] and not first["reject"].iloc[1]  # class 0 lost accuracy, class 1 did not
    assert set(table["technique"]) == {"l1"}  # the unpruned rows form no comparison


def test_welch_per_class_refuses_an_unknown_correction():
    with pytest.raises(AnalysisError, match="correction 'bonferroni' is not one of \\['bh', 'holm'\\]"):
        welch_per_class(_frame()[0], correction="bonferroni")


def test_paired_tests_pair_by_position():
    a, b = [0.80, 0.82, 0.79, 0.85, 0.81], [0.78, 0.80, 0.79, 0.80, 0.76]
    assert paired_test(a, b, "t")["p_value"] == pytest.approx(stats.ttest_rel(a, b).pvalue)
    assert paired_test(a, b, "wilcoxon")["p_value"] == pytest.approx(stats.wilcoxon(a, b).pvalue)
    exact = paired_test(a, b, "permutation")  # 2**5 sign flips: exact
    flips = np.array(np.meshgrid(*[[-1, 1]] * 5)).reshape(5, -1).T
    d = np.subtract(a, b)
    observed = abs(d.mean())
    assert exact["p_value"] == pytest.approx(np.mean(np.abs((flips * d).mean(1)) >= observed - 1e-12))
    assert exact["mean_difference"] == pytest.approx(d.mean())
    with pytest.raises(AnalysisError, match="one length"):
        paired_test(a, b[:3])
    with pytest.raises(AnalysisError, match="method 'sign'"):
        paired_test(a, b, "sign")


def test_prob_better_and_the_decision_rule():
    clear = prob_better([0.9, 0.91, 0.92, 0.93], [0.5, 0.6, 0.7, 0.8])
    assert clear["estimate"] == 1.0 and clear["ci_low"] == 1.0 and clear["meaningful"]
    assert prob_better([1, 2, 3], [1, 2, 3])["estimate"] == 0.5  # ties count one half
    weak = prob_better([0.80, 0.81, 0.79, 0.82], [0.80, 0.79, 0.81, 0.78])
    assert not weak["significant"] and weak["conclusion"] == "no significant difference in favour of A"
    rng = np.random.default_rng(1)
    a, b = rng.normal(0.3, 1, 400), rng.normal(0, 1, 400)  # P(A > B) ~ 0.58: significant, not meaningful
    small = prob_better(a, b, n_boot=500)
    assert small["significant"] and not small["meaningful"] and small["ci_low"] > 0.5 and small["estimate"] < 0.75
    with pytest.raises(AnalysisError, match="at least two"):
        prob_better([1.0], [1.0, 2.0])


def test_noether_sample_size():
    assert noether_sample_size(0.05, 0.05, 0.75) == 29
    assert noether_sample_size(0.05, 0.2, 0.75) < 29
    with pytest.raises(AnalysisError, match="0.5 < gamma < 1"):
        noether_sample_size(gamma=0.4)


def test_tost_declares_equivalence_only_within_the_bound():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0.80, 0.005, 30), rng.normal(0.801, 0.005, 30)
    assert tost(a, b, 0.01)["equivalent"] and not tost(a, b, 0.0005)["equivalent"]
    assert tost(a, b, 0.01, paired=True)["equivalent"]
    with pytest.raises(AnalysisError, match="positive equivalence bound"):
        tost(a, b, 0)


def test_mcnemar_counts_the_discordant_samples():
    labels = np.zeros(40, dtype=int)
    a = np.zeros(40, dtype=int)
    b = np.zeros(40, dtype=int)
    b[:12] = 1  # A right, B wrong on 12
    a[12:14] = 1  # A wrong, B right on 2
    result = mcnemar(a, b, labels)
    assert (result["only_a"], result["only_b"]) == (12, 2)
    assert result["p_value"] == pytest.approx(stats.binomtest(2, 14, 0.5).pvalue)  # exact below 25
    with pytest.raises(AnalysisError, match="one length"):
        mcnemar(a, b[:5], labels)


def test_pruning_identified_exemplars_compare_modal_labels():
    unpruned = [np.array([0, 1, 2, 3]), np.array([0, 1, 2, 0]), np.array([0, 1, 1, 3])]
    pruned = [np.array([0, 2, 2, 3]), np.array([0, 2, 1, 3]), np.array([1, 1, 1, 3])]
    # modes: unpruned [0, 1, 2, 3]; pruned [0, 2, 1, 3]
    assert pruning_identified_exemplars(pruned, unpruned).tolist() == [1, 2]
    with pytest.raises(AnalysisError, match="at least one model"):
        pruning_identified_exemplars([], unpruned)


def test_pruning_identified_exemplars_from_stored_predictions(quick_study):
    exp, outcomes = quick_study
    dense = [n for n in outcomes if "technique" not in n.lineage]
    pruned = [n for n in outcomes if n.lineage.get("technique") == "l1_structured"]
    found = pruning_identified_exemplars(pruned, dense)
    predictions = [np.asarray(n.results["evaluate"]["test"]["predictions"]) for n in (*pruned, *dense)]
    assert found.tolist() == pruning_identified_exemplars(predictions[:len(pruned)],
                                                          predictions[len(pruned):]).tolist()
    assert 0 < len(found) < len(predictions[0])
    with pytest.raises(AnalysisError, match="no \\(unblinded\\) evaluate result"):
        pruning_identified_exemplars([exp.graph.roots()[0]], dense)
