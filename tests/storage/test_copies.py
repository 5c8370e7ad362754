"""Copies before loading: which stored values load into built objects, and seeding a copy by a kept plan."""

from __future__ import annotations

import torch
from torch import nn

from prunelab.prune import prune_model
from prunelab.prune.copying import copy_model
from prunelab.storage.codecs import encode_value
from prunelab.storage.copies import loads_into_current, seed_copy
from prunelab.storage.sources import MemorySource
from prunelab.zoo import build_model


def spec(value):
    return encode_value(value, owner="attribute 'x'").spec


def test_a_module_anywhere_in_a_value_loads_into_the_built_one():
    model = nn.Linear(2, 2)
    for value in (model, [1, model], (model,), {"a": {"b": [0, model]}}, {"k": (1.5, [model])}):
        assert loads_into_current(spec(value)), value


def test_values_without_a_state_dict_are_decoded_from_scratch():
    nested_json = {"stateful": ["stateful", "x"], "lists": [[["stateful"]]], "nan": float("nan")}
    for value in (1, "stateful", [1, [2, ["stateful"]]], nested_json, {"w": torch.ones(3)}, (torch.zeros(2), None)):
        assert not loads_into_current(spec(value)), value


def _stored(model):
    encoded = encode_value(model, owner="attribute 'model'")
    return encoded.spec, MemorySource(encoded.blobs)


def test_a_kept_plan_seeds_copies_of_other_states_of_its_structure_and_only_those():
    torch.manual_seed(0)
    template = prune_model(build_model("lenet5", (1, 8, 8), 10), "l1_unstructured", amount=0.3)
    plans: dict = {}
    for seed, amount in ((1, 0.5), (2, 0.7)):  # other values and masks, the same structure: one plan for both
        torch.manual_seed(seed)
        other = prune_model(build_model("lenet5", (1, 8, 8), 10), "l1_unstructured", amount=amount)
        spec, source = _stored(other)
        memo: dict = {}
        assert seed_copy(template, spec, source, memo, plans)
        copied, expected = copy_model(template, memo), other.state_dict()
        assert list(copied.state_dict()) == list(expected)
        assert all(torch.equal(v, expected[k]) for k, v in copied.state_dict().items())
        assert len(plans) == 1
    unpruned = build_model("lenet5", (1, 8, 8), 10)  # loading it would remove the reparametrisations
    spec, source = _stored(unpruned)
    memo = {}
    assert not seed_copy(template, spec, source, memo, plans) and memo == {}
    assert len(plans) == 2 and not seed_copy(template, spec, source, memo, plans)  # the refusal is kept too
