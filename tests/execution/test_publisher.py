"""Publishing from a helper process: same stored bytes, failures that lose nothing, a helper that dies with its run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch

import prunelab as pl
from helpers import MLPState, Train, declare_tree, evaluate, stored_values
from prunelab.storage.index import Index
from prunelab.storage.store import Store

TESTS = Path(__file__).resolve().parents[1]


class WaitingExecutor(pl.LocalExecutor):
    """The local executor, starting to compute only once the publishing helper is up (or known unavailable).

    A plain run publishes in its own process until the helper has started;
    waiting first makes every state of these small runs go through the helper.
    """

    def __init__(self, before=None):
        super().__init__()
        self.before = before
        self.publisher = None

    def _execute(self, tasks, engine, progress, report):
        self.publisher = engine.writer.helper()
        deadline = time.monotonic() + 60
        while self.publisher.phase == "starting":
            self.publisher.ready()
            assert time.monotonic() < deadline, "the publishing helper did not start within 60 s"
            time.sleep(0.01)
        if self.before is not None:
            self.before(self.publisher)
        super()._execute(tasks, engine, progress, report)


class StealLeases(pl.Recipe):
    """Once its two ancestors are stored, takes over every state lease, as a driver judging this one stale would.

    It does so in its first run only (a file in ``directory`` remembers it).
    """

    PROPERTIES = ["directory"]

    def run(self, state):
        marker = Path(self.directory) / "stolen-once"
        if marker.exists():
            return state
        marker.touch()
        deadline = time.monotonic() + 60
        while len(list((Path(self.directory) / "states").glob("*/*"))) < 2:
            assert time.monotonic() < deadline, "the ancestors were not published"
            time.sleep(0.01)
        for path in (Path(self.directory) / "leases").glob("*.lease"):
            if not path.name.startswith("run."):
                path.write_text(json.dumps({"host": "elsewhere.example", "pid": 1, "token": "theirs", "counter": 0}))
        return state


def results_of(directory):
    exp = pl.Experiment.restore(directory)
    return {n.id: n.results for n in exp.graph.nodes}


def state_leases(directory):
    return sorted(p.name for p in (Path(directory) / "leases").glob("*.lease") if not p.name.startswith("run."))


@pytest.fixture(scope="module")
def in_process(tmp_path_factory):
    """The tree run with every state published by the computing process."""
    directory = tmp_path_factory.mktemp("in-process") / "exp"
    exp = pl.Experiment(directory, MLPState)
    declare_tree(exp)
    exp.run(executor=pl.LocalExecutor(pipelined=False), quiet=True)
    return directory


def test_the_helper_publishes_every_state_and_result_exactly_as_the_computing_process_would(tmp_path, in_process):
    executor = WaitingExecutor()
    exp = pl.Experiment(tmp_path / "exp", MLPState)
    declare_tree(exp)
    report = exp.run(executor=executor, quiet=True)
    helper = executor.publisher
    assert helper.phase == "ready" and helper.process.pid != os.getpid() and helper.process.returncode == 0
    assert len(report.done) == 8 and len(report.results) == 4
    assert helper.sequence == 8 + 4  # every state and result went through the helper
    assert stored_values(tmp_path / "exp") == stored_values(in_process)
    assert results_of(tmp_path / "exp") == results_of(in_process)
    assert state_leases(tmp_path / "exp") == []
    assert Index(Store(tmp_path / "exp")).ensure_valid() is False  # the helper kept the index's validity stamps
    assert exp.run(quiet=True).done == []


def test_blinded_results_go_through_the_helper_withheld_as_in_process(tmp_path, in_process):
    from prunelab.analysis import blind, unblind

    exp = pl.Experiment(tmp_path / "exp", MLPState)
    _, _, leaves = declare_tree(exp)
    blind(exp, metrics=["evaluate.loss"], nodes=["scale:*"])
    executor = WaitingExecutor()
    exp.run(executor=executor, quiet=True)
    assert executor.publisher.sequence == 8 + 4
    truth = results_of(in_process)
    for node in leaves:
        assert node.results["evaluate"]["loss"] == "<blinded>"
        assert repr(truth[node.id]["evaluate"]["loss"]) not in exp.store.layout.result_path(node.id, "evaluate", 1).read_text()
    unblind(exp)
    assert results_of(tmp_path / "exp") == truth


class Signal(pl.ExperimentState):
    """A state with a tensor larger than the helper's first shared buffer, and one its recipe leaves alone."""

    PROPERTIES = ["replicate"]
    NONHASHED_ATTRIBUTES = ["signal", "fixed"]

    def initialize_state(self, replicate):
        generator = torch.Generator().manual_seed(replicate)
        self.signal = torch.randn(700_000, generator=generator)  # 2.8 MB
        self.fixed = torch.randn(1_000, generator=generator)


class Smooth(pl.Recipe):
    """Smooths the signal step by step, checkpointing each step; fails after step 3 unless ``marker`` exists."""

    PROPERTIES = ["marker"]

    def run(self, state):
        holder = torch.optim.SGD([torch.zeros(1)], lr=0.1)
        for step in range((self.resume(state, optimizer=holder) or 0) + 1, 7):
            state.signal = (state.signal + torch.roll(state.signal, step)) / 2
            self.checkpoint(state, step, optimizer=holder)
            if step == 3 and not Path(self.marker).exists():
                Path(self.marker).touch()
                raise RuntimeError("fails after its third checkpoint")
        return state


def _checkpointed(directory, marker, executor):
    exp = pl.Experiment(directory, Signal)
    node = Smooth(marker=str(marker))(exp.spawn_new_tree(replicate=0))
    exp.run(executor=executor, quiet=True, raise_on_failure=False)
    record, packed = Store(directory).partials.read_packed(node.id)
    return exp, node, {k: v for k, v in record.items() if k not in ("at", "worker", "digest")}, packed


def test_checkpoints_go_through_the_helper_as_written_in_process_and_resume(tmp_path):
    marker = tmp_path / "failed"
    executor = WaitingExecutor()
    exp, node, record, packed = _checkpointed(tmp_path / "helper", marker, executor)
    assert executor.publisher.sequence == 1 + 3 + 1  # the root, three checkpoints, the failure record
    marker.unlink()
    _, _, alone, alone_packed = _checkpointed(tmp_path / "alone", marker, pl.LocalExecutor(pipelined=False))
    assert (record["step"], record["sequence"]) == (3, 3)
    assert record == alone and packed == alone_packed  # the same checkpoint, but for when and where it was made
    # the parent's tensor is named in blobs/ (the helper was sent it with the root); the changed one is packed
    assert record["values"]["fixed"][1] in record["blobs"] and record["values"]["signal"][1] in packed

    report = exp.run(executor=WaitingExecutor(), quiet=True)
    assert report.done == [node.id]
    assert exp.store.states.read_record(node.id)["resumed"] == [3]
    again = pl.Experiment(tmp_path / "uninterrupted", Signal)
    uninterrupted = Smooth(marker=str(marker))(again.spawn_new_tree(replicate=0))
    again.run(executor=pl.LocalExecutor(pipelined=False), quiet=True)
    assert "resumed" not in again.store.states.read_record(uninterrupted.id)
    assert torch.equal(node.restore().signal, uninterrupted.restore().signal)


def test_a_checkpoint_naming_a_blob_that_is_not_stored_is_refused(tmp_path):
    exp = pl.Experiment(tmp_path / "exp", Signal)
    exp.spawn_new_tree(replicate=0)
    exp.run(quiet=True)
    missing = "0" * 32
    with pytest.raises(pl.CorruptStateError, match=f"blob {missing} of the checkpoint of state {'1' * 12} is not "
                                                   "stored in .*Run again"):
        exp.store.partials.write({"id": "1" * 32, "step": 1, "values": {}}, {}, {missing: 8})
    assert not list(tmp_path.glob("exp/partials/*"))  # nothing written


def test_a_state_whose_lease_was_taken_over_is_not_published_and_is_reported_stored_elsewhere(tmp_path):
    exp = pl.Experiment(tmp_path / "exp", MLPState)
    trained = Train(steps=2, lr=0.1)(exp.spawn_new_tree(width=8, replicate=0))
    stolen = evaluate(StealLeases(directory=tmp_path / "exp")(trained))
    report = exp.run(executor=WaitingExecutor(), quiet=True)
    assert report.elsewhere == [stolen.id] and stolen.id not in report.done and trained.id in report.done
    assert not (tmp_path / "exp" / "states" / stolen.id[:2] / stolen.id).exists()  # nor a folder for its result
    assert f"{stolen.id}.lease" in state_leases(tmp_path / "exp")  # the other holder's, left alone
    for name in state_leases(tmp_path / "exp"):  # that holder gave up: the next run computes the state
        (tmp_path / "exp" / "leases" / name).unlink()
    assert exp.run(quiet=True).done == [stolen.id]
    assert stolen.results["evaluate"]["loss"] > 0


def test_a_failure_in_the_helper_raises_publish_error_and_loses_nothing(tmp_path, in_process):
    exp = pl.Experiment(tmp_path / "exp", MLPState)
    _, _, leaves = declare_tree(exp)
    blocker = tmp_path / "exp" / "states" / leaves[1].id[:2]
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_text("not a folder")  # the helper cannot make this state's folder
    with pytest.raises(pl.PublishError, match="storing failed in the publishing helper") as caught:
        exp.run(executor=WaitingExecutor(), quiet=True)
    assert str(blocker) in str(caught.value) and "re-running computes" in str(caught.value)
    assert state_leases(tmp_path / "exp") == []
    stored = stored_values(tmp_path / "exp")
    assert stored and leaves[1].id not in stored
    assert all(stored[i] == stored_values(in_process)[i] for i in stored)  # what was stored is whole
    blocker.unlink()
    exp.run(quiet=True)
    assert stored_values(tmp_path / "exp") == stored_values(in_process)
    assert results_of(tmp_path / "exp") == results_of(in_process)


def test_a_helper_killed_during_a_run_raises_publish_error_and_the_next_run_completes(tmp_path, in_process):
    def kill(publisher):
        publisher.process.kill()
        publisher.process.wait()

    exp = pl.Experiment(tmp_path / "exp", MLPState)
    declare_tree(exp)
    with pytest.raises(pl.PublishError, match=r"helper died \(exit code -9\).*re-running computes them"):
        exp.run(executor=WaitingExecutor(before=kill), quiet=True)
    assert state_leases(tmp_path / "exp") == []
    exp.run(quiet=True)
    assert stored_values(tmp_path / "exp") == stored_values(in_process)


@pytest.mark.parametrize("preempt", ["TERM", "USR1"])
def test_the_helper_ignores_interrupts_and_preemption_which_are_its_runs_to_handle(tmp_path, in_process, monkeypatch,
                                                                                  preempt):
    def signal_it(publisher):  # what a scheduler's signal to every process of the job does to the helper
        for signum in (signal.SIGINT, signal.SIGTERM, getattr(signal, f"SIG{preempt}")):
            os.kill(publisher.process.pid, signum)
        time.sleep(0.5)
        assert publisher.process.poll() is None, "the helper died of a signal its run handles"

    monkeypatch.setenv("PRUNELAB_PREEMPT_SIGNAL", preempt)
    executor = WaitingExecutor(before=signal_it)
    exp = pl.Experiment(tmp_path / "exp", MLPState)
    declare_tree(exp)
    exp.run(executor=executor, quiet=True)
    assert executor.publisher.sequence == 8 + 4 and executor.publisher.process.returncode == 0
    assert stored_values(tmp_path / "exp") == stored_values(in_process)


@pytest.mark.parametrize("executable, why", [("missing-python", "could not be started"),
                                             ("/bin/false", "exited at start with code 1")])
def test_a_helper_that_cannot_start_leaves_the_run_publishing_in_process(tmp_path, in_process, monkeypatch,
                                                                         executable, why):
    monkeypatch.setattr(sys, "executable", str(tmp_path / executable) if "/" not in executable else executable)
    exp = pl.Experiment(tmp_path / "exp", MLPState)
    declare_tree(exp)
    executor = WaitingExecutor()
    with pytest.warns(pl.PrunelabWarning, match=f"publishing helper is not available: it {why}.*in its own process"):
        report = exp.run(executor=executor, quiet=True)
    assert executor.publisher.phase == "unavailable" and executor.publisher.sequence == 0
    assert len(report.done) == 8
    assert stored_values(tmp_path / "exp") == stored_values(in_process)


class Watching(pl.LocalExecutor):
    """The local executor, noting the publishing helper in use at the end of its run."""

    seen = []

    def _execute(self, tasks, engine, progress, report):
        super()._execute(tasks, engine, progress, report)
        self.seen.append(engine.writer.publisher)


def test_a_run_starts_a_helper_only_when_pipelined_and_with_something_to_store(tmp_path):
    Watching.seen = []
    for name, pipelined in [("in-process", False), ("pipelined", True)]:
        exp = pl.Experiment(tmp_path / name, MLPState)
        declare_tree(exp)
        exp.run(executor=Watching(pipelined=pipelined), quiet=True)
        exp.run(executor=Watching(pipelined=pipelined), quiet=True)  # all stored: nothing to publish
    in_process, _, pipelined, cached = Watching.seen
    assert in_process is None and cached is None
    assert pipelined is not None and pipelined.process.pid != os.getpid()


def test_pipelined_must_be_a_bool():
    with pytest.raises(pl.StateDefinitionError, match=r"LocalExecutor\(pipelined=...\) takes True or False, got 'no'"):
        pl.LocalExecutor(pipelined="no")


DRIVER = """
import sys, time
sys.path.insert(0, sys.argv[2])
import prunelab as pl
from helpers import MLPState

class Slow(pl.Recipe):
    PROPERTIES = ["k"]
    def run(self, state):
        time.sleep(0.2)
        return state

exp = pl.Experiment(sys.argv[1], MLPState)
node = exp.spawn_new_tree(width=8, replicate=0)
for k in range(200):
    node = Slow(k=k)(node)
exp.run(quiet=True)
"""


def command_lines(process):
    """The command line of each child of ``process``, leaving out the children that end (or hide) while we look.

    A child that has just exited is a zombie until its parent reaps it: its
    command line can no longer be read.
    """
    lines = {}
    for child in process.children():
        try:
            lines[child] = " ".join(child.cmdline())
        except (psutil.NoSuchProcess, psutil.AccessDenied):  # ZombieProcess is a NoSuchProcess
            continue
    return lines


def test_listing_children_tolerates_one_that_has_just_exited():
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        deadline = time.monotonic() + 60
        while psutil.Process(ended.pid).status() != psutil.STATUS_ZOMBIE:  # exited, not yet reaped
            assert time.monotonic() < deadline, "the child did not exit"
            time.sleep(0.01)
        running = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
        try:
            lines = command_lines(psutil.Process())
        finally:
            running.communicate()
    finally:
        ended.wait()
    listed = {p.pid: line for p, line in lines.items()}
    assert ended.pid not in listed and "sys.stdin.read()" in listed[running.pid]


def test_the_helper_dies_with_its_run(tmp_path):
    driver = subprocess.Popen([sys.executable, "-c", DRIVER, str(tmp_path / "exp"), str(TESTS)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        helpers = []
        while not helpers:
            assert driver.poll() is None, driver.communicate()
            assert time.monotonic() < deadline, "no publishing helper appeared"
            helpers = [p for p, line in command_lines(psutil.Process(driver.pid)).items()
                       if "prunelab.execution.publisher" in line]
            time.sleep(0.05)
        while not list((tmp_path / "exp" / "states").glob("*/*")):  # the run is publishing
            assert time.monotonic() < deadline, "nothing was published"
            time.sleep(0.05)
        driver.send_signal(signal.SIGKILL)
        driver.wait()
        gone, alive = psutil.wait_procs(helpers, timeout=30)
        assert alive == [] and len(gone) == 1
    finally:
        if driver.poll() is None:
            driver.kill()
        driver.communicate()
