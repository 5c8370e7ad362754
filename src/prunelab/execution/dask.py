"""``DaskExecutor``: independent branches in parallel on ``dask.distributed``.

Tasks are keyed by node id. Workers read parents from the experiment directory
(a shared filesystem on a cluster) and write children to it; only ids, the
recipe and slim results travel through the scheduler. Each task pins the
experiment's thread count, so results are bitwise the same as with
:class:`~prunelab.LocalExecutor`. A worker lost in the middle of a task is
replaced and the task retried (Dask's own resilience; the lease of a dead
worker is taken over at once); a task that keeps killing its workers fails its node.
With ``max_cohort``, a cohort of nodes is one Dask task (see :mod:`.remote`).
"""

from __future__ import annotations

import traceback
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from . import preempt
from .remote import run_cohort, run_one, units
from .task import ELSEWHERE, PREEMPTED, Task
from ..core.errors import StateDefinitionError
from .base import Executor, RunReport
from .progress import Progress

if TYPE_CHECKING:
    from distributed import Client

    from .engine import Engine

__all__ = ["DaskExecutor"]


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
    max_cohort : int, optional
        Cohorts on (see :meth:`prunelab.Recipe.run_cohort`): the nodes of one
        depth of the graph whose recipes share a class and a cohort key are
        submitted as one task of up to ``max_cohort`` members, computed together
        on one worker (each member still leased, stored and published on its
        own), and a recipe with a cohort key computes even a lone node as a
        cohort of one. None (the default): every node is its own task.

    Examples
    --------
    ``exp.run(executor=pl.DaskExecutor(n_workers=4))``, or without code changes
    ``PRUNELAB_EXECUTOR=dask python script.py``.
    """

    def __init__(self, address: str | None = None, n_workers: int | None = None, cluster: Any = None,
                 resources: dict[str, float] | None = None, max_cohort: int | None = None):
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
        if max_cohort is not None and (isinstance(max_cohort, bool) or not isinstance(max_cohort, int)
                                       or max_cohort < 1):
            raise StateDefinitionError(f"DaskExecutor(max_cohort=...) takes a positive int (or None: no cohorts), "
                                       f"got {max_cohort!r}.")
        self.max_cohort = max_cohort
        self.address = address
        self.n_workers = n_workers
        self.cluster = cluster
        self.resources = resources

    def describe(self) -> str:
        """A short description recorded in the run manifest.

        Returns
        -------
        str
            ``"DaskExecutor(<where>)"``: the scheduler's address, the cluster's class name or ``LocalCluster``
            (and ``, max_cohort=N`` when cohorts are on).
        """
        where = self.address or (type(self.cluster).__name__ if self.cluster is not None else "LocalCluster")
        return f"DaskExecutor({where}{'' if self.max_cohort is None else f', max_cohort={self.max_cohort}'})"

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
            members: dict[str, list[Task]] = {}  # Dask key -> the tasks it computes
            cohorts = self.max_cohort is not None
            submit: Any = client.submit  # a cohort's task returns its members' outcomes, a list
            for unit in units(tasks, self.max_cohort):  # each unit after its parents' units
                parents = list({futures[t.parent_id].key: futures[t.parent_id]
                                for t in unit if t.parent_id in ids}.values())
                key = f"prunelab-{unit[0].node_id}-{id(report):x}"
                if len(unit) == 1:
                    future = submit(run_one, engine.spec, unit[0], cohorts, *parents, pure=False,
                                           resources=self.resources, key=key)
                else:
                    future = submit(run_cohort, engine.spec, unit, *parents, pure=False,
                                           resources=self.resources, key=key)
                members[key] = unit
                futures.update({t.node_id: future for t in unit})
            slots = len(client.scheduler_info().get("workers", {})) or 1
            progress.set_running(min(len(tasks), slots))
            remaining = len(tasks)
            lost: set[str] = set()
            for future in as_completed(list({f.key: f for f in futures.values()}.values())):
                if preempt.requested():  # asked to stop: what has not started is left declared
                    client.cancel([f for f in futures.values() if not f.done()])
                    break
                unit = members[future.key]
                try:
                    result = future.result()
                except Exception:  # noqa: BLE001 - e.g. KilledWorker: the task kept killing its workers
                    for task in unit:
                        if task.parent_id in lost:  # the parent's failure propagated through Dask
                            report.skipped.append(task.node_id)
                        else:
                            report.failed[task.node_id] = traceback.format_exc()
                            if task.compute:
                                engine.record_failure(task, report.failed[task.node_id])
                        lost.add(task.node_id)
                        progress.finished("skipped" if task.node_id in report.skipped else "failed", task.node_id,
                                          False)
                else:
                    for outcome in result if isinstance(result, list) else [result]:
                        self._record(outcome, report)
                        status = {"done": "done", ELSEWHERE: "cached"}.get(outcome["status"], outcome["status"])
                        progress.finished("failed" if outcome.get("failures") else status, outcome["node_id"], False)
                remaining -= len(unit)
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
