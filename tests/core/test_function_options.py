"""A function's options: its keyword-only parameters with defaults, set per declaration, recorded, not hashed."""

from __future__ import annotations

import pytest

import prunelab as pl
from helpers import MLPState

CALLS: list[dict] = []


@pl.function
def scaled(state, *, factor=1.0, label="plain"):
    CALLS.append({"factor": factor, "label": label})
    return {"width": state.width * factor}


@pytest.fixture(autouse=True)
def _clear_calls():
    CALLS.clear()


def test_the_keyword_only_parameters_with_defaults_are_the_options():
    @pl.function
    def f(state, positional=3, *, required, chosen="a"):
        return None

    assert scaled.options == {"factor": 1.0, "label": "plain"}
    assert f.options == {"chosen": "a"}  # a positional parameter and a keyword without a default are not options


def test_an_option_set_on_a_node_reaches_the_function_and_its_record_but_not_the_results_identity(exp_dir):
    exp = pl.Experiment(exp_dir, MLPState)
    a, b = exp.spawn_new_tree(width=4, replicate=0), exp.spawn_new_tree(width=4, replicate=1)
    scaled(a, factor=2.0)
    scaled(b)
    exp.run(quiet=True)
    assert sorted(CALLS, key=lambda c: c["factor"]) == [{"factor": 1.0, "label": "plain"},
                                                       {"factor": 2.0, "label": "plain"}]
    assert a.results["scaled"] == {"width": 8.0} and b.results["scaled"] == {"width": 4.0}
    assert scaled.options == {"factor": 1.0, "label": "plain"}  # declaring with options leaves the function alone
    records = {r["node_id"]: r for r in exp.index.result_records()}
    assert records[a.id]["options"] == {"factor": 2.0, "label": "plain"}
    assert records[b.id]["options"] == {"factor": 1.0, "label": "plain"}
    # not hashed: the same result under other options is cached, not recomputed
    again = pl.Experiment(exp_dir, MLPState)
    scaled(again.spawn_new_tree(width=4, replicate=0), factor=5.0)
    assert again.run(quiet=True).results == [] and len(CALLS) == 2


def test_an_unknown_option_is_refused_naming_it_and_the_options_there_are(exp_dir):
    exp = pl.Experiment(exp_dir, MLPState)
    node = exp.spawn_new_tree(width=4, replicate=0)
    with pytest.raises(pl.StateDefinitionError, match=r"no option 'scale'.*factor, label"):
        scaled(node, scale=2.0)

    @pl.function
    def bare(state):
        return 1

    with pytest.raises(pl.StateDefinitionError, match=r"no option 'device'.*: none"):
        bare(node, device="cpu")


def test_an_option_that_is_not_json_is_recorded_as_shown_and_passed_as_given(exp_dir):
    import torch

    exp = pl.Experiment(exp_dir, MLPState)
    node = exp.spawn_new_tree(width=4, replicate=0)
    scaled(node, label=torch.device("cpu"))
    exp.run(quiet=True)
    assert CALLS == [{"factor": 1.0, "label": torch.device("cpu")}]
    assert exp.index.result_records()[0]["options"] == {"factor": 1.0, "label": "cpu"}
