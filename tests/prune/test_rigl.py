"""RigL's pieces on small layers, checked by hand: the ERK densities, the drop/grow update, the decay, the checks."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

from prunelab.prune import PruningError, RigL, get_masks
from prunelab.prune.rigl import erk_densities, initial_masks, rigl_update


def test_erk_densities_follow_the_rule_and_keep_small_layers_dense():
    shapes = {"a": (100, 200), "b": (40, 20, 3, 3)}
    densities = erk_densities(shapes, 0.1)
    sizes = {"a": 20000, "b": 7200}
    # d_l = eps * sum(shape) / prod(shape), eps solved so the overall density is 0.1
    eps = 0.1 * 27200 / (300 + 66)
    assert densities["a"] == pytest.approx(eps * 300 / 20000) and densities["b"] == pytest.approx(eps * 66 / 7200)
    assert densities["a"] > densities["b"]  # the convolution, with more weights per unit of its dimensions, is sparser
    assert sum(densities[n] * sizes[n] for n in shapes) == pytest.approx(0.1 * 27200)
    capped = erk_densities({"tiny": (2, 2), "big": (100, 100)}, 0.5)  # tiny's rule density would exceed 1
    assert capped["tiny"] == 1.0 and capped["big"] == pytest.approx((0.5 * 10004 - 4) / 10000)


def test_the_update_drops_the_smallest_alive_and_grows_the_largest_gradients_at_zero():
    layer = nn.Linear(4, 2, bias=False)
    mask = torch.tensor([[1., 1., 1., 0.], [1., 0., 1., 0.]])  # 5 alive, 3 pruned
    torch_prune.custom_from_mask(layer, "weight", mask)
    with torch.no_grad():
        layer.weight_orig.copy_(torch.tensor([[0.5, -0.1, 0.9, 7.0], [-0.3, 5.0, 0.05, 2.0]]))
    layer.weight_orig.grad = torch.tensor([[0.0, 0.2, 0.0, 0.4], [0.0, 0.9, 0.0, 0.1]])
    opt = torch.optim.SGD(layer.parameters(), lr=0.1, momentum=0.9)
    opt.state[layer.weight_orig]["momentum_buffer"] = torch.ones(2, 4)
    model = nn.Sequential(layer)
    moved = rigl_update(model, 0.5, opt)  # floor(0.5 * 5) = 2 move
    assert moved == 2
    # dropped: the two alive of smallest |w|: (1, 2) |0.05| and (0, 1) |-0.1|; grown: of the pruned (those two
    # included), the largest |grad|: (1, 1) 0.9 and (0, 3) 0.4
    assert torch.equal(layer.weight_mask, torch.tensor([[1., 0., 1., 1.], [1., 1., 0., 0.]]))
    assert layer.weight_orig[0, 3] == 0 and layer.weight_orig[1, 1] == 0  # grown at zero
    assert layer.weight_orig[0, 0] == 0.5 and layer.weight_orig[0, 2] == 0.9  # the rest untouched
    momentum = opt.state[layer.weight_orig]["momentum_buffer"]
    assert momentum[0, 3] == 0 and momentum[1, 1] == 0 and momentum[0, 0] == 1
    assert int(layer.weight_mask.sum()) == 5  # sparsity kept: as many grown as dropped


def test_the_moved_fraction_decays_with_a_cosine_and_stops_at_end():
    rigl = RigL(0.9, update_every=10, fraction=0.3, end=100)
    assert rigl.moved(0, 100) == 0 and rigl.moved(15, 100) == 0 and rigl.moved(100, 100) == 0
    assert rigl.moved(10, 100) == pytest.approx(0.15 * (1 + math.cos(math.pi * 0.1)))
    assert rigl.moved(50, 100) == pytest.approx(0.15)


def test_initial_masks_are_random_at_the_erk_densities_and_a_pruned_model_is_refused():
    model = nn.Sequential(nn.Linear(64, 100), nn.ReLU(), nn.Linear(100, 10))
    torch.manual_seed(0)
    initial_masks(model, RigL(0.9, 10))
    masks = get_masks(model)
    expected = erk_densities({"0.weight": (100, 64), "2.weight": (10, 100)}, 0.1)
    for name, mask in masks.items():
        assert abs(float(mask.mean()) - expected[name]) <= 1 / mask.numel()
    with pytest.raises(PruningError, match="RigL starts from a dense model, but this one is pruned already"):
        initial_masks(model, RigL(0.9, 10))
    uniform = nn.Sequential(nn.Linear(64, 100), nn.ReLU(), nn.Linear(100, 10))
    initial_masks(uniform, RigL(0.75, 10, distribution="uniform"))
    assert all(float(m.mean()) == 0.25 for m in get_masks(uniform).values())


def test_an_update_needs_the_gradient():
    layer = nn.Linear(4, 2)
    torch_prune.random_unstructured(layer, "weight", amount=0.5)
    with pytest.raises(PruningError, match="RigL needs the gradient of 0.weight; update the masks after "
                                           "loss.backward"):
        rigl_update(nn.Sequential(layer), 0.3)


@pytest.mark.parametrize("kwargs, match", [
    ({"sparsity": 1.0, "update_every": 10}, "RigL sparsity must be a fraction in \\(0, 1\\), got 1.0"),
    ({"sparsity": 0, "update_every": 10}, "RigL sparsity must be a fraction in \\(0, 1\\), got 0"),
    ({"sparsity": 0.9, "update_every": 0}, "RigL update_every must be a positive int \\(optimizer steps\\), got 0"),
    ({"sparsity": 0.9, "update_every": None}, "RigL update_every must be a positive int"),
    ({"sparsity": 0.9, "update_every": 10, "end": 2.5}, "RigL end must be a positive int"),
    ({"sparsity": 0.9, "update_every": 10, "fraction": 0}, "RigL fraction must be in \\(0, 1\\], got 0"),
    ({"sparsity": 0.9, "update_every": 10, "distribution": "er"}, "RigL distribution must be one of"),
])
def test_bad_settings_are_refused_naming_the_field(kwargs, match):
    with pytest.raises(PruningError, match=match):
        RigL(**kwargs)
