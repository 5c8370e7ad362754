"""The executor contract: one abstract method, one report."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .engine import Engine
    from .task import Task
    from .progress import Progress
    from ..core.errors import RunError

__all__ = ["Executor", "RunReport"]


@dataclass
class RunReport:
    """What a run did.

    Each parameter is kept as the attribute of the same name; an executor fills them in as it goes.

    Parameters
    ----------
    done : list of str, default=[]
        States computed and stored by this run.
    cached : list of str, default=[]
        Declared states that were already stored with all their results.
    failed : dict of str to str, default={}
        Failed node id (or ``"<id> function <name>"``) to its traceback.
    skipped : list of str, default=[]
        States not computed because an ancestor failed.
    results : list of str, default=[]
        ``"<id> <name>@v<version>"`` for each function result stored.
    elsewhere : list of str, default=[]
        States this run was about to compute but another driver or worker stored first.
    preempted : list of str, default=[]
        States whose recipe was stopped by the preemption signal (checkpoint stored, left declared).
    wall_s : float, default=0.0
        Wall time of the whole run, in seconds.
    error : RunError or None, default=None
        The error listing the failures (also raised unless ``raise_on_failure=False``).
    """

    done: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    results: list[str] = field(default_factory=list)
    elsewhere: list[str] = field(default_factory=list)
    preempted: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    error: RunError | None = None

    def summary(self) -> str:
        """One line: counts and time.

        Returns
        -------
        str
            ``"prunelab: N computed, N cached, N failed, N skipped, N result(s) in S s"``; states stored
            elsewhere count as cached. A preempted run adds ``"; preempted: N (re-run to resume)"``.
        """
        preempted = f"; preempted: {len(self.preempted)} (re-run to resume)" if self.preempted else ""
        return (f"prunelab: {len(self.done)} computed, {len(self.cached) + len(self.elsewhere)} cached, "
                f"{len(self.failed)} failed, "
                f"{len(self.skipped)} skipped, {len(self.results)} result(s) in {self.wall_s:.2f} s{preempted}")


class Executor(ABC):
    """Runs the tasks of a plan; parents always before their children."""

    @abstractmethod
    def execute(self, tasks: Sequence[Task], engine: Engine, progress: Progress | None = None) -> RunReport:
        """Compute ``tasks`` (in dependency order) with ``engine`` and report (and show ``progress``).

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
            What was computed, stored elsewhere, failed or skipped, and the results stored.
        """

    def describe(self) -> str:
        """A short description recorded in the run manifest.

        Returns
        -------
        str
            The executor's class name.
        """
        return type(self).__name__
