"""Cohorts: many nodes of one recipe computed as one vectorised computation (LocalExecutor(max_cohort=...)).

1. A member is stored bitwise alike in cohorts of 1, 3 and 8 (CPU; one and two threads).
2. Cohorts on and off: the same ids; each member's accuracy within 0.05 of its solo counterpart (the
   vectorised kernels, im2col with batched products and unfused optimizer updates, round otherwise than
   the per-model convolution and torch.optim's foreach updates; the gap stays at rounding early on and
   grows through training's chaos, a few points at most after three epochs on the digits).
3. Masks stay exact through vectorised training.
4. Two drivers sharing a directory, with cohorts: every member computed once.
5. SIGKILL mid-cohort, then a re-run: every member stored once, and equal to an uninterrupted run.
6. Checkpoints: a cohort killed in and between its members' checkpoints, or preempted, resumes to the
   uninterrupted run's states and series.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import prunelab as pl
from prunelab.core.errors import PREEMPTED_EXIT
from prunelab.prune import get_masks
from prunelab.recipes import ModelState, Prune, Train, evaluate
from prunelab.experiment.verify import verify
from prunelab.storage.files import CRASH_ENV
from prunelab.storage.store import Store
from helpers import AddNoise, Noisy

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "cohort_study.py"


def study(directory, crash=None, **options):
    env = {k: v for k, v in os.environ.items() if k != CRASH_ENV}
    env["COHORT_STUDY"] = json.dumps(options)
    if crash:
        env[CRASH_ENV] = crash
    return subprocess.Popen([sys.executable, str(SCRIPT), str(directory)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finished(proc):
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The study run once with cohorts, uninterrupted, alone: (its directory, what it printed)."""
    directory = tmp_path_factory.mktemp("reference") / "exp"
    return directory, finished(study(directory))


def trained(directory, roots, model, max_cohort, threads, optimizer):
    exp = pl.Experiment(directory, ModelState, threads=threads)
    nodes = [Train(epochs=1, lr=0.01 * (1 + r % 3), weight_decay=1e-4 * (r % 2), batch_size=64, optimizer=optimizer,
                   schedule="cosine")(exp.spawn_new_tree(dataset_name="digits", model_name=model, replicate=r))
             for r in roots]
    exp.run(executor=pl.LocalExecutor(max_cohort=max_cohort), quiet=True)
    return {n.id: (n.record["values_checksum"], n.record["cohort"]) for n in nodes}


@pytest.mark.slow
@pytest.mark.parametrize("model, threads, optimizer", [("lenet5", 1, "sgd"), ("lenet300100", 1, "adam"),
                                                       ("lenet5", 2, "adam")])
def test_a_member_is_stored_bitwise_alike_in_cohorts_of_1_3_and_8(tmp_path, model, threads, optimizer):
    alone = trained(tmp_path / "alone", [5], model, 1, threads, optimizer)
    three = trained(tmp_path / "three", [2, 5, 7], model, 3, threads, optimizer)
    eight = trained(tmp_path / "eight", range(8), model, 8, threads, optimizer)
    (member,) = alone
    assert alone[member][1] == 1 and three[member][1] == 3 and eight[member][1] == 8
    assert alone[member][0] == three[member][0] == eight[member][0]
    assert {i: v[0] for i, v in three.items()} == {i: eight[i][0] for i in three}  # the other members too
    assert len({v[0] for v in eight.values()}) == 8  # each member trained as its own seed and hyperparameters say


def outcomes(directory):
    exp = pl.Experiment.restore(directory, ModelState)
    return {n.id: n for n in exp.graph.nodes}


@pytest.mark.slow
def test_cohorts_on_and_off_give_the_same_ids_and_accuracies_within_tolerance(tmp_path, reference):
    directory, printed = reference
    off = finished(study(tmp_path / "off", max_cohort=None))
    assert set(off["states"]) == set(printed["states"])
    alone, together = outcomes(tmp_path / "off"), outcomes(directory)
    finetuned = [i for i, n in together.items() if "evaluate" in n.results]
    assert len(finetuned) == 8
    for node_id in finetuned:
        assert together[node_id].record["cohort"] == 8 and "cohort" not in alone[node_id].record
        gap = together[node_id].results["evaluate"]["test_accuracy"] - alone[node_id].results["evaluate"]["test_accuracy"]
        assert abs(gap) <= 0.05, (node_id, gap)


@pytest.mark.slow
def test_masks_stay_exact_through_vectorised_training(tmp_path):
    exp = pl.Experiment(tmp_path / "exp", ModelState)
    pruned = [Prune(technique="global_magnitude", amount=0.7)(Train(epochs=1, lr=0.05)(
        exp.spawn_new_tree(dataset_name="digits", model_name="lenet5", replicate=r))) for r in range(3)]
    finetuned = [Train(epochs=1, lr=0.05, treatment="finetune")(p) for p in pruned]
    exp.run(executor=pl.LocalExecutor(max_cohort=8), quiet=True)
    for before_node, after_node in zip(pruned, finetuned):
        assert after_node.record["cohort"] == 3
        before, after = exp.load(before_node).model, exp.load(after_node).model
        masks = get_masks(after)
        assert masks and all(torch.equal(masks[k], m) for k, m in get_masks(before).items())
        modules_before, modules_after = dict(before.named_modules()), dict(after.named_modules())
        for name in masks:
            module, param = name.rsplit(".", 1)
            mask = masks[name]
            old, new = modules_before[module], modules_after[module]
            assert torch.all(getattr(new, param)[mask == 0] == 0)  # pruned weights stayed zero
            orig_old, orig_new = getattr(old, param + "_orig"), getattr(new, param + "_orig")
            assert torch.equal(orig_new[mask == 0], orig_old[mask == 0])  # what they held is kept, as PyTorch's
            assert not torch.equal(orig_new[mask == 1], orig_old[mask == 1])  # the survivors trained


@pytest.mark.slow
def test_two_drivers_with_cohorts_compute_every_member_once(tmp_path, reference):
    directory = tmp_path / "shared"
    first, second = study(directory), study(directory)
    a, b = finished(first), finished(second)
    assert a["states"] == b["states"] == reference[1]["states"]
    assert a["computed"] + b["computed"] == len(reference[1]["states"])


@pytest.mark.slow
def test_sigkill_mid_cohort_then_a_rerun_stores_every_member_once_as_uninterrupted(tmp_path, reference):
    directory = tmp_path / "exp"
    # the 4 roots, then the first two members of the training cohort are renamed into place; killed at the third
    proc = study(directory, crash="before-rename:7")
    proc.communicate(timeout=600)
    assert proc.returncode == -signal.SIGKILL
    layout = Store(directory).layout
    stored = [i for i in reference[1]["states"] if layout.state_dir(i).is_dir()]
    assert len(stored) == 6
    records = {i: sorted(p.read_bytes() for p in layout.state_dir(i).iterdir() if p.is_file()) for i in stored}
    again = finished(study(directory))
    assert again["states"] == reference[1]["states"]
    assert again["computed"] == len(reference[1]["states"]) - len(stored)
    assert {i: sorted(p.read_bytes() for p in layout.state_dir(i).iterdir() if p.is_file()) for i in stored} == records


@pytest.mark.slow
def test_a_cohort_killed_in_and_between_its_checkpoints_resumes_to_the_uninterrupted_run(tmp_path, reference):
    directory = tmp_path / "exp"
    # a checkpoint per member per step (4 members): killed with two members written at the 8th step (they resume
    # a step ahead of the other two, as a cohort of their own), then while a partial's blobs are written, then in
    # the second epoch
    for crash in ("partial-written:30", "partial-blobs-written:25", "partial-written:70"):
        proc = study(directory, crash=crash, checkpoint_every=1e-9)
        proc.communicate(timeout=600)
        assert proc.returncode == -signal.SIGKILL
        assert len(pl.Experiment.restore(directory, ModelState).graph.nodes) == 4  # the roots: no partial is a state
    again = finished(study(directory, checkpoint_every=1e-9))
    assert again["states"] == reference[1]["states"] and again["series"] == reference[1]["series"]
    resumed = {i: r for i, r in again["resumed"].items() if r}
    # two places after the first kill: two cohorts then, one after the other (the second not begun when the
    # second run was killed)
    assert len(resumed) == 4 and sorted(r[0] for r in resumed.values()) == [7, 7, 8, 8], resumed
    assert sorted(len(r) for r in resumed.values()) == [2, 2, 3, 3]
    assert all(r == sorted(set(r)) for r in resumed.values())


@pytest.mark.slow
def test_a_preempted_cohort_stores_each_members_checkpoint_and_the_rerun_resumes_it(tmp_path):
    uninterrupted = finished(study(tmp_path / "reference", epochs=4))
    directory = tmp_path / "exp"
    proc = study(directory, epochs=4)
    partials = directory / "partials"
    deadline = time.monotonic() + 300
    while not (partials.is_dir() and len(list(partials.glob("*.ckpt"))) >= 4):  # the first epoch's checkpoints
        assert proc.poll() is None and time.monotonic() < deadline, "the cohort wrote no checkpoint"
        time.sleep(0.005)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == PREEMPTED_EXIT, err
    assert "preempted: 4 (re-run to resume)" in err
    store = Store(directory)
    steps = {p.node_id: p.step for p in store.partials.listing()}
    assert len(steps) == 4 and len(set(steps.values())) == 1  # every member checkpointed where the cohort stopped
    (stopped,) = set(steps.values())
    assert stopped > 0 and not [p for p in (directory / "leases").iterdir()]
    elsewhere = tmp_path / "alone"  # a copy resumed without cohorts: the cohort's checkpoints are not run()'s
    shutil.copytree(directory, elsewhere)
    alone = study(elsewhere, max_cohort=None, epochs=4)
    out, err = alone.communicate(timeout=600)
    assert alone.returncode == 0 and "written by Train.run_cohort, and Train.run computes it now" in err, err
    assert not any(json.loads(out.strip().splitlines()[-1])["resumed"].values())
    again = finished(study(directory, epochs=4))
    assert again["states"] == uninterrupted["states"] and again["series"] == uninterrupted["series"]
    assert {i: r for i, r in again["resumed"].items() if r} == {i: [stopped] for i in steps}


def test_a_users_cohort_gives_each_member_its_recipe_seed_and_series(tmp_path):
    values = {}
    for name, executor in (("alone", pl.LocalExecutor()), ("together", pl.LocalExecutor(max_cohort=4))):
        exp = pl.Experiment(tmp_path / name, Noisy)
        nodes = [AddNoise(scale=float(r + 1))(exp.spawn_new_tree(replicate=r)) for r in range(4)]
        exp.run(executor=executor, quiet=True)
        values[name] = [(n.record["values_checksum"], n.series("scale")["value"].tolist()) for n in nodes]
        assert [n.record.get("cohort") for n in nodes] == ([None] * 4 if name == "alone" else [4] * 4)
    assert values["alone"] == values["together"]
    assert len({v for v, _ in values["together"]}) == 4


class Miscounting(AddNoise):
    def run_cohort(self, states):
        return states[:1]


class Unlogged(AddNoise):
    def run_cohort(self, states):
        pl.log("scale", 1.0)
        return states


class KeyOnly(pl.Recipe):
    PROPERTIES = {"scale": 1.0}

    def run(self, state):
        return state

    def cohort_key(self):
        return "k"


@pytest.mark.parametrize("recipe, message", [
    (Miscounting, "returned list of 1 for 2 states; return a list with one state per member"),
    (Unlogged, "pl.log inside run_cohort logs for one member: call it inside `with self.member(state):`"),
    (KeyOnly, "KeyOnly has a cohort_key() but does not implement run_cohort"),
])
def test_a_cohort_that_breaks_the_contract_fails_every_member_saying_why(tmp_path, recipe, message):
    exp = pl.Experiment(tmp_path / "exp", Noisy)
    nodes = [recipe(scale=float(r + 1))(exp.spawn_new_tree(replicate=r)) for r in range(2)]
    report = exp.run(executor=pl.LocalExecutor(max_cohort=4), raise_on_failure=False, quiet=True)
    assert sorted(report.failed) == sorted(n.id for n in nodes)
    assert all(message in report.failed[n.id] for n in nodes)
    again = exp.run(quiet=True)  # cohorts off: run() computes them, the failures retried
    assert len(again.done) == 2


def test_member_outside_run_cohort_is_refused(tmp_path):
    class Member(pl.Recipe):
        def run(self, state):
            with self.member(state):
                return state

    exp = pl.Experiment(tmp_path / "exp", Noisy)
    node = Member()(exp.spawn_new_tree(replicate=0))
    report = exp.run(raise_on_failure=False, quiet=True)
    assert "Member.member works inside run_cohort only" in report.failed[node.id]


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "8"])
def test_max_cohort_must_be_a_positive_int(bad):
    with pytest.raises(pl.StateDefinitionError, match=r"LocalExecutor\(max_cohort=...\) takes a positive int"):
        pl.LocalExecutor(max_cohort=bad)


@pytest.mark.slow
def test_verify_re_executes_a_member_as_a_cohort_of_one_bit_for_bit(tmp_path):
    exp = pl.Experiment(tmp_path / "exp", ModelState)
    nodes = [evaluate(Train(epochs=1, lr=0.02)(exp.spawn_new_tree(dataset_name="digits", model_name="lenet5",
                                                                   replicate=r))) for r in range(3)]
    exp.run(executor=pl.LocalExecutor(max_cohort=8), quiet=True)
    report = verify(exp, [n.id for n in nodes])
    assert [r["outcome"] for r in report.rows] == ["identical"] * 3, report.rows


@pytest.mark.slow
def test_a_model_that_cannot_be_stacked_trains_alone_inside_its_cohort(tmp_path):
    def run(name, executor):
        exp = pl.Experiment(tmp_path / name, ModelState)
        roots = [exp.spawn_new_tree(dataset_name="digits", model_name=m, replicate=0) for m in ("lenet5", "resnet20")]
        nodes = [Train(epochs=1, lr=0.02)(root) for root in roots]
        exp.run(executor=executor, quiet=True)
        return [(n.record["values_checksum"], n.record.get("cohort")) for n in nodes]

    together, alone = run("together", pl.LocalExecutor(max_cohort=8)), run("alone", pl.LocalExecutor())
    lone_lenet = run("lenet", pl.LocalExecutor(max_cohort=1))
    assert [c for _, c in together] == [2, 2]
    assert together[1][0] == alone[1][0]  # BatchNorm: the ResNet went through run(), as without cohorts
    assert together[0][0] == lone_lenet[0][0]


@pytest.mark.parametrize("model, shape", [("lenet5", (1, 8, 8)), ("conv4", (3, 16, 16)), ("lenet300100", (1, 8, 8)),
                                          ("strided", (2, 9, 9))])
def test_the_stacked_forward_is_each_members_own_within_rounding(model, shape):
    from torch import nn

    from prunelab.recipes.stacked import StackedModel, stackable
    from prunelab.zoo import build_model

    def build(seed):
        torch.manual_seed(seed)
        if model == "strided":  # stride, dilation, no bias, average pooling, another activation
            return nn.Sequential(nn.Conv2d(2, 4, 3, stride=2, dilation=2, padding=1, bias=False), nn.Tanh(),
                                 nn.Sequential(nn.Conv2d(4, 5, 2, padding=(1, 0))), nn.AdaptiveAvgPool2d(2),
                                 nn.Flatten(), nn.Linear(20, 3))
        return build_model(model, shape, 10)

    members = [build(seed) for seed in range(3)]
    assert all(stackable(m) for m in members)
    x = torch.rand(3, 5, *shape)
    got = StackedModel(members)(x)
    assert torch.allclose(got, torch.stack([m(x[i]) for i, m in enumerate(members)]), atol=1e-5)


def test_models_outside_the_stackable_layers_are_not_stacked():
    from torch import nn

    from prunelab.recipes.stacked import stackable
    from prunelab.zoo import build_model

    assert not stackable(build_model("resnet20", (3, 32, 32), 10))  # batch normalisation
    assert not stackable(nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5)))  # randomness not per member
    assert not stackable(nn.Sequential(nn.Conv2d(4, 4, 3, groups=2)))
    assert not stackable(nn.Sequential(nn.Conv2d(4, 4, 3, padding="same")))
    assert not stackable(nn.Linear(4, 4))  # not a Sequential
