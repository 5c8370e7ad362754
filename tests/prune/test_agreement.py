"""Agreement with torch.nn.utils.prune: exact on tie-free weights, lowest flat index first on ties."""

import pytest
import torch
from torch.nn.utils import prune as torch_prune

from conftest import small_cnn
from prunelab.prune import prune_model

LAYERS = [0, 2, 5, 7]


def masks(model):
    return [getattr(model[i], "weight_mask") for i in LAYERS if hasattr(model[i], "weight_mask")]


@pytest.mark.parametrize("amounts", [[0.3], [0.5, 0.4]])
def test_l1_unstructured_agrees(amounts):
    ours, theirs = small_cnn(), small_cnn()
    for amount in amounts:
        prune_model(ours, "l1_unstructured", amount=amount)
        for i in LAYERS:
            torch_prune.l1_unstructured(theirs[i], "weight", amount=amount)
    assert all(torch.equal(a, b) for a, b in zip(masks(ours), masks(theirs)))


@pytest.mark.parametrize("technique, n", [("l1_structured", 1), ("l2_structured", 2), ("linf_structured", float("inf"))])
@pytest.mark.parametrize("amounts", [[0.25], [0.5, 0.5]])
def test_ln_structured_agrees(technique, n, amounts):
    ours, theirs = small_cnn(), small_cnn()
    for amount in amounts:
        prune_model(ours, technique, amount=amount)
        for i in LAYERS:
            torch_prune.ln_structured(theirs[i], "weight", amount=amount, n=n, dim=0)
    assert all(torch.equal(a, b) for a, b in zip(masks(ours), masks(theirs)))


@pytest.mark.parametrize("amounts", [[0.4], [0.3, 0.5]])
def test_global_magnitude_agrees(amounts):
    ours, theirs = small_cnn(), small_cnn()
    for amount in amounts:
        prune_model(ours, "global_magnitude", amount=amount)
        torch_prune.global_unstructured([(theirs[i], "weight") for i in LAYERS],
                                        pruning_method=torch_prune.L1Unstructured, amount=amount)
    assert all(torch.equal(a, b) for a, b in zip(masks(ours), masks(theirs)))


@pytest.mark.parametrize("own_generator", [False, True])
def test_random_techniques_agree_for_one_generator_state(own_generator):
    for technique, theirs_fn in (("random_unstructured", torch_prune.random_unstructured),
                                 ("random_structured", lambda m, n, amount: torch_prune.random_structured(
                                     m, n, amount=amount, dim=0))):
        ours, theirs = small_cnn(), small_cnn()
        torch.manual_seed(11)
        for i in LAYERS:
            theirs_fn(theirs[i], "weight", amount=0.3)
        for i in LAYERS:
            theirs_fn(theirs[i], "weight", amount=0.3)
        torch.manual_seed(11)
        generator = torch.Generator().manual_seed(11) if own_generator else None
        prune_model(ours, technique, amount=0.3, generator=generator)
        prune_model(ours, technique, amount=0.3, generator=generator)
        assert all(torch.equal(a, b) for a, b in zip(masks(ours), masks(theirs))), technique


def test_ties_go_to_the_lowest_flat_index_first():
    layer = torch.nn.Linear(6, 1, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[2.0, 1.0, -1.0, 1.0, 3.0, 1.0]]))
    model = torch.nn.Sequential(layer)
    prune_model(model, "l1_unstructured", amount=0.5)  # 3 of the four weights of magnitude 1 go
    assert layer.weight_mask.tolist() == [[1.0, 0.0, 0.0, 0.0, 1.0, 1.0]]
    theirs = torch.nn.Linear(6, 1, bias=False)
    with torch.no_grad():
        theirs.weight.copy_(layer.weight_orig)
    torch_prune.l1_unstructured(theirs, "weight", amount=0.5)
    # PyTorch agrees away from the tie: the 2 and the 3 are kept, three of the ones go
    assert theirs.weight_mask[0, [0, 4]].tolist() == [1.0, 1.0] and int(theirs.weight_mask.sum()) == 3


def test_global_ties_go_to_the_earlier_tensor_first():
    first, second = torch.nn.Linear(2, 1, bias=False), torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        first.weight.copy_(torch.tensor([[5.0, 1.0]]))
        second.weight.copy_(torch.tensor([[1.0, 1.0]]))
    model = torch.nn.Sequential(first, second)
    prune_model(model, "global_magnitude", n_prune=2)
    assert first.weight_mask.tolist() == [[1.0, 0.0]] and second.weight_mask.tolist() == [[0.0, 1.0]]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_integer_keys_preserve_the_order_of_floats(dtype):
    from prunelab.prune.selection import ordered_keys

    gen = torch.Generator().manual_seed(0)
    x = torch.cat([torch.randn(1000, generator=gen, dtype=dtype) * 10 ** torch.randint(-30, 30, (1000,),
                                                                                         generator=gen),
                   torch.tensor([0.0, float("inf"), -float("inf"), 1e-45, -1e-45], dtype=dtype)])
    keys = ordered_keys(x.clone(), torch.ones(len(x), dtype=torch.bool))
    assert torch.equal(x[torch.argsort(keys, stable=True)], torch.sort(x, stable=True).values)
