"""Treatments and PyTorch's traps: stale weights, deep copies, reinitialisation, rewinding."""

import math

import pytest
import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

from conftest import batch, sgd_steps
from prunelab.prune import PruningError, copy_model, get_masks, prune_model, reinit, rewind, snapshot


def train(model, steps=3):
    sgd_steps(model, torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9), steps)


def test_re_pruning_after_an_optimizer_step_ranks_the_current_weights(model):
    prune_model(model, "l1_unstructured", amount=0.3)
    train(model)  # no forward pass after the last step: module.weight is stale
    current = model[5].weight_orig.detach() * model[5].weight_mask
    stale = model[5].weight.detach()
    assert not torch.equal(current, stale)
    prune_model(model, "l1_unstructured", amount=0.3, parameters=["5.weight"])
    alive = current[current != 0].abs()
    k = round(0.3 * alive.numel())
    threshold = alive.kthvalue(k).values
    newly = (model[5].weight_mask == 0) & (current != 0)
    assert int(newly.sum()) == k and float(current[newly].abs().max()) <= float(threshold)


def test_copy_model_of_a_pruned_model_is_equal_and_independent(model):
    import copy

    prune_model(model, "l1_unstructured", amount=0.5)
    with pytest.raises(RuntimeError, match="deepcopy"):
        copy.deepcopy(model)  # the trap copy_model avoids
    copied = copy_model(model)
    x = batch()[0]
    assert torch.equal(copied(x), model(x))
    assert all(torch.equal(a, b) for a, b in zip(get_masks(copied).values(), get_masks(model).values()))
    train(copied)
    prune_model(copied, "l1_unstructured", amount=0.5)
    assert torch.equal(model(x), copy_model(model)(x)) and not torch.equal(copied(x), model(x))
    assert int(model[0].weight_mask.sum()) > int(copied[0].weight_mask.sum())


def test_rewind_restores_surviving_weights_exactly_and_keeps_the_mask(model):
    saved = snapshot(model)
    train(model)
    prune_model(model, "l1_unstructured", amount=0.6)
    masks = get_masks(model)
    rewind(model, saved)
    for index in (0, 2, 5, 7):
        layer = model[index]
        mask = masks[f"{index}.weight"]
        assert torch.equal(layer.weight_mask, mask)
        assert torch.equal(layer.weight, saved[f"{index}.weight"] * mask)
        assert torch.equal(layer.bias, saved[f"{index}.bias"])


def test_rewind_refuses_a_snapshot_of_another_architecture(model):
    other = snapshot(nn.Sequential(nn.Linear(3, 3)))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(PruningError, match="the snapshot has no"):
        rewind(model, other)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_reinit_draws_fresh_surviving_weights_from_the_layer_init_and_keeps_the_mask():
    model = nn.Sequential(nn.Linear(400, 300))
    prune_model(model, "l1_unstructured", amount=0.5)
    layer = model[0]
    mask = layer.weight_mask.clone()
    before = layer.weight_orig.detach().clone()
    reinit(model, generator=torch.Generator().manual_seed(0))
    after = layer.weight_orig.detach()
    assert torch.equal(layer.weight_mask, mask)
    assert float((after[mask == 1] == before[mask == 1]).float().mean()) < 0.01  # surviving weights changed
    assert torch.equal(layer.weight, after * mask)
    bound = 1 / math.sqrt(400)  # nn.Linear's kaiming_uniform(a=sqrt(5)) gives U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    assert float(after.abs().max()) <= bound
    assert float(after.std()) == pytest.approx(bound / math.sqrt(3), rel=0.02)
    again = nn.Sequential(nn.Linear(400, 300))
    prune_model(again, "l1_unstructured", amount=0.5)
    with torch.no_grad():
        again[0].weight_orig.copy_(before)
    reinit(again, generator=torch.Generator().manual_seed(0))
    assert torch.equal(again[0].weight_orig, after)  # deterministic for a seed


def test_reinit_does_not_touch_the_transient_weight_only():
    layer = nn.Linear(20, 10)
    torch_prune.l1_unstructured(layer, "weight", amount=0.5)
    before = layer.weight_orig.detach().clone()
    reinit(nn.Sequential(layer))
    assert not torch.equal(layer.weight_orig, before)
    assert torch.equal(layer.weight, layer.weight_orig * layer.weight_mask)


def test_a_restored_module_lists_its_pruned_tensors_in_the_stored_order(tmp_path):
    """Two pruned tensors in one module come back in the stored order, whatever the string hash seed."""
    import os
    import subprocess
    import sys

    layer = nn.Linear(4, 3)
    torch_prune.l1_unstructured(layer, "weight", amount=0.5)
    torch_prune.l1_unstructured(layer, "bias", amount=0.5)
    torch.save(layer.state_dict(), tmp_path / "sd.pt")
    code = ("import sys, torch; from torch import nn; from prunelab.prune import load_pruned_state_dict; "
            "m = load_pruned_state_dict(nn.Linear(4, 3), torch.load(sys.argv[1])); print(list(m.state_dict()))")
    orders = {subprocess.run([sys.executable, "-c", code, str(tmp_path / "sd.pt")], capture_output=True, text=True,
                             check=True, env={**os.environ, "PYTHONHASHSEED": str(seed)}).stdout.strip()
              for seed in range(6)}
    assert orders == {str(list(layer.state_dict()))}
