"""Pre-registration and blinding: digests in later records, edits detected, late registration, withheld metrics."""

import json

import pytest

import prunelab as pl
from helpers import MLPState, declare_tree
from prunelab.analysis import (AnalysisError, blind, class_frame, preregister, registrations, state_frame,
                               unblind)
from prunelab.core.prereg import BLINDED
from prunelab.storage.seal import seal


def _log(exp):
    return sorted((exp.directory / "prereg").glob("[0-9]*.json"))


def test_a_registration_is_printed_and_carried_by_every_later_record(exp_dir, capsys):
    exp = pl.Experiment(exp_dir, MLPState)
    declare_tree(exp)
    digest = preregister(exp, "loss", metrics=["evaluate.loss"], nodes=["scale:*"], hypotheses=["noise hurts"])
    assert digest in capsys.readouterr().err
    exp.run(quiet=True)
    assert all(n.record["prereg"] == [digest] for n in exp.graph.nodes)
    assert all(r["prereg"] == [digest] for r in exp.index.result_records())
    (entry,) = registrations(exp)
    assert entry["status"] == "intact" and entry["digest"] == digest and not entry["late"]
    assert entry["why"] == "12 later record(s) carry its digest"  # 8 states and 4 results


def _rewrite(path, change, redigest):
    from prunelab.core.prereg import registration_digest

    entry = json.loads(path.read_bytes())
    change(entry)
    if redigest:
        entry["registration_digest"] = registration_digest(entry)
    path.write_bytes(seal(entry))


@pytest.mark.parametrize("redigest", [False, True])
def test_an_edited_registration_is_detected(exp_dir, redigest):
    exp = pl.Experiment(exp_dir, MLPState)
    declare_tree(exp)
    preregister(exp, "loss", metrics=["evaluate.loss"], alpha=0.05)
    exp.run(quiet=True)
    _rewrite(_log(exp)[0], lambda e: e.update(alpha=0.2), redigest)
    (entry,) = registrations(pl.Experiment(exp_dir, MLPState))
    assert entry["status"] == "edited" and entry["alpha"] == 0.2
    expected = "written after it carry another digest" if redigest else "no longer matches"
    assert expected in entry["why"]


def test_a_registration_edited_by_hand_fails_its_seal(exp_dir):
    exp = pl.Experiment(exp_dir, MLPState)
    preregister(exp, "loss", metrics=["evaluate.loss"])
    path = _log(exp)[0]
    path.write_bytes(path.read_bytes().replace(b'"alpha":0.05', b'"alpha":0.5'))
    with pytest.raises(pl.CorruptStateError, match=str(path.name)):
        registrations(pl.Experiment(exp_dir, MLPState))


def test_late_registration_is_refused_or_recorded(exp_dir):
    exp = pl.Experiment(exp_dir, MLPState)
    declare_tree(exp)
    exp.run(quiet=True)
    with pytest.raises(AnalysisError, match="'loss' is late: 4 covered node.*allow_late=True"):
        preregister(exp, "loss", metrics=["evaluate.loss"])
    assert _log(exp) == []  # nothing written
    preregister(exp, "unrelated", metrics=["accuracy"])  # no such results yet: on time
    preregister(exp, "loss", metrics=["evaluate.loss"], nodes=["scale:*"], allow_late=True)
    late = {r["name"]: r["late"] for r in registrations(exp)}
    assert late == {"unrelated": False, "loss": True}


@pytest.mark.parametrize("kwargs, message", [
    ({"name": "", "metrics": ["evaluate"]}, "non-empty name"),
    ({"name": "x", "metrics": []}, "metrics must be a list of non-empty strings"),
    ({"name": "x", "metrics": ["evaluate"], "nodes": [""]}, "nodes must be a list"),
    ({"name": "x", "metrics": ["evaluate"], "alpha": 1.5}, "alpha must be between 0 and 1"),
])
def test_bad_registrations_are_refused(exp_dir, kwargs, message):
    exp = pl.Experiment(exp_dir, MLPState)
    with pytest.raises(AnalysisError, match=message):
        preregister(exp, **kwargs)
    assert _log(exp) == []


def test_a_name_is_registered_once_and_unblind_needs_a_blind(exp_dir):
    exp = pl.Experiment(exp_dir, MLPState)
    preregister(exp, "loss", metrics=["evaluate.loss"])
    with pytest.raises(AnalysisError, match="'loss' exists already"):
        preregister(exp, "loss", metrics=["evaluate"])
    with pytest.raises(AnalysisError, match="nothing is blinded"):
        unblind(exp)


def test_blinded_metrics_are_withheld_until_unblinding(tmp_path):
    reference = pl.Experiment(tmp_path / "open", MLPState)
    declare_tree(reference)
    reference.run(quiet=True)
    truth = {n.id: n.results["evaluate"] for n in reference.graph.nodes if "evaluate" in n.results}

    exp = pl.Experiment(tmp_path / "blind", MLPState)
    _, trained, leaves = declare_tree(exp)
    blind(exp, metrics=["evaluate.loss"], nodes=["scale:*"])
    exp.run(quiet=True)
    for node in leaves:
        shown = node.results["evaluate"]
        assert shown["loss"] == BLINDED and shown["sparsity"] == truth[node.id]["sparsity"]
        stored = (exp.store.layout.result_path(node.id, "evaluate", 1)).read_text()
        assert repr(truth[node.id]["loss"]) not in stored and BLINDED in stored  # withheld on disk too
    assert trained.results["evaluate"]["loss"] == truth[trained.id]["loss"]  # not covered
    frame = exp.graph.nodes.to_frame()
    assert not frame["evaluate.loss"].isin([truth[n.id]["loss"] for n in leaves]).any()
    unblind(exp, reason="analysis fixed")
    reopened = pl.Experiment(tmp_path / "blind", MLPState)
    for node in leaves:
        assert reopened.graph.node(node.id).results["evaluate"] == truth[node.id]


def test_results_that_existed_before_a_blind_are_hidden_too(exp_dir):
    exp = pl.Experiment(exp_dir, MLPState)
    _, _, (node, *_) = declare_tree(exp)
    exp.run(quiet=True)
    blind(exp, metrics=["evaluate"])
    assert node.results["evaluate"] == BLINDED
    unblind(exp)
    assert node.results["evaluate"]["loss"] > 0


def test_the_study_summary_and_frames_hide_blinded_metrics(tmp_path):
    import dataclasses

    from prunelab.studies import prune_responsibly as study

    config = dataclasses.replace(study.StudyConfig.quick(), seeds=(0, 1))
    exp = pl.Experiment(tmp_path / "exp", study.ModelState)
    outcomes = study.build(exp, config)
    blind(exp, metrics=["evaluate.test*"], nodes=["outcome"])
    exp.run(quiet=True)
    rows = study.summary(exp, outcomes)
    assert all(r["blinded"] and r["accuracy"] is None and r["worst_class"] is None for r in rows)
    assert state_frame(exp)["test_accuracy"].isna().all() and state_frame(exp)["val_accuracy"].notna().all()
    with pytest.raises(AnalysisError, match="is blinded.*unblind"):
        class_frame(exp)
    unblind(exp)
    assert len(class_frame(exp)) == len(outcomes) * 10
    assert not any(r["blinded"] for r in study.summary(exp, outcomes))


def test_the_demo_command_prints_blinded_instead_of_figures(tmp_path, capsys):
    from prunelab.cli import main
    from prunelab.studies import prune_responsibly as study

    out = tmp_path / "demo"
    exp = pl.Experiment(out, study.ModelState)
    study.build(exp, study.StudyConfig.quick())
    blind(exp, metrics=["evaluate.test*"], nodes=["outcome"])
    assert main(["demo", "--quick", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    rows = [line for line in printed.splitlines() if line.startswith(("balanced", "imbalanced"))]
    assert rows and all(line.rstrip().endswith("blinded") and " ± " not in line for line in rows)
    unblind(exp)
    truths = [n.results["evaluate"]["test_accuracy"] for n in exp.graph.nodes.filter("outcome")]
    assert not any(f"{t:.3f}" in printed for t in truths)
