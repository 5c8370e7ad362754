"""load_pruned_state_dict's direct copy: the same result as ``load_state_dict``, which it defers to for anything special."""

import pytest
import torch
from torch import nn

from prunelab.prune import copy_model, load_pruned_state_dict, prune_model
from prunelab.prune.copying import _copy_values_in
from prunelab.zoo import build_model


def _equal_state(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(keep_vars=True), b.state_dict(keep_vars=True)
    assert list(sa) == list(sb)
    for key in sa:
        assert torch.equal(sa[key], sb[key]) and sa[key].dtype == sb[key].dtype, key
        assert sa[key].requires_grad == sb[key].requires_grad, key


@pytest.mark.parametrize("name,shape", [("lenet5", (1, 8, 8)), ("resnet20", (3, 32, 32)), ("vgg11", (3, 32, 32)),
                                        ("resnet56", (3, 16, 16)), ("wrn16_8", (3, 8, 8))])
def test_loading_a_pruned_state_equals_torch_loading_it(name, shape):
    torch.manual_seed(0)
    source = build_model(name, shape, 10)
    prune_model(source, "l1_structured", amount=0.3)
    source.train()(torch.randn(4, *shape))  # batch-norm statistics and counters move
    fast = copy_model(source)  # same layout: every tensor copied in place, without load_state_dict
    assert _copy_values_in(copy_model(source), source.state_dict())
    with torch.no_grad():
        for tensor in fast.state_dict().values():
            tensor.zero_()
    load_pruned_state_dict(fast, source.state_dict())
    _equal_state(fast, source)
    x = torch.randn(2, *shape)
    assert torch.equal(fast.eval()(x), source.eval()(x))
    assert fast.state_dict()[next(iter(fast.state_dict()))].data_ptr() != source.state_dict()[
        next(iter(source.state_dict()))].data_ptr()


class _Hooked(nn.Linear):
    loaded = 0

    def _load_from_state_dict(self, *args, **kwargs):  # noqa: ANN002, ANN003 - torch's signature
        type(self).loaded += 1
        super()._load_from_state_dict(*args, **kwargs)


def test_a_module_with_its_own_loader_is_loaded_by_torch():
    source, target = nn.Sequential(_Hooked(3, 2)), nn.Sequential(_Hooked(3, 2))
    load_pruned_state_dict(target, source.state_dict())
    assert _Hooked.loaded == 1
    _equal_state(target, source)


def test_a_load_hook_runs():
    calls = []
    source, target = nn.Linear(3, 2), nn.Linear(3, 2)
    target.register_load_state_dict_post_hook(lambda module, keys: calls.append(keys))
    load_pruned_state_dict(target, source.state_dict())
    assert len(calls) == 1
    _equal_state(target, source)


def test_non_persistent_buffers_are_left_alone_and_dtypes_follow_the_model():
    source, target = nn.Linear(3, 2), nn.Linear(3, 2).double()
    target.register_buffer("scratch", torch.full((2,), 7.0), persistent=False)
    load_pruned_state_dict(target, source.state_dict())
    assert target.weight.dtype == torch.float64 and torch.equal(target.weight, source.weight.double())
    assert torch.equal(target.scratch, torch.full((2,), 7.0))


@pytest.mark.parametrize("change", ["shape", "missing", "surplus"])
def test_a_state_dict_that_does_not_fit_gets_torchs_error(change):
    source, target = nn.Linear(3, 2), nn.Linear(3, 2)
    state = dict(source.state_dict())
    if change == "shape":
        state["weight"] = torch.zeros(4, 3)
    elif change == "missing":
        del state["bias"]
    else:
        state["extra"] = torch.zeros(1)
    with pytest.raises(RuntimeError, match="size mismatch|Missing key|Unexpected key"):
        load_pruned_state_dict(target, state)
