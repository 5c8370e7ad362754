"""What a Dask worker runs for a :class:`~.dask.DaskExecutor`: one node, or one cohort of nodes.

With cohorts on, the plan's tasks are grouped before they are submitted
(:func:`units`): the nodes of one depth whose recipes share a class and a
cohort key, up to ``max_cohort`` of them, make one Dask task, computed by
:func:`run_cohort` as :class:`~.local.LocalExecutor` computes a cohort (each
member leased, stored and published on its own). A child's task depends on
its parent's (a cohort's, for a member's child) and finds its parent's
outcome in what that task returned.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .cohorts import compute_cohort
from .engine import Engine
from .materialise import Materialized
from .task import ELSEWHERE, PREEMPTED, EngineSpec, Task, TaskOutcome
from .waves import cohort_group

__all__ = ["run_cohort", "run_one", "units"]


def units(tasks: Sequence[Task], max_cohort: int | None) -> list[list[Task]]:
    """The plan's tasks as Dask tasks: cohorts of one depth and cohort key (up to ``max_cohort``), others alone.

    Parameters
    ----------
    tasks : sequence of Task
        The plan's tasks, parents before their children.
    max_cohort : int or None
        The most members of one cohort; None: every task alone.

    Returns
    -------
    list of list of Task
        Each unit after the units of its members' parents, members in plan order.
    """
    ids = {t.node_id for t in tasks}
    depth: dict[str, int] = {}
    for task in tasks:
        depth[task.node_id] = depth[task.parent_id] + 1 if task.parent_id in ids else 0
    out: list[list[Task]] = []
    filling: dict[Any, list[Task]] = {}
    for task in sorted(tasks, key=lambda t: depth[t.node_id]):  # stable: plan order within a depth
        key = None if max_cohort is None else cohort_group(task)
        if key is None:
            out.append([task])
            continue
        unit = filling.get((depth[task.node_id], key))
        if unit is None or len(unit) == max_cohort:
            unit = filling[(depth[task.node_id], key)] = []
            out.append(unit)
        unit.append(task)
    return out


def run_one(spec: EngineSpec, task: Task, cohorts: bool, *parents: Any) -> dict[str, Any]:
    """Compute one node (its parent read from disk) and its functions; its outcome as a dict.

    ``cohorts``: a recipe with a cohort key computes as a cohort of one (as every
    member of a cohort does). ``parents`` are the outcomes of the parent's Dask
    task (a dict, or a cohort's list).
    """
    blocked = _blocked(task, parents)
    if blocked is not None:
        return blocked
    engine = Engine.open(spec)
    engine.cohorts = cohorts
    try:
        return _outcome(task, engine.run_task(task, None))
    finally:
        engine.cohorts = False


def run_cohort(spec: EngineSpec, tasks: list[Task], *parents: Any) -> list[dict[str, Any]]:
    """Compute the members of a cohort together (their parents read from disk); each one's outcome.

    Members whose parent failed, or was left declared, are not computed (as
    :func:`run_one` says); members leased elsewhere when the cohort starts are
    computed alone after it, waiting for the other holder's lease.
    """
    out: dict[str, dict[str, Any]] = {}
    ready = []
    for task in tasks:
        blocked = _blocked(task, parents)
        if blocked is None:
            ready.append(task)
        else:
            out[task.node_id] = blocked
    engine = Engine.open(spec)
    engine.cohorts = True
    try:
        outcomes, left = compute_cohort(engine, ready, [None] * len(ready))
        for task in left:
            outcomes[task.node_id] = engine.run_task(task, None)
    finally:
        engine.cohorts = False
    out.update({task.node_id: _outcome(task, outcomes[task.node_id]) for task in ready})
    return [out[task.node_id] for task in tasks]


def _blocked(task: Task, parents: Sequence[Any]) -> dict[str, Any] | None:
    """The outcome of a task not to compute because of its parent's (None: compute it)."""
    entries = [e for p in parents for e in (p if isinstance(p, list) else [p]) if e["node_id"] == task.parent_id]
    if any(e.get("status") in ("failed", "skipped") for e in entries):
        return {"node_id": task.node_id, "status": "skipped"}
    if any(e.get("status") in (PREEMPTED, "waiting") for e in entries):
        return {"node_id": task.node_id, "status": "waiting"}  # left declared, for the run that resumes its parent
    return None


def _outcome(task: Task, outcome: TaskOutcome) -> dict[str, Any]:
    if task.compute and outcome.state is None:
        return {"node_id": task.node_id, "status": "failed", "error": outcome.error or ""}
    if outcome.state == PREEMPTED:
        return {"node_id": task.node_id, "status": PREEMPTED}
    status = "cached" if not task.compute else "done" if isinstance(outcome.state, Materialized) else ELSEWHERE
    return {"node_id": task.node_id, "status": status, "results": outcome.results, "failures": outcome.failures}
