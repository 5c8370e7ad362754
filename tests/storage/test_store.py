"""Storage: round trips across processes, crash safety, corruption, untrusted input, dedupe."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import prunelab as pl
from helpers import MLPState, stored_values
from prunelab.core.records import canonical_json
from prunelab.storage.files import checksum
from prunelab.storage.seal import seal

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "chain.py"
PHASES = ["blobs-written", "record-written", "before-rename", "after-rename", "index-update"]


def run_script(directory, *args, env=None, check=True):
    proc = subprocess.run([sys.executable, str(SCRIPT), str(directory), *args], env={**os.environ, **(env or {})},
                          capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"script failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def results_of(directory):
    exp = pl.Experiment.restore(directory)
    return {n.id: n.results for n in exp.graph.nodes}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The experiment run once, uninterrupted, in one process."""
    directory = tmp_path_factory.mktemp("reference") / "exp"
    run_script(directory)
    return directory


def assert_no_partial_state(directory):
    """Every visible state is complete: its record verifies and, if done, its values load."""
    for folder in (Path(directory) / "states").glob("*/*"):
        assert (folder / "meta.json").is_file(), f"{folder} is visible without a record"
    exp = pl.Experiment.restore(directory, MLPState)
    for node in exp.graph.nodes:
        assert node.status in ("done", "failed")
        if node.status == "done":
            node.restore()


def test_a_chain_run_in_one_go_equals_one_process_per_edge(reference, tmp_path):
    directory = tmp_path / "exp"
    for k in range(7):
        run_script(directory, "--upto", str(k))
    run_script(directory)
    assert stored_values(directory) == stored_values(reference)
    assert results_of(directory) == results_of(reference)


@pytest.mark.parametrize("phase", PHASES)
def test_a_crash_at_each_write_phase_leaves_no_partial_state(reference, tmp_path, phase):
    directory = tmp_path / "exp"
    crashed = run_script(directory, env={"PRUNELAB_CRASH_AT": f"{phase}:4"}, check=False)
    assert crashed.returncode == -signal.SIGKILL, f"phase {phase} was not reached: {crashed.stderr}"
    assert_no_partial_state(directory)
    run_script(directory)
    assert stored_values(directory) == stored_values(reference)
    assert results_of(directory) == results_of(reference)


def test_random_kill_times_leave_no_partial_state(reference, tmp_path):
    rng = random.Random(20261125)
    directory = tmp_path / "exp"
    for attempt in range(10):
        proc = subprocess.Popen([sys.executable, "-c", _KILLABLE, str(SCRIPT), str(directory)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"  # imports done: the run starts now
        try:
            proc.wait(timeout=rng.uniform(0.0, 0.4))
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
        assert_no_partial_state(directory)
    run_script(directory)
    assert stored_values(directory) == stored_values(reference)


_KILLABLE = """
import runpy, sys
sys.argv = sys.argv[1:]
sys.path.insert(0, str(__import__('pathlib').Path(sys.argv[0]).resolve().parents[1]))
import torch, prunelab, helpers  # the slow imports, before saying ready
print("ready", flush=True)
runpy.run_path(sys.argv[0], run_name="__main__")
"""


# -------------------------------------------------------------- corruption
def flip_byte(path: Path, offset: int = -20) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.fixture
def finished(reference, tmp_path):
    import shutil

    directory = tmp_path / "exp"
    shutil.copytree(reference, directory)
    return directory


def test_a_flipped_byte_in_a_record_names_the_file_and_state(finished):
    exp = pl.Experiment.restore(finished, MLPState)
    victim, other = [n for n in exp.graph.nodes if n.depth == 3][0], [n for n in exp.graph.nodes if n.depth == 5][0]
    path = exp.store.layout.state_dir(victim.id) / "meta.json"
    flip_byte(path)
    with pytest.raises(pl.CorruptStateError, match=f"{path} fails its checksum.*{victim.id[:12]}.*other states are "
                                                   "intact") as info:
        victim.restore()
    assert info.value.state_ids == [victim.id]
    other.restore()


def test_a_flipped_byte_in_a_value_file_names_the_file_and_state(finished):
    exp = pl.Experiment.restore(finished, MLPState)
    victim = [n for n in exp.graph.nodes if n.depth == 2][0]
    path = exp.store.layout.state_dir(victim.id) / "values.json"
    flip_byte(path, 30)
    with pytest.raises(pl.CorruptStateError, match=f"state {victim.id[:12]}: {path} fails its checksum"):
        victim.restore()
    for node in exp.graph.nodes:
        if node.id != victim.id:
            node.restore()


def test_a_flipped_byte_in_a_shared_blob_names_every_user_and_a_rerun_rewrites_it(finished):
    exp = pl.Experiment.restore(finished, MLPState)
    users: dict[str, list[str]] = {}
    for node in exp.graph.nodes:
        for digest in node.record["blobs"]:
            users.setdefault(digest, []).append(node.id)
    digest, sharing = max(users.items(), key=lambda item: len(item[1]))
    assert len(sharing) >= 2
    path = exp.store.layout.blob_path(digest)
    flip_byte(path, 0)
    with pytest.raises(pl.CorruptStateError, match=f"{path} fails its checksum") as info:
        exp.graph.node(sharing[0]).restore()
    assert sorted(info.value.state_ids) == sorted(sharing)
    assert all(u[:12] in str(info.value) for u in sharing)
    intact = [n for n in exp.graph.nodes if digest not in n.record["blobs"] and n.status == "done"]
    assert intact and all(n.restore() is not None for n in intact)
    producer = min((exp.graph.node(i) for i in sharing), key=lambda n: n.depth)  # its parent lacks the blob
    import shutil

    shutil.rmtree(exp.store.layout.state_dir(producer.id))  # what the error message advises
    run_script(finished)  # recomputes only that state, which rewrites the blob
    assert exp.store.layout.blob_path(digest).read_bytes() != b"" and checksum(path.read_bytes()) == digest
    fresh = pl.Experiment.restore(finished, MLPState)
    for node_id in sharing:
        fresh.graph.node(node_id).restore()


# ------------------------------------------------------- untrusted directories
class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def rewrite_values(exp, node, mutate):
    """Rewrite a state's value file and reseal its record, as an attacker could."""
    folder = exp.store.layout.state_dir(node.id)
    values = json.loads((folder / "values.json").read_bytes())
    mutate(values)
    data = canonical_json(values)
    (folder / "values.json").write_bytes(data)
    record = json.loads((folder / "meta.json").read_bytes())
    record["values_checksum"] = checksum(data)
    (folder / "meta.json").write_bytes(seal(record))


def test_a_pickle_payload_runs_nothing_without_allow_pickle(finished, tmp_path):
    import pickle

    marker = tmp_path / "pwned"
    payload = pickle.dumps(_Payload(str(marker)))
    exp = pl.Experiment.restore(finished, MLPState)
    node = [n for n in exp.graph.nodes if n.depth == 1][0]
    digest = checksum(payload)
    exp.store.layout.blob_path(digest).parent.mkdir(exist_ok=True)
    exp.store.layout.blob_path(digest).write_bytes(payload)
    rewrite_values(exp, node, lambda values: values.__setitem__("history", ["pickle", digest]))
    with pytest.raises(pl.CorruptStateError, match="attribute 'history' is stored as a pickle.*allow_pickle=True"):
        pl.Experiment.restore(finished, MLPState).graph.node(node.id).restore()
    assert not marker.exists()
    trusting = pl.Experiment.restore(finished, MLPState, allow_pickle=True)
    trusting.graph.node(node.id).restore()
    assert marker.exists()  # the payload was real: only the explicit opt-in ran it


def test_a_blob_reference_outside_the_store_is_refused(finished, tmp_path):
    exp = pl.Experiment.restore(finished, MLPState)
    node = [n for n in exp.graph.nodes if n.depth == 1][0]

    def escape(values):
        values["history"] = ["bytes", "../../../../etc/passwd"]

    rewrite_values(exp, node, escape)
    with pytest.raises(pl.CorruptStateError, match="blob reference '../../../../etc/passwd' is not a 32-hex-digit"):
        pl.Experiment.restore(finished, MLPState).graph.node(node.id).restore()


def test_restoring_never_imports_a_module_the_directory_names(finished, tmp_path, monkeypatch):
    marker = tmp_path / "imported"
    (tmp_path / "evil_state_module.py").write_text(f"open({str(marker)!r}, 'w').close()\nclass State: pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    info = json.loads((finished / "experiment.json").read_text())
    (finished / "experiment.json").write_text(json.dumps({**info, "state_class": "evil_state_module.State"}))
    exp = pl.Experiment.restore(finished)
    assert exp.state_class is None and len(exp.graph.nodes) == 10
    assert "evil_state_module" not in sys.modules and not marker.exists()
    with pytest.raises(pl.StateDefinitionError, match="pass state_class="):
        exp.graph.nodes[0].restore()


# ------------------------------------------------------------------ dedupe
class LeNetState(pl.ExperimentState):
    PROPERTIES = ["name"]
    NONHASHED_ATTRIBUTES = ["model"]

    def initialize_state(self):
        self.model = nn.Sequential(nn.Flatten(), nn.Linear(784, 300), nn.ReLU(), nn.Linear(300, 100), nn.ReLU(),
                                   nn.Linear(100, 10))


class ScaleLayer(pl.Recipe):
    PROPERTIES = ["layer", "factor"]

    def run(self, state):
        with torch.no_grad():
            state.model[self.layer].weight.mul_(self.factor)
        return state


def test_unchanged_tensors_are_stored_once(exp_dir):
    exp = pl.Experiment(exp_dir, LeNetState)
    node = exp.spawn_new_tree(name="lenet300100")
    layers = [1, 3, 5] * 4
    for i in range(10):
        node = ScaleLayer(layer=layers[i], factor=1.5)(node)
    exp.run(quiet=True)
    model = node.restore().model
    assert sum(p.numel() for p in model.parameters()) == 266_610
    full = sum(p.numel() * 4 for p in model.parameters())
    changed = sum(model[layers[i]].weight.numel() * 4 for i in range(10))
    on_disk = sum(f.stat().st_size for f in (exp_dir / "blobs").glob("*/*"))
    assert exp.store.counters["blob_bytes_written"] == on_disk == full + changed
    rerun = pl.Experiment(exp_dir, LeNetState)
    rerun.run(quiet=True)
    assert rerun.store.counters["blob_bytes_written"] == 0


def test_a_write_after_an_unindexed_one_does_not_hide_it(tmp_path):
    """A writer that bumped the generation and died before indexing leaves the index stale for good.

    The next writer's own index update must not stamp the index fresh again, or
    the first write would stay missing from every query.
    """
    from helpers import declare_tree

    exp = pl.Experiment(tmp_path / "exp", MLPState)
    root, trained, _ = declare_tree(exp, [0.1])
    exp.run(quiet=True)
    exp.store.logs.append("tags", {"entries": [["+", root.id, "unindexed"]]})  # as if killed before indexing
    exp.add_tag(trained, "later")
    restored = pl.Experiment.restore(tmp_path / "exp", MLPState)
    assert [n.id for n in restored.graph.nodes.filter("unindexed")] == [root.id]
    assert [n.id for n in restored.graph.nodes.filter("later")] == [trained.id]
