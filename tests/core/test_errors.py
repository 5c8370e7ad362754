"""Every remaining error path, each with its message."""

import json

import numpy as np
import pytest
import torch

import prunelab as pl
from helpers import MLPState, Train
from prunelab.storage.codecs import decode_value, encode_value
from prunelab.storage.sources import MemorySource


def test_function_arguments_are_validated():
    with pytest.raises(pl.StateDefinitionError, match="function version must be a positive int, got 0"):
        pl.function(version=0)(len)
    with pytest.raises(pl.StateDefinitionError, match="function name must be an identifier, got 'a b'; pass name="):
        pl.function(name="a b")(len)
    with pytest.raises(pl.StateDefinitionError, match="pl.function needs a callable, got int"):
        pl.function(3)


def test_state_classes_are_validated(tmp_path):
    class Twice(pl.ExperimentState):
        PROPERTIES = ["x"]
        NONHASHED_ATTRIBUTES = ["x"]

    class Stringy(pl.ExperimentState):
        PROPERTIES = "x"

    with pytest.raises(pl.StateDefinitionError, match="declares 'x' in both PROPERTIES and NONHASHED_ATTRIBUTES"):
        pl.Experiment(tmp_path / "a", Twice)
    with pytest.raises(pl.StateDefinitionError, match="Stringy.PROPERTIES must be a list of attribute names"):
        pl.Experiment(tmp_path / "b", Stringy)
    with pytest.raises(pl.StateDefinitionError, match="state_class must be a subclass of pl.ExperimentState"):
        pl.Experiment(tmp_path / "c", dict)


def test_tags_must_be_non_empty_strings(exp_dir):
    exp = pl.Experiment(exp_dir, MLPState)
    with pytest.raises(pl.StateDefinitionError, match="a tag must be a non-empty str, got ''"):
        with exp.tag(""):
            pass


def test_executor_choice_is_validated(exp_dir, monkeypatch):
    exp = pl.Experiment(exp_dir, MLPState)
    exp.spawn_new_tree(width=8, replicate=0)
    with pytest.raises(pl.StateDefinitionError, match="run\\(executor=...\\) takes an executor.*got str"):
        exp.run(executor="local")
    monkeypatch.setenv("PRUNELAB_EXECUTOR", "spark")
    with pytest.raises(pl.StateDefinitionError, match="PRUNELAB_EXECUTOR='spark' is not a known executor; use "
                                                      "'local', 'dask'"):
        exp.run(quiet=True)
    monkeypatch.setenv("PRUNELAB_EXECUTOR", "local")
    assert len(exp.run(quiet=True).done) == 1


def test_full_restore_needs_the_state_class(exp_dir):
    exp = pl.Experiment(exp_dir, MLPState)
    exp.spawn_new_tree(width=8, replicate=0)
    exp.run(quiet=True)
    info = json.loads((exp_dir / "experiment.json").read_text())
    (exp_dir / "experiment.json").write_text(json.dumps({**info, "state_class": "Unimported"}))
    with pytest.raises(pl.StateDefinitionError, match="slim=False needs its state class 'Unimported'"):
        pl.Experiment.restore(exp_dir, slim=False)
    with pytest.raises(pl.StateDefinitionError, match="restored without its state class 'Unimported'"):
        pl.Experiment.restore(exp_dir).spawn_new_tree(width=8, replicate=0)


def test_restoring_a_node_that_has_no_values_says_so(exp_dir):
    exp = pl.Experiment(exp_dir, MLPState)
    node = exp.spawn_new_tree(width=8, replicate=0)
    with pytest.raises(pl.UnknownNameError, match="is declared, so it has no stored values; run the experiment"):
        node.restore()


def test_a_stored_state_dict_that_no_longer_fits_is_named(exp_dir):
    state = MLPState()
    state.width, state.replicate = 8, 0
    state.initialize_state()
    encoded = encode_value(state.model, owner="attribute 'model'")
    other = torch.nn.Sequential(torch.nn.Linear(10, 4), torch.nn.ReLU(), torch.nn.Linear(4, 3))
    with pytest.raises(pl.StateDefinitionError, match="attribute 'model': the stored state dict does not fit the "
                                                      "Sequential initialize_state built"):
        decode_value(encoded.spec, MemorySource(encoded.blobs), current=other, owner="attribute 'model'")
    with pytest.raises(pl.StateDefinitionError, match="stored as the state dict of a Sequential, but "
                                                      "initialize_state built nothing for it"):
        decode_value(encoded.spec, MemorySource(encoded.blobs), current=None, owner="attribute 'model'")


def test_values_that_cannot_be_stored_as_data_are_named():
    with pytest.raises(pl.StateDefinitionError, match="attribute 'x'\\[0\\] is a NumPy array of Python objects"):
        encode_value([np.array([object()])], owner="attribute 'x'")
    with pytest.raises(pl.StateDefinitionError, match="is a torch.sparse_coo tensor; store it dense"):
        encode_value(torch.eye(3).to_sparse(), owner="attribute 'x'")


def test_altered_value_files_are_reported():
    with pytest.raises(pl.CorruptStateError, match="unknown value kind 'evil'; it was written by a newer prunelab"):
        decode_value(["evil", 1], MemorySource({}), owner="attribute 'x'")
    encoded = encode_value(torch.ones(2), owner="attribute 'x'")
    spec = list(encoded.spec)
    spec[2] = "os.system"
    with pytest.raises(pl.CorruptStateError, match="unknown tensor dtype 'os.system'"):
        decode_value(spec, MemorySource(encoded.blobs), owner="attribute 'x'")


def test_recipes_must_implement_run(exp_dir):
    class Empty(pl.Recipe):
        PROPERTIES = []

    exp = pl.Experiment(exp_dir, MLPState)
    Empty()(exp.spawn_new_tree(width=8, replicate=0))
    with pytest.raises(pl.RunError, match="Empty must implement run\\(self, state\\)"):
        exp.run(quiet=True)


def test_expected_nodes_for_tag_changes(exp_dir):
    exp = pl.Experiment(exp_dir, MLPState)
    with pytest.raises(pl.StateDefinitionError, match="expected nodes, got str"):
        exp.add_tag(["abc"], "x")
    assert Train(steps=1, lr=0.1).lr == 0.1


def test_an_altered_tensor_shape_is_refused_before_allocating(exp_dir):
    from prunelab.storage.sources import StoreSource

    exp = pl.Experiment(exp_dir, MLPState)
    node = exp.spawn_new_tree(width=8, replicate=0)
    exp.run(quiet=True)
    spec = json.loads((exp.store.layout.state_dir(node.id) / "values.json").read_bytes())["model"][2][1][0][1]
    assert spec[0] == "tensor"
    with pytest.raises(pl.CorruptStateError, match=f"{spec[1]} holds 320 bytes where its value file expects "
                                                   "4000000000000"):
        StoreSource(exp.store).tensor(spec[1], "float32", [10**12])
    with pytest.raises(pl.CorruptStateError, match="gives the tensor shape \\[-1\\]"):
        StoreSource(exp.store).tensor(spec[1], "float32", [-1])
