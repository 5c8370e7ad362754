"""``LocalExecutor``: in-process, depth-first, iterative."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..core.errors import StateDefinitionError
from .base import Executor, RunReport
from .progress import Progress
from .waves import Waves

if TYPE_CHECKING:
    from .engine import Engine
    from .task import Task

__all__ = ["LocalExecutor"]


class LocalExecutor(Executor):
    """Run every task in this process, depth first.

    A parent computed in this run is handed to its children in memory, in the
    form a store round trip would give; it is released once its last child has
    run, so a 10,000-deep chain holds one state at a time. The walk is
    iterative (no recursion limit). A failed node's descendants are skipped;
    every other branch completes. Once the process is asked to stop (see
    :mod:`prunelab.execution.preempt`), no further task starts.

    Parameters
    ----------
    pipelined : bool, default True
        Store states and results from a helper process while this one
        computes the next (see :mod:`prunelab.execution.publisher`); what is
        stored is the same either way. False stores them in this process,
        e.g. where starting a process is not allowed.
    max_cohort : int or None, default None
        Cohorts on (see :meth:`prunelab.Recipe.run_cohort`): ready nodes of a
        recipe with a cohort key are computed together, the largest group
        first, up to this many at once (and as many as fit in a quarter of
        this machine's memory, estimated from their parents' sizes); a lone
        one as a cohort of one. The walk then goes breadth first (every
        ready node of other recipes first, so that a cohort gathers all its
        members). None: every node computes alone through ``run``.
    """

    def __init__(self, pipelined: bool = True, max_cohort: int | None = None):
        if not isinstance(pipelined, bool):
            raise StateDefinitionError(f"LocalExecutor(pipelined=...) takes True or False, got {pipelined!r}.")
        if max_cohort is not None and (isinstance(max_cohort, bool) or not isinstance(max_cohort, int)
                                       or max_cohort < 1):
            raise StateDefinitionError(f"LocalExecutor(max_cohort=...) takes a positive int (or None: no cohorts), "
                                       f"got {max_cohort!r}.")
        self.pipelined = pipelined
        self.max_cohort = max_cohort

    def execute(self, tasks: Sequence[Task], engine: Engine, progress: Progress | None = None) -> RunReport:
        """Compute ``tasks`` in this process, depth first, with ``engine`` and report (and show ``progress``).

        Parameters
        ----------
        tasks : sequence of Task
            The plan's tasks, parents before their children.
        engine : Engine
            Computes and stores each task.
        progress : Progress or None, default=None
            Where to count and show what is done; None shows nothing.

        Returns
        -------
        RunReport
            What was computed, stored elsewhere, failed or skipped, and the results stored; a state that
            another writer stored first counts as stored elsewhere, not done.
        """
        report = RunReport()
        engine.cohorts = self.max_cohort is not None
        try:
            with engine.writer.pipelined(engine.spec, self.pipelined) as late:
                self._execute(tasks, engine, progress, report)
        finally:
            engine.cohorts = False
        for node_id in late:  # stored by another writer first (a failure of ours then stays reported)
            if node_id in report.done:
                report.done.remove(node_id)
                report.elsewhere.append(node_id)
        return report

    def _execute(self, tasks: Sequence[Task], engine: Engine, progress: Progress | None, report: RunReport) -> None:
        """The walk, inside the run's publishing block (see :mod:`.waves`)."""
        Waves(tasks, engine, progress, report, self.max_cohort).run()

    def describe(self) -> str:
        """The class name, and the largest cohort when cohorts are on (recorded in the run manifest).

        Returns
        -------
        str
            ``"LocalExecutor"`` or ``"LocalExecutor(max_cohort=N)"``.
        """
        return "LocalExecutor" if self.max_cohort is None else f"LocalExecutor(max_cohort={self.max_cohort})"
