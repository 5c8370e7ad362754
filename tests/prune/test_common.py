"""One conformance suite over every registered technique (like sklearn's estimator checks)."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

from conftest import AMOUNT_TECHNIQUES, TECHNIQUES, batch, call_kwargs, small_cnn
from prunelab.prune import PruningWarning, get_masks, load_pruned_state_dict, prune_model, sparsity_report
from prunelab.prune.techniques import get_technique

LAYERS = ["0.weight", "2.weight", "5.weight", "7.weight"]


def prune(model, technique, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PruningWarning)
        return prune_model(model, technique, **{**call_kwargs(technique), **kwargs})


def units(model, technique):
    """Per layer: (removed units, all units), in the technique's unit."""
    structured = get_technique(technique).structured
    out = []
    for name, mask in get_masks(model).items():
        if not name.endswith("weight"):
            continue
        if structured:
            alive = mask.reshape(mask.shape[0], -1).sum(1) != 0
            out.append((int((~alive).sum()), alive.numel()))
        else:
            out.append((int((mask == 0).sum()), mask.numel()))
    return out


@pytest.mark.parametrize("technique", TECHNIQUES)
def test_masks_have_the_shape_and_dtype_of_their_weights_and_the_model_runs(technique, model):
    prune(model, technique, **({} if technique == "nm" else {"amount": 0.3}))
    for path, mask in get_masks(model).items():
        weight = model.get_parameter(path + "_orig")
        assert mask.shape == weight.shape and mask.dtype == weight.dtype
        assert bool(((mask == 0) | (mask == 1)).all())
    out = model(batch()[0])
    assert out.shape == (6, 4) and torch.isfinite(out).all()


@pytest.mark.parametrize("technique", AMOUNT_TECHNIQUES)
def test_masks_only_shrink_over_repeated_calls(technique, model):
    prune(model, technique, amount=0.3)
    first = get_masks(model)
    prune(model, technique, amount=0.3)
    second = get_masks(model)
    for name in first:
        assert bool((second[name] <= first[name]).all())
    assert sum(int((m == 0).sum()) for m in second.values()) > sum(int((m == 0).sum()) for m in first.values())


@pytest.mark.parametrize("technique", AMOUNT_TECHNIQUES)
def test_amount_compounds(technique, model):
    prune(model, technique, amount=0.5)
    prune(model, technique, amount=0.5)
    counts = units(model, technique)
    if get_technique(technique).scope == "layer":
        for removed, total in counts:
            assert abs(removed - 0.75 * total) <= 1.0
    else:
        removed = sum(r for r, _ in counts)
        total = sum(t for _, t in counts)
        assert abs(removed - 0.75 * total) <= 1.0


@pytest.mark.parametrize("technique", AMOUNT_TECHNIQUES)
@pytest.mark.parametrize("target", [0.3, 0.7])
def test_sparsity_hits_its_target_within_one_unit(technique, target, model):
    prune(model, technique, sparsity=target)
    report = sparsity_report(model)
    structured = get_technique(technique).structured
    if get_technique(technique).scope == "layer":
        for row, layer in zip(report.rows, [model[0], model[2], model[5], model[7]]):
            unit = layer.weight.shape[1:].numel() if structured else 1
            assert abs(row["zeros"] - target * row["size"]) <= unit / 2 + 1e-9, row
    else:
        largest = max(m.weight[0].numel() for m in (model[0], model[2], model[5], model[7])) if structured else 1
        total = sum(row["size"] for row in report.rows)
        assert abs(report.sparsity * total - target * total) <= largest / 2 + 1e-9


@pytest.mark.parametrize("technique", TECHNIQUES)
def test_pruned_weights_stay_zero_after_optimizer_steps(technique, model):
    prune(model, technique, **({} if technique == "nm" else {"amount": 0.5}))
    masks = get_masks(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=0.01)
    x, y = batch()
    for _ in range(3):
        loss = nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model(x)
    for path, mask in masks.items():
        module_path, _, name = path.rpartition(".")
        weight = getattr(model.get_submodule(module_path), name)
        assert bool((weight[mask == 0] == 0).all())


@pytest.mark.parametrize("technique", AMOUNT_TECHNIQUES)
def test_a_seeded_generator_gives_the_same_mask(technique):
    masks = []
    for _ in range(2):
        model = small_cnn()
        prune(model, technique, amount=0.4, generator=torch.Generator().manual_seed(3))
        masks.append(get_masks(model))
    assert all(torch.equal(masks[0][k], masks[1][k]) for k in masks[0])


@pytest.mark.parametrize("technique", TECHNIQUES)
def test_a_pruned_state_dict_loads_into_a_fresh_model(technique, model):
    prune(model, technique, **({} if technique == "nm" else {"amount": 0.4}))
    fresh = small_cnn(seed=5)
    load_pruned_state_dict(fresh, model.state_dict())
    x = batch()[0]
    assert torch.equal(fresh(x), model(x))
    plain = small_cnn(seed=6)  # and with nothing but torch.nn.utils.prune on the receiving side
    for path, mask in get_masks(model).items():
        module_path, _, name = path.rpartition(".")
        torch_prune.custom_from_mask(plain.get_submodule(module_path), name, torch.ones_like(mask))
    plain.load_state_dict(model.state_dict())
    assert torch.equal(plain(x), model(x))


@pytest.mark.parametrize("technique", AMOUNT_TECHNIQUES)
def test_failure_leaves_the_model_unchanged(technique, model):
    prune(model, technique, sparsity=0.5)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match="already sparser|masks only shrink"):
        prune(model, technique, sparsity=0.1)
    after = model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


STRUCTURED = [t for t in AMOUNT_TECHNIQUES if get_technique(t).structured]


@pytest.mark.parametrize("technique", STRUCTURED)
def test_structured_techniques_prune_whole_channels_that_output_zero(technique, model):
    prune(model, technique, amount=0.5, parameters=["0.weight", "2.weight", "5.weight"])
    x = batch()[0]
    pruned_channels = 0
    for index in (0, 2, 5):
        layer = model[index]
        mask = layer.weight_mask.reshape(layer.weight_mask.shape[0], -1)
        assert bool(((mask.sum(1) == 0) | (mask.sum(1) == mask.shape[1])).all())  # whole channels only
        dead = (mask.sum(1) == 0).nonzero().squeeze(1)
        pruned_channels += dead.numel()
        if dead.numel():
            assert torch.equal(layer.bias_mask[dead], torch.zeros(dead.numel()))
            out = model[: index + 1](x)
            assert bool((out[:, dead] == 0).all())
    assert pruned_channels > 0


GLOBAL = [t for t in AMOUNT_TECHNIQUES if get_technique(t).scope == "global"]


@pytest.mark.parametrize("technique", GLOBAL)
def test_min_density_holds_when_a_layer_is_scaled_down(technique, model):
    with torch.no_grad():
        model[5].weight.mul_(0.01)
    prune(model, technique, sparsity=0.6, min_density=0.3)
    for row in sparsity_report(model).rows:
        assert 1 - row["sparsity"] >= 0.3 - 1e-9, row
    assert abs(sparsity_report(model).sparsity - 0.6) < 0.07


def test_global_techniques_rank_across_layers(model):
    with torch.no_grad():
        model[5].weight.mul_(1e-5)  # now smaller than any weight of the other layers
    prune(model, "global_magnitude", sparsity=0.5)
    report = sparsity_report(model)
    zeros = {row["parameter"]: row["zeros"] for row in report.rows}
    total = sum(row["size"] for row in report.rows)
    assert zeros["5.weight"] == round(0.5 * total)  # every pruned weight comes from the scaled-down layer
    assert zeros["0.weight"] == zeros["2.weight"] == zeros["7.weight"] == 0


def test_nm_keeps_at_most_n_per_block_and_skips_what_m_does_not_divide(model):
    with pytest.warns(PruningWarning, match="nm: skipping 0.weight: its input dimension 3 is not a multiple of m=4"):
        prune_model(model, "nm", n=2, m=4)
    assert not hasattr(model[0], "weight_mask")
    for layer in (model[2], model[5], model[7]):
        weight = layer.weight.detach()
        order = [0, *range(2, weight.dim()), 1]
        blocks = (weight.permute(order).reshape(-1, 4) != 0).sum(1)
        assert int(blocks.max()) <= 2 and float((weight == 0).float().mean()) == pytest.approx(0.5, abs=1e-6)


@pytest.mark.parametrize("technique", TECHNIQUES)
def test_each_technique_documents_its_formula_direction_and_paper(technique):
    doc = type(get_technique(technique)).__doc__
    assert "Notes" in doc and "References" in doc
    assert " go" in doc or "removed" in doc or "kept" in doc, "the selection direction is stated"
