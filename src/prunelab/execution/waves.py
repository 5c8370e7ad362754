"""The walk of a ``LocalExecutor``: depth first; with cohorts on, a recipe's ready nodes together.

A node is ready once its parent is computed (or is not part of the run).
Without cohorts every ready node runs alone, the newest first: depth first.
With them, ready nodes whose recipe has no cohort key run first, one by one,
the newest first (so chains of them go depth first); then the largest group of ready
nodes sharing a recipe class and cohort key runs as one cohort, up to
``max_cohort`` members and as many as the memory estimate allows. Children
of what was computed become ready; a failed node's descendants are skipped.
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING

from ..core.identity import class_name
from . import preempt
from .base import RunReport
from .cohorts import compute_cohort
from .materialise import Materialized
from .progress import Progress
from .task import BUSY, PREEMPTED, Task, TaskOutcome

if TYPE_CHECKING:
    from .engine import Engine

__all__ = ["Waves", "cohort_group", "record_outcome"]

_GROWTH = 8  # a member's working memory, in multiples of its parent's stored size (weights, gradients, buffers)


def record_outcome(task: Task, outcome: TaskOutcome, report: RunReport) -> Materialized | str | None:
    """Enter a task's outcome in the report; return its state for its children (BUSY, PREEMPTED or None else).

    Parameters
    ----------
    task : Task
        The task run.
    outcome : TaskOutcome
        What running it did.
    report : RunReport
        Where it is entered.

    Returns
    -------
    Materialized, str or None
        The state computed, :data:`BUSY` or :data:`PREEMPTED`; None when there is nothing to hand its children.
    """
    if outcome.state == BUSY:
        return BUSY
    if outcome.state == PREEMPTED:
        report.preempted.append(task.node_id)
        return PREEMPTED
    if task.compute:
        if outcome.state is None:
            report.failed[task.node_id] = outcome.error or ""
            return None
        if isinstance(outcome.state, Materialized):
            report.done.append(task.node_id)
        else:  # another driver stored it first: children read it from disk
            report.elsewhere.append(task.node_id)
    report.results.extend(outcome.results)
    report.failed.update(outcome.failures)
    return outcome.state if isinstance(outcome.state, Materialized) else None


def cohort_group(task: Task) -> Hashable | None:
    """What a task shares with the members of its cohort: its recipe's class and cohort key (None: alone)."""
    if not task.compute or task.recipe is None or task.parent_id is None:
        return None
    key = task.recipe.cohort_key()
    return None if key is None else (class_name(type(task.recipe)), key)


def _memory_budget() -> float:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 4
    except (ValueError, OSError, AttributeError):
        return float("inf")


class Waves:
    """One run's walk (see the module's text); without cohorts, depth first.

    Parameters
    ----------
    tasks : sequence of Task
        The plan's tasks, parents before their children.
    engine : Engine
        Computes and stores them.
    progress : Progress or None
        Where to count what is done.
    report : RunReport
        Filled in as the walk goes.
    max_cohort : int or None
        The most members of one cohort; None: no cohorts (every task alone, depth first).
    """

    def __init__(self, tasks: Sequence[Task], engine: Engine, progress: Progress | None, report: RunReport,
                 max_cohort: int | None):
        self.engine, self.report, self.max_cohort = engine, report, max_cohort
        self.progress = progress or Progress(len(tasks), quiet=True)
        ids = {t.node_id for t in tasks}
        self.children: dict[str | None, list[Task]] = {}
        for task in tasks:
            self.children.setdefault(task.parent_id if task.parent_id in ids else None, []).append(task)
        self.memory: dict[str, tuple[Materialized, list[int]]] = {}  # node id -> (state, [children still to run])
        self.alone: list[Task] = []  # ready tasks without a cohort key, a stack (taken newest first: depth first)
        self.groups: dict[Hashable, list[Task]] = {}  # ready tasks by recipe class and cohort key, in plan order
        self.deferred: list[Task] = []  # computed by another driver right now: come back to them last
        self.stopped = False
        self._ready(self.children.get(None, []))

    def _ready(self, tasks: list[Task]) -> None:
        """File tasks that became ready (each one's cohort key is asked for once)."""
        alone = []
        for task in tasks:
            key = None if self.max_cohort is None else cohort_group(task)
            if key is None:
                alone.append(task)
            else:
                self.groups.setdefault(key, []).append(task)
        self.alone.extend(reversed(alone))  # the first is taken first

    def run(self) -> None:
        """Walk until every task ran (or was skipped), or the process is asked to stop."""
        while (self.alone or self.groups or self.deferred) and not self.stopped and not preempt.requested():
            if self.alone:
                self._one(self.alone.pop(), wait=False)
            elif self.groups:
                key = max(self.groups, key=lambda k: len(self.groups[k]))
                group = self.groups.pop(key)
                members = self._fitting(group)
                if len(members) < len(group):
                    self.groups[key] = group[len(members):]
                self._cohort(members)
            else:
                self._one(self.deferred.pop(0), wait=True)

    def _fitting(self, group: list[Task]) -> list[Task]:
        """The first members of ``group``: at most ``max_cohort``, and within the memory budget (at least one)."""
        budget, used, out = _memory_budget(), 0.0, list[Task]()
        for task in group[:self.max_cohort or 1]:
            held = self.memory.get(task.parent_id or "")
            size = _GROWTH * sum(len(b.data) for b in held[0].blobs.values()) if held else 0
            if out and used + size > budget:
                break
            used += size
            out.append(task)
        return out

    def _parent(self, task: Task) -> Materialized | None:
        held = self.memory.get(task.parent_id or "")
        return held[0] if held else None

    def _one(self, task: Task, wait: bool) -> None:
        self.progress.running()
        self._finish(task, record_outcome(task, self.engine.run_task(task, self._parent(task), wait=wait),
                                          self.report))

    def _cohort(self, members: list[Task]) -> None:
        self.progress.running(len(members))
        outcomes, left = compute_cohort(self.engine, members, [self._parent(t) for t in members])
        for task in members:
            if task.node_id in outcomes:
                self._finish(task, record_outcome(task, outcomes[task.node_id], self.report))
        for task in left:  # leased elsewhere or stored since: alone, as run_task would
            self.progress.running(-1)
            self._one(task, wait=False)

    def _finish(self, task: Task, state: Materialized | str | None) -> None:
        """Count a task's outcome, release its parent's state when spent, make its children ready."""
        if state == BUSY:
            self.progress.running(-1)
            self.deferred.append(task)
            return
        if state == PREEMPTED:
            self.progress.running(-1)
            self.stopped = True
            return
        failed = any(k.startswith(task.node_id) for k in self.report.failed)
        self.progress.finished("failed" if failed else "done" if isinstance(state, Materialized) else "cached",
                               task.node_id)
        held = self.memory.get(task.parent_id or "")
        if held is not None:
            held[1][0] -= 1
            if held[1][0] == 0:
                del self.memory[task.parent_id or ""]
        kids = self.children.get(task.node_id, [])
        if state is None and task.node_id in self.report.failed:
            self._skip(kids)
            return
        if kids and isinstance(state, Materialized):
            self.memory[task.node_id] = (state, [len(kids)])
        self._ready(kids)

    def _skip(self, tasks: list[Task]) -> None:
        while tasks:
            task = tasks.pop()
            self.report.skipped.append(task.node_id)
            self.progress.finished("skipped", was_running=False)
            tasks.extend(self.children.get(task.node_id, []))
