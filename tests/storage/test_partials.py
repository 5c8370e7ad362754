"""Partials on disk: sealed, replaced atomically, invisible to listings, kept or collected by gc."""

import json
import os

import pytest
import torch
from torch import nn

import prunelab as pl
from prunelab.storage.lease import acquire
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
    for node in (done, leased):  # what a crash between the publish and the removal leaves
        partials.write({**kept, "id": node.id}, {})
    assert {n.id for n in exp.graph.nodes if n.status == "done"} >= {done.id, leased.id}
    assert len(exp.graph.nodes) == 5  # two roots, two done, one failed: no checkpoint is a node
    lease = acquire(exp.store.layout.leases, leased.id, lambda: False)
    try:
        report = exp.gc(min_age_s=0)
    finally:
        lease.release()
    assert report.partials_removed == [done.id] and "1 checkpoint(s) of done states removed" in report.summary()
    assert sorted(p.node_id for p in partials.listing()) == sorted([failed.id, leased.id])
    for name in kept["blobs"]:  # the blobs of a kept checkpoint are kept
        assert exp.store.layout.blob_path(name).exists()
    assert exp.gc(min_age_s=0).partials_removed == [leased.id]  # its lease is gone now


def test_a_checkpoint_replaces_the_previous_one_and_is_sealed(tmp_path):
    exp = pl.Experiment(tmp_path / "exp", Net)
    node = Steps(fail=True)(exp.spawn_new_tree(replicate=0))
    exp.run(raise_on_failure=False)
    path = tmp_path / "exp" / "partials" / f"{node.id}.json"
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # one file a state, no temporaries left
    record = json.loads(path.read_bytes())
    record["step"] = 7
    path.write_text(json.dumps(record))
    with pytest.raises(pl.CorruptStateError, match="computed from its beginning instead"):
        exp.store.partials.read(node.id)
    os.unlink(path)
    assert exp.store.partials.read(node.id) is None


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
