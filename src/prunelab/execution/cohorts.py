"""Computing a cohort: several nodes of one recipe as one call of :meth:`~prunelab.Recipe.run_cohort`.

Each member keeps its own lease (taken before the cohort starts; a member
leased elsewhere is left out, for the executor to come back to), its own
record (its seed, ``cohort``: how many members computed together), its own
series and checkpoints (a :class:`~.checkpoints.CohortRuntime` sends each to the member's
:class:`~.checkpoints.BodyRuntime`), and is published on its own as soon as
it is encoded, then its functions run. A recipe that raises fails every
member with its traceback; a member whose state cannot be built (or whose
returned state is refused) fails alone.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..core.errors import Preempted
from ..storage.lease import Lease, acquire
from .making import make_cohort
from .task import PREEMPTED, TaskOutcome

if TYPE_CHECKING:
    from .engine import Engine
    from .materialise import Materialized
    from .task import Task

__all__ = ["compute_cohort"]


def compute_cohort(engine: Engine, tasks: Sequence[Task], parents: Sequence[Materialized | None]
                   ) -> tuple[dict[str, TaskOutcome], list[Task]]:
    """Lease, compute, publish (one by one) and run the functions of a cohort's members.

    Returns the outcome of each member computed here, and the members left
    out (leased by another driver, or stored already): run those alone, later.
    """
    leased: list[tuple[Task, Materialized | None, Lease]] = []
    left: list[Task] = []
    for task, parent in zip(tasks, parents):
        lease = acquire(engine.store.layout.leases, task.node_id,
                        lambda node_id=task.node_id: engine.is_stored(node_id),  # type: ignore[misc]
                        durable=engine.spec.durable, wait=False)
        if isinstance(lease, Lease):
            leased.append((task, parent, lease))
        else:  # leased by another driver, or stored since the plan was made
            left.append(task)
    outcomes: dict[str, TaskOutcome] = {}
    if not leased:
        return outcomes, left
    started = time.time()
    runtimes = [engine.runtime(task, lease) for task, _, lease in leased]
    released: set[str] = set()
    try:
        made = make_cohort(engine, [t for t, _, _ in leased], [p for _, p, _ in leased], runtimes)
        failure = None if isinstance(made, list) else made
        for i, (task, _, lease) in enumerate(leased):
            outcome = outcomes[task.node_id] = TaskOutcome(None)
            state, in_force = (failure, {}) if failure is not None else made[i]  # type: ignore[index]
            if isinstance(state, Preempted):
                outcome.state = PREEMPTED
            elif isinstance(state, BaseException):
                text = "".join(traceback.format_exception(state))
                outcome.error = engine.publish_failure(task, started, text, lease)
            else:
                outcome.state, outcome.error = engine.store_made(task, started, state, in_force, runtimes[i], lease)
                if outcome.state is not None and not isinstance(outcome.state, str):
                    engine.run_functions(task, outcome, outcome.state, lease)
            released.add(task.node_id)
            engine.writer.let_go(lease)
    finally:
        for task, _, lease in leased:
            if task.node_id not in released:
                engine.writer.let_go(lease)
    return outcomes, left
