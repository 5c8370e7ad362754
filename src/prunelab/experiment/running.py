"""``Experiment.run``: plan what is missing, record the run's environment and tags, and execute the plan."""

from __future__ import annotations

import contextlib
import sqlite3
import time
import warnings
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from ..core.environment import capture
from ..core.errors import PrunelabError, PrunelabWarning
from ..core.nodes import Node
from ..execution.base import Executor, RunReport
from ..execution.bodies import refuse_inside_body
from ..execution.run import execute_plan, storing_failed
from ..storage.files import disk_full

if TYPE_CHECKING:
    from .experiment import Experiment

__all__ = ["declaring_only", "run"]

_DECLARING_ONLY: list[str] = []  # why run() only declares now, innermost last (see declaring_only)


@contextlib.contextmanager
def declaring_only(why: str) -> Iterator[None]:
    """Make every :meth:`Experiment.run` inside the block compute and write nothing.

    For importing a user's script to learn its classes (``prunelab status
    --script``): the script's ``run()`` calls return an empty report instead
    of training. ``why`` is said in the warning each such call gives.
    """
    _DECLARING_ONLY.append(why)
    try:
        yield
    finally:
        _DECLARING_ONLY.pop()


def run(exp: Experiment, executor: Executor | None, targets: Iterable[Node] | None, retry_failed: bool, *,
        raise_on_failure: bool, quiet: bool) -> RunReport:
    """Run an experiment (see :meth:`Experiment.run`, whose parameters these are).

    Parameters
    ----------
    exp : Experiment
        The experiment.
    executor : Executor, optional
        Where the tasks run (default: ``PRUNELAB_EXECUTOR``, else a local executor).
    targets : iterable of Node, optional
        Compute only these and their ancestors.
    retry_failed : bool
        Recompute nodes stored as failed.
    raise_on_failure : bool
        Raise a :class:`RunError` listing every failure.
    quiet : bool
        Do not print the summary line.

    Returns
    -------
    RunReport
        What the run did (empty inside :func:`declaring_only`).

    Raises
    ------
    PublishError
        Storing failed; every state stored before is intact.
    """
    refuse_inside_body("run()")
    if _DECLARING_ONLY:
        warnings.warn(f"run() on {exp.directory} computed nothing: {_DECLARING_ONLY[-1]}.", PrunelabWarning,
                      stacklevel=3)
        return RunReport()
    exp.store.layout.require_writable("run()")
    exp.store.logs.read("prereg", strict=True)  # damaged registrations: which metrics are blinded is unknown
    try:
        return _run(exp, executor, targets, retry_failed, raise_on_failure, quiet)
    except (OSError, sqlite3.Error) as err:
        if isinstance(err, PrunelabError) and not disk_full(err):
            raise
        raise storing_failed(err, exp.store.layout) from err


def _run(exp: Experiment, executor: Executor | None, targets: Iterable[Node] | None, retry_failed: bool,
         raise_on_failure: bool, quiet: bool) -> RunReport:
    from ..execution import resolve_executor

    executor = resolve_executor(executor)
    chosen = None if targets is None else exp._as_nodes(targets)
    started = time.time()
    exp.graph.invalidate()  # re-read registrations and blinds other processes may have written
    exp.engine.with_environment(exp.storage.write_env(capture()), tuple(exp.graph.prereg.digests))
    plan = exp.plan(chosen, retry_failed)
    exp._write_tags(exp.declared.untagged(exp.graph.stored_tags()))
    declared = list(exp.declared.nodes) if chosen is None else [t.node_id for t in plan.tasks] + plan.cached
    return execute_plan(plan, engine=exp.engine, executor=executor, storage=exp.storage, graph=exp.graph,
                        declared=declared, targets=None if chosen is None else [n.id for n in chosen],
                        started=started, raise_on_failure=raise_on_failure, quiet=quiet)
