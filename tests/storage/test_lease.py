"""Leases with real processes: concurrent drivers, killed drivers, stale holders, Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import prunelab as pl
from helpers import MLPState

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "fanout.py"


def start(directory, log, *args, env=None):
    return subprocess.Popen([sys.executable, str(SCRIPT), str(directory), str(log), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})


def wait_for(path: Path, process: subprocess.Popen) -> None:
    """Wait for a file the child creates (an event, not a timed sleep), failing if the child dies."""
    import time

    while not path.exists():
        if process.poll() is not None:
            raise AssertionError(f"the driver exited early: {process.stderr.read()}")
        time.sleep(0.01)


def test_two_drivers_started_together_compute_each_state_once(tmp_path):
    log, go = tmp_path / "log", tmp_path / "go"
    drivers = [start(tmp_path / "exp", log, "--go", str(go)) for _ in range(2)]
    for driver in drivers:
        assert driver.stdout.readline().strip() == "ready"
    go.touch()
    for driver in drivers:
        out, err = driver.communicate(timeout=600)
        assert driver.returncode == 0, err
        assert "finished" in out
    runs = Counter(line.split()[0] for line in log.read_text().splitlines())
    assert len(runs) == 24 and set(runs.values()) == {1}  # every recipe ran exactly once
    exp = pl.Experiment.restore(tmp_path / "exp", MLPState)
    assert len(exp.graph.nodes) == 25 and all(n.status == "done" for n in exp.graph.nodes)
    assert list((tmp_path / "exp" / "leases").iterdir()) == []


def test_two_drivers_run_each_function_once(tmp_path):
    """A driver that finds a state stored waits on its lease while the other runs the state's functions."""
    log, go = tmp_path / "log", tmp_path / "go"
    drivers = [start(tmp_path / "exp", log, "--go", str(go), "--functions", "--fan", "8") for _ in range(2)]
    for driver in drivers:
        assert driver.stdout.readline().strip() == "ready"
    go.touch()
    for driver in drivers:
        out, err = driver.communicate(timeout=600)
        assert driver.returncode == 0, err
    runs = Counter(line.split()[0] for line in log.read_text().splitlines())
    assert sorted(runs) == sorted([str(i) for i in range(8)] + [f"f{i}" for i in range(8)])
    assert set(runs.values()) == {1}  # every recipe and every function ran exactly once
    exp = pl.Experiment.restore(tmp_path / "exp", MLPState)
    assert sorted(n.results["logged"]["index"] for n in exp.graph.nodes if n.depth == 1) == list(range(8))
    assert list((tmp_path / "exp" / "leases").iterdir()) == []


def test_a_killed_drivers_lease_is_taken_over_at_once(tmp_path):
    log, started = tmp_path / "log", tmp_path / "started"
    driver = start(tmp_path / "exp", log, "--block-at", "5", "--started", str(started), "--fan", "8")
    wait_for(started, driver)
    driver.send_signal(signal.SIGKILL)
    driver.communicate()
    leases = [p for p in (tmp_path / "exp" / "leases").iterdir() if not p.name.startswith("run.")]
    runs = [p for p in (tmp_path / "exp" / "leases").iterdir() if p.name.startswith("run.")]
    # the blocked state's lease, and those of states computed but not yet published by the publishing helper
    assert 1 <= len(leases) <= 6 and {json.loads(p.read_text())["pid"] for p in leases} == {driver.pid}
    assert len(runs) == 1 and json.loads(runs[0].read_text())["pid"] == driver.pid  # its run lease, left too
    # a long timeout: only the dead-pid rule can let this run finish in the test's time
    rerun = start(tmp_path / "exp", log, "--fan", "8", env={"PRUNELAB_LEASE_TIMEOUT": "3600"})
    out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    assert all(n.status == "done" for n in pl.Experiment.restore(tmp_path / "exp", MLPState).graph.nodes)


def test_a_lease_that_stops_beating_is_taken_over_after_the_timeout(tmp_path):
    exp = pl.Experiment(tmp_path / "exp", MLPState)
    node = exp.spawn_new_tree(width=8, replicate=0)
    folder = tmp_path / "exp" / "leases"
    folder.mkdir()
    forged = {"host": "another-host.example", "pid": 1, "token": "x", "counter": 7}
    (folder / f"{node.id}.lease").write_text(json.dumps(forged))
    log = tmp_path / "log"
    rerun = start(tmp_path / "exp", log, "--fan", "2", env={"PRUNELAB_LEASE_TIMEOUT": "1"})
    out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    assert len(log.read_text().splitlines()) == 2


def test_ctrl_c_releases_the_lease(tmp_path):
    log, started = tmp_path / "log", tmp_path / "started"
    driver = start(tmp_path / "exp", log, "--block-at", "2", "--started", str(started), "--fan", "4")
    wait_for(started, driver)
    driver.send_signal(signal.SIGINT)
    out, err = driver.communicate(timeout=120)
    assert driver.returncode != 0 and "KeyboardInterrupt" in err
    assert list((tmp_path / "exp" / "leases").iterdir()) == []
    states = list((tmp_path / "exp" / "states").glob("*/*"))
    assert all((s / "meta.json").is_file() for s in states)


CREATE = """
import os, sys, time
sys.path.insert(0, sys.argv[3])
import prunelab as pl
from helpers import MLPState
print("ready", flush=True)
while not os.path.exists(sys.argv[2]):
    time.sleep(0.001)
exp = pl.Experiment(sys.argv[1], MLPState)
print(len(exp.graph.nodes))
"""


def test_drivers_creating_one_new_experiment_at_once_all_open_it(tmp_path):
    go = tmp_path / "go"
    tests = str(Path(__file__).resolve().parents[1])
    drivers = [subprocess.Popen([sys.executable, "-c", CREATE, str(tmp_path / f"exp{i // 2}"), str(go), tests],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(6)]
    for driver in drivers:
        assert driver.stdout.readline().strip() == "ready", driver.stderr.read()
    go.touch()  # pairs race on exp0, exp1, exp2
    for driver in drivers:
        out, err = driver.communicate(timeout=120)
        assert driver.returncode == 0 and out.strip() == "0", err
    for i in range(3):
        assert pl.Experiment.restore(tmp_path / f"exp{i}").info["state_class"] == "MLPState"


def test_threads_of_one_process_hold_the_experiment_lock_one_at_a_time(tmp_path):
    import threading
    import time


    store = pl.Experiment(tmp_path / "exp", MLPState).store
    inside, most = [0], [0]

    def hold():
        with store.lock(), store.lock():  # re-entrant within a thread
            inside[0] += 1
            most[0] = max(most[0], inside[0])
            time.sleep(0.05)
            inside[0] -= 1

    threads = [threading.Thread(target=hold) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert most[0] == 1
