"""DaskExecutor with real worker processes: same results as local, failures, lost workers, remote schedulers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import prunelab as pl
from helpers import AddNoise, MLPState, Noisy, Train, declare_tree, stored_values

distributed = pytest.importorskip("distributed", reason="the dask extra is not installed")


@pytest.fixture(scope="module")
def cluster():
    import dask

    with dask.config.set({"distributed.worker.daemon": False}):
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                           dashboard_address=":0")
    yield cluster
    cluster.close()


def test_dask_gives_the_same_ids_and_bytes_as_local(tmp_path):
    local = pl.Experiment(tmp_path / "local", MLPState)
    declare_tree(local)
    local.run(quiet=True)
    remote = pl.Experiment(tmp_path / "dask", MLPState)
    declare_tree(remote)
    report = remote.run(executor=pl.DaskExecutor(n_workers=2), quiet=True)
    assert len(report.done) == 8 and len(report.results) == 4
    assert stored_values(tmp_path / "local") == stored_values(tmp_path / "dask")
    results = {n.id: n.results for n in pl.Experiment.restore(tmp_path / "local").graph.nodes}
    assert results == {n.id: n.results for n in pl.Experiment.restore(tmp_path / "dask").graph.nodes}
    workers = {n.record["worker"] for n in remote.graph.nodes}
    assert all(w.split(":")[1] != str(os.getpid()) for w in workers)  # computed in worker processes


class Explode(pl.Recipe):
    PROPERTIES = []

    def run(self, state):
        raise ArithmeticError("exploded on purpose")


def test_a_failure_on_a_worker_follows_the_local_semantics(tmp_path, cluster):
    exp = pl.Experiment(tmp_path / "exp", MLPState)
    root = exp.spawn_new_tree(width=8, replicate=0)
    bad = Explode()(root)
    below = Train(steps=1, lr=0.1)(bad)
    good = Train(steps=1, lr=0.1)(root)
    with pytest.raises(pl.RunError, match="1 node\\(s\\) failed, 1 skipped") as info:
        exp.run(executor=pl.DaskExecutor(cluster=cluster), quiet=True)
    assert "ArithmeticError: exploded on purpose" in info.value.failed[bad.id]
    assert bad.status == "failed" and "Traceback" in bad.record["error"]
    assert below.status == "skipped" and good.status == "done"


class KillOnce(pl.Recipe):
    """SIGKILL the worker the first time (a side-effect file remembers), then succeed."""

    PROPERTIES = ["flag"]

    def run(self, state):
        if not os.path.exists(self.flag):
            Path(self.flag).write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)
        return state


def test_a_worker_killed_mid_recipe_is_replaced_and_the_run_completes(tmp_path):
    flag = tmp_path / "killed"
    exp = pl.Experiment(tmp_path / "exp", MLPState)
    root = exp.spawn_new_tree(width=8, replicate=0)
    killer = KillOnce(flag=str(flag))(root)
    node = Train(steps=1, lr=0.1)(killer)
    report = exp.run(executor=pl.DaskExecutor(n_workers=1), quiet=True)
    assert flag.exists() and node.status == "done" and report.failed == {}
    assert {killer.id, node.id} <= set(report.done)
    # the root's result lived on the killed worker: Dask may run its task again, which then finds it stored
    assert root.id in report.done or report.elsewhere == [root.id]
    assert list((tmp_path / "exp" / "leases").iterdir()) == []  # the dead worker's lease was taken over
    for folder in (tmp_path / "exp" / "states").glob("*/*"):
        assert (folder / "meta.json").is_file()
    node.restore()


class LoaderRecipe(pl.Recipe):
    """Iterate a DataLoader with two worker processes (needs non-daemonic Dask workers)."""

    PROPERTIES = []

    def run(self, state):
        from torch.utils.data import DataLoader, TensorDataset

        x, y = state.data
        total = 0.0
        for xb, _ in DataLoader(TensorDataset(x, y), batch_size=16, num_workers=2):
            total += float(xb.sum())
        state.history = [*state.history, total]
        return state


def test_a_recipe_can_use_dataloader_workers_on_a_dask_worker(tmp_path, cluster):
    exp = pl.Experiment(tmp_path / "exp", MLPState)
    node = LoaderRecipe()(exp.spawn_new_tree(width=8, replicate=0))
    exp.run(executor=pl.DaskExecutor(cluster=cluster), quiet=True)
    x, _ = node.restore().data
    assert node.restore().history[-1] == pytest.approx(float(x.sum()), rel=1e-5)


def test_a_running_scheduler_and_workers_are_used_through_their_address(tmp_path):
    scheduler_file = tmp_path / "scheduler.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                                        os.environ.get("PYTHONPATH", "")])}
    bin_dir = Path(sys.executable).parent
    processes = [subprocess.Popen([str(bin_dir / "dask"), "scheduler", "--host", "127.0.0.1", "--port", "0",
                                   "--no-dashboard", "--scheduler-file", str(scheduler_file)], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        client = distributed.Client(scheduler_file=str(scheduler_file), timeout=60)  # waits for the file
        address = client.scheduler.address
        for _ in range(2):
            processes.append(subprocess.Popen([str(bin_dir / "dask"), "worker", address, "--nthreads", "1",
                                               "--nworkers", "1", "--no-dashboard", "--host", "127.0.0.1"],
                                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        client.wait_for_workers(2, timeout=120)
        client.close()
        exp = pl.Experiment(tmp_path / "exp", MLPState)
        declare_tree(exp)
        report = exp.run(executor=pl.DaskExecutor(address=address), quiet=True)
        assert len(report.done) == 8
        assert len({n.record["worker"] for n in exp.graph.nodes}) >= 1
        assert all(n.record["worker"].split(":")[1] != str(os.getpid()) for n in exp.graph.nodes)
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            process.wait(timeout=60)


def test_prunelab_executor_selects_dask(tmp_path, monkeypatch, cluster):
    monkeypatch.setenv("PRUNELAB_EXECUTOR", f"dask://{cluster.scheduler_address.removeprefix('tcp://')}")
    exp = pl.Experiment(tmp_path / "exp", MLPState)
    exp.spawn_new_tree(width=8, replicate=0)
    exp.run(quiet=True)
    assert exp.graph.runs[-1]["executor"].startswith("DaskExecutor(tcp://127.0.0.1")


def test_dask_executor_arguments_are_checked(cluster):
    with pytest.raises(pl.StateDefinitionError, match="takes an address or a cluster, not both"):
        pl.DaskExecutor(address="tcp://127.0.0.1:1", cluster=cluster)
    with pytest.raises(pl.StateDefinitionError, match="n_workers is for the LocalCluster"):
        pl.DaskExecutor(address="tcp://127.0.0.1:1", n_workers=2)


class KillAlways(pl.Recipe):
    PROPERTIES = []

    def run(self, state):
        os.kill(os.getpid(), signal.SIGKILL)


def test_a_task_that_keeps_killing_its_worker_fails_its_node(tmp_path):
    import dask

    exp = pl.Experiment(tmp_path / "exp", MLPState)
    root = exp.spawn_new_tree(width=8, replicate=0)
    bad = KillAlways()(root)
    below = Train(steps=1, lr=0.1)(bad)
    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        with pytest.raises(pl.RunError, match="1 node\\(s\\) failed, 1 skipped") as info:
            exp.run(executor=pl.DaskExecutor(n_workers=1), quiet=True)
    assert "KilledWorker" in info.value.failed[bad.id]
    assert bad.status == "failed" and "KilledWorker" in bad.record["error"]
    assert below.status == "skipped" and root.status == "done"


def test_workers_with_an_index_of_their_own_leave_the_drivers_index_current(tmp_path, monkeypatch):
    """Each worker indexes into its own PRUNELAB_INDEX_DIR (a job-local disk on a cluster); after the run the
    driver's index holds what they stored, so its nodes show their records and results at once."""
    exp = pl.Experiment(tmp_path / "exp", MLPState)  # the driver's index: inside the experiment
    declare_tree(exp)
    monkeypatch.setenv("PRUNELAB_INDEX_DIR", str(tmp_path / "workers-index"))  # inherited by the new workers
    report = exp.run(executor=pl.DaskExecutor(n_workers=1), quiet=True)
    assert list((tmp_path / "workers-index").glob("*.sqlite"))
    assert len(report.done) == 8
    assert {n.id for n in exp.graph.nodes if n.status == "done"} == set(report.done)
    assert all("values_checksum" in n.record for n in exp.graph.nodes)
    assert sum(len(n.results) for n in exp.graph.nodes) == len(report.results) == 4
    assert sorted(exp.index.status_of(report.done)) == sorted(report.done)


class Interval(pl.Recipe):
    """Sleep a while and record when it ran (to see which tasks overlapped)."""

    PROPERTIES = ["label"]

    def run(self, state):
        import time

        start = time.time()
        time.sleep(0.5)
        state.history = [*state.history, start, time.time()]
        return state


def _intervals(tmp_path, name, executor):
    exp = pl.Experiment(tmp_path / name, MLPState)
    root = exp.spawn_new_tree(width=8, replicate=0)
    nodes = [Interval(label=i)(root) for i in range(3)]
    exp.run(executor=executor, quiet=True)
    return sorted(tuple(n.restore().history[-2:]) for n in nodes)


def test_tasks_holding_a_gpu_run_one_per_gpu(tmp_path):
    import dask

    with dask.config.set({"distributed.worker.daemon": False}):
        two_threads = distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=True,
                                               dashboard_address=":0", resources={"GPU": 1})
    try:
        free = _intervals(tmp_path, "free", pl.DaskExecutor(cluster=two_threads))
        held = _intervals(tmp_path, "held", pl.DaskExecutor(cluster=two_threads, resources={"GPU": 1}))
    finally:
        two_threads.close()
    assert any(b[0] < a[1] for a, b in zip(free, free[1:]))  # two threads: without resources, tasks overlap
    assert all(b[0] >= a[1] for a, b in zip(held, held[1:]))  # one GPU: one task at a time


def test_resources_no_worker_declares_are_refused_before_anything_runs(tmp_path, cluster):
    exp = pl.Experiment(tmp_path / "exp", MLPState)
    root = exp.spawn_new_tree(width=8, replicate=0)
    with pytest.raises(pl.StateDefinitionError, match=r"no worker of the cluster declares them \(they declare none\)"
                                                      ".*--resources"):
        exp.run(executor=pl.DaskExecutor(cluster=cluster, resources={"GPU": 1}), quiet=True)
    assert root.status == "declared"
    with pytest.raises(pl.StateDefinitionError, match="resources=. takes a dict of names to positive amounts"):
        pl.DaskExecutor(resources={"GPU": 0})


def test_the_local_cluster_it_starts_gives_its_workers_the_resources(tmp_path):
    exp = pl.Experiment(tmp_path / "exp", MLPState)
    node = Train(steps=2, lr=0.1)(exp.spawn_new_tree(width=8, replicate=0))
    report = exp.run(executor=pl.DaskExecutor(n_workers=1, resources={"GPU": 1}), quiet=True)
    assert node.id in report.done


def _noisy(directory):
    exp = pl.Experiment(directory, Noisy)
    tops = [AddNoise(scale=float(r + 1))(exp.spawn_new_tree(replicate=r)) for r in range(5)]
    return exp, tops, [AddNoise(scale=0.5)(top) for top in tops]


def test_a_cohort_is_one_dask_task_and_its_members_are_stored_as_a_local_cohort_stores_them(tmp_path, cluster):
    local, local_tops, local_kids = _noisy(tmp_path / "local")
    local.run(executor=pl.LocalExecutor(max_cohort=4), quiet=True)
    exp, tops, kids = _noisy(tmp_path / "dask")
    report = exp.run(executor=pl.DaskExecutor(cluster=cluster, max_cohort=3), quiet=True)
    assert len(report.done) == 15 and not report.failed  # the roots too
    assert stored_values(tmp_path / "local") == stored_values(tmp_path / "dask")  # cohort-independent bits
    for level in (tops, kids):  # per depth: a cohort of 3 and one of 2, each computed in one worker process
        assert [n.record["cohort"] for n in level] == [3, 3, 3, 2, 2]
        workers = [n.record["worker"] for n in level]
        assert len(set(workers[:3])) == 1 and len(set(workers[3:])) == 1
        assert all(w.split(":")[1] != str(os.getpid()) for w in workers)
    assert exp.graph.runs[-1]["executor"] == "DaskExecutor(LocalCluster, max_cohort=3)"


def test_max_cohort_of_dask_is_checked():
    for wrong in (0, -1, 2.0, True, "4"):
        with pytest.raises(pl.StateDefinitionError, match=r"DaskExecutor\(max_cohort=...\) takes a positive int"):
            pl.DaskExecutor(max_cohort=wrong)


def test_a_cohort_member_whose_parent_failed_is_skipped_and_the_others_computed(tmp_path, cluster):
    exp = pl.Experiment(tmp_path / "exp", Noisy)
    roots = [exp.spawn_new_tree(replicate=r) for r in range(3)]
    tops = [AddNoise(scale=1.0)(roots[0]), AddNoise(scale=2.0)(roots[1]), Explode()(roots[2])]
    kids = [AddNoise(scale=0.5)(top) for top in tops]  # one depth, one key: one cohort of three
    with pytest.raises(pl.RunError, match="1 node\\(s\\) failed, 1 skipped") as info:
        exp.run(executor=pl.DaskExecutor(cluster=cluster, max_cohort=4), quiet=True)
    assert info.value.skipped == [kids[2].id]
    assert [k.record["cohort"] for k in kids[:2]] == [2, 2] and kids[2].status == "skipped"
