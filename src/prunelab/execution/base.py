"""The executor contract: one abstract method, one report."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .engine import Engine, Task
    from .progress import Progress
    from ..core.errors import RunError

__all__ = ["Executor", "RunReport"]


@dataclass
class RunReport:
    """What a run did.

    Attributes
    ----------
    done : list of str
        States computed and stored by this run.
    cached : list of str
        Declared states that were already stored with all their results.
    failed : dict of str to str
        Failed node id (or ``"<id> function <name>"``) to its traceback.
    skipped : list of str
        States not computed because an ancestor failed.
    results : list of str
        ``"<id> <name>@v<version>"`` for each function result stored.
    elsewhere : list of str
        States this run was about to compute but another driver or worker stored first.
    wall_s : float
        Wall time of the whole run.
    error : RunError or None
        The error listing the failures (also raised unless ``raise_on_failure=False``).
    """

    done: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    results: list[str] = field(default_factory=list)
    elsewhere: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    error: RunError | None = None

    def summary(self) -> str:
        """One line: counts and time."""
        return (f"prunelab: {len(self.done)} computed, {len(self.cached) + len(self.elsewhere)} cached, "
                f"{len(self.failed)} failed, "
                f"{len(self.skipped)} skipped, {len(self.results)} result(s) in {self.wall_s:.2f} s")


class Executor(ABC):
    """Runs the tasks of a plan; parents always before their children."""

    @abstractmethod
    def execute(self, tasks: Sequence[Task], engine: Engine, progress: Progress | None = None) -> RunReport:
        """Compute ``tasks`` (in dependency order) with ``engine`` and report (and show ``progress``)."""

    def describe(self) -> str:
        """A short description recorded in the run manifest."""
        return type(self).__name__
