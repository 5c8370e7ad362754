"""verify(): re-executing stored states gives them back bit for bit, and differences are measured."""

import pytest
import torch

import prunelab as pl
from helpers import MLPState, Train, declare_tree
from prunelab.experiment.verify import verify

DRIFT = {"scale": 0.0}


class Drift(pl.Recipe):
    """Adds a module-level amount to every weight: changing it between runs makes the code disagree with the store."""

    PROPERTIES = []

    def run(self, state):
        with torch.no_grad():
            for p in state.model.parameters():
                p.add_(DRIFT["scale"])
        return state


def test_every_stored_state_is_re_executed_bit_for_bit(exp_dir):
    __import__("prunelab.recipes")  # another recipe class named Train: the recorded source picks ours

    exp = pl.Experiment(exp_dir, MLPState)
    declare_tree(exp)
    exp.run(quiet=True)
    report = verify(pl.Experiment(exp_dir, MLPState))
    assert [r["outcome"] for r in report.rows] == ["identical"] * 8 and report.ok and not report.damaged
    assert len(verify(pl.Experiment(exp_dir, MLPState), sample=3).rows) == 3


@pytest.mark.parametrize("scale, atol, outcome", [(1e-7, 1e-6, "close"), (1e-3, 1e-6, "different")])
def test_a_difference_is_measured_against_the_tolerance(exp_dir, scale, atol, outcome):
    exp = pl.Experiment(exp_dir, MLPState)
    DRIFT["scale"] = 0.0
    drifted = Drift()(Train(steps=1, lr=0.1)(exp.spawn_new_tree(width=8, replicate=0)))
    exp.run(quiet=True)
    DRIFT["scale"] = scale
    report = verify(pl.Experiment(exp_dir, MLPState), atol=atol)
    row = next(r for r in report.rows if r["id"] == drifted.id)
    assert row["outcome"] == outcome and row["max_difference"] == pytest.approx(scale, rel=0.2)
    assert "model" in row["detail"]
    assert report.ok == (outcome == "close")
    assert {r["outcome"] for r in report.rows if r["id"] != drifted.id} == {"identical"}


def test_a_recipe_whose_version_changed_is_unverifiable_not_different(exp_dir):
    exp = pl.Experiment(exp_dir, MLPState)
    node = Drift()(exp.spawn_new_tree(width=8, replicate=0))
    exp.run(quiet=True)
    Drift.VERSION = 2
    try:
        row = next(r for r in verify(pl.Experiment(exp_dir, MLPState)).rows if r["id"] == node.id)
    finally:
        Drift.VERSION = 1
    assert row["outcome"] == "unverifiable" and "VERSION 2" in row["detail"]


class KwargsState(pl.ExperimentState):
    """dagger's way: initialize_state reads the root's properties from its keyword arguments."""

    PROPERTIES = ["width"]
    NONHASHED_ATTRIBUTES = ["model"]

    def initialize_state(self, **kwargs):
        self.model = torch.nn.Linear(kwargs["width"], 2)


class Scale(pl.Recipe):
    """dagger's way: its own __init__, positional, never calling Recipe.__init__; it reads state.id."""

    PROPERTIES = ["factor"]

    def __init__(self, by):
        self.factor = by

    def run(self, state):
        with torch.no_grad():
            state.model.weight.mul_(self.factor + int(state.id[:2], 16))
        return state


def test_dagger_style_states_and_recipes_are_re_executed_bit_for_bit(exp_dir):
    exp = pl.Experiment(exp_dir, KwargsState)
    Scale(3)(exp.spawn_new_tree(width=4))
    exp.run(quiet=True)
    report = verify(pl.Experiment(exp_dir, KwargsState))
    assert [r["outcome"] for r in report.rows] == ["identical"] * 2, report.rows
