"""copy_model: what copy.deepcopy gives (and more: pruned modules), by its fast path or deepcopy's."""

import copy

import pytest
import torch
from torch import nn

from prunelab.prune import copy_model, load_pruned_state_dict, prune_model
from prunelab.prune.copying import seed_loaded_copy
from prunelab.zoo import build_model


def _same_as_deepcopy(model: nn.Module, copied: nn.Module) -> None:
    reference = copy.deepcopy(model)
    assert type(copied) is type(reference)
    assert [n for n, _ in copied.named_modules()] == [n for n, _ in reference.named_modules()]
    for (name, a), (_, b), (_, original) in zip(copied.state_dict(keep_vars=True).items(),
                                                reference.state_dict(keep_vars=True).items(),
                                                model.state_dict(keep_vars=True).items()):
        assert type(a) is type(b) and a.requires_grad == b.requires_grad, name
        assert torch.equal(a, b) and a.data_ptr() != original.data_ptr(), name
    for a, b in zip(copied.modules(), reference.modules()):
        plain = {k: v for k, v in vars(b).items() if not k.startswith("_")}
        assert {k: v for k, v in vars(a).items() if not k.startswith("_")} == plain
        assert a.training == b.training


@pytest.mark.parametrize("name,shape", [("lenet5", (1, 8, 8)), ("resnet20", (3, 32, 32)), ("vgg11", (3, 32, 32)),
                                        ("resnet56", (3, 16, 16)), ("wrn16_8", (3, 8, 8))])
def test_a_copy_equals_deepcopy_and_is_independent(name, shape):
    torch.manual_seed(0)
    model = build_model(name, shape, 10).eval()
    copied = copy_model(model)
    _same_as_deepcopy(model, copied)
    x = torch.randn(2, *shape)
    assert torch.equal(copied(x), model(x))
    with torch.no_grad():
        next(copied.parameters()).add_(1.0)
    assert not torch.equal(copied(x), model(x))  # nothing shared


def test_tied_parameters_stay_tied_and_a_shared_memo_ties_other_objects():
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4))
    model[1].weight = model[0].weight
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    memo: dict = {}
    copied = copy_model(model, memo)
    assert copied[1].weight is copied[0].weight and copied[0].weight is not model[0].weight
    copied_optimizer = copy.deepcopy(optimizer, memo)
    assert copied_optimizer.param_groups[0]["params"][0] is copied[0].weight


def test_buffers_sharing_storage_keep_sharing_it():
    module = nn.Module()
    base = torch.arange(6.0)
    module.register_buffer("whole", base)
    module.register_buffer("first", base[:3])
    copied = copy_model(module)
    copied.whole.add_(1)
    assert torch.equal(copied.first, torch.tensor([1.0, 2.0, 3.0])) and torch.equal(base, torch.arange(6.0))


class _Counting(nn.Linear):
    copies = 0

    def __deepcopy__(self, memo):
        type(self).copies += 1
        new = nn.Linear.__new__(type(self))
        new.__dict__.update(copy.deepcopy(self.__dict__, memo))
        return new


def test_a_module_that_customises_copying_is_copied_its_own_way():
    model = nn.Sequential(_Counting(3, 3), nn.ReLU())
    copied = copy_model(model)
    assert _Counting.copies == 1 and isinstance(copied[0], _Counting)
    assert torch.equal(copied[0].weight, model[0].weight) and copied[0].weight is not model[0].weight


def test_tensors_with_gradients_or_attributes_are_copied_by_deepcopy():
    model = nn.Linear(3, 2)
    model.register_buffer("scale", torch.ones(2, requires_grad=True))
    (model(torch.ones(1, 3)) * model.scale).sum().backward()
    model.scale.note = "kept"
    copied, reference = copy_model(model), copy.deepcopy(model)
    assert copied.weight.grad is None and reference.weight.grad is None  # Parameter.__deepcopy__ drops gradients
    assert torch.equal(copied.scale.grad, model.scale.grad) and copied.scale.grad is not model.scale.grad
    assert copied.scale.note == reference.scale.note == "kept"


def test_a_pruned_copy_recomputes_its_weights():
    torch.manual_seed(0)
    model = build_model("lenet5", (1, 8, 8), 10)
    prune_model(model, "l1_unstructured", amount=0.5)
    copied = copy_model(model)
    layer = copied[2]
    assert torch.equal(layer.weight, layer.weight_orig * layer.weight_mask)
    assert layer.weight_orig is not model[2].weight_orig


def test_a_pruned_copy_has_its_own_hooks():
    torch.manual_seed(0)
    model = build_model("lenet5", (1, 8, 8), 10)
    prune_model(model, "l1_structured", amount=0.2)
    copied = copy_model(model)
    for original, copy_ in zip(model.modules(), copied.modules()):
        assert list(original._forward_pre_hooks) == list(copy_._forward_pre_hooks)
        for a, b in zip(original._forward_pre_hooks.values(), copy_._forward_pre_hooks.values()):
            assert a is not b and type(a) is type(b) and list(vars(a)) == list(vars(b))
            for key, value in vars(a).items():
                if isinstance(value, torch.Tensor):  # CustomFromMask's mask: equal, not shared
                    assert torch.equal(value, vars(b)[key]) and value.data_ptr() != vars(b)[key].data_ptr()
                else:
                    assert value == vars(b)[key]
    kinds = {type(h) for m in model.modules() for h in m._forward_pre_hooks.values()}
    prune_model(copied, "l1_structured", amount=0.2)  # a second round on the copy adds to the copy's hooks only
    assert {type(h) for m in model.modules() for h in m._forward_pre_hooks.values()} == kinds
    assert any(type(h).__name__ == "PruningContainer" for m in copied.modules() for h in m._forward_pre_hooks.values())


def test_an_incomplete_copy_leaves_the_masked_weights_to_the_load():
    from prunelab.prune import load_pruned_state_dict

    torch.manual_seed(0)
    model = build_model("lenet5", (1, 8, 8), 10)
    prune_model(model, "l1_unstructured", amount=0.5)
    copied = copy_model(model, complete=False)
    assert copied[2].__dict__["weight"] is None
    load_pruned_state_dict(copied, model.state_dict())
    assert torch.equal(copied[2].weight, model[2].weight)
    x = torch.randn(2, 1, 8, 8)
    assert torch.equal(copied(x), model(x))


def _pruned_pair(name: str = "lenet5", shape: tuple = (1, 8, 8)) -> tuple[nn.Module, dict]:
    """A pruned template, and the state dict of another model pruned the same way (other values and masks)."""
    torch.manual_seed(0)
    template = prune_model(build_model(name, shape, 10), "l1_unstructured", amount=0.3)
    torch.manual_seed(1)
    other = prune_model(build_model(name, shape, 10), "l1_unstructured", amount=0.5)
    return template, {k: v.clone() for k, v in other.state_dict().items()}


@pytest.mark.parametrize("name,shape", [("lenet5", (1, 8, 8)), ("resnet20", (3, 16, 16))])
def test_a_seeded_copy_is_the_loaded_copy_bit_for_bit(name, shape):
    template, stored = _pruned_pair(name, shape)
    memo: dict = {}
    assert seed_loaded_copy(template, stored, memo)
    seeded = copy_model(template, memo)
    loaded = load_pruned_state_dict(copy_model(template, complete=False), stored)
    a, b = seeded.state_dict(keep_vars=True), loaded.state_dict(keep_vars=True)
    assert list(a) == list(b)
    for key in a:
        assert type(a[key]) is type(b[key]) and a[key].requires_grad == b[key].requires_grad, key
        assert torch.equal(a[key], b[key]) and a[key].stride() == b[key].stride(), key
        assert a[key].data_ptr() not in (stored[key].data_ptr(), template.state_dict()[key].data_ptr()), key
    for m, n in zip(seeded.modules(), loaded.modules()):  # masked weights recomputed from the stored values
        if hasattr(n, "weight_mask"):
            assert torch.equal(m.weight, n.weight)
    x = torch.randn(2, *shape)
    assert torch.equal(seeded.eval()(x), loaded.eval()(x))


@pytest.mark.parametrize("change", ["unpruned template", "missing key", "extra key", "dtype", "shape", "load hook",
                                    "non-contiguous"])
def test_a_copy_is_not_seeded_when_loading_would_do_more_than_copy_values(change):
    template, stored = _pruned_pair()
    if change == "unpruned template":  # loading would apply the reparametrisation
        torch.manual_seed(0)
        template = build_model("lenet5", (1, 8, 8), 10)
    elif change == "missing key":
        del stored[next(iter(stored))]
    elif change == "extra key":
        stored["extra"] = torch.zeros(1)
    elif change == "dtype":
        key = next(iter(stored))
        stored[key] = stored[key].double()
    elif change == "shape":
        key = next(k for k in stored if k.endswith("_orig"))
        stored[key] = stored[key].reshape(-1)
    elif change == "load hook":
        template.register_load_state_dict_post_hook(lambda module, keys: None)
    else:
        first = next(m for m in template.modules() if isinstance(m, nn.Linear))
        first.bias = nn.Parameter(torch.zeros(2 * first.bias.numel())[::2])
    memo: dict = {}
    assert not seed_loaded_copy(template, stored, memo)
    assert memo == {}
