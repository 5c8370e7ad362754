"""The Prune Responsibly study at quick size, its summary, the demo command, and the demo's training settings."""

import pytest

import prunelab as pl
from prunelab.cli import main
from prunelab.recipes import ModelState, Train, evaluate
from prunelab.studies import prune_responsibly as study


def test_build_declares_every_arm_technique_treatment_and_round(tmp_path):
    config = study.StudyConfig.quick()
    exp = pl.Experiment(tmp_path / "exp", ModelState)
    outcomes = study.build(exp, config)
    # per arm: the dense model + techniques x treatments x rounds; the imbalanced arm uses the first technique
    balanced = 1 + len(config.techniques) * len(config.treatments) * config.rounds
    imbalanced = 1 + 1 * len(config.treatments) * config.rounds
    assert len(outcomes) == balanced + imbalanced
    assert all("outcome" in n.tags and {f.name for f in n.functions.values()} == {"evaluate", "sparsity"}
               for n in outcomes)
    assert all(n.status == "declared" for n in exp.graph.nodes)
    rewound = [n for n in outcomes if "treatment:rewind" in n.tags]
    assert rewound and all(n.lineage["treatment"] == "rewind" and n.lineage["round"] == 1 for n in rewound)
    assert all(n.lineage["outcome"] is True for n in outcomes)
    others = [n for n in exp.graph.nodes if n not in outcomes and n.parent_id is not None]
    assert others and all(n.lineage.get("outcome") is False for n in others)
    finetuned = [n for n in outcomes if "treatment:finetune" in n.tags]
    assert finetuned and all(n.lineage["treatment"] == "finetune" for n in finetuned)


def test_run_summarises_and_a_second_run_is_immediate(tmp_path):
    exp, rows = study.run(tmp_path / "exp", study.StudyConfig.quick(), quiet=True)
    techniques = {(r["arm"], r["technique"], r["treatment"]) for r in rows}
    assert ("balanced", "dense", "-") in techniques and ("imbalanced", "global_magnitude", "rewind") in techniques
    pruned = [r for r in rows if r["technique"] != "dense"]
    assert all(r["sparsity"] == pytest.approx(0.2, abs=0.02) for r in pruned)
    assert all(0 <= r["worst_class"] < 10 for r in rows)
    again = pl.Experiment(tmp_path / "exp", ModelState)
    study.build(again, study.StudyConfig.quick())
    assert again.run(quiet=True).done == []


def test_the_demo_command_prints_where_and_a_table(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out)]) == 0
    printed = capsys.readouterr()
    assert f"experiment: {out} (" in printed.out
    assert "global_magnitude" in printed.out and "worst-hit class" in printed.out
    header, *table = printed.out.splitlines()[1:-1]
    assert header.split()[-6:] == ["test", "accuracy", "runs", "worst-hit", "class", "(drop)"]
    dense = next(line for line in table if " dense " in line).split()
    assert dense[-2:] == ["1", "-"] and " ± " not in printed.out  # one run: its accuracy and no spread
    assert f"report: {out / 'report.html'}" in printed.out and (out / "report.html").stat().st_size > 10_000
    assert main(["demo", "--quick", "--out", str(out)]) == 0
    assert "prunelab: 0 computed" in capsys.readouterr().err
    assert main(["demo", "--quick", "--out", str(out), "--json"]) == 0
    data = __import__("json").loads(capsys.readouterr().out)
    assert data["report"] == str(out / "report.html") and data["rows"][0]["technique"] == "dense"


def test_the_demo_table_shows_mean_and_spread_over_several_runs(quick_study, tmp_path, capsys):
    import shutil

    exp, outcomes = quick_study  # the quick study with two seeds
    shutil.copytree(exp.directory, tmp_path / "demo")
    assert main(["demo", "--quick", "--seeds", "2", "--out", str(tmp_path / "demo")]) == 0
    rows = study.summary(exp, outcomes)
    table = capsys.readouterr().out.splitlines()[2:-1]
    assert len(table) == len(rows) and all(r["seeds"] == 2 and r["std"] is not None for r in rows)
    for row, line in zip(rows, table):
        assert f"{row['accuracy']:8.3f} ± {row['std']:.3f}    2  " in line


FASHION_INSTALLED = __import__("pathlib").Path("/usr/share/datasets/fashion-mnist").is_dir()


# Each target leaves a margin below what the training run reaches on the machines seen (digits: 342 and 349
# of 360 correct; 0.93 is 335), since floating-point results differ between CPUs. Counts are compared, and
# accuracies are exact ratios of them, so a target means what it says.
@pytest.mark.parametrize("dataset, target", [
    ("digits", 0.93),
    pytest.param("fashion-mnist", 0.87, marks=pytest.mark.skipif(
        not FASHION_INSTALLED, reason="Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist; "
                                      "CI installs it)")),
])
def test_the_demo_training_settings_reach_their_accuracy(tmp_path, dataset, target):
    exp = pl.Experiment(tmp_path / "exp", ModelState)
    root = exp.spawn_new_tree(dataset_name=dataset, model_name="lenet5", replicate=0, split_seed=0,
                              val_fraction=0.1, imbalance=None)
    node = evaluate(Train(**study.StudyConfig().train)(root))
    exp.run(quiet=True)
    test = node.results["evaluate"]["test"]
    assert test["correct"] >= target * test["count"], f"{test['correct']} of {test['count']} correct"
