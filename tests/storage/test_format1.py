"""An experiment directory written before the engine was split into layers still opens, verifies and caches.

``tests/data/format1`` was written by commit 8798851 from ``tests/legacy_study.py``; nothing in it may be
rewritten to make this pass. The test works on a copy, so the checked-in bytes stay as they were written.
"""

import hashlib
import shutil
from pathlib import Path

import pytest

import legacy_study
import prunelab as pl
from prunelab.experiment.verify import verify

WRITTEN = Path(__file__).parent.parent / "data" / "format1"
IDS = {"fb477b9ac37aea6ad034c1dd275c1dbf", "5a07b46f1f14d5c53372ac4e009e6268", "3fad6e308dbc98a9c9d4d2a657e8fef9",
       "e19d77b882526facae4b149f49522c82", "8af3e129274379ff3dd7c8bb854a4344", "e78441c427ca24910af88931e32d51d8"}


def _digests(root: Path) -> dict[str, str]:
    """Every stored state, result and blob file, by path."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for folder in ("states", "blobs") for p in sorted((root / folder).rglob("*")) if p.is_file()}


#: The folders the old code made empty, which git cannot carry (it tracks files only).
EMPTY = ("leases", "prereg", "tmp")


@pytest.fixture
def old_dir(tmp_path):
    target = tmp_path / "format1"
    shutil.copytree(WRITTEN, target)
    for folder in EMPTY:
        (target / folder).mkdir(exist_ok=True)
    return target


def test_the_checked_in_directory_is_whole():
    """Every file the old code wrote is tracked, the run manifest included (a ``runs/`` rule once hid it)."""
    assert len(list((WRITTEN / "runs").glob("*.json"))) == 1 and len(list((WRITTEN / "tags").glob("*.json"))) == 1
    assert {p.name for p in WRITTEN.iterdir()} | set(EMPTY) == {
        "blobs", "envs", "experiment.json", "generation", "index.sqlite", "lock", "runs", "states", "tags", *EMPTY}


def test_the_old_directory_opens_with_its_states_tags_and_results(old_dir):
    exp = pl.Experiment.restore(old_dir, state_class=legacy_study.TinyState)
    nodes = exp.graph.nodes
    assert {n.id for n in nodes} == IDS
    assert all(n.status == "done" for n in nodes)
    pruned = nodes.filter("pruned")
    assert len(pruned) == 2 and {n.properties["replicate"] for n in pruned} == {0, 1}
    for node in pruned:
        assert 0.0 <= node.results["score"]["accuracy"] <= 1.0
        weight = node.restore().model[0].weight
        assert int((weight == 0).sum()) == 6  # half of the 4x3 first layer, as Cut(amount=0.5) left it


def test_every_old_state_verifies_identical(old_dir):
    """Bit for bit where this CPU's float kernels are those of the machine that wrote the states (CI's, so far);
    on another CPU generation (e.g. torch dispatching AVX-512 rather than AVX2 kernels) SGD's momentum can
    differ in the last bit, and verify says so: then every state is still within one float32 ulp of its value."""
    exp = pl.Experiment.restore(old_dir, state_class=legacy_study.TinyState)
    report = verify(exp)
    outcomes = {r["id"]: r["outcome"] for r in report.rows}
    assert set(outcomes) == IDS
    if report.ok:
        assert outcomes == dict.fromkeys(IDS, "identical")
        return
    close = verify(exp, atol=1e-6)
    assert close.ok and not close.damaged
    assert {r["outcome"] for r in close.rows} <= {"identical", "close"}
    assert all(r["max_difference"] <= 1.2e-7 for r in report.rows)  # a last-bit difference, not a format error


def test_declaring_the_old_study_again_computes_nothing_and_rewrites_no_state(old_dir):
    before = _digests(old_dir)
    assert len(before) == 6 * 2 + 4 + 26  # meta and values per state, 4 results, 26 blobs
    report = legacy_study.build(str(old_dir)).run()
    assert report.done == [] and report.failed == {}
    assert sorted(report.cached) == sorted(IDS)
    assert _digests(old_dir) == before
