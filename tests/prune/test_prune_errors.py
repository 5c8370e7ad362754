"""Bad input gets a clear error and leaves the model unchanged."""

import pytest
import torch
from torch import nn

from conftest import batch
from prunelab.prune import PruningError, prune_model, register_technique
from prunelab.prune.techniques import Technique


def unchanged(model, call, match):
    before = {k: v.clone() for k, v in model.state_dict().items()}
    hooks = [len(m._forward_pre_hooks) for m in model.modules()]
    with pytest.raises(PruningError, match=match):
        call()
    after = model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert hooks == [len(m._forward_pre_hooks) for m in model.modules()]


@pytest.mark.parametrize("kwargs, match", [
    ({"technique": "l1_unstructurd", "amount": 0.5}, "unknown pruning technique 'l1_unstructurd'. Did you mean "
                                                     "'l1_unstructured'\\? Available: global_magnitude, "),
    ({"technique": "l1_unstructured"}, "needs exactly one of amount, n_prune or sparsity; got none"),
    ({"technique": "l1_unstructured", "amount": 0.5, "sparsity": 0.5}, "got amount, sparsity"),
    ({"technique": "l1_unstructured", "amount": 1}, "amount must be a float in \\[0, 1\\], got 1 \\(an int would "
                                                    "be a count: use n_prune=\\)"),
    ({"technique": "l1_unstructured", "amount": 1.5}, "amount must be in \\[0, 1\\], got 1.5"),
    ({"technique": "l1_unstructured", "sparsity": -0.1}, "sparsity must be in \\[0, 1\\], got -0.1"),
    ({"technique": "l1_unstructured", "n_prune": -2}, "n_prune must be a non-negative int, got -2"),
    ({"technique": "l1_unstructured", "n_prune": 10_000}, "cannot prune 10000 units of 0.weight: only 216 remain"),
    ({"technique": "snip", "amount": 0.5}, "snip is data-dependent: pass inputs= and targets="),
    ({"technique": "l1_unstructured", "amount": 0.5, "parameters": ["9.weight"]}, "parameter '9.weight' is not in "
                                                                                  "the model"),
    ({"technique": "l1_unstructured", "amount": 0.5, "parameters": ["0.wieght"]}, "parameter '0.wieght' is not in "
                                                                                  "the model"),
    ({"technique": "l1_unstructured", "amount": 0.5, "min_density": 0.2}, "min_density is for global techniques"),
    ({"technique": "global_magnitude", "sparsity": 0.9, "min_density": 0.5}, "at most .* can go without breaking "
                                                                             "min_density"),
    ({"technique": "nm", "amount": 0.5}, "nm takes no amount"),
    ({"technique": "nm", "n": 5, "m": 4}, "nm needs integers 0 < n <= m, got n=5, m=4"),
    ({"technique": "grasp", "amount": 0.5, "temprature": 2}, "takes no option\\(s\\) \\['temprature'\\]; its "
                                                             "options are \\['temperature'\\]"),
    ({"technique": "synflow", "amount": 0.5}, "synflow needs the input shape"),
])
def test_bad_arguments(model, kwargs, match):
    unchanged(model, lambda: prune_model(model, **kwargs), match)


def test_a_sparsity_below_the_current_one(model):
    prune_model(model, "l1_unstructured", sparsity=0.6)
    unchanged(model, lambda: prune_model(model, "l1_unstructured", sparsity=0.3), "already sparser .* masks only "
                                                                                  "shrink")
    unchanged(model, lambda: prune_model(model, "global_magnitude", sparsity=0.3), "already sparser")


def test_integer_tensors_are_refused():
    model = nn.Sequential(nn.Linear(2, 2))
    model[0].weight = nn.Parameter(torch.ones(2, 2, dtype=torch.int64), requires_grad=False)
    unchanged(model, lambda: prune_model(model, "l1_unstructured", amount=0.5), "parameter '0.weight' is "
                                                                                "torch.int64; pruning needs "
                                                                                "floating-point weights")


def test_a_model_without_prunable_layers():
    model = nn.Sequential(nn.ReLU())
    with pytest.raises(PruningError, match="no parameter to prune: the model has no Conv or Linear weight"):
        prune_model(model, "l1_unstructured", amount=0.5)


def test_nan_scores_are_refused(model):
    x, y = batch()
    bad = torch.full_like(x, float("nan"))
    unchanged(model, lambda: prune_model(model, "snip", amount=0.5, inputs=bad, targets=y), "contain NaN")


def test_registering_requires_a_technique_and_a_free_name():
    with pytest.raises(PruningError, match="needs a Technique subclass"):
        register_technique("thing")(int)

    class Again(Technique):
        def scores(self, targets, context):
            return [t.weight.abs() for t in targets]

    with pytest.raises(PruningError, match="a technique named 'l1_unstructured' is already registered"):
        register_technique("l1_unstructured")(Again)


def test_a_pruning_error_is_a_value_error_and_a_prunelab_error():
    import prunelab

    assert issubclass(PruningError, ValueError) and issubclass(PruningError, prunelab.PrunelabError)
