"""On a real single-node SLURM (see tests/slurm.py): examples/slurm's driver and job script.

1. The study computed by Dask workers that are SLURM jobs
   (``DaskExecutor(cluster=dask_jobqueue.SLURMCluster(...))``), each with its
   index in a job-local ``PRUNELAB_INDEX_DIR``, stores bitwise what a
   ``LocalExecutor`` run stores.
2. The job script, ``scancel --signal=TERM``-ed in the middle of a training,
   is requeued (exit status 75) and resumes from its checkpoint; the states
   equal an uninterrupted run's bitwise.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from slurm import start

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "slurm"
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    pytest.importorskip("dask_jobqueue", reason="dask-jobqueue is not installed (pip install 'prunelab[dask]')")
    cluster, why = start(tmp_path_factory.mktemp("slurm"))
    if cluster is None:
        pytest.skip(f"SLURM cannot start here: {why}")
    yield cluster
    cluster.stop()


def driver(directory, env, *args):
    out = subprocess.run([sys.executable, str(EXAMPLE / "driver.py"), str(directory), *args],
                         env={**os.environ, **env}, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1]), out.stderr


def test_a_study_on_slurm_workers_equals_a_local_run_bitwise(slurm, tmp_path):
    settings = {"EPOCHS": "2", "REPLICATES": "2"}
    local, _ = driver(tmp_path / "local", settings)
    index = tmp_path / "driver-index"
    env = {**slurm.env, **settings, "SCHEDULER_HOST": "127.0.0.1", "WORKER_LOGS": str(tmp_path / "workers"),
           "WORKER_MEMORY": "1GB",
           "PRUNELAB_INDEX_DIR": str(index)}
    on_slurm, err = driver(tmp_path / "slurm", env, "--workers", "2")
    assert "prunelab: 8 computed" in err  # 2 roots, 2 trainings, 2 prunings, 2 finetunings
    assert on_slurm == local
    jobs = [p.stem.rsplit("-", 1)[-1] for p in (tmp_path / "workers").glob("*.err")]
    assert len(jobs) == 2, "the workers did not run as SLURM jobs"
    for job in jobs:  # each worker kept its index on its own disk, as the job script's prologue says
        assert list((Path(os.environ.get("TMPDIR", "/tmp")) / f"prunelab-index-{job}").glob("slurm-*.sqlite")), job
    assert list(index.glob("slurm-*.sqlite")) and not (tmp_path / "slurm" / "index.sqlite").exists()


def test_a_preempted_job_is_requeued_and_resumes_from_its_checkpoint(slurm, tmp_path):
    settings = {"EPOCHS": "60", "REPLICATES": "1", "CHECKPOINT_EVERY": "0.2"}
    reference, _ = driver(tmp_path / "reference", settings)
    directory, log = tmp_path / "exp", tmp_path / "job.log"
    env = {**settings, "PYTHON": sys.executable, "PRUNELAB_EXAMPLE_DIR": str(EXAMPLE)}
    job = slurm.run("sbatch", "--parsable", f"--output={log}", f"--export=ALL,{','.join(f'{k}={v}' for k, v in env.items())}",
                    str(EXAMPLE / "job.sh"), str(directory)).strip().split(";")[0]
    partials = directory / "partials"
    deadline = time.monotonic() + 300
    while not (partials.is_dir() and any(partials.glob("*.ckpt"))):  # the first training has checkpointed
        assert time.monotonic() < deadline and slurm.state(job), f"no checkpoint appeared:\n{log.read_text()}"
        time.sleep(0.1)
    slurm.run("scancel", "--signal=TERM", "--full", job)
    slurm.wait_until_gone(job, timeout=600)
    text = log.read_text()
    assert "driver exited with status 75" in text and ", start 2," in text, text + slurm.logs() + slurm.run(
        "scontrol", "show", "job", job, check=False)
    assert "preempted: 1 (re-run to resume)" in text
    assert text.rstrip().endswith("driver exited with status 0"), text
    final = json.loads(next(line for line in reversed(text.splitlines()) if line.startswith("{")))
    assert final == reference
    from prunelab.storage.store import Store

    store = Store(directory)
    resumed = [store.states.read_record(i).get("resumed") for i in final["states"]]
    assert any(resumed), "the requeued job recomputed instead of resuming"
