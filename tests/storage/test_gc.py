"""gc: leftovers, unreferenced blobs, age protection, and --repair."""

import os
import time

import pytest

import prunelab as pl
from helpers import MLPState, Noise, Prune, Train
from prunelab.cli import main


def finished(exp_dir):
    exp = pl.Experiment(exp_dir, MLPState)
    trained = Train(steps=1, lr=0.1)(exp.spawn_new_tree(width=8, replicate=0))
    Prune(amount=0.5)(trained)
    noisy = Noise(scale=0.5)(trained)
    exp.run(quiet=True)
    return exp, noisy


def age(path, seconds=7200):
    past = time.time() - seconds
    for p in [path, *path.rglob("*")] if path.is_dir() else [path]:
        os.utime(p, (past, past), follow_symlinks=False)


def test_gc_deletes_old_leftovers_and_unreferenced_blobs_only(exp_dir):
    exp, noisy = finished(exp_dir)
    exp.remove(noisy)
    leftover = exp_dir / "tmp" / "abandoned.123"
    leftover.mkdir()
    (leftover / "meta.json").write_text("{}")
    young = exp.gc()
    assert young.leftovers == [] and young.unreferenced_blobs == []  # everything is too young
    for path in (exp_dir / "tmp").iterdir():
        age(path)
    for blob in (exp_dir / "blobs").glob("*/*"):
        age(blob)
    dry = exp.gc(dry_run=True)
    assert len(dry.leftovers) == 2 and dry.unreferenced_blobs and leftover.exists()
    report = exp.gc()
    assert sorted(report.leftovers) == sorted(dry.leftovers) and report.bytes_freed > 0
    assert list((exp_dir / "tmp").iterdir()) == []
    for node in pl.Experiment.restore(exp_dir, MLPState).graph.nodes:
        node.restore()  # every kept state still loads


def test_gc_repair_removes_states_using_a_corrupt_blob_and_a_rerun_recomputes_them(exp_dir, capsys):
    exp, _ = finished(exp_dir)
    node = [n for n in exp.graph.nodes if n.depth == 2][0]
    own = sorted(set(node.record["blobs"]) - set(node.parent.record["blobs"]))[0]
    path = exp.store.layout.blob_path(own)
    data = bytearray(path.read_bytes())
    data[0] ^= 1
    path.write_bytes(bytes(data))
    assert main(["gc", str(exp_dir), "--repair"]) == 0
    out = capsys.readouterr().out
    assert "1 corrupt blob(s)" in out and f"removed {node.id[:12]}" in out
    again = pl.Experiment(exp_dir, MLPState)
    trained = Train(steps=1, lr=0.1)(again.spawn_new_tree(width=8, replicate=0))
    Prune(amount=0.5)(trained)
    Noise(scale=0.5)(trained)
    assert len(again.run(quiet=True).done) == 1
    for n in again.graph.nodes:
        n.restore()


def test_gc_on_a_missing_directory_is_a_clear_error(tmp_path, capsys):
    assert main(["gc", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(pl.ExperimentFormatError):
        pl.Experiment.restore(tmp_path / "nope").gc()


def test_gc_keeps_work_in_progress_of_a_leased_state(exp_dir):
    exp, _ = finished(exp_dir)
    node_id = "ab" * 16
    work = exp_dir / "tmp" / f"{node_id}.1234.abcd"
    work.mkdir()
    age(work)
    (exp_dir / "leases").mkdir(exist_ok=True)
    (exp_dir / "leases" / f"{node_id}.lease").write_text("{}")
    assert exp.gc(min_age_s=0).leftovers == [] and work.exists()
    (exp_dir / "leases" / f"{node_id}.lease").unlink()
    assert exp.gc(min_age_s=0).leftovers == [work.name]


def test_a_run_in_the_session_that_repaired_skips_what_gc_set_aside(exp_dir):
    """exp.gc(repair=True) forgets the states it set aside, declared or not; plan() and run() go on without them."""
    exp = pl.Experiment(exp_dir, MLPState)
    trained = Train(steps=1, lr=0.1)(exp.spawn_new_tree(width=8, replicate=0))
    pruned = Prune(amount=0.5)(trained)
    exp.run(quiet=True)
    own = sorted(set(pruned.record["blobs"]) - set(trained.record["blobs"]))[0]
    path = exp.store.layout.blob_path(own)
    path.write_bytes(bytes([path.read_bytes()[0] ^ 1]) + path.read_bytes()[1:])
    report = exp.gc(repair=True, min_age_s=0)
    assert pruned.id in report.states_removed
    assert exp.plan().to_compute == [] and exp.run(quiet=True).done == []  # no KeyError for the forgotten node
    again = pl.Experiment(exp_dir, MLPState)
    Prune(amount=0.5)(Train(steps=1, lr=0.1)(again.spawn_new_tree(width=8, replicate=0)))
    assert again.run(quiet=True).done == [pruned.id]  # re-running the script recomputes it
