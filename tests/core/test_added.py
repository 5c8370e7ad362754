"""Properties added to a class after its states were stored (``pl.added``): left at their defaults, ids stay."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import prunelab as pl
from prunelab.core.identity import child_id, root_id
from prunelab.experiment.verify import verify


class Before(pl.ExperimentState):
    """A state class as first written."""

    NAME = "Net"
    PROPERTIES = {"width": pl.REQUIRED}
    NONHASHED_ATTRIBUTES = ["model"]

    def initialize_state(self):
        self.model = nn.Linear(3, self.width)


class After(Before):
    """The same class with a property added since, and what it changes."""

    NAME = "Net"
    PROPERTIES = {"width": pl.REQUIRED, "bias": pl.added(True)}

    def initialize_state(self):
        self.model = nn.Linear(3, self.width, bias=self.bias)


class Scale(pl.Recipe):
    """Scales the weights; ``shift`` added later."""

    PROPERTIES = {"factor": 2.0}

    def run(self, state):
        with torch.no_grad():
            state.model.weight.mul_(self.factor)
        return state


class ScaleShift(Scale):
    NAME = "Scale"
    PROPERTIES = {"factor": 2.0, "shift": pl.added(0.0)}

    def run(self, state):
        state = super().run(state)
        with torch.no_grad():
            state.model.weight.add_(self.shift)
        return state


def test_a_property_left_at_its_added_default_leaves_the_id_as_it_was(tmp_path):
    old = pl.Experiment(tmp_path / "a", Before).spawn_new_tree(width=4)
    new = pl.Experiment(tmp_path / "b", After)
    assert new.spawn_new_tree(width=4).id == old.id == root_id("Net", {"width": 4})
    assert new.spawn_new_tree(width=4, bias=False).id == root_id("Net", {"width": 4, "bias": False}) != old.id
    assert Scale(factor=3.0)(old).id == ScaleShift(factor=3.0)(new.spawn_new_tree(width=4)).id
    assert ScaleShift(factor=3.0, shift=1.0)(new.spawn_new_tree(width=4)).id == child_id(
        old.id, "Scale", 1, {"factor": 3.0, "shift": 1.0})


def test_the_default_is_compared_by_its_identity_encoding(tmp_path):
    from prunelab.core.state import identity_properties

    # 0 is not 0.0 in ids, so giving shift=0 (an int) is another state than leaving it at 0.0
    assert identity_properties(ScaleShift.PROPERTIES, {"factor": 2.0, "shift": 0.0}) == {"factor": 2.0}
    assert identity_properties(ScaleShift.PROPERTIES, {"factor": 2.0, "shift": 0}) == {"factor": 2.0, "shift": 0}
    root = pl.Experiment(tmp_path / "exp", After).spawn_new_tree(width=4)
    assert ScaleShift(shift=0)(root).id != ScaleShift(shift=0.0)(root).id == ScaleShift()(root).id


def test_states_stored_before_the_property_was_added_are_found_restored_and_verified(tmp_path):
    directory = tmp_path / "exp"
    exp = pl.Experiment(directory, Before)
    done = Scale(factor=3.0)(exp.spawn_new_tree(width=4))
    exp.run(quiet=True)
    weight = done.restore().model.weight.clone()

    later = pl.Experiment(directory, After)
    again = ScaleShift(factor=3.0)(later.spawn_new_tree(width=4))  # both classes have a property added since
    # found by its id; the recipe's code changed, so it shows as stale (kept, never silently recomputed)
    assert again.id == done.id and again.parent.status == "done" and again.status == "stale"
    restored = again.restore()
    assert restored.bias is True and torch.equal(restored.model.weight, weight)
    assert later.run(quiet=True).done == []  # nothing recomputed
    report = verify(later, [again.parent_id, again.id])
    assert [r["outcome"] for r in report.rows] == ["identical", "identical"]
    # a new state left at the defaults reads as the old ones do: no trace of the added property
    fresh = pl.Experiment(directory, After).spawn_new_tree(width=5)
    assert fresh.properties == {"width": 5} and again.parent.properties == {"width": 4}
    assert ScaleShift(factor=5.0)(fresh).record["recipe"]["properties"] == {"factor": 5.0}


def test_an_added_property_given_another_value_is_a_new_state_that_runs(tmp_path):
    exp = pl.Experiment(tmp_path / "exp", After)
    plain, unbiased = exp.spawn_new_tree(width=4), exp.spawn_new_tree(width=4, bias=False)
    exp.run(quiet=True)
    assert plain.restore().model.bias is not None and unbiased.restore().model.bias is None
    assert "bias" not in plain.properties and unbiased.properties["bias"] is False


def test_an_added_default_that_cannot_be_hashed_is_refused_naming_the_property(tmp_path):
    class Bad(pl.ExperimentState):
        PROPERTIES = {"width": pl.REQUIRED, "thing": pl.added(object())}

        def initialize_state(self):
            pass

    with pytest.raises(pl.UnhashableValueError, match="thing"):
        pl.Experiment(tmp_path / "exp", Bad).spawn_new_tree(width=1)
