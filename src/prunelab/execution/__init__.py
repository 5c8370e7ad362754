"""Executors: where and how the tasks of a run are computed."""

from __future__ import annotations

import os

from ..core.errors import StateDefinitionError
from .base import Executor, RunReport
from .dask import DaskExecutor
from .local import LocalExecutor

__all__ = ["DaskExecutor", "Executor", "RunReport", "LocalExecutor", "resolve_executor"]


def resolve_executor(executor: Executor | None) -> Executor:
    """Return ``executor``, or the one ``PRUNELAB_EXECUTOR`` names, or a :class:`LocalExecutor`.

    ``PRUNELAB_EXECUTOR=dask`` starts a local cluster (``PRUNELAB_WORKERS`` workers
    if set); ``dask://HOST:PORT`` connects to a running scheduler.

    Parameters
    ----------
    executor : Executor or None
        The executor to use; None picks one from the environment.

    Returns
    -------
    Executor
        ``executor`` itself when given, otherwise a new one.

    Raises
    ------
    StateDefinitionError
        If ``executor`` is not an :class:`Executor`, ``PRUNELAB_WORKERS`` is not a positive int, or
        ``PRUNELAB_EXECUTOR`` names no known executor.
    """
    if executor is not None:
        if not isinstance(executor, Executor):
            raise StateDefinitionError(
                f"run(executor=...) takes an executor such as pl.LocalExecutor(), got {type(executor).__qualname__}."
            )
        return executor
    name = os.environ.get("PRUNELAB_EXECUTOR", "local").strip()
    if name.lower() in ("", "local"):
        return LocalExecutor()
    if name.lower() == "dask":
        workers = os.environ.get("PRUNELAB_WORKERS")
        if workers is not None and not (workers.isdigit() and int(workers) >= 1):
            raise StateDefinitionError(f"PRUNELAB_WORKERS={workers!r} must be a positive int (the local cluster's "
                                       "workers).")
        return DaskExecutor(n_workers=int(workers) if workers else None)
    if name.lower().startswith("dask://"):
        return DaskExecutor(address="tcp://" + name[len("dask://"):])
    raise StateDefinitionError(f"PRUNELAB_EXECUTOR={name!r} is not a known executor; use 'local', 'dask' (a local "
                               "cluster) or 'dask://HOST:PORT' (a running scheduler).")
