"""Moving, copying and merging experiment directories; durable, deterministic and threaded runs."""

import shutil

import pytest
import torch

import prunelab as pl
from helpers import MLPState, declare_tree


def test_a_moved_directory_restores_everything(tmp_path):
    exp = pl.Experiment(tmp_path / "a", MLPState)
    declare_tree(exp, [0.1])
    exp.run(quiet=True)
    shutil.move(tmp_path / "a", tmp_path / "moved")
    restored = pl.Experiment.restore(tmp_path / "moved", MLPState)
    assert len(restored.graph.nodes) == 4
    for node in restored.graph.nodes:
        node.restore()
    assert str(tmp_path) not in (tmp_path / "moved" / "experiment.json").read_text()


def test_merging_two_directories_is_a_union(tmp_path):
    first = pl.Experiment(tmp_path / "a", MLPState)
    declare_tree(first, [0.1, 0.2])
    first.run(quiet=True)
    second = pl.Experiment(tmp_path / "b", MLPState)
    declare_tree(second, [0.2, 0.3])
    second.run(quiet=True)
    added = first.merge(tmp_path / "b")
    assert len(added) == 2  # only the 0.3 branch is new
    assert first.merge(tmp_path / "b") == []
    merged = pl.Experiment.restore(tmp_path / "a", MLPState)
    assert len(merged.graph.nodes) == 8
    assert len(merged.graph.nodes.filter("scale:0.3")) == 2
    for node in merged.graph.nodes:
        node.restore()
    assert all("loss" in n.results["evaluate"] for n in merged.graph.nodes.filter("scale:*") if n.depth == 3)


def test_merging_refuses_another_state_class(tmp_path):
    class OtherState(pl.ExperimentState):
        PROPERTIES = ["x"]

    pl.Experiment(tmp_path / "b", OtherState)
    exp = pl.Experiment(tmp_path / "a", MLPState)
    with pytest.raises(pl.StateDefinitionError, match="only experiments of one state class can be merged"):
        exp.merge(tmp_path / "b")


class Probe(pl.Recipe):
    """Record the torch settings the recipe ran under."""

    PROPERTIES = []

    def run(self, state):
        state.history = [torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()]
        return state


def test_threads_and_deterministic_mode_apply_inside_recipes_only(tmp_path):
    before = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled())
    exp = pl.Experiment(tmp_path / "a", MLPState, threads=2, deterministic=True, durable=True)
    node = Probe()(exp.spawn_new_tree(width=8, replicate=0))
    exp.run(quiet=True)
    assert node.restore().history == [2, True]
    assert node.record["threads"] == 2 and node.record["deterministic"] is True
    assert (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()) == before


def test_threads_must_be_a_positive_int(tmp_path):
    with pytest.raises(pl.StateDefinitionError, match="threads must be a positive int, got 0"):
        pl.Experiment(tmp_path / "a", MLPState, threads=0)


class ToCuda(pl.Recipe):
    PROPERTIES = []

    def run(self, state):
        state.model = state.model.cuda()
        with torch.no_grad():
            state.model[0].weight.add_(torch.randn_like(state.model[0].weight))
        state.history = [torch.randn(3, device="cuda")]
        return state


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_states_are_seeded_recorded_and_restored(tmp_path):
    blobs = []
    for name in ("a", "b"):
        exp = pl.Experiment(tmp_path / name, MLPState, deterministic=True)
        node = ToCuda()(exp.spawn_new_tree(width=8, replicate=0))
        exp.run(quiet=True)
        blobs.append(node.record["blobs"])
        assert "cuda:0" in node.record["devices"]
        state = node.restore()
        assert state.history[0].device.type == "cuda"
    assert blobs[0] == blobs[1]
