"""evaluate's ``device`` option: where its forward passes run, recorded with the result, not hashed."""

from __future__ import annotations

import pytest
import torch

import prunelab as pl
from prunelab.recipes import ModelState, evaluate

ROOT = {"dataset_name": "digits", "model_name": "lenet300100", "replicate": 0}
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (none on this machine)")


def test_evaluate_on_the_cpu_by_option_gives_the_direct_figures_and_records_the_option(tmp_path):
    exp = pl.Experiment(tmp_path / "exp", ModelState)
    node = exp.spawn_new_tree(**ROOT)
    evaluate(node, device="cpu")
    exp.run(quiet=True)
    direct = evaluate.fn(node.deflate().restore(), device="cpu")
    assert node.results["evaluate"]["test_accuracy"] == direct["test_accuracy"]
    assert node.results["evaluate"]["val"]["confusion"] == direct["val"]["confusion"]
    (record,) = exp.index.result_records()
    assert record["options"] == {"device": "cpu"} and record["name"] == "evaluate" and record["version"] == 3


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_evaluate_on_a_cuda_device_this_machine_lacks_fails_saying_so(tmp_path):
    exp = pl.Experiment(tmp_path / "exp", ModelState)
    node = exp.spawn_new_tree(**ROOT)
    evaluate(node, device="cuda:3")
    report = exp.run(quiet=True, raise_on_failure=False)
    (error,) = report.failed.values()
    assert "evaluate option device='cuda:3'" in error and "no such CUDA device" in error
    assert "evaluate" not in node.results


def test_evaluate_with_a_device_that_names_none_fails_naming_the_option_and_its_values(tmp_path):
    exp = pl.Experiment(tmp_path / "exp", ModelState)
    evaluate(exp.spawn_new_tree(**ROOT), device="gpu0")
    (error,) = exp.run(quiet=True, raise_on_failure=False).failed.values()
    assert "evaluate option 'device' must be 'auto', 'cpu', 'cuda' or 'cuda:<n>', got 'gpu0'" in error


@cuda
def test_evaluate_on_cuda_agrees_with_the_cpu(tmp_path):
    exp = pl.Experiment(tmp_path / "exp", ModelState)
    node = exp.spawn_new_tree(**ROOT)
    evaluate(node, device="cuda")
    exp.run(quiet=True)
    on_cpu = evaluate.fn(node.deflate().restore(), device="cpu")
    assert exp.index.result_records()[0]["options"] == {"device": "cuda"}
    assert abs(node.results["evaluate"]["test_accuracy"] - on_cpu["test_accuracy"]) <= 2 / on_cpu["test"]["count"]
    assert node.results["evaluate"]["test_loss"] == pytest.approx(on_cpu["test_loss"], rel=1e-4)
