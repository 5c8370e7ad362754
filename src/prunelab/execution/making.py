"""Making a task's state: its recipe run on a private copy of its parent (alone, or as a cohort of one)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..core.errors import Preempted, StateDefinitionError
from ..core.identity import class_name
from ..core.runtime import running
from ..core.seeding import derive_seed
from ..core.state import ExperimentState, bind_node, check_kept, warn_undeclared
from .bodies import settings_changed
from .checkpoints import BodyRuntime, CohortRuntime

if TYPE_CHECKING:
    from .engine import Engine
    from .materialise import Materialized
    from .task import Task

__all__ = ["Made", "checked", "make_cohort", "make_state", "member_state"]


def make_state(engine: Engine, task: Task, parent: Materialized | None, runtime: BodyRuntime | None = None, *,
               cohort: bool = False) -> tuple[ExperimentState, dict[str, Any]]:
    """Build a task's state as a run does (``verify`` re-executes through this too).

    The recipe runs under ``runtime`` (where its series and checkpoints
    go); the default keeps its series in memory and writes no checkpoint.
    With ``cohort`` (cohorts on, and a recipe with a cohort key), it runs
    as a cohort of one (:meth:`~prunelab.Recipe.run_cohort`), as each
    member of a larger cohort does. Returns the state and the torch
    settings its recipe left in force, where they differ from the spec's
    (and ``cohort``: 1 for a cohort of one).
    """
    cls = engine.materialiser.require_class()
    if task.recipe is None or task.parent_id is None:
        state = engine.materialiser.new_state(task.properties, task.record.root)
        warn_undeclared(state, f"{cls.__qualname__}.initialize_state")
        return state, {}
    runtime = runtime or BodyRuntime(task.node_id, threads=engine.threads, deterministic=engine.deterministic)
    if cohort and task.recipe.cohort_key() is not None:
        made = make_cohort(engine, [task], [parent], [runtime])
        if isinstance(made, BaseException):
            raise made
        out, in_force = made[0]
        if isinstance(out, BaseException):
            raise out
        return out, in_force
    state = member_state(engine, task, parent)
    recipe = task.recipe.fresh()  # a failed run that changed self leaves the next one as declared
    what = f"recipe {class_name(type(recipe))} (node {task.node_id[:12]}…)"
    with engine.body(derive_seed(task.node_id, "recipe"), [task.record.root], what), running(runtime):
        out = recipe.run(state)
        in_force = settings_changed(what, engine.threads, engine.deterministic)
    return checked(engine, out, task), in_force


def member_state(engine: Engine, task: Task, parent: Materialized | None) -> ExperimentState:
    """The private copy of a task's parent state its recipe is given (bound to the task's node)."""
    return bind_node(engine.materialiser.load_state(task.parent_id or "", task.properties, task.record.root, parent),
                     task.node_id, task.tags)

def checked(engine: Engine, out: Any, task: Task) -> ExperimentState:
    """A recipe's returned state, once it is one of the class and kept the properties (else raise)."""
    cls = engine.materialiser.require_class()
    name = class_name(type(task.recipe))
    if not isinstance(out, cls):
        raise StateDefinitionError(
            f"{name}.run returned {type(out).__qualname__}, not a {cls.__qualname__}; "
            "a recipe must return the state it was given (or another instance of the state class)."
        )
    check_kept(out, task.properties, name, " Keep it fixed, or make the varying value a recipe property or a "
                "non-hashed attribute.")
    warn_undeclared(out, f"{name}.run")
    return out


Made = list[tuple["ExperimentState | BaseException", dict[str, Any]]]


def make_cohort(engine: Engine, tasks: Sequence[Task], parents: Sequence[Materialized | None],
                runtimes: Sequence[BodyRuntime]) -> Made | BaseException:
    """Build the members' states and run their recipe's ``run_cohort`` on them.

    Returns, per member, its new state (or what refused it) and the settings
    in force to record; or what ``run_cohort`` raised, for every member.
    """
    states, built = [], []
    out: Made = []
    for task, parent in zip(tasks, parents):
        try:
            states.append(member_state(engine, task, parent))
            built.append(task)
            out.append((states[-1], {}))
        except Exception as err:  # noqa: BLE001 - this member fails alone
            out.append((err, {}))
    if not states:
        return out
    members = {t.node_id: (r, t.recipe.fresh(), derive_seed(t.node_id, "recipe"))  # type: ignore[union-attr]
               for t, r in zip(tasks, runtimes)}
    first = members[built[0].node_id][1]
    what = f"recipe {class_name(type(first))} (a cohort of {len(states)}, node {built[0].node_id[:12]}… first)"
    try:
        with engine.body(members[built[0].node_id][2], [t.record.root for t in built], what), \
                running(CohortRuntime(members, engine.threads, engine.deterministic)):  # type: ignore[arg-type]
            made = first.run_cohort(states)
            in_force = settings_changed(what, engine.threads, engine.deterministic)
    except (Exception, Preempted) as err:  # noqa: BLE001 - recorded for every member
        return err
    if not isinstance(made, list) or len(made) != len(states):
        return StateDefinitionError(f"{class_name(type(first))}.run_cohort returned {type(made).__name__} "
                                    f"{'of ' + str(len(made)) + ' ' if isinstance(made, list) else ''}for "
                                    f"{len(states)} states; return a list with one state per member, in order.")
    results = iter(made)
    settings = {**in_force, "cohort": len(states)}
    refused: Made = []
    for task, (state, _) in zip(tasks, out):
        if isinstance(state, BaseException):
            refused.append((state, {}))
            continue
        try:
            refused.append((checked(engine, next(results), task), settings))
        except Exception as err:  # noqa: BLE001 - this member fails alone
            refused.append((err, {}))
    return refused
