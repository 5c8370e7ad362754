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
    assert "global_magnitude" in printed.out and "worst-hit class" in printed.out and " ± " in printed.out
    assert f"report: {out / 'report.html'}" in printed.out and (out / "report.html").stat().st_size > 10_000
    assert main(["demo", "--quick", "--out", str(out)]) == 0
    assert "prunelab: 0 computed" in capsys.readouterr().err
    assert main(["demo", "--quick", "--out", str(out), "--json"]) == 0
    data = __import__("json").loads(capsys.readouterr().out)
    assert data["report"] == str(out / "report.html") and data["rows"][0]["technique"] == "dense"


FASHION_INSTALLED = __import__("pathlib").Path("/usr/share/datasets/fashion-mnist").is_dir()


@pytest.mark.parametrize("dataset, target", [
    ("digits", 0.95),
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
    assert node.results["evaluate"]["test_accuracy"] >= target
