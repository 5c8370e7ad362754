"""Which stored values load into the objects initialize_state built: a state dict anywhere inside the value."""

from __future__ import annotations

import torch
from torch import nn

from prunelab.storage.codecs import encode_value
from prunelab.storage.copies import loads_into_current


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
