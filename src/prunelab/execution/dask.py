"""``DaskExecutor``: independent branches in parallel on ``dask.distributed``.

Tasks are keyed by node id. Workers read parents from the experiment directory
(a shared filesystem on a cluster) and write children to it; only ids, the
recipe and slim results travel through the scheduler. Each task pins the
experiment's thread count, so results are bitwise the same as with
:class:`~prunelab.LocalExecutor`. A worker lost in the middle of a task is
replaced and the task retried (Dask's own resilience; the lease of a dead
worker is taken over at once); a task that keeps killing its workers fails its node.
"""

from __future__ import annotations

import traceback
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .engine import Engine
from .materialise import Materialized
from . import preempt
from .task import ELSEWHERE, PREEMPTED, EngineSpec, Task
from ..core.errors import StateDefinitionError
from .base import Executor, RunReport
from .progress import Progress

if TYPE_CHECKING:
    from distributed import Client

__all__ = ["DaskExecutor"]


def _run_task(spec: EngineSpec, task: Task, *parents: dict[str, Any]) -> dict[str, Any]:
    """The worker side: compute one node (parent read from disk) and its functions."""
    if any(p.get("status") in ("failed", "skipped") for p in parents):
        return {"node_id": task.node_id, "status": "skipped"}
    if any(p.get("status") in (PREEMPTED, "waiting") for p in parents):
        return {"node_id": task.node_id, "status": "waiting"}  # left declared, for the run that resumes its parent
    engine = Engine.open(spec)
    outcome = engine.run_task(task, None)
    if task.compute and outcome.state is None:
        return {"node_id": task.node_id, "status": "failed", "error": outcome.error or ""}
    if outcome.state == PREEMPTED:
        return {"node_id": task.node_id, "status": PREEMPTED}
    status = "cached" if not task.compute else "done" if isinstance(outcome.state, Materialized) else ELSEWHERE
    return {"node_id": task.node_id, "status": status, "results": outcome.results, "failures": outcome.failures}


class DaskExecutor(Executor):
    """Run tasks on a Dask cluster: a new local one, a running scheduler, or any cluster object.

    Parameters
    ----------
    address : str, optional
        A running scheduler, e.g. ``"tcp://10.0.0.5:8786"``.
    n_workers : int, optional
        Workers of the ``LocalCluster`` started when neither ``address`` nor
        ``cluster`` is given (default: one per core). Its workers are processes,
        one thread each, and not daemonic, so recipes may use
        ``DataLoader(num_workers>0)``.
    cluster : distributed cluster, optional
        Any Dask cluster, e.g. ``dask_jobqueue.SLURMCluster(...)``; the experiment
        directory must then be on a filesystem every worker sees.
    resources : dict of str to number, optional
        What each task holds while it runs, e.g. ``{"GPU": 1}``: Dask runs a
        task only on a worker that declares the resource and holds it for the
        task, so GPU recipes run one per GPU. The ``LocalCluster`` started here
        gives each worker these resources; other clusters' workers declare
        theirs (``dask worker --resources GPU=1``, ``SLURMCluster(...,
        worker_extra_args=["--resources", "GPU=1"])``). Several workers may
        share one GPU for small models: give each ``GPU=1`` on the same device.

    Examples
    --------
    ``exp.run(executor=pl.DaskExecutor(n_workers=4))``, or without code changes
    ``PRUNELAB_EXECUTOR=dask python script.py``.
    """

    def __init__(self, address: str | None = None, n_workers: int | None = None, cluster: Any = None,
                 resources: dict[str, float] | None = None):
        import importlib.util

        if importlib.util.find_spec("distributed") is None:
            raise StateDefinitionError("DaskExecutor needs dask.distributed: pip install 'prunelab[dask]'.")
        given = [name for name, value in (("address", address), ("cluster", cluster)) if value is not None]
        if len(given) > 1:
            raise StateDefinitionError("DaskExecutor takes an address or a cluster, not both.")
        if n_workers is not None and (given or not isinstance(n_workers, int) or n_workers < 1):
            raise StateDefinitionError(
                f"n_workers is for the LocalCluster DaskExecutor starts itself; it must be a positive int and "
                f"comes without address/cluster (got n_workers={n_workers!r}{', ' + given[0] if given else ''})."
            )
        if resources is not None and (not isinstance(resources, dict) or not resources or not all(
                isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0
                for k, v in resources.items())):
            raise StateDefinitionError(f"DaskExecutor(resources=) takes a dict of names to positive amounts, e.g. "
                                       f"{{'GPU': 1}}; got {resources!r}.")
        self.address = address
        self.n_workers = n_workers
        self.cluster = cluster
        self.resources = resources

    def describe(self) -> str:
        """A short description recorded in the run manifest.

        Returns
        -------
        str
            ``"DaskExecutor(<where>)"``: the scheduler's address, the cluster's class name or ``LocalCluster``.
        """
        where = self.address or (type(self.cluster).__name__ if self.cluster is not None else "LocalCluster")
        return f"DaskExecutor({where})"

    def _client(self) -> tuple[Client, Any]:
        import dask
        from distributed import Client, LocalCluster

        if self.address is not None:
            return Client(self.address), None
        if self.cluster is not None:
            return Client(self.cluster), None
        with dask.config.set({"distributed.worker.daemon": False}):
            cluster = LocalCluster(n_workers=self.n_workers, threads_per_worker=1, processes=True,
                                   dashboard_address=":0", resources=self.resources)
        return Client(cluster), cluster

    def _check_resources(self, client: Client) -> None:
        """Refuse resources no worker of the cluster declares (its tasks would wait for ever)."""
        workers = client.scheduler_info().get("workers", {})
        if not self.resources or not workers:  # a cluster still scaling up: its workers are not known yet
            return
        if not any(all(w.get("resources", {}).get(k, 0) >= v for k, v in self.resources.items())
                   for w in workers.values()):
            declared = sorted({f"{k}={v}" for w in workers.values() for k, v in w.get("resources", {}).items()})
            raise StateDefinitionError(
                f"DaskExecutor(resources={self.resources}): no worker of the cluster declares them (they declare "
                f"{', '.join(declared) or 'none'}); start the workers with --resources (e.g. GPU=1) or change "
                "resources=.")

    def execute(self, tasks: Sequence[Task], engine: Engine, progress: Progress | None = None) -> RunReport:
        """Compute ``tasks`` on the cluster with ``engine``'s spec and report (and show ``progress``).

        A client is opened for the run (and a ``LocalCluster`` started if no address or cluster was
        given); both are closed at the end.

        Parameters
        ----------
        tasks : sequence of Task
            The plan's tasks, parents before their children.
        engine : Engine
            The driver's engine: workers open their own from its spec; it records the failure of a
            task that kept killing its workers.
        progress : Progress or None, default=None
            Where to count and show what is done; None shows nothing.

        Returns
        -------
        RunReport
            What was computed, stored elsewhere, failed or skipped, and the results stored.
        """
        from distributed import as_completed

        report = RunReport()
        progress = progress or Progress(len(tasks), quiet=True)
        if not tasks:
            return report
        client, own_cluster = self._client()
        try:
            self._check_resources(client)
            futures: dict[str, Any] = {}
            ids = {t.node_id for t in tasks}
            for task in tasks:  # parents before children: a child's future depends on its parent's
                parents = [futures[task.parent_id]] if task.parent_id in ids else []
                futures[task.node_id] = client.submit(_run_task, engine.spec, task, *parents, pure=False,
                                                      resources=self.resources,
                                                      key=f"prunelab-{task.node_id}-{id(report):x}")
            slots = len(client.scheduler_info().get("workers", {})) or 1
            progress.set_running(min(len(futures), slots))
            by_future = {f.key: node_id for node_id, f in futures.items()}
            by_id = {t.node_id: t for t in tasks}
            remaining = len(futures)
            lost: set[str] = set()
            for future in as_completed(list(futures.values())):
                if preempt.requested():  # asked to stop: what has not started is left declared
                    client.cancel([f for f in futures.values() if not f.done()])
                    break
                node_id = by_future[future.key]
                try:
                    result = future.result()
                except Exception:  # noqa: BLE001 - e.g. KilledWorker: the task kept killing its workers
                    task = by_id[node_id]
                    if task.parent_id in lost:  # the parent's failure propagated through Dask
                        report.skipped.append(node_id)
                    else:
                        report.failed[node_id] = traceback.format_exc()
                        if task.compute:
                            engine.record_failure(task, report.failed[node_id])
                    lost.add(node_id)
                    progress.finished("skipped" if node_id in report.skipped else "failed", node_id, False)
                else:
                    self._record(result, report)
                    status = {"done": "done", ELSEWHERE: "cached"}.get(result["status"], result["status"])
                    progress.finished("failed" if result.get("failures") else status, node_id, False)
                remaining -= 1
                progress.set_running(min(remaining, slots))
        finally:
            client.close()
            if own_cluster is not None:
                own_cluster.close()
        return report

    @staticmethod
    def _record(result: dict[str, Any], report: RunReport) -> None:
        node_id, status = result["node_id"], result["status"]
        if status == "done":
            report.done.append(node_id)
        elif status == ELSEWHERE:
            report.elsewhere.append(node_id)
        elif status == "failed":
            report.failed[node_id] = result.get("error", "")
        elif status == "skipped":
            report.skipped.append(node_id)
        elif status == PREEMPTED:
            report.preempted.append(node_id)
        report.results.extend(result.get("results", []))
        report.failed.update(result.get("failures", {}))
