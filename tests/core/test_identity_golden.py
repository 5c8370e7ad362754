"""Golden ids: any change to the identity encoding must be deliberate.

If one of these fails, the encoding changed and every stored experiment's ids
would change with it: bump ``prunelab.core.identity.SCHEME`` on purpose and
update these values, noting it in the changelog.
"""

import dataclasses
import enum
import math
import pathlib

import numpy as np
import pytest
import torch

from prunelab.core import identity
from prunelab.core.identity import child_id, root_id


class Colour(enum.Enum):
    RED = 1


@dataclasses.dataclass
class Schedule:
    name: str
    steps: tuple


CASES = [
    ("int", lambda: root_id("State", {"a": 1})),
    ("float", lambda: root_id("State", {"a": 1.0})),
    ("bool", lambda: root_id("State", {"a": True})),
    ("str", lambda: root_id("State", {"a": "1"})),
    ("negzero", lambda: root_id("State", {"a": -0.0})),
    ("nan", lambda: root_id("State", {"a": math.nan})),
    ("inf", lambda: root_id("State", {"a": -math.inf})),
    ("none", lambda: root_id("State", {"a": None})),
    ("bytes", lambda: root_id("State", {"a": b"\x00\xff"})),
    ("list", lambda: root_id("State", {"a": [1, "x", 2.5]})),
    ("tuple", lambda: root_id("State", {"a": (1, "x", 2.5)})),
    ("dict", lambda: root_id("State", {"a": {"z": 1, "y": [None]}})),
    ("set", lambda: root_id("State", {"a": {3, 1, 2}})),
    ("frozenset", lambda: root_id("State", {"a": frozenset({"b", "a"})})),
    ("path", lambda: root_id("State", {"a": pathlib.PurePosixPath("data/x.csv")})),
    ("enum", lambda: root_id("State", {"a": Colour.RED})),
    ("dataclass", lambda: root_id("State", {"a": Schedule("cos", (1, 2))})),
    ("ndarray", lambda: root_id("State", {"a": np.arange(4, dtype=np.int32)})),
    ("tensor", lambda: root_id("State", {"a": torch.ones(2, 2)})),
    ("dtype_device", lambda: root_id("State", {"a": [torch.float16, torch.device("cpu")]})),
    ("two_props", lambda: root_id("ModelState", {"dataset_name": "digits", "model_name": "lenet5", "replicate": 0})),
    ("child", lambda: child_id(root_id("State", {"a": 1}), "Train", 1, {"lr": 0.1, "nb_epochs": 3})),
    ("child_v2", lambda: child_id(root_id("State", {"a": 1}), "Train", 2, {"lr": 0.1, "nb_epochs": 3})),
]

GOLDEN = {
    "int": "807c0d9740c7bde50d7edf7f91083090",
    "float": "992617cb9c60e732794b546ea87b839a",
    "bool": "fb8302db8f33ecfbedba86dc48eba834",
    "str": "56de7673322665b54fa8d9db178ae324",
    "negzero": "31e3784f63524c7b2bbebf66dfe086cf",
    "nan": "add57e69d37dc60d639a76b97d3e4ddb",
    "inf": "60d86ba58d46aca5c5e89723286a0d14",
    "none": "e7dffc9a2359174d76b542e60b5fc450",
    "bytes": "0b21c42c7114254520df93467e9f263a",
    "list": "a95d9c5664341b7131af4cb24469d4be",
    "tuple": "8331b1d79d4fadd5e7b494f9748908c4",
    "dict": "a4a2132ab2e382c71fab15c853e90859",
    "set": "cf05514688a6f00a26787529044b48c4",
    "frozenset": "81783e6a4ef14cd2c9a7e1bb20e02361",
    "path": "5e7cbc365cc7ac61d6e5f18dccb14570",
    "enum": "be6abaa366d7ef70386cca957e337ae0",
    "dataclass": "2a4c399a8f2194161cbded7345c4c93f",
    "ndarray": "a7cfe0fdf97f569300834a4ae47be958",
    "tensor": "36098204cf573f1b745a6d9a920a75b6",
    "dtype_device": "dbb0610ca1ad0a45925a6c9e18f17b2a",
    "two_props": "3cde50eace10efe01848af07c03ef76e",
    "child": "27f1e2911cc362152fbf7653502fb0df",
    "child_v2": "03170e98d0cde6cbe2306144c7276e2f",
}


def test_scheme_is_pinned():
    assert identity.SCHEME == 1


@pytest.mark.parametrize("name, make", CASES, ids=[c[0] for c in CASES])
def test_golden_id(name, make):
    assert make() == GOLDEN[name]
