"""Partials on disk: sealed, replaced atomically, invisible to listings, kept or collected by gc."""

import os

import pytest
import torch
from torch import nn

import prunelab as pl
from prunelab.storage.codecs import Blob
from prunelab.storage.lease import acquire
from prunelab.storage.store import Store
from prunelab.storage.series import decode_series, encode_series


class Net(pl.ExperimentState):
    PROPERTIES = ["replicate"]
    NONHASHED_ATTRIBUTES = ["model"]

    def initialize_state(self, replicate):
        self.model = nn.Linear(3, 2)


class Steps(pl.Recipe):
    PROPERTIES = {"fail": False}

    def run(self, state):
        opt = torch.optim.SGD(state.model.parameters(), lr=0.1, momentum=0.9)
        for step in range(1, 4):
            state.model(torch.randn(2, 3)).sum().backward()
            opt.step()
            self.checkpoint(state, step, optimizer=opt)
        if self.fail:
            raise RuntimeError("fails after its checkpoints")
        return state


def test_gc_removes_the_checkpoints_of_done_states_only(tmp_path):
    exp = pl.Experiment(tmp_path / "exp", Net)
    root = exp.spawn_new_tree(replicate=0)
    done, failed, leased = Steps()(root), Steps(fail=True)(root), Steps()(exp.spawn_new_tree(replicate=1))
    exp.run(raise_on_failure=False)
    partials = exp.store.partials
    assert [p.node_id for p in partials.listing()] == [failed.id]  # a done state's checkpoint goes when published
    kept = partials.read(failed.id)
    assert kept["step"] == 3 and sorted(kept["objects"]) == ["optimizer"]
    _, packed = partials.read_packed(failed.id)
    stored = {name: exp.store.blobs.read(name) for name in kept["blobs"]}
    blobs = {name: Blob(name, memoryview(data), data) for name, data in {**packed, **stored}.items()}
    for node in (done, leased):  # what a crash between the publish and the removal leaves
        partials.write({**kept, "id": node.id}, blobs)
    assert {n.id for n in exp.graph.nodes if n.status == "done"} >= {done.id, leased.id}
    assert len(exp.graph.nodes) == 5  # two roots, two done, one failed: no checkpoint is a node
    lease = acquire(exp.store.layout.leases, leased.id, lambda: False)
    try:
        report = exp.gc(min_age_s=0)
    finally:
        lease.release()
    assert report.partials_removed == [done.id] and "1 checkpoint(s) of done states removed" in report.summary()
    assert sorted(p.node_id for p in partials.listing()) == sorted([failed.id, leased.id])
    assert kept["blobs"]  # the generators Steps does not draw from were unchanged, so moved to blobs/
    for name in kept["blobs"]:  # ... and the blobs of a kept checkpoint are kept
        assert exp.store.layout.blob_path(name).exists()
    assert exp.gc(min_age_s=0).partials_removed == [leased.id]  # its lease is gone now


def test_a_checkpoint_goes_in_the_older_slot_and_a_torn_one_is_passed_over(tmp_path):
    exp = pl.Experiment(tmp_path / "exp", Net)
    node = Steps(fail=True)(exp.spawn_new_tree(replicate=0))
    exp.run(raise_on_failure=False)
    folder = tmp_path / "exp" / "partials"
    newest, older = folder / f"{node.id}.1.ckpt", folder / f"{node.id}.0.ckpt"  # steps 1, 2, 3: slots 1, 0, 1
    assert sorted(p.name for p in folder.iterdir()) == sorted([newest.name, older.name])
    record, packed = Store(tmp_path / "exp").partials.read_packed(node.id)
    assert (record["step"], record["sequence"]) == (3, 3)
    assert sorted(packed) == sorted(name for name, _, _ in record["packed"]) and packed
    for name in packed:  # what changed since the last checkpoint is in the slot, not in blobs/
        assert not exp.store.layout.blob_path(name).exists()
    whole, previous = newest.read_bytes(), older.read_bytes()

    newest.write_bytes(whole[:-10] + bytes(b ^ 0xFF for b in whole[-10:]))  # a crash while overwriting it
    partials = Store(tmp_path / "exp").partials
    record, packed = partials.read_packed(node.id)  # passed over for the other slot, whole
    assert (record["step"], record["sequence"]) == (2, 2)
    partials.write({k: v for k, v in record.items() if k not in ("sequence", "blobs", "packed")},
                   {name: Blob(name, memoryview(data), data) for name, data in packed.items()})
    assert older.read_bytes() == previous  # the resumed-from checkpoint stays whole: the torn slot was written
    assert (partials.read(node.id)["sequence"], Store(tmp_path / "exp").partials.read(node.id)["step"]) == (3, 2)

    for damage, why in [(whole[:-5], "cut short"), (whole + b"x", "bytes after its packed blobs"),
                        (whole[:40], "checkpoint's header"), (whole.replace(b'"step":3', b'"step":7'), "")]:
        older.write_bytes(previous)
        newest.write_bytes(damage)
        assert partials.read(node.id)["step"] == 2  # the other slot
        older.write_bytes(previous[:30])
        with pytest.raises(pl.CorruptStateError, match=f"{why}.*computed from its beginning instead"):
            partials.read(node.id)
    assert partials.remove(node.id) and not list(folder.iterdir())
    assert partials.read(node.id) is None and not partials.remove(node.id)


def test_the_series_blob_round_trips_and_refuses_other_bytes():
    blob = encode_series({"loss": ([0, 1, 2], [0.5, float("nan"), -1.0]), "acc": ([5], [1.0]), "empty": ([], [])})
    decoded = decode_series(bytes(blob.data), "here")
    assert list(decoded) == ["acc", "loss"]
    steps, values = decoded["loss"]
    assert steps.tolist() == [0, 1, 2] and values[0] == 0.5 and values[1] != values[1] and values[2] == -1.0
    assert encode_series({"empty": ([], [])}) is None
    with pytest.raises(pl.CorruptStateError, match="not a series prunelab wrote"):
        decode_series(bytes(blob.data)[:-3], "here")
    with pytest.raises(pl.CorruptStateError, match="not a series prunelab wrote"):
        decode_series(b"\x02\x00\x00\x00{}", "here")


@pytest.mark.parametrize("kind", ["symlink", "fifo"])
def test_a_slot_that_is_not_a_regular_file_is_neither_written_through_nor_read(tmp_path, kind):
    exp = pl.Experiment(tmp_path / "exp", Net)
    node = Steps(fail=True)(exp.spawn_new_tree(replicate=0))
    exp.run(raise_on_failure=False)
    partials = Store(tmp_path / "exp").partials
    record, packed = partials.read_packed(node.id)  # the newest is in slot 1: the next goes over slot 0
    slot = tmp_path / "exp" / "partials" / f"{node.id}.0.ckpt"
    slot.unlink()
    target = tmp_path / "elsewhere"
    target.write_bytes(b"untouched")
    if kind == "symlink":
        slot.symlink_to(target)
    else:
        os.mkfifo(slot)
    with pytest.raises(pl.CorruptStateError, match=f"{slot}.*not the regular file prunelab wrote"):
        partials.write({k: v for k, v in record.items() if k not in ("sequence", "blobs", "packed")},
                       {name: Blob(name, memoryview(data), data) for name, data in packed.items()})
    assert target.read_bytes() == b"untouched"
    assert partials.read(node.id)["step"] == 3  # the other slot is read; this one is not opened through
    assert partials.named_blobs(node.id) == set(record["blobs"])
    (tmp_path / "exp" / "partials" / f"{node.id}.1.ckpt").unlink()
    with pytest.raises(pl.CorruptStateError, match=f"{slot}.*not the regular file prunelab wrote"):
        partials.read(node.id)
