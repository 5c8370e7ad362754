"""Fast masked training gives the hooks' weights and leaves the model reparametrised."""

import pytest
import torch

from conftest import batch, sgd_steps
from prunelab.prune import copy_model, get_masks, masked_training, prune_model


def steps(model, optimizer, n=5):
    sgd_steps(model, optimizer, n)


@pytest.mark.parametrize("make_optimizer", [
    lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=0.05),
    lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.1),
], ids=["sgd-momentum-wd", "adamw"])
def test_masked_training_matches_hook_training(model, make_optimizer):
    prune_model(model, "l1_unstructured", amount=0.7)
    fast = copy_model(model)
    keys = list(model.state_dict())
    steps(model, make_optimizer(model.parameters()))
    optimizer = make_optimizer(fast.parameters())
    with masked_training(fast, optimizer) as inside:
        assert inside is fast and not any(hasattr(m, "weight_orig") for m in fast.modules())
        assert all(len(m._forward_pre_hooks) == 0 for m in fast.modules())
        steps(fast, optimizer)
    assert list(fast.state_dict()) == keys  # reparametrised again
    for index in (0, 2, 5, 7):
        hooked, baked = model[index], fast[index]
        assert torch.equal(hooked.weight_mask, baked.weight_mask)
        current = hooked.weight_orig * hooked.weight_mask  # hooked.weight is stale until the next forward
        assert torch.allclose(current, baked.weight, atol=1e-6, rtol=0)
        alive = hooked.weight_mask == 1
        assert torch.allclose(hooked.weight_orig[alive], baked.weight_orig[alive], atol=1e-6, rtol=0)
        assert bool((baked.weight[~alive] == 0).all())
    x = batch()[0]
    assert torch.allclose(model(x), fast(x), atol=1e-5)


def test_pruned_entries_of_orig_are_given_back_on_exit(model):
    prune_model(model, "l1_unstructured", amount=0.5)
    hidden = model[0].weight_orig.detach()[model[0].weight_mask == 0].clone()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with masked_training(model, optimizer):
        steps(model, optimizer, 2)
    assert torch.equal(model[0].weight_orig.detach()[model[0].weight_mask == 0], hidden)


def test_the_model_is_restored_even_when_training_fails(model):
    prune_model(model, "l1_unstructured", amount=0.5)
    masks = get_masks(model)
    with pytest.raises(RuntimeError, match="boom"):
        with masked_training(model):
            raise RuntimeError("boom")
    assert all(torch.equal(a, b) for a, b in zip(get_masks(model).values(), masks.values()))
    assert all(hasattr(model[i], "weight_orig") for i in (0, 2, 5, 7))
