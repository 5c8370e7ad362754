"""What a run hands an engine: a :class:`Task` per node, the :class:`EngineSpec` of the experiment; and what comes back."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..storage.lease import BUSY

if TYPE_CHECKING:
    from ..core.function import Function
    from ..core.recipe import Recipe
    from ..core.records import StateRecord
    from ..core.state import ExperimentState
    from .materialise import Materialized

__all__ = ["BUSY", "ELSEWHERE", "PREEMPTED", "EngineSpec", "Task", "TaskOutcome"]


@dataclass
class Task:
    """One node to compute (and/or functions to run on it)."""

    node_id: str
    parent_id: str | None
    properties: dict[str, Any]
    recipe: Recipe | None
    record: StateRecord
    compute: bool
    functions: list[Function] = field(default_factory=list)
    blinded: list[str] = field(default_factory=list)  # metric patterns withheld for this node (see prereg)
    tags: list[str] = field(default_factory=list)  # the node's tags, as state.tags shows them to bodies


@dataclass
class TaskOutcome:
    """What :meth:`Engine.run_task` did to a state and its functions."""

    state: Materialized | str | None
    error: str | None = None  # the recipe's traceback when ``state`` is None
    results: list[str] = field(default_factory=list)  # "<node id> <name@vN>" of each result stored
    failures: dict[str, str] = field(default_factory=dict)  # "<node id> function <name>" -> traceback


@dataclass(frozen=True)
class EngineSpec:
    """Everything a worker process needs to compute nodes of an experiment (picklable)."""

    directory: str
    state_class: type[ExperimentState] | None
    state_class_name: str
    allow_pickle: bool
    threads: int
    deterministic: bool
    durable: bool
    environment: str | None
    prereg: tuple[str, ...] = ()  # digests of the registrations, embedded in every record written


#: A task outcome's state when another driver or worker stored it first.
ELSEWHERE = "elsewhere"
#: A task outcome's state when its recipe was preempted (its checkpoint stored, the node left declared).
PREEMPTED = "preempted"
