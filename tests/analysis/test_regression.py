"""The Prune Responsibly regression: interval coverage on simulated studies, warnings, errors, a real study."""

import numpy as np
import pandas as pd
import pytest

import prunelab as pl
from prunelab.analysis import AnalysisError, class_frame, prune_responsibly_model

TRUTH = {"Intercept": 0.30, "reference_accuracy": 0.50, "entropy": -0.10, "representation": 0.40,
         "sparsity": -0.20, "C(technique)[T.random]": -0.03, "C(treatment)[T.rewind]": 0.02}


def simulate(rng, runs=30, classes=10):
    """A study with known coefficients: per-run noise shared by its classes, plus per-row noise."""
    rows = []
    for run in range(runs):
        run_effect = rng.normal(0, 0.03)
        shares = rng.dirichlet(np.full(classes, 20.0))
        for technique in ("magnitude", "random"):
            for treatment in ("finetune", "rewind"):
                sparsity = rng.uniform(0.2, 0.8)
                for c in range(classes):
                    row = {"root_id": f"run{run}", "technique": technique, "treatment": treatment,
                           "dataset_name": "sim", "model_name": "sim", "class": c, "count": 100,
                           "reference_accuracy": rng.uniform(0.6, 1.0), "entropy": rng.uniform(0.0, 1.0),
                           "representation": shares[c], "sparsity": sparsity}
                    mean = (TRUTH["Intercept"] + TRUTH["reference_accuracy"] * row["reference_accuracy"]
                            + TRUTH["entropy"] * row["entropy"] + TRUTH["representation"] * row["representation"]
                            + TRUTH["sparsity"] * sparsity
                            + TRUTH["C(technique)[T.random]"] * (technique == "random")
                            + TRUTH["C(treatment)[T.rewind]"] * (treatment == "rewind"))
                    row["accuracy"] = mean + run_effect + rng.normal(0, 0.02)
                    rows.append(row)
    return pd.DataFrame(rows)


def test_intervals_cover_the_truth_at_their_nominal_rate():
    rng = np.random.default_rng(12345)
    covered = {term: 0 for term in TRUTH}
    datasets = 200
    with pytest.warns(pl.PrunelabWarning):  # the one-level dataset and model factors, each time
        for _ in range(datasets):
            table = prune_responsibly_model(simulate(rng)).table.set_index("term")
            for term, value in TRUTH.items():
                covered[term] += table.loc[term, "ci_low"] <= value <= table.loc[term, "ci_high"]
    rates = {term: n / datasets for term, n in covered.items()}
    assert all(0.90 <= rate <= 0.99 for rate in rates.values()), rates


def test_naive_standard_errors_would_not_cover():
    """The clustering matters: the same data with run-level noise, fitted ignoring runs, under-covers."""
    import statsmodels.formula.api as smf

    rng = np.random.default_rng(7)
    hits = 0
    for _ in range(60):
        data = simulate(rng)
        naive = smf.ols("accuracy ~ reference_accuracy + entropy + representation + sparsity + C(technique)"
                        " + C(treatment)", data).fit()
        low, high = naive.conf_int().loc["sparsity"]  # sparsity varies between runs, not within them
        hits += low <= TRUTH["sparsity"] <= high
    assert hits / 60 < 0.8


def test_the_result_has_a_tidy_table_factor_tests_and_a_glm_check():
    data = simulate(np.random.default_rng(3))
    with pytest.warns(pl.PrunelabWarning) as caught:
        result = prune_responsibly_model(data)
    assert sorted(str(w.message).split(" has")[0] for w in caught) == ["factor 'dataset_name'", "factor 'model_name'"]
    assert [str(w.message) for w in caught] == result.warnings
    assert list(result.table.columns) == ["term", "estimate", "std_error", "ci_low", "ci_high", "p_value"]
    assert set(result.factor_tests["term"]) == {"reference_accuracy", "entropy", "representation", "sparsity",
                                                "C(technique)", "C(treatment)"}
    assert result.n == len(data) and result.clusters == 30
    assert result.factor_tests.set_index("term").loc["reference_accuracy", "df_denom"] == 29
    assert result.glm["agrees"].all()  # same signs on data the linear model describes
    assert "30 training runs" in str(result) and "reference_accuracy" in str(result)


def test_constant_representation_and_one_run_are_reported():
    data = simulate(np.random.default_rng(4))
    data["representation"] = 0.1
    with pytest.warns(pl.PrunelabWarning) as caught:
        result = prune_responsibly_model(data)
    assert any("representation does not vary" in str(w.message) and "prunelab.zoo.imbalance" in str(w.message)
               for w in caught) and len(caught) == 3  # and the two one-level factors
    assert "representation" not in result.formula
    one_run = data[data["root_id"] == "run0"]
    with pytest.raises(AnalysisError, match="at least two training runs.*40 rows from 1"):
        prune_responsibly_model(one_run)


def test_on_a_real_study(quick_study):
    exp, _ = quick_study
    frame = class_frame(exp)
    with pytest.warns(pl.PrunelabWarning):
        result = prune_responsibly_model(frame)
    assert result.clusters == 4 and result.n == (frame["technique"] != "none").sum()
    assert "reference_accuracy" in set(result.table["term"])
    assert result.table["p_value"].notna().all()


def test_count_is_optional_the_glm_check_is_skipped_saying_why():
    data = simulate(np.random.default_rng(3)).drop(columns="count")
    with pytest.warns(pl.PrunelabWarning) as caught:
        result = prune_responsibly_model(data)
    assert ("the frame has no 'count' column (test samples per class), so the binomial GLM check was skipped; "
            "class_frame(exp) gives it.") in result.warnings
    assert len(caught) == 3 and result.glm.empty and result.clusters == 30
    assert result.table.set_index("term").loc["sparsity", "ci_low"] <= TRUTH["sparsity"]


@pytest.mark.parametrize("drop, formula, message", [
    (["entropy", "root_id"], None, r"no column\(s\) 'entropy', 'root_id', .*; class_frame\(exp\) gives entropy, root_id\."),
    (["accuracy"], None, r"no column\(s\) 'accuracy', .*class_frame\(exp\) gives accuracy\."),
    ([], "accuracy ~ np.log(depth) + C(technique)",
     r"no column\(s\) 'depth', .*the formula names depth: add them to the frame or change the formula\."),
    (["sparsity"], "accuracy ~ sparsity + width",
     r"'sparsity', 'width'.*class_frame\(exp\) gives sparsity; the formula names width: add them"),
    ([], "accuracy ~ (sparsity", r"the formula 'accuracy ~ \(sparsity' is not a valid Patsy formula"),
])
def test_a_missing_column_is_an_analysis_error_naming_it(drop, formula, message):
    data = simulate(np.random.default_rng(5), runs=3).drop(columns=drop)
    with pytest.raises(AnalysisError, match=message):
        prune_responsibly_model(data, formula)


def test_a_factor_missing_from_the_frame_is_left_out_saying_so():
    data = simulate(np.random.default_rng(6), runs=4).drop(columns="treatment")
    with pytest.warns(pl.PrunelabWarning) as caught:
        result = prune_responsibly_model(data)
    assert "treatment" not in result.formula and len(caught) == 3
    assert ("factor 'treatment' is not in the frame, so its effect cannot be estimated; it was left out of the "
            "formula (class_frame(exp) gives it).") in result.warnings


def test_a_column_quoted_with_q_is_read_from_the_frame():
    data = simulate(np.random.default_rng(7), runs=3)
    result = prune_responsibly_model(data, "accuracy ~ sparsity + C(Q('class'))")
    assert any("class" in term for term in result.table["term"])
    with pytest.raises(AnalysisError, match=r"no column\(s\) 'class'"):
        prune_responsibly_model(data.drop(columns="class"), "accuracy ~ sparsity + C(Q('class'))")


def test_a_categorical_read_by_its_codes_fits_as_patsys_own_c_and_a_contrast_is_still_patsys():
    """C(factor) of a categorical column is read by its codes (not boxed by Patsy's C(), which reads each value in
    Python): the same design, hence the same fit, as Patsy's C() with the same levels; a contrast still works."""
    data = simulate(np.random.default_rng(3), runs=6)
    fast = prune_responsibly_model(data, "accuracy ~ sparsity + C(technique) + C(treatment)")
    boxed = prune_responsibly_model(data, "accuracy ~ sparsity + C(technique, levels=['magnitude', 'random']) "
                                          "+ C(treatment, levels=['finetune', 'rewind'])")
    for column in ("estimate", "std_error", "p_value"):
        assert fast.table[column].tolist() == boxed.table[column].tolist()
    assert "C(technique)[T.random]" in set(fast.table["term"])
    other = prune_responsibly_model(data, "accuracy ~ sparsity + C(technique, Treatment(reference='random')) "
                                          "+ np.log(entropy + 1)")
    terms = set(other.table["term"])
    assert "C(technique, Treatment(reference='random'))[T.magnitude]" in terms and "np.log(entropy + 1)" in terms
