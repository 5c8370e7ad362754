"""The plan of a run: which declared states to compute and which functions to run, in dependency order.

Planning reads the index (and, for a result the index lacks, its file) and
writes nothing: a result found on disk but not indexed (a crash between the
two) is listed in :attr:`Plan.unindexed` for the run to index.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..core.graph import Graph
from ..core.nodes import Node
from ..core.records import StateRecord, Status
from ..storage.storage import Storage
from .task import Task

__all__ = ["Plan", "make_plan"]


@dataclass
class Plan:
    """What :meth:`Experiment.run` would do: tasks in dependency order and what is cached.

    Each parameter is kept as the attribute of the same name (:func:`make_plan` fills them in).

    Parameters
    ----------
    tasks : list of Task, default=[]
        What to compute or run, parents first.
    cached : list of str, default=[]
        The ids of states stored with every declared result.
    blocked : list of str, default=[]
        The ids of states not run: stored as failed and not retried, or under such a state.
    unindexed : list of (str, dict), default=[]
        Results stored but missing from the index (node id, record): the run indexes them.
    """

    tasks: list[Task] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    unindexed: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    @property
    def to_compute(self) -> list[str]:
        """Ids of the states that would be computed."""
        return [t.node_id for t in self.tasks if t.compute]

    @property
    def functions(self) -> list[tuple[str, str]]:
        """(node id, result key) of every function that would run."""
        return [(t.node_id, f.key) for t in self.tasks for f in t.functions]

    def __str__(self) -> str:
        lines = [f"plan: {len(self.to_compute)} state(s) to compute, {len(self.functions)} function result(s), "
                 f"{len(self.cached)} cached, {len(self.blocked)} failed and not retried"]
        for task in self.tasks:
            what = (task.record.recipe or {}).get("name", "root") if task.compute else "(stored)"
            fns = ", ".join(f.key for f in task.functions)
            lines.append(f"  {task.node_id[:12]} {what}{'  + ' + fns if fns else ''}")
        return "\n".join(lines)


def make_plan(candidates: Iterable[Node], graph: Graph, storage: Storage, retry_failed: bool) -> Plan:
    """Plan the run of ``candidates`` (declared nodes and the ancestors they need).

    Parameters
    ----------
    candidates : iterable of Node
        The nodes to plan for.
    graph : Graph
        Their graph (tags and registrations).
    storage : Storage
        Read for what is stored (the index, and the file of a result it lacks).
    retry_failed : bool
        Plan to recompute states stored as failed.

    Returns
    -------
    Plan
        Each node's stored status is refreshed on the way (``node.stored_status``).
    """
    candidates = list(candidates)
    status = storage.status_of([n.id for n in candidates])
    keys = storage.result_keys()
    prereg = graph.prereg
    plan = Plan()
    failed_parents: set[str] = set()
    for node in sorted(candidates, key=lambda n: n.depth):
        graph.set_stored_status(node, status.get(node.id))
        stored = node.stored_status
        if stored == Status.FAILED and not retry_failed or node.parent_id in failed_parents:
            plan.blocked.append(node.id)
            failed_parents.add(node.id)
            continue
        compute = stored != Status.DONE
        if compute and node.recipe_obj is None and node.parent_id is not None:
            plan.blocked.append(node.id)  # stored as failed and not declared here: nothing to rerun with
            failed_parents.add(node.id)
            continue
        functions = []
        for function in node.functions.values():
            if function.key in keys.get(node.id, set()):
                continue
            on_disk = storage.stored_result(node.id, function.name, function.version)
            if on_disk is None:
                functions.append(function)
            else:
                plan.unindexed.append((node.id, on_disk))
        if not compute and not functions:
            plan.cached.append(node.id)
            continue
        record = StateRecord.from_dict(node._pending or node.record)  # a retried failure: what this script declares
        blinded = prereg.blind_patterns(graph.tags_of(node)) if functions and prereg.blinds else []
        plan.tasks.append(Task(node.id, node.parent_id, node.properties, node.recipe_obj, record, compute,
                               functions, blinded, sorted(graph.tags_of(node))))
    return plan
