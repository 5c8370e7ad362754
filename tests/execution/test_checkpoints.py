"""Checkpoints and resume, with real processes: SIGKILL at random moments, SIGTERM preemption, what is restored.

The recipe is ``tests/scripts/long_run.py``: an MLP on the digits, trained
with dropout, NumPy and ``random`` noise, a shuffling sampler, SGD with
momentum and a learning-rate schedule, checkpointing every step.
"""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import prunelab as pl
from prunelab.core.errors import PREEMPTED_EXIT
from prunelab.storage.files import CRASH_ENV
from prunelab.storage.store import Store

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "long_run.py"


def start(directory, **options):
    env = {**os.environ, "LONG_RUN": json.dumps(options), "PYTHONUNBUFFERED": "1"}
    crash = options.pop("crash", None)
    env["LONG_RUN"] = json.dumps(options)
    env.pop(CRASH_ENV, None)
    if crash:
        env[CRASH_ENV] = crash
    return subprocess.Popen([sys.executable, str(SCRIPT), str(directory)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(directory, **options):
    proc = start(directory, **options)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1]), err


def lines(path):
    return [int(x) for x in Path(path).read_text().split()] if Path(path).exists() else []


def wait_for(predicate, timeout=120.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "the recipe made no progress"
        time.sleep(0.02)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run: its values, series and result are what every resumed run must store."""
    return finish(tmp_path_factory.mktemp("reference") / "exp")[0]


def child_id(directory):
    return next(p.name.split(".")[0] for p in (Path(directory) / "partials").glob("*.ckpt"))


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_sigkill_at_random_moments_resumes_to_the_uninterrupted_state(tmp_path, reference):
    directory, counter = tmp_path / "exp", tmp_path / "steps"
    rng = random.Random(15)
    # Kills inside the partial's write (after its blobs, after its record), then at random moments of steps
    # and checkpoints once the recipe has made progress in this process.
    plan = [("crash", "partial-blobs-written:2"), ("crash", "partial-written:3")] + [("timer", None)] * 8 + [
        ("crash", "partial-blobs-written:4"), ("crash", "partial-written:1")]
    kills, resumed_from = 0, []  # the step of the newest checkpoint after each kill
    for kind, spec in plan:
        before = len(lines(counter))
        proc = start(directory, counter=str(counter), pause=0.01, **({"crash": spec} if kind == "crash" else {}))
        if kind == "timer":
            wait_for(lambda: len(lines(counter)) >= before + 2 or proc.poll() is not None)
            time.sleep(rng.uniform(0.0, 0.03))
            proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=300)
        assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed: lengthen it"
        kills += 1
        store = Store(directory)
        node_id = child_id(directory)
        assert not store.layout.state_dir(node_id).exists()  # a partial is never a state
        partial = store.partials.read(node_id)  # the newest checkpoint is whole, whatever the kill interrupted
        assert partial is not None and partial["step"] >= 1
        resumed_from.append(partial["step"])
    assert kills >= 10
    final, _ = finish(directory, counter=str(counter))
    assert final["resumed"] == resumed_from  # each attempt resumed from the newest checkpoint before it
    assert {k: final[k] for k in ("id", "values", "series", "result")} == \
        {k: reference[k] for k in ("id", "values", "series", "result")}
    assert not list((directory / "partials").glob("*.ckpt"))  # published: the checkpoint went with it
    steps = lines(counter)
    assert max(steps) == 45 and len(steps) > 45  # steps after a kill were redone; none was skipped
    out = subprocess.run([sys.executable, "-m", "prunelab.cli", "verify", str(directory), "--all", "--script",
                          str(SCRIPT)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and "different" not in out.stdout and "identical" in out.stdout, out.stdout


@pytest.mark.slow
@pytest.mark.parametrize("how", ["TERM", "USR1"])
def test_the_preemption_signal_checkpoints_releases_and_exits_75_and_the_rerun_resumes(tmp_path, reference, how):
    directory, counter = tmp_path / "exp", tmp_path / "steps"
    env_signal = {} if how == "TERM" else {"PRUNELAB_PREEMPT_SIGNAL": "USR1"}
    os.environ.update(env_signal)
    try:
        proc = start(directory, counter=str(counter), pause=0.02, every=1000)  # no checkpoint falls due by itself
        wait_for(lambda: len(lines(counter)) >= 7)
        proc.send_signal(getattr(signal, f"SIG{how}"))
        out, err = proc.communicate(timeout=300)
    finally:
        for key in env_signal:
            os.environ.pop(key)
    assert proc.returncode == PREEMPTED_EXIT, err
    assert "preempted: 1 (re-run to resume)" in err
    store = Store(directory)
    node_id = child_id(directory)
    partial = store.partials.read(node_id)
    stopped = partial["step"]
    assert stopped >= 7 and lines(counter)[-1] == stopped  # written at the next checkpoint call, at once
    assert not store.layout.state_dir(node_id).exists()  # not failed: left declared
    assert not [p for p in (directory / "leases").iterdir() if p.name.startswith(node_id)]
    exp = pl.Experiment.restore(directory)
    assert node_id in exp.graph.runs[-1]["declared"] and node_id not in {n.id for n in exp.graph.nodes}
    status = subprocess.run([sys.executable, "-m", "prunelab.cli", "status", str(directory)], capture_output=True,
                            text=True, timeout=120)
    assert f"checkpoint {node_id[:12]} at step {stopped}" in status.stdout and "the next run resumes it" in \
        status.stdout
    final, _ = finish(directory, counter=str(counter), every=1000)
    after = lines(counter)[lines(counter).index(stopped) + 1:]
    assert after == list(range(stopped + 1, 46))  # the steps before the checkpoint were not redone
    assert final["resumed"] == [stopped]
    assert {k: final[k] for k in ("values", "series", "result")} == {k: reference[k] for k in
                                                                    ("values", "series", "result")}


@pytest.mark.slow
@pytest.mark.parametrize("forget", ["optimizer", "scheduler", "sampler", "generators"])
def test_each_restored_part_matters(tmp_path, reference, forget):
    """Leaving one part out of the checkpoint (or reseeding after resuming) stores another state: the
    bitwise equality above holds because each of them is restored."""
    directory = tmp_path / "exp"
    proc = start(directory, forget=forget, crash="partial-written:23")  # mid-epoch (15 steps an epoch), between
    # two decays of the learning rate (every 10 steps)
    proc.communicate(timeout=300)
    assert proc.returncode == -signal.SIGKILL
    final, _ = finish(directory, forget=forget)
    assert final["resumed"] == [23]
    assert final["values"] != reference["values"]


def test_a_checkpoint_of_other_code_or_damaged_is_ignored_with_a_warning(tmp_path, reference):
    directory = tmp_path / "exp"
    proc = start(directory, crash="partial-written:5")
    proc.communicate(timeout=300)
    for path in (directory / "partials").glob("*.ckpt"):  # both slots (steps 4 and 5): their seals no longer hold
        path.write_bytes(path.read_bytes().replace(b'"step":', b'"step":1'))
    final, err = finish(directory)
    assert "is computed from its beginning: its checkpoint cannot be read" in err
    assert final["resumed"] == [] and final["values"] == reference["values"]
