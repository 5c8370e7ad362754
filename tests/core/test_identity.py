"""Identity: the canonical encoding, its laws (Hypothesis) and ids of states."""

from __future__ import annotations

import dataclasses
import enum
import math
import os
import pathlib
import struct
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import prunelab as pl
from prunelab.core import identity
from prunelab.core.identity import encode


class Colour(enum.Enum):
    RED = 1
    BLUE = "b"


class Level(enum.IntEnum):
    LOW = 1


@dataclasses.dataclass(frozen=True)
class Schedule:
    name: str
    steps: tuple


# ----------------------------------------------------------------- reference decoder
def _frames(data: bytes):
    pos = 0
    while pos < len(data):
        tag = data[pos:pos + 1]
        (length,) = struct.unpack(">Q", data[pos + 1:pos + 9])
        yield tag, data[pos + 9:pos + 9 + length]
        pos += 9 + length


def decode(data: bytes):
    """Decode one encoded value into its canonical projection (independent of prunelab's code)."""
    ((tag, payload),) = list(_frames(data))
    return _decode(tag, payload)


def _decode_all(payload: bytes):
    return [_decode(t, p) for t, p in _frames(payload)]


def _decode(tag: bytes, p: bytes):
    if tag == b"N":
        return None
    if tag == b"B":
        return p == b"\x01"
    if tag == b"I":
        return int.from_bytes(p, "big", signed=True)
    if tag == b"F":
        return struct.unpack(">d", p)[0]
    if tag == b"S":
        return p.decode("utf-8", "surrogatepass")
    if tag == b"Y":
        return bytes(p)
    if tag == b"L":
        return _decode_all(p)
    if tag == b"T":
        return tuple(_decode_all(p))
    if tag in (b"E", b"Z"):
        return ("set" if tag == b"E" else "frozenset", _decode_all(p))
    if tag == b"D":
        items = _decode_all(p)
        return dict(zip(items[::2], items[1::2]))
    if tag == b"P":
        return ("path", p.decode())
    if tag == b"M":
        name, value = _decode_all(p)
        return ("enum", name, value)
    if tag == b"C":
        name, fields = _decode_all(p)
        return ("dataclass", name, fields)
    if tag in (b"A", b"X"):
        head = list(_frames(p[:-32]))
        dtype, shape = (_decode(t, q) for t, q in head)
        return ("array" if tag == b"A" else "tensor", dtype, shape, p[-32:].hex())
    if tag in (b"G", b"V"):
        return ("torchname", p.decode())
    raise AssertionError(f"unknown tag {tag!r}")


def project(v):
    """The canonical projection the encoding must preserve."""
    if isinstance(v, enum.Enum):
        return ("enum", type(v).__qualname__, project(v.value))
    if isinstance(v, np.generic):
        return project(v.item())
    if isinstance(v, (bool, int, float, str, bytes)) or v is None:
        return v
    if isinstance(v, list):
        return [project(x) for x in v]
    if isinstance(v, tuple):
        return tuple(project(x) for x in v)
    if isinstance(v, (set, frozenset)):
        items = sorted(v, key=encode)
        return ("set" if isinstance(v, set) else "frozenset", [project(x) for x in items])
    if isinstance(v, dict):
        return {k: project(x) for k, x in v.items()}
    if isinstance(v, pathlib.PurePath):
        return ("path", v.as_posix())
    if dataclasses.is_dataclass(v):
        return ("dataclass", type(v).__qualname__, {f.name: project(getattr(v, f.name)) for f in dataclasses.fields(v)})
    if isinstance(v, np.ndarray):
        import hashlib

        data = np.ascontiguousarray(v)
        return ("array", data.dtype.str, tuple(data.shape), hashlib.sha256(data.tobytes()).hexdigest())
    if isinstance(v, torch.Tensor):
        import hashlib

        raw = v.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes() if v.numel() else b""
        return ("tensor", str(v.dtype), tuple(v.shape), hashlib.sha256(raw).hexdigest())
    if isinstance(v, (torch.dtype, torch.device)):
        return ("torchname", str(v))
    raise AssertionError(type(v))


def strict_equal(a, b) -> bool:
    """Equality that also requires equal types (True != 1) and compares floats by bits."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or struct.pack(">d", a) == struct.pack(">d", b)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(strict_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(strict_equal(a[k], b[k]) for k in a)
    return a == b


# ----------------------------------------------------------------- strategies
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True), st.text(), st.binary(max_size=20),
    st.sampled_from(list(Colour) + list(Level)),
    st.builds(pathlib.PurePosixPath, st.text(alphabet="abc/._", min_size=1, max_size=10)),
    st.floats(allow_nan=False, width=32).map(np.float32), st.integers(-100, 100).map(np.int64),
    st.booleans().map(np.bool_),
)
hashables = st.one_of(st.integers(), st.text(max_size=5), st.booleans(), st.none())
arrays = st.builds(lambda xs, dt: np.array(xs, dtype=dt), st.lists(st.integers(-5, 5), max_size=6),
                   st.sampled_from(["int8", "float32", "float64"]))
tensors = st.builds(lambda xs, dt: torch.tensor(xs, dtype=dt), st.lists(st.integers(-5, 5), max_size=6),
                    st.sampled_from([torch.int64, torch.float32, torch.float16]))
values = st.recursive(
    st.one_of(scalars, arrays, tensors, st.sampled_from([torch.float32, torch.device("cpu")])),
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.lists(children, max_size=4).map(tuple),
        st.dictionaries(st.text(max_size=6), children, max_size=4),
        st.frozensets(hashables, max_size=4),
        st.sets(hashables, max_size=4),
        st.builds(Schedule, st.text(max_size=4), st.lists(hashables, max_size=3).map(tuple)),
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(values)
def test_decoding_the_encoding_gives_the_canonical_projection(value):
    assert strict_equal(decode(encode(value)), project(value))


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=5), hashables, max_size=6), st.randoms())
def test_dict_and_set_order_do_not_matter(mapping, rnd):
    items = list(mapping.items())
    rnd.shuffle(items)
    assert encode(dict(items)) == encode(mapping)
    keys = list(mapping)
    rnd.shuffle(keys)
    assert encode(set(keys)) == encode(set(mapping))


@settings(max_examples=200, deadline=None)
@given(st.lists(hashables, min_size=2, max_size=5, unique=True))
def test_list_order_matters_and_list_differs_from_tuple(items):
    assert encode(items) != encode(list(reversed(items)))
    assert encode(items) != encode(tuple(items))


@pytest.mark.parametrize(
    "a, b",
    [(1, 1.0), (1, True), (1, "1"), (1.0, True), (1.0, "1"), (True, "1"), (-0.0, 0.0), (1e-9, 2e-9),
     ([1], (1,)), (set(), frozenset()), (b"a", "a"), (Colour.RED, 1), (Level.LOW, 1), (None, 0),
     (pathlib.Path("a"), "a"), (np.float32(0.1), 0.1), (torch.tensor([1.0]), np.array([1.0], dtype="float32"))],
)
def test_distinct_values_have_distinct_encodings(a, b):
    assert encode(a) != encode(b)


@pytest.mark.parametrize("np_value, py_value", [(np.float64(0.1), 0.1), (np.int64(3), 3), (np.bool_(True), True),
                                                (np.float32(0.5), 0.5), (np.linspace(0, 1, 5)[1], 0.25)])
def test_numpy_scalars_equal_their_python_scalar(np_value, py_value):
    assert encode(np_value) == encode(py_value)


def test_every_nan_is_one_value():
    other_nan = struct.unpack(">d", bytes.fromhex("7ff8000000000001"))[0]
    assert encode(float("nan")) == encode(other_nan) == encode(np.float64("nan"))


def test_tensor_identity_is_dtype_shape_and_content():
    t = torch.arange(6, dtype=torch.float32)
    assert encode(t) == encode(t.clone())
    assert encode(t) != encode(t.reshape(2, 3))
    assert encode(t) != encode(t.double())
    assert encode(t.reshape(2, 3).t()) == encode(t.reshape(2, 3).t().contiguous())


def test_unencodable_value_names_its_path():
    with pytest.raises(pl.UnhashableValueError, match=r"'schedule\[2\]\.fn' is a function"):
        identity.encode_property("Train", "schedule", [1, 2, {"fn": len}])
    with pytest.raises(TypeError, match="value is a object"):
        encode(object())


def test_ids_do_not_depend_on_the_hash_seed(tmp_path):
    script = textwrap.dedent("""
        import pathlib, numpy as np
        from prunelab.core.identity import root_id, child_id
        props = {"names": {"alpha", "beta", "gamma", "delta"}, "cfg": {"b": 1, "a": [1.5, None]},
                 "path": pathlib.Path("x/y"), "arr": np.arange(4)}
        r = root_id("State", props)
        print(r, child_id(r, "Train", 1, {"lr": 0.1, "tags": frozenset({"x", "y", "z"})}))
    """)
    outputs = set()
    for seed in ("0", "1", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
        outputs.add(out.stdout.strip())
    assert len(outputs) == 1


# ----------------------------------------------------------------- ids of states
class IdState(pl.ExperimentState):
    PROPERTIES = ["a"]


class StepA(pl.Recipe):
    PROPERTIES = ["x"]

    def run(self, state):
        return state


class StepB(pl.Recipe):
    PROPERTIES = ["x"]

    def run(self, state):
        return state


def test_two_recipe_classes_with_equal_properties_make_different_ids(exp_dir):
    exp = pl.Experiment(exp_dir, IdState)
    root = exp.spawn_new_tree(a=1)
    assert StepA(x=1)(root).id != StepB(x=1)(root).id
    assert StepA(x=1)(root).id == StepA(x=1)(root).id


def test_two_classes_with_one_name_are_refused(exp_dir):
    class Other(pl.Recipe):
        NAME = "StepA"
        PROPERTIES = ["x"]

        def run(self, state):
            return state

    exp = pl.Experiment(exp_dir, IdState)
    root = exp.spawn_new_tree(a=1)
    StepA(x=1)(root)
    with pytest.raises(pl.StateDefinitionError, match="two different recipe classes are named 'StepA'.*set NAME"):
        Other(x=1)(root)


def test_name_attribute_keeps_ids_when_a_class_is_renamed(exp_dir, tmp_path):
    class Renamed(pl.Recipe):
        NAME = "StepA"
        PROPERTIES = ["x"]

        def run(self, state):
            return state

    first = pl.Experiment(exp_dir, IdState)
    second = pl.Experiment(tmp_path / "other", IdState)
    assert StepA(x=1)(first.spawn_new_tree(a=1)).id == Renamed(x=1)(second.spawn_new_tree(a=1)).id


def test_tags_never_change_an_id(exp_dir):
    exp = pl.Experiment(exp_dir, IdState)
    root = exp.spawn_new_tree(a=1)
    plain = StepA(x=1)(root)
    with exp.tag("one"), exp.tag("two"):
        tagged = StepA(x=1)(exp.spawn_new_tree(a=1))
    assert plain is tagged
    assert tagged.tags == {"one", "two"}


def test_a_version_change_changes_the_id(exp_dir):
    class StepV2(StepA):
        NAME = "StepA2"
        VERSION = 1

    class StepV3(StepA):
        NAME = "StepA2"
        VERSION = 2

    one = pl.Experiment(exp_dir, IdState)
    two = pl.Experiment(exp_dir.parent / "two", IdState)
    assert StepV2(x=1)(one.spawn_new_tree(a=1)).id != StepV3(x=1)(two.spawn_new_tree(a=1)).id


def test_unencodable_property_fails_at_application_naming_it():
    with pytest.raises(pl.UnhashableValueError, match=r"StepA property 'x\[0\]' is a function"):
        StepA(x=[lambda: 0])


def test_unencodable_root_property_fails_at_spawn(exp_dir):
    exp = pl.Experiment(exp_dir, IdState)
    with pytest.raises(pl.UnhashableValueError, match=r"IdState property 'a\.key' is a object"):
        exp.spawn_new_tree(a={"key": object()})


class Meddle(pl.Recipe):
    PROPERTIES = []

    def run(self, state):
        state.a = 2
        return state


def test_a_recipe_that_changes_a_property_raises_naming_it(exp_dir):
    exp = pl.Experiment(exp_dir, IdState)
    Meddle()(exp.spawn_new_tree(a=1))
    with pytest.raises(pl.RunError, match="Meddle changed state property 'a' \\(from 1 to 2\\)"):
        exp.run(quiet=True)
