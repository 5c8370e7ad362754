"""The experiment graph: running, resuming, copies, seeds, failures, functions, bad input."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

import prunelab as pl
from helpers import CALLS, MLPState, Noise, Prune, Train, declare_tree, evaluate


@pytest.fixture(autouse=True)
def _clear_calls():
    CALLS.clear()


# ------------------------------------------------------------------ resume
def test_rerunning_a_finished_experiment_runs_nothing_and_reads_no_value_file(exp_dir):
    declare_tree(pl.Experiment(exp_dir, MLPState))[0].experiment.run(quiet=True)
    assert len(CALLS) == 7
    CALLS.clear()
    exp = pl.Experiment(exp_dir, MLPState)
    declare_tree(exp)
    report = exp.run(quiet=True)
    assert CALLS == []
    assert report.done == [] and report.results == [] and len(report.cached) == 8
    assert exp.store.counters["values_read"] == 0
    assert exp.store.counters["blobs_read"] == 0


def test_plan_shows_what_would_run_without_running(exp_dir):
    exp = pl.Experiment(exp_dir, MLPState)
    _, trained, leaves = declare_tree(exp)
    plan = exp.plan()
    assert len(plan.to_compute) == 8 and len(plan.functions) == 4
    assert "8 state(s) to compute" in str(plan)
    assert CALLS == [] and exp.graph.nodes.filter().where(lambda n: n.status == "declared").__len__() == 8


def test_targets_compute_only_what_they_need(exp_dir):
    exp = pl.Experiment(exp_dir, MLPState)
    _, trained, leaves = declare_tree(exp)
    exp.run(targets=[leaves[0]], quiet=True)
    assert CALLS == ["Train(3,0.1)", "Noise(0.1)", "Prune(0.5)"]
    assert leaves[0].status == "done" and leaves[1].status == "declared"


# ------------------------------------------------------------------ copies
class Mutate(pl.Recipe):
    """Prune the input in place and scale every weight: what must never leak."""

    PROPERTIES = []

    def run(self, state):
        torch.nn.utils.prune.random_unstructured(state.model[0], "weight", amount=0.9)
        with torch.no_grad():
            for p in state.model.parameters():
                p.mul_(100.0)
        state.history.append("mutated")
        return state


class Observe(pl.Recipe):
    """Store what this recipe received."""

    PROPERTIES = []

    def run(self, state):
        state.history = [*state.history, [p.detach().clone().tolist() for p in state.model.parameters()]]
        return state


def _weights(state):
    return [p.detach().clone() for p in state.model.parameters()]


@pytest.mark.parametrize("same_run", [True, False])
def test_a_recipe_changes_neither_parent_nor_siblings(exp_dir, same_run):
    exp = pl.Experiment(exp_dir, MLPState)
    parent = Train(steps=2, lr=0.1)(exp.spawn_new_tree(width=8, replicate=0))
    if not same_run:
        exp.run(quiet=True)
    before_record = parent.record if not same_run else None
    in_memory = parent.restore() if not same_run else None
    snapshot = _weights(in_memory) if in_memory is not None else None
    mutated = Mutate()(parent)
    observed = Observe()(parent)
    exp.run(quiet=True)
    stored_parent = parent.deflate().restore()
    seen = [torch.tensor(w) for w in observed.restore().history[-1]]
    for seen_w, parent_w in zip(seen, _weights(stored_parent)):
        assert torch.equal(seen_w, parent_w)
    assert stored_parent.history == [stored_parent.history[0]] and "mutated" not in stored_parent.history
    assert hasattr(stored_parent.model[0], "weight_orig") is False
    assert mutated.restore().model[0].weight_mask.float().mean() < 0.2
    if not same_run:
        assert all(torch.equal(a, b) for a, b in zip(_weights(in_memory), snapshot))
        assert parent.record["values_checksum"] == before_record["values_checksum"]


def test_pruned_modules_are_copied_and_restored_with_their_masks(exp_dir):
    exp = pl.Experiment(exp_dir, MLPState)
    pruned = Prune(amount=0.5)(exp.spawn_new_tree(width=8, replicate=0))
    trained = Train(steps=2, lr=0.1)(pruned)
    exp.run(quiet=True)
    state = trained.restore()
    layer = state.model[0]
    assert hasattr(layer, "weight_orig") and hasattr(layer, "weight_mask")
    assert torch.equal(layer.weight, layer.weight_orig * layer.weight_mask)
    assert float((layer.weight == 0).float().mean()) == 0.5
    mask = pruned.restore().model[0].weight_mask
    assert torch.equal(mask, layer.weight_mask)  # training kept the mask


def test_a_restored_optimizer_steps_the_restored_model(exp_dir):
    exp = pl.Experiment(exp_dir, MLPState)
    trained = Train(steps=2, lr=0.1)(exp.spawn_new_tree(width=8, replicate=0))
    exp.run(quiet=True)
    first, second = trained.restore(), trained.deflate().restore()
    params = first.optimizer.param_groups[0]["params"]
    assert [id(p) for p in params] == [id(p) for p in first.model.parameters()]
    assert not set(map(id, params)) & set(map(id, second.model.parameters()))  # copies are private
    assert first.optimizer.state[params[0]]["momentum_buffer"] is not None


# ------------------------------------------------------------------- seeds
def test_results_do_not_depend_on_execution_order(tmp_path):
    first = pl.Experiment(tmp_path / "a", MLPState)
    second = pl.Experiment(tmp_path / "b", MLPState)
    _, _, leaves_a = declare_tree(first, (0.1, 0.2, 0.3))
    _, _, leaves_b = declare_tree(second, (0.3, 0.2, 0.1))
    first.run(quiet=True)
    second.run(quiet=True)
    assert CALLS[1] == "Noise(0.1)" and CALLS[1 + 7] == "Noise(0.3)"  # really different orders
    records_a = {n.id: n.record for n in first.graph.nodes}
    records_b = {n.id: n.record for n in second.graph.nodes}
    assert records_a.keys() == records_b.keys()
    for node_id, record in records_a.items():
        assert record["blobs"] == records_b[node_id]["blobs"]
        assert record["values_checksum"] == records_b[node_id]["values_checksum"]
    assert {n.id: n.results for n in first.graph.nodes} == {n.id: n.results for n in second.graph.nodes}


@pytest.mark.parametrize("seeding", [True, False])
def test_results_depend_on_the_callers_generators_only_without_seeding(tmp_path, monkeypatch, seeding):
    if not seeding:
        monkeypatch.setenv("PRUNELAB_TESTING_UNSEEDED", "1")
    blobs = []
    for caller_seed in (1, 2):
        random.seed(caller_seed)
        np.random.seed(caller_seed)
        torch.manual_seed(caller_seed)
        exp = pl.Experiment(tmp_path / str(caller_seed), MLPState)
        node = Noise(scale=0.1)(exp.spawn_new_tree(width=8, replicate=0))
        exp.run(quiet=True)
        blobs.append(node.record["blobs"])
    assert (blobs[0] == blobs[1]) is seeding


def test_the_callers_generators_are_unchanged_by_run(exp_dir):
    random.seed(7)
    np.random.seed(7)
    torch.manual_seed(7)
    torch.set_num_threads(2)
    expected = (random.random(), np.random.rand(), torch.rand(()).item())
    random.seed(7)
    np.random.seed(7)
    torch.manual_seed(7)
    exp = pl.Experiment(exp_dir, MLPState)
    declare_tree(exp)
    exp.run(quiet=True)
    assert (random.random(), np.random.rand(), torch.rand(()).item()) == expected
    assert torch.get_num_threads() == 2


def test_seed_is_derived_from_id_and_role(exp_dir):
    exp = pl.Experiment(exp_dir, MLPState)
    node = Train(steps=1, lr=0.1)(exp.spawn_new_tree(width=8, replicate=0))
    import hashlib

    assert node.seed == int.from_bytes(hashlib.sha256(f"{node.id}:recipe".encode()).digest()[:4], "big")
    exp.run(quiet=True)
    assert node.record["threads"] == 1


# ---------------------------------------------------------------- failures
class Flaky(pl.Recipe):
    PROPERTIES = ["flag"]

    def run(self, state):
        CALLS.append("Flaky")
        import os

        if not os.path.exists(self.flag):
            raise ValueError(f"flag file {self.flag} missing")
        return state


def test_a_failure_is_recorded_isolated_and_retried(exp_dir, tmp_path):
    flag = str(tmp_path / "flag")
    exp = pl.Experiment(exp_dir, MLPState)
    root = exp.spawn_new_tree(width=8, replicate=0)
    good = Train(steps=1, lr=0.1)(root)
    bad = Flaky(flag=flag)(good)
    below = Prune(amount=0.5)(bad)
    other = Noise(scale=0.1)(root)
    with pytest.raises(pl.RunError, match="1 node\\(s\\) failed, 1 skipped") as info:
        exp.run(quiet=True)
    assert list(info.value.failed) == [bad.id]
    assert "ValueError: flag file" in info.value.failed[bad.id]
    assert bad.status == "failed" and "Traceback" in bad.record["error"]
    assert below.status == "skipped" and good.status == "done" and other.status == "done"
    CALLS.clear()
    with pytest.raises(pl.RunError):
        exp.run(quiet=True)
    assert CALLS == ["Flaky"]  # retried, nothing else recomputed
    report = exp.run(quiet=True, retry_failed=False, raise_on_failure=False)
    assert report.failed == {} and bad.id in report.skipped
    open(flag, "w").close()
    CALLS.clear()
    exp = pl.Experiment(exp_dir, MLPState)
    root = exp.spawn_new_tree(width=8, replicate=0)
    Prune(amount=0.5)(Flaky(flag=flag)(Train(steps=1, lr=0.1)(root)))
    Noise(scale=0.1)(root)
    exp.run(quiet=True)
    assert CALLS == ["Flaky", "Prune(0.5)"]
    assert all(n.status == "done" for n in exp.graph.nodes)


def test_raise_on_failure_false_returns_the_error(exp_dir, tmp_path):
    exp = pl.Experiment(exp_dir, MLPState)
    Flaky(flag=str(tmp_path / "nope"))(exp.spawn_new_tree(width=8, replicate=0))
    report = exp.run(quiet=True, raise_on_failure=False)
    assert isinstance(report.error, pl.RunError) and len(report.failed) == 1


# --------------------------------------------------------------- functions
@pl.function(name="evaluate", version=2)
def evaluate_v2(state):
    return {"loss": 0.0, "weights": state.model[0].weight.detach().clone(), "array": np.arange(3)}


def test_functions_are_stored_per_name_and_version_and_cached(exp_dir):
    exp = pl.Experiment(exp_dir, MLPState)
    node = Train(steps=1, lr=0.1)(exp.spawn_new_tree(width=8, replicate=0))
    evaluate(node)
    exp.run(quiet=True)
    first = node.results["evaluate"]
    assert set(first) == {"loss", "sparsity", "draw"}
    files = sorted(p.name for p in (exp.store.layout.state_dir(node.id) / "results").iterdir())
    assert files == ["evaluate@v1.json"]
    exp2 = pl.Experiment(exp_dir, MLPState)
    node2 = Train(steps=1, lr=0.1)(exp2.spawn_new_tree(width=8, replicate=0))
    evaluate(node2)
    with pytest.raises(pl.StateDefinitionError, match="two different functions are named 'evaluate'"):
        evaluate_v2(node2)
    exp3 = pl.Experiment(exp_dir, MLPState)
    node3 = Train(steps=1, lr=0.1)(exp3.spawn_new_tree(width=8, replicate=0))
    evaluate_v2(node3)
    report = exp3.run(quiet=True)
    assert report.results == [f"{node3.id} evaluate@v2"]
    assert node3.results["evaluate"]["loss"] == 0.0
    assert torch.equal(node3.results["evaluate"]["weights"], node3.restore().model[0].weight)
    assert node3.results["evaluate"]["array"].tolist() == [0, 1, 2]
    assert sorted(p.name for p in (exp.store.layout.state_dir(node.id) / "results").iterdir()) == [
        "evaluate@v1.json", "evaluate@v2.json"]
    assert exp3.run(quiet=True).results == []  # cached
    restored = pl.Experiment.restore(exp_dir)
    assert restored.graph.node(node.id).results["evaluate"]["loss"] == 0.0  # newest version


def test_function_results_are_seeded_per_function(exp_dir):
    exp = pl.Experiment(exp_dir, MLPState)
    node = exp.spawn_new_tree(width=8, replicate=0)
    evaluate(node)
    exp.run(quiet=True)
    import hashlib

    seed = int.from_bytes(hashlib.sha256(f"{node.id}:function:evaluate".encode()).digest()[:4], "big")
    torch.manual_seed(seed)
    assert node.results["evaluate"]["draw"] == float(torch.rand(()))


@pl.function
def bad_result(state):
    return {"model": state.model}


def test_a_function_returning_a_module_fails_clearly(exp_dir):
    exp = pl.Experiment(exp_dir, MLPState)
    bad_result(exp.spawn_new_tree(width=8, replicate=0))
    with pytest.raises(pl.RunError, match="function bad_result") as info:
        exp.run(quiet=True)
    assert "result of function 'bad_result'" in next(iter(info.value.failed.values()))


# --------------------------------------------------------------- bad input
def test_spawn_refuses_missing_and_unknown_properties(exp_dir):
    exp = pl.Experiment(exp_dir, MLPState)
    with pytest.raises(pl.StateDefinitionError, match="MLPState is missing property 'replicate'"):
        exp.spawn_new_tree(width=8)
    with pytest.raises(pl.UnknownNameError, match="MLPState has no property 'widht'.*did you mean 'width'"):
        exp.spawn_new_tree(widht=8, replicate=0)
    with pytest.raises(LookupError):
        exp.spawn_new_tree(width=8, replicate=0, extra=1)


def test_recipe_refuses_missing_and_unknown_properties():
    with pytest.raises(pl.StateDefinitionError, match="Train is missing property 'lr'"):
        Train(steps=1)
    with pytest.raises(pl.UnknownNameError, match="Train has no property 'lrate'"):
        Train(steps=1, lr=0.1, lrate=2)


class ReturnsNone(pl.Recipe):
    PROPERTIES = []

    def run(self, state):
        return None


def test_a_recipe_returning_something_else_than_a_state_fails(exp_dir):
    exp = pl.Experiment(exp_dir, MLPState)
    ReturnsNone()(exp.spawn_new_tree(width=8, replicate=0))
    with pytest.raises(pl.RunError, match="ReturnsNone.run returned NoneType, not a MLPState"):
        exp.run(quiet=True)


def test_functions_and_recipes_refuse_non_nodes_and_foreign_nodes(tmp_path):
    exp = pl.Experiment(tmp_path / "a", MLPState)
    other = pl.Experiment(tmp_path / "b", MLPState)
    foreign = other.spawn_new_tree(width=8, replicate=0)
    with pytest.raises(pl.StateDefinitionError, match="function 'evaluate' must be applied to a node.*got MLPState"):
        evaluate(MLPState())
    with pytest.raises(pl.StateDefinitionError, match="Train must be applied to a node.*got str"):
        Train(steps=1, lr=0.1)("abc")
    with pytest.raises(pl.StateDefinitionError, match="function 'evaluate' was applied to node .* of another"):
        exp._apply_function(evaluate, foreign)
    with pytest.raises(pl.StateDefinitionError, match="Train was applied to node .* of another experiment"):
        exp._apply_recipe(Train(steps=1, lr=0.1), foreign)
    with pytest.raises(pl.StateDefinitionError, match="of another experiment"):
        exp.run(targets=[foreign], quiet=True)
    with pytest.raises(pl.StateDefinitionError, match="a tag change was applied to node .* of another experiment"):
        exp.add_tag(foreign, "x")


class Sloppy(pl.Recipe):
    PROPERTIES = []

    def run(self, state):
        state.scratch = 1
        return state


def test_an_undeclared_attribute_warns_and_is_dropped(exp_dir):
    exp = pl.Experiment(exp_dir, MLPState)
    child = Train(steps=1, lr=0.1)(Sloppy()(exp.spawn_new_tree(width=8, replicate=0)))
    with pytest.warns(pl.PrunelabWarning, match="Sloppy.run left undeclared attribute\\(s\\) 'scratch'"):
        exp.run(quiet=True)
    assert not hasattr(child.restore(), "scratch")


class Opaque:
    pass


class Hold(pl.Recipe):
    PROPERTIES = []

    def run(self, state):
        state.history = Opaque()
        return state


def test_a_stored_attribute_without_codec_says_what_to_do(exp_dir):
    exp = pl.Experiment(exp_dir, MLPState)
    Hold()(exp.spawn_new_tree(width=8, replicate=0))
    with pytest.raises(pl.RunError, match="attribute 'history' holds a .*Opaque, which has no codec; declare the "
                                          "attribute in DERIVED_ATTRIBUTES.*allow_pickle=True"):
        exp.run(quiet=True)


def test_restore_refuses_a_directory_that_is_not_an_experiment(tmp_path):
    with pytest.raises(pl.ExperimentFormatError, match="does not exist"):
        pl.Experiment.restore(tmp_path / "missing")
    (tmp_path / "plain").mkdir()
    with pytest.raises(pl.ExperimentFormatError, match="is not a prunelab experiment"):
        pl.Experiment.restore(tmp_path / "plain")
    (tmp_path / "plain" / "notes.txt").write_text("x")
    with pytest.raises(pl.StateDefinitionError, match="exists and is not empty"):
        pl.Experiment(tmp_path / "plain", MLPState)


def test_restore_refuses_a_newer_format(exp_dir):
    pl.Experiment(exp_dir, MLPState)
    info = json.loads((exp_dir / "experiment.json").read_text())
    (exp_dir / "experiment.json").write_text(json.dumps({**info, "format": 99}))
    with pytest.raises(pl.ExperimentFormatError, match="format 99 by a newer prunelab.*Upgrade prunelab"):
        pl.Experiment.restore(exp_dir)


def test_a_different_state_class_is_refused(exp_dir):
    class OtherState(pl.ExperimentState):
        PROPERTIES = ["x"]

    pl.Experiment(exp_dir, MLPState)
    with pytest.raises(pl.StateDefinitionError, match="holds states of class 'MLPState', not '.*OtherState'; use that class"):
        pl.Experiment(exp_dir, OtherState)


# ----------------------------------------------------------------- queries
def test_queries_tags_lineage_and_frames(exp_dir):
    exp = pl.Experiment(exp_dir, MLPState)
    root, trained, leaves = declare_tree(exp)
    exp.run(quiet=True)
    restored = pl.Experiment.restore(exp_dir)
    nodes = restored.graph.nodes
    assert len(nodes) == 8
    assert len(nodes.filter("scale:*")) == 6
    assert len(nodes.filter("scale:0.1")) == 2
    assert len(nodes.filter("!scale:*")) == 2
    assert nodes.filter(amount=0.5).ids == nodes.filter(technique="l1_unstructured").ids
    assert len(nodes.filter(amount=0.5)) == 3
    assert len(nodes.filter(width=8)) == 8 and len(nodes.filter(width=9)) == 0
    assert len(nodes.filter("scale:0.1") | nodes.filter("scale:0.2")) == 4
    assert len(nodes.filter("scale:*") - nodes.filter("scale:0.2")) == 4
    assert len(nodes.filter("scale:*") & nodes.filter(amount=0.5)) == 3
    leaf = restored.graph.node(leaves[0].id[:10])
    assert leaf.lineage == {"technique": "l1_unstructured", "amount": 0.5, "root_id": root.id, "depth": 3}
    assert set(restored.graph.nodes.filter("scale:0.1").ancestors().ids) == {root.id, trained.id, leaves[0].parent_id}
    assert len(NodeSetOf(restored, root.id).descendants()) == 7
    assert len(NodeSetOf(restored, trained.id).children()) == 3
    frame = nodes.to_frame()
    assert len(frame) == 8
    assert {"id", "status", "tags", "width", "replicate", "technique", "evaluate.loss", "recipe.lr"} <= set(frame)
    assert frame.loc[frame.id == leaf.id, "evaluate.sparsity"].item() == 0.5
    assert nodes.in_run(-1).ids == nodes.ids or len(nodes.in_run(-1)) == 8
    assert leaf.properties == {"width": 8, "replicate": 0}


def NodeSetOf(exp, node_id):  # noqa: N802 - reads like a constructor
    return pl.NodeSet([exp.graph.node(node_id)])


def test_tags_after_the_fact(exp_dir):
    exp = pl.Experiment(exp_dir, MLPState)
    root, _, leaves = declare_tree(exp)
    exp.run(quiet=True)
    exp.add_tag(leaves, "picked")
    exp.remove_tag(leaves[0], "picked")
    restored = pl.Experiment.restore(exp_dir)
    assert set(restored.graph.nodes.filter("picked").ids) == {leaves[1].id, leaves[2].id}


def test_unknown_and_ambiguous_id_prefixes_say_so(exp_dir):
    exp = pl.Experiment(exp_dir, MLPState)
    roots = [exp.spawn_new_tree(width=8, replicate=r) for r in range(40)]  # 40 ids, 16 first characters
    with pytest.raises(pl.UnknownNameError, match="no state with id or prefix 'zz'"):
        exp.graph.node("zz")
    first = [r.id[0] for r in roots]
    shared = next(c for c in first if first.count(c) > 1)
    with pytest.raises(pl.UnknownNameError, match=f"the prefix '{shared}' matches .* states .*give more characters"):
        exp.graph.node(shared)
    assert exp.graph.node(roots[0].id[:20]) is roots[0]


def test_remove_a_subtree(exp_dir):
    exp = pl.Experiment(exp_dir, MLPState)
    _, trained, leaves = declare_tree(exp)
    exp.run(quiet=True)
    removed = exp.remove(leaves[0].parent)
    assert len(removed) == 2
    restored = pl.Experiment.restore(exp_dir)
    assert len(restored.graph.nodes) == 6 and leaves[1].id in restored.graph.nodes.ids
    CALLS.clear()
    exp = pl.Experiment(exp_dir, MLPState)
    declare_tree(exp)
    exp.run(quiet=True)
    assert CALLS == ["Noise(0.1)", "Prune(0.5)"]


STEP_SOURCE = """
import prunelab as pl


class Step(pl.Recipe):
    PROPERTIES = []

    def run(self, state):
        return state{suffix}
"""


def _import_step(folder, suffix):
    import importlib.util
    import sys

    path = folder / f"step_module_{abs(hash(suffix))}.py"
    path.write_text(STEP_SOURCE.format(suffix=suffix))
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module.Step


def test_stale_when_the_recipe_source_changed(exp_dir, tmp_path):
    first = _import_step(tmp_path, "")
    exp = pl.Experiment(exp_dir, MLPState)
    node = first()(exp.spawn_new_tree(width=8, replicate=0))
    exp.run(quiet=True)
    assert node.status == "done"
    second = _import_step(tmp_path, "  # changed")
    exp2 = pl.Experiment(exp_dir, MLPState)
    node2 = second()(exp2.spawn_new_tree(width=8, replicate=0))
    assert node2.id == node.id and node2.status == "stale"
    assert exp2.run(quiet=True).done == []  # never silently recomputed


def test_results_holding_tensors_read_in_a_process_that_never_imported_torch(exp_dir):
    import subprocess
    import sys

    exp = pl.Experiment(exp_dir, MLPState)
    node = Train(steps=1, lr=0.1)(exp.spawn_new_tree(width=8, replicate=0))
    weights(node)
    exp.run(quiet=True)
    code = ("import sys, prunelab as pl; exp = pl.Experiment.restore(sys.argv[1]); "
            "value = [n for n in exp.graph.nodes if n.results][0].results['weights']['first']; "
            "print(type(value).__module__, tuple(value.shape))")
    out = subprocess.run([sys.executable, "-c", code, str(exp_dir)], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["torch", "(8,", "10)"]


@pl.function
def weights(state):
    """The first layer's weight as a tensor blob."""
    return {"first": state.model[0].weight.detach().clone()}


def test_a_foreign_directory_is_named_as_it_was_given(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("mine")
    with pytest.raises(pl.StateDefinitionError, match=r"^notes exists and is not empty \(it holds \['todo.txt'\]\)"):
        pl.Experiment("notes", MLPState)
    assert sorted(p.name for p in (tmp_path / "notes").iterdir()) == ["todo.txt"]


def test_restoring_a_directory_that_is_no_experiment_says_so_before_judging_the_class(tmp_path):
    with pytest.raises(pl.ExperimentFormatError, match="does not exist"):
        pl.Experiment.restore(tmp_path / "nope", state_class=5)
    with pytest.raises(pl.StateDefinitionError, match="state_class must be a class"):
        pl.Experiment.restore(pl.Experiment(tmp_path / "exp", MLPState).directory, state_class=5)
