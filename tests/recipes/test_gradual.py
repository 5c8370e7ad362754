"""Pruning while training through the standard Train: gradual magnitude pruning on Zhu & Gupta's cubic schedule,
and RigL's dynamic sparsity."""

from __future__ import annotations

import re
import signal

import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

import prunelab as pl
from helpers import run_pruning_chain
from prunelab.core.identity import child_id
from prunelab.core.runtime import running
from prunelab.execution.checkpoints import BodyRuntime
from prunelab.prune import RigL, cubic, get_masks
from prunelab.recipes import ModelState, Prune, Train, train_model
from prunelab.prune.rigl import erk_densities
from prunelab.recipes.gradual import dynamic_settings

ROOT = {"dataset_name": "digits", "model_name": "lenet300100", "replicate": 0}


def _zeros(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([m.weight.detach().reshape(-1) == 0 for m in model.modules() if isinstance(m, torch.nn.Linear)])


def test_each_event_reaches_the_cubic_schedule_within_one_weight_and_is_recorded(tmp_path):
    exp = pl.Experiment(tmp_path / "exp", ModelState)
    root = exp.spawn_new_tree(**ROOT)
    schedule = cubic(0.0, 0.9, 0, 40, 10)
    gradual = Train(epochs=2, batch_size=64, prune_schedule=schedule)(root)
    layerwise = Train(epochs=2, batch_size=64, prune_schedule=schedule, prune_technique="l1_unstructured")(root)
    plain = Train(epochs=2, batch_size=64)(root)
    exp.run(quiet=True)
    weights = sum(m.weight.numel() for m in gradual.restore().model.modules() if isinstance(m, torch.nn.Linear))
    series = gradual.series("sparsity")
    assert series["step"].tolist() == [0, 10, 20, 30, 40]
    for reached, target in zip(series["value"], schedule.sparsities):
        assert abs(reached - target) <= 1 / weights
    state = gradual.restore()
    assert int(_zeros(state.model).sum()) == round(0.9 * weights)
    assert gradual.lineage["technique"] == "global_magnitude" and layerwise.lineage["technique"] == "l1_unstructured"
    assert gradual.lineage["prune_schedule"] == [list(e) for e in schedule.steps]
    for module in layerwise.restore().model.modules():  # layer-wise: every tensor at the target
        if isinstance(module, torch.nn.Linear):
            assert abs(float((module.weight == 0).float().mean()) - 0.9) <= 1 / module.weight.numel()
    # the schedule is identity; a Train without one keeps the id it had before the property existed
    assert len({gradual.id, layerwise.id, plain.id}) == 3
    assert plain.id == child_id(root.id, "Train", 1, {
        "epochs": 2, "lr": 0.1, "batch_size": 64, "optimizer": "sgd", "momentum": 0.9, "weight_decay": 5e-4,
        "schedule": "constant", "rewind_epoch": None, "treatment": None, "outcome": False})
    assert not plain.series("sparsity").size


def test_pruned_sets_only_grow_and_pruned_weights_stay_zero_through_training(tmp_path):
    exp = pl.Experiment(tmp_path / "exp", ModelState)
    root = exp.spawn_new_tree(**ROOT)
    exp.run(quiet=True)
    state = root.restore()
    seen: list[torch.Tensor] = []
    state.model.register_forward_pre_hook(lambda module, args: seen.append(_zeros(module)))
    events = [list(e) for e in cubic(0.0, 0.8, 0, 33, 11).steps]  # 11 steps an epoch: at the start of each
    torch.manual_seed(0)
    with running(BodyRuntime("0" * 32)) as runtime:
        train_model(state, epochs=3, lr=0.05, batch_size=128, optimizer="sgd", momentum=0.9, weight_decay=5e-4,
                    schedule="constant", rewind_epoch=None, prune_schedule=events)
    assert len(seen) == 33  # one forward a step
    weights = seen[0].numel()
    for step, zeros in enumerate(seen):
        latest = max(s for t, s in events if t <= step)  # the event of this step runs before its forward
        assert int(zeros.sum()) == round(latest * weights), step  # momentum and weight decay revive none
        if step:
            assert not (seen[step - 1] & ~zeros).any(), step  # a pruned weight is never unpruned
    assert runtime.series.frozen()["sparsity"][0] == [0, 11, 22, 33]
    masks = get_masks(state.model)
    assert int(sum((m == 0).sum() for m in masks.values())) == round(0.8 * weights)


def test_gradual_pruning_continues_a_pruned_model_and_only_adds_to_its_masks(tmp_path):
    exp = pl.Experiment(tmp_path / "exp", ModelState)
    pruned = Prune(technique="global_magnitude", amount=0.5)(exp.spawn_new_tree(**ROOT))
    more = Train(epochs=1, batch_size=128, prune_schedule=[[0, 0.6], [11, 0.75]])(pruned)
    exp.run(quiet=True)
    before, after = get_masks(pruned.restore().model), get_masks(more.restore().model)
    assert all(not (before[k] == 0)[after[k] != 0].any() for k in before)
    assert more.series("sparsity")["value"].round(3).tolist() == [0.6, 0.75]


@pytest.mark.parametrize("schedule", [[[5, 0.5], [3, 0.6]], [[0, 0.6], [5, 0.5]], [[0, 1.5]], [[-1, 0.5]],
                                      [[0.5, 0.5]], [[0, 0.5, 1]], "cubic", []])
def test_a_bad_schedule_is_refused_naming_the_property_and_what_it_must_be(schedule):
    with pytest.raises(pl.StateDefinitionError, match=r"Train property 'prune_schedule' must be a schedule from "
                       r"prunelab\.prune\.cubic\(\.\.\.\) or \[\[step, sparsity\], \.\.\.\]: steps \(optimizer steps\) "
                       r"ints >= 0 in increasing order, sparsities in \[0, 1\] that do not decrease, got "
                       + re.escape(repr(schedule))):
        Train(prune_schedule=schedule)


def test_a_technique_without_a_schedule_or_unknown_and_a_schedule_past_the_run_are_refused(tmp_path):
    with pytest.raises(pl.StateDefinitionError, match="'prune_technique' is given without a prune_schedule"):
        Train(prune_technique="global_magnitude")
    for technique in ("magnitud", "nm"):
        with pytest.raises(pl.StateDefinitionError, match=f"'prune_technique' must be a registered technique that "
                                                          f"prunes to a sparsity .*got '{technique}'; choose one of "):
            Train(prune_schedule=[[0, 0.5]], prune_technique=technique)
    exp = pl.Experiment(tmp_path / "exp", ModelState)
    late = Train(epochs=1, batch_size=128, prune_schedule=[[0, 0.5], [500, 0.9]])(exp.spawn_new_tree(**ROOT))
    report = exp.run(quiet=True, raise_on_failure=False)
    assert "last event at step 500, but this run takes only 11 optimizer steps" in report.failed[late.id]


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("mode, crashes, resumed_at", [
    # events at steps 2, 8, 14, 20, a checkpoint after every step: killed at step 5 (between events), then,
    # resumed there, at step 14, whose checkpoint is written before that step's event is applied
    ("gradual", ("partial-written:5", "partial-written:9"), [5, 14]),
    # updates at steps 3, 6, 9, 12, 15 (of 22): killed at step 4, then, resumed there, at step 9, whose
    # checkpoint is written before that step's update
    ("rigl", ("partial-written:4", "partial-written:5"), [4, 9]),
], ids=["gradual", "rigl"])
def test_killed_between_and_at_pruning_events_it_resumes_bitwise(tmp_path, mode, crashes, resumed_at):
    code, reference = run_pruning_chain(tmp_path / "reference", mode=mode, checkpoint_every=1e-9)
    assert code == 0
    for crash in crashes:
        code, _ = run_pruning_chain(tmp_path / "exp", crash=crash, mode=mode, checkpoint_every=1e-9)
        assert code == -signal.SIGKILL
    code, resumed = run_pruning_chain(tmp_path / "exp", mode=mode, checkpoint_every=1e-9)
    assert code == 0
    assert resumed[mode][:2] == reference[mode][:2] and resumed[mode][2] == resumed_at


# ------------------------------------------------------------------------------------------ RigL
def _rigl_run(root, end):
    state = root.deflate().restore()  # a fresh copy of the stored root
    torch.manual_seed(0)
    steps = []
    hook = register_optimizer_step_post_hook(lambda optimizer, *_: steps.append(1))
    try:
        with running(BodyRuntime("0" * 32)) as runtime:
            train_model(state, epochs=2, lr=0.05, batch_size=128, optimizer="sgd", momentum=0.9, weight_decay=5e-4,
                        schedule="constant", rewind_epoch=None,
                        dynamic_sparsity=dynamic_settings("Train", RigL(0.9, 3, end=end)))
    finally:
        hook.remove()
    return get_masks(state.model), runtime.series.frozen(), len(steps)


def test_rigl_keeps_every_layers_sparsity_and_moves_its_connections(tmp_path):
    exp = pl.Experiment(tmp_path / "exp", ModelState)
    root = exp.spawn_new_tree(**ROOT)
    exp.run(quiet=True)
    fixed, _, fixed_steps = _rigl_run(root, end=4)  # one update only, at step 3
    moving, series, moving_steps = _rigl_run(root, end=None)  # 22 steps: end = 16, updates at 3, 6, 9, 12, 15
    assert series["moved"][0] == [3, 6, 9, 12, 15] and all(v > 0 for v in series["moved"][1])  # the topology moves
    assert (fixed_steps, moving_steps) == (21, 17)  # an update step applies no optimizer step
    shapes = {name: tuple(mask.shape) for name, mask in moving.items()}
    for name, density in erk_densities(shapes, 0.1).items():  # every layer still at its starting density
        assert abs(float(moving[name].mean()) - density) <= 1 / moving[name].numel(), name
        assert int(moving[name].sum()) == int(fixed[name].sum()), name
    assert sum(int((moving[n] != fixed[n]).sum()) for n in fixed) > 0  # four more updates: other connections
    total = sum(m.numel() for m in moving.values())
    assert series["sparsity"][0] == [0] and abs(series["sparsity"][1][0] - 0.9) <= 3 / total  # one weight a layer


def test_rigl_through_train_is_identity_and_lineage_and_refuses_what_it_cannot_do(tmp_path):
    exp = pl.Experiment(tmp_path / "exp", ModelState)
    root = exp.spawn_new_tree(**ROOT)
    rigl = Train(epochs=1, batch_size=128, dynamic_sparsity=RigL(0.8, 4))(root)
    same = Train(epochs=1, batch_size=128, dynamic_sparsity={"method": "rigl", "sparsity": 0.8, "update_every": 4,
                                                              "fraction": 0.3, "end": None, "distribution": "erk"})
    assert same(root).id == rigl.id
    assert Train(epochs=1, batch_size=128, dynamic_sparsity=RigL(0.8, 4, distribution="uniform"))(root).id != rigl.id
    pruned_parent = Train(epochs=1, batch_size=128, dynamic_sparsity=RigL(0.8, 4))(
        Prune(technique="global_magnitude", amount=0.5)(root))
    report = exp.run(quiet=True, raise_on_failure=False)
    assert rigl.status == "done" and rigl.lineage["dynamic_sparsity"]["sparsity"] == 0.8
    assert rigl.lineage["technique"] == "rigl"
    assert "RigL starts from a dense model, but this one is pruned already" in report.failed[pruned_parent.id]
    with pytest.raises(pl.StateDefinitionError, match="given both a prune_schedule and dynamic_sparsity"):
        Train(prune_schedule=[[0, 0.5]], dynamic_sparsity=RigL(0.8, 4))
    with pytest.raises(pl.StateDefinitionError, match="'dynamic_sparsity': RigL sparsity must be a fraction"):
        Train(dynamic_sparsity={"method": "rigl", "sparsity": 2.0, "update_every": 4})
    with pytest.raises(pl.StateDefinitionError, match="'dynamic_sparsity' must be prunelab.prune.RigL"):
        Train(dynamic_sparsity="rigl")
    with pytest.raises(pl.StateDefinitionError, match="'prune_technique' is 'global_magnitude', but with "
                                                      "dynamic_sparsity the technique is RigL"):
        Train(dynamic_sparsity=RigL(0.8, 4), prune_technique="global_magnitude")
    late = Train(epochs=1, batch_size=128, dynamic_sparsity=RigL(0.8, 4, end=50))(root)
    rare = Train(epochs=1, batch_size=128, dynamic_sparsity=RigL(0.8, 9))(root)  # end = 8 of 11 steps
    report = exp.run(quiet=True, raise_on_failure=False)
    assert "this run takes 11 optimizer steps, and RigL updates every 4 until step 50, so its end comes after the " \
           "run; choose update_every < end <= 11" in report.failed[late.id]
    assert "no update would happen" in report.failed[rare.id]
