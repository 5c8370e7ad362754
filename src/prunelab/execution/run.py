"""Executing a plan: the run's manifest and lease, the executor, progress, and what the run reports.

:func:`execute_plan` is the one call that runs anything; the facade plans,
then hands the plan here. A failure to store is put in plain words by
:func:`storing_failed`.
"""

from __future__ import annotations

import errno
import os
import secrets
import sqlite3
import sys
import time

from ..core.errors import PREEMPTED_EXIT, Preempted, PublishError, RunError
from ..core.graph import Graph
from ..core.records import RunManifest
from ..storage.files import disk_full
from ..storage.layout import Layout
from ..storage.lease import Lease, acquire
from ..storage.storage import Storage
from ..storage.store import FORMAT_VERSION
from . import preempt
from .base import Executor, RunReport
from .engine import Engine
from .plan import Plan
from .progress import Progress

__all__ = ["execute_plan", "storing_failed"]


def execute_plan(plan: Plan, *, engine: Engine, executor: Executor, storage: Storage, graph: Graph,
                 declared: list[str], targets: list[str] | None, started: float, raise_on_failure: bool,
                 quiet: bool) -> RunReport:
    """Run a plan's tasks with ``executor`` and record the run.

    Parameters
    ----------
    plan : Plan
        What to compute, from :func:`~.plan.make_plan`.
    engine : Engine
        This process's engine for the experiment (its environment already recorded).
    executor : Executor
        Where the tasks run.
    storage : Storage
        The experiment directory (the run's manifest is appended to its run log).
    graph : Graph
        The nodes whose status the run changes.
    declared : list of str
        The ids the run declared (recorded in the manifest).
    targets : list of str, optional
        The ids asked for, when the run was limited to them.
    started : float
        When the run started (``time.time()``).
    raise_on_failure : bool
        Raise a :class:`RunError` when a node failed.
    quiet : bool
        Do not print the summary line.

    Returns
    -------
    RunReport
        Ids computed, cached, failed and skipped, and the timing.

    Raises
    ------
    Preempted
        The process was sent the preemption signal (see :mod:`.preempt`) during the run.
    RunError
        Some nodes failed (every other branch completed), with ``raise_on_failure``.
    """
    storage.index_results(plan.unindexed)
    storage.append_run(RunManifest(declared, started, executor.describe(), engine.environment, engine.threads,
                                   engine.deterministic, os.getpid(), targets, len(plan.tasks), len(plan.cached),
                                   FORMAT_VERSION).to_dict())
    ids = [t.node_id for t in plan.tasks]
    graph.mark_running(ids)
    progress = Progress(len(plan.tasks), quiet=quiet)
    run_lease = acquire(storage.store.layout.leases, f"run.{os.getpid()}.{secrets.token_hex(4)}", lambda: False,
                        durable=storage.store.durable)  # tells gc a run is writing (keep unreferenced blobs)
    report: RunReport | None = None
    try:
        with engine.batch(), preempt.handling():
            report = executor.execute(plan.tasks, engine, progress)
    finally:
        if isinstance(run_lease, Lease):
            run_lease.release()
        progress.close()
        if report is not None:  # what workers with an index of their own (PRUNELAB_INDEX_DIR) stored
            storage.index_stored({**{i: "done" for i in report.done + report.elsewhere},
                                  **{k: "failed" for k in report.failed if " " not in k}}, report.results)
        graph.refresh(ids, storage.status_of(ids))
    report.cached = plan.cached
    report.wall_s = time.time() - started
    report.skipped = sorted({*report.skipped, *plan.blocked})
    graph.mark_skipped(report.skipped)
    if not quiet:
        print(report.summary(), file=sys.stderr)
    if preempt.requested():
        left = len(ids) - len(report.done) - len(report.elsewhere) - len(report.failed) - len(report.skipped)
        raise Preempted(f"the run was preempted: {len(report.preempted)} state(s) stopped at their checkpoint, "
                        f"{left} in all left declared; run the script again to resume them (exit status "
                        f"{PREEMPTED_EXIT} asks a job script to requeue).", report.preempted)
    if report.failed:
        error = RunError(report.failed, report.skipped)
        report.error = error
        if raise_on_failure:
            raise error
    return report


def storing_failed(err: BaseException, layout: Layout) -> PublishError:
    """Say in plain words why storing into an experiment failed.

    Parameters
    ----------
    err : BaseException
        What storing raised.
    layout : Layout
        The experiment directory's paths.

    Returns
    -------
    PublishError
        The error to raise from it: a full disk, the directory gone from under
        the run, the index's descriptor closed, or else the cause as it is.
    """
    root = layout.root
    if disk_full(err) or "No space left" in str(err) or "disk is full" in str(err):
        return PublishError(f"the disk holding {root} is full ({err}); every state stored before is "
                            "intact. Free some space (`prunelab gc` removes leftovers) and re-run the script: "
                            "it computes only what is missing.")
    if not root.is_dir() or not layout.is_experiment():
        return PublishError(f"{root} was deleted or moved during the run ({err}); nothing was written "
                            "elsewhere and nothing was recreated. Re-run the script to start it again.")
    if isinstance(err, sqlite3.Error) or getattr(err, "errno", None) == errno.EBADF:
        return PublishError(f"the index of {root} stopped working ({err}): its file descriptor was "
                            "closed or replaced, as a recipe or function closing descriptors it does not own "
                            "(os.closerange, daemonising code) does; every state stored before is intact. Leave "
                            "descriptors 3 and up alone in recipes, and re-run the script.")
    return PublishError(f"storing into {root} failed ({err}); every state stored before is intact. "
                        "Fix the cause and re-run the script: it computes only what is missing.")
