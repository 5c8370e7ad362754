"""The standard recipes and functions on real data (digits) at small size."""

import math

import pytest
import torch
from torch import nn

import prunelab as pl
from prunelab.prune import Technique, register_technique
from prunelab.recipes import (
    LRRewind,
    ModelState,
    Prune,
    Reinit,
    Rewind,
    Train,
    class_shares,
    evaluate,
    evaluate_split,
    sparsity,
)

ROOT = {"dataset_name": "digits", "model_name": "lenet5", "replicate": 0, "split_seed": 0, "val_fraction": 0.1,
        "imbalance": None}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    exp = pl.Experiment(tmp_path_factory.mktemp("recipes") / "exp", ModelState)
    root = exp.spawn_new_tree(**ROOT)
    class_shares(root)
    evaluate(root)
    trained = Train(epochs=8, lr=0.05, batch_size=32, rewind_epoch=1)(root)
    evaluate(trained)
    pruned = Prune(technique="global_magnitude", amount=0.5, round=1)(trained)
    finetuned = Train(epochs=2, lr=0.01, batch_size=32)(pruned)
    evaluate(finetuned)
    sparsity(finetuned)
    rewound = Rewind(to="init")(pruned)
    late = Rewind(to="snapshot")(pruned)
    reinitialised = Reinit()(pruned)
    lr_rewound = LRRewind(epochs=1, lr=0.05, batch_size=32)(pruned)
    exp.run(quiet=True)
    return {"exp": exp, "root": root, "trained": trained, "pruned": pruned, "finetuned": finetuned,
            "rewound": rewound, "late": late, "reinit": reinitialised, "lr_rewound": lr_rewound}


def test_training_learns_digits_and_records_its_configuration(study):
    before, after = study["root"].results["evaluate"], study["trained"].results["evaluate"]
    assert before["test_accuracy"] < 0.3 < 0.85 < after["test_accuracy"]
    config = study["trained"].restore().train_config
    assert len(config) == 1 and config[0]["epochs"] == 8 and len(config[0]["losses"]) == 8
    assert config[0]["losses"][-1] < config[0]["losses"][0]


def test_class_shares_are_recorded_on_the_root(study):
    shares = study["root"].results["class_shares"]["class_shares"]
    assert len(shares) == 10 and math.isclose(sum(shares), 1.0) and min(shares) > 0.09


def test_prune_lineage_reaches_descendants(study):
    for name in ("pruned", "finetuned", "rewound", "reinit", "lr_rewound"):
        lineage = study[name].lineage
        assert lineage["technique"] == "global_magnitude" and lineage["amount"] == 0.5 and lineage["round"] == 1
    assert study["rewound"].lineage["treatment"] == "rewind" and study["rewound"].lineage["rewind_to"] == "init"
    assert study["reinit"].lineage["treatment"] == "reinit"
    assert study["lr_rewound"].lineage["treatment"] == "lr_rewind"
    assert "treatment" not in study["finetuned"].lineage
    assert study["pruned"].lineage["outcome"] is False and study["finetuned"].lineage["outcome"] is False


def test_finetuning_a_pruned_model_keeps_its_masks(study):
    state = study["finetuned"].restore()
    assert study["finetuned"].results["sparsity"]["sparsity"] == pytest.approx(0.5, abs=1e-3)
    for module in state.model.modules():
        if hasattr(module, "weight_mask"):
            assert bool((module.weight[module.weight_mask == 0] == 0).all())
    assert study["finetuned"].results["evaluate"]["test_accuracy"] > 0.8


def test_rewinding_to_init_and_to_the_snapshot(study):
    pruned = study["pruned"].restore()
    for name, saved in (("rewound", pruned.init_weights), ("late", pruned.rewind_snapshot)):
        state = study[name].restore()
        for path, module in state.model.named_modules():
            if hasattr(module, "weight_mask"):
                assert torch.equal(module.weight, saved[f"{path}.weight"] * module.weight_mask)
                assert torch.equal(module.weight_mask, dict(pruned.model.named_modules())[path].weight_mask)
    assert not torch.equal(pruned.init_weights["0.0.weight"], pruned.rewind_snapshot["0.0.weight"])


def test_reinit_draws_new_surviving_weights(study):
    pruned, fresh = study["pruned"].restore(), study["reinit"].restore()
    assert not torch.equal(fresh.model[0][0].weight_orig, pruned.model[0][0].weight_orig)
    assert torch.equal(fresh.model[0][0].weight_mask, pruned.model[0][0].weight_mask)


class FixedLogits(nn.Module):
    """A 'model' whose outputs are given: logits chosen per sample."""

    def __init__(self, logits):
        super().__init__()
        self.logits = logits

    def forward(self, x):
        return self.logits[x[:, 0].long()]


def test_evaluate_split_on_a_hand_made_case():
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [2.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    x = torch.arange(4, dtype=torch.float32).reshape(4, 1)
    y = torch.tensor([0, 1, 1, 2])
    figures = evaluate_split(FixedLogits(logits), x, y, 3)
    assert figures["accuracy"] == 0.5
    assert figures["per_class_accuracy"] == [1.0, 0.5, 0.0]
    assert figures["per_class_count"] == [1, 2, 1]
    assert figures["confusion"] == [[1, 0, 0], [1, 1, 0], [1, 0, 0]]
    confident = -(torch.softmax(logits[0], 0) * torch.log_softmax(logits[0], 0)).sum().item()
    assert figures["per_class_entropy"][0] == pytest.approx(confident)
    assert figures["per_class_entropy"][2] == pytest.approx(math.log(3))
    per_sample = nn.functional.cross_entropy(logits, y, reduction="none")
    assert figures["per_class_loss"] == pytest.approx([float(per_sample[0]), float(per_sample[1:3].mean()),
                                                       math.log(3)])
    assert figures["predictions"].tolist() == [0, 1, 0, 0]
    assert figures["loss"] == pytest.approx(float(nn.functional.cross_entropy(logits, y)))


def test_bad_recipe_properties_are_refused():
    with pytest.raises(pl.StateDefinitionError, match="Train property 'optimizer' must be one of \\('sgd', 'adam'\\)"):
        Train(optimizer="rmsprop")
    with pytest.raises(pl.StateDefinitionError, match="Train property 'rewind_epoch' must be None or 0..epochs"):
        Train(epochs=2, rewind_epoch=3)
    with pytest.raises(pl.StateDefinitionError, match="Rewind property 'to' must be 'init' or 'snapshot'"):
        Rewind(to="start")


def test_accuracy_is_the_exact_ratio_of_the_counts():
    """342 of 360 correct is 0.95 exactly (a float32 mean gave 0.949999988), per class and overall."""
    y = torch.tensor([0] * 180 + [1] * 180)
    wrong = {*range(9), *range(180, 189)}  # 9 mistakes in each class
    predicted = [1 - int(label) if i in wrong else int(label) for i, label in enumerate(y)]
    logits = nn.functional.one_hot(torch.tensor(predicted), 2).float()
    x = torch.arange(360, dtype=torch.float32).reshape(360, 1)
    figures = evaluate_split(FixedLogits(logits), x, y, 2)
    assert figures["accuracy"] == 0.95
    assert (figures["correct"], figures["count"]) == (342, 360)
    assert figures["per_class_correct"] == [171, 171] and figures["per_class_count"] == [180, 180]
    assert figures["per_class_accuracy"] == [0.95, 0.95]
    assert type(figures["accuracy"]) is float and type(figures["correct"]) is int


SEEN_BATCHES: list[int] = []


@register_technique("test_gradient_magnitude")
class GradientMagnitude(Technique):
    """A user's data-dependent technique: |dL/dw| on the batch it is given."""

    needs_data = True

    def scores(self, targets, context):
        SEEN_BATCHES.append(len(context.inputs))
        loss = nn.functional.cross_entropy(context.model(context.inputs), context.targets)
        return [g.abs() for g in torch.autograd.grad(loss, [t.parameter for t in targets])]


def test_prune_gives_what_the_technique_declares_it_needs(tmp_path):
    """A user's technique registered with needs_data gets a training batch; SynFlow gets the input shape."""
    exp = pl.Experiment(tmp_path / "exp", ModelState)
    root = exp.spawn_new_tree(**ROOT)
    users = Prune(technique="test_gradient_magnitude", amount=0.5, batch_size=48)(root)
    synflow = Prune(technique="synflow", amount=0.5)(root)
    sparsity(users)
    sparsity(synflow)
    exp.run(quiet=True)
    assert SEEN_BATCHES == [48]
    assert users.results["sparsity"]["sparsity"] == pytest.approx(0.5, abs=1e-3)
    assert synflow.results["sparsity"]["sparsity"] == pytest.approx(0.5, abs=1e-3)


#: The fingerprints of the recipes and functions prunelab ships, as every stored state of theirs records them.
#: Changing one marks those states stale: change the code knowingly (and bump VERSION when results change),
#: then update the value here.
SHIPPED_FINGERPRINTS = {
    "LRRewind": "9428dca949c5ba6c", "Prune": "165e56ab302229e3", "Reinit": "d71e0fe2a7fdfecf",
    "Rewind": "e3cab3d1f8af5373", "Train": "fee393f91badd89a",  # issue 17: cohorts checkpoint and resume
    "class_shares": "81e17e317b7c1e75", "evaluate": "75ad578693f67c46",  # issue 16: its device option
    "sparsity": "2356cc7f8160ec54",
}


def test_the_shipped_recipes_and_functions_keep_the_fingerprints_their_states_record():
    import prunelab.recipes as recipes
    from prunelab.core.recipe import fingerprint

    found = {name: fingerprint(getattr(recipes, name).fn if name.islower() else getattr(recipes, name))
             for name in SHIPPED_FINGERPRINTS}
    assert found == SHIPPED_FINGERPRINTS
