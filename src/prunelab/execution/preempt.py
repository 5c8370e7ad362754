"""Preemption: the signal a scheduler sends before it kills a job, turned into checkpoints and a clean stop.

While a run executes, the signal (SIGTERM, or the one named by
``PRUNELAB_PREEMPT_SIGNAL``: ``USR1`` for ``sbatch --signal=USR1@90``; ``none``
leaves signals alone) only sets a flag. The running recipe's next
:meth:`~prunelab.Recipe.checkpoint` writes a partial and raises
:class:`~prunelab.Preempted`; no further task starts; the run prints its
summary and raises :class:`~prunelab.Preempted`, which ends the process with
exit status 75 (:data:`~prunelab.core.errors.PREEMPTED_EXIT`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from types import FrameType

from ..core.errors import StateDefinitionError

__all__ = ["SIGNAL_ENV", "handling", "preempt_signal", "requested"]

#: The environment variable naming the preemption signal (``TERM``, ``USR1``, ``SIGUSR2`` …, or ``none``).
SIGNAL_ENV = "PRUNELAB_PREEMPT_SIGNAL"
_REQUESTED = threading.Event()


def requested() -> bool:
    """Whether this process has been asked to stop since its run began."""
    return _REQUESTED.is_set()


def preempt_signal() -> signal.Signals | None:
    """The signal that preempts a run here (from ``PRUNELAB_PREEMPT_SIGNAL``; default SIGTERM; None for ``none``).

    Raises
    ------
    StateDefinitionError
        If the variable names no signal.
    """
    name = os.environ.get(SIGNAL_ENV, "TERM").strip().upper()
    if name in ("", "NONE", "OFF"):
        return None
    try:
        return signal.Signals[name if name.startswith("SIG") else f"SIG{name}"]
    except KeyError:
        raise StateDefinitionError(f"{SIGNAL_ENV}={os.environ[SIGNAL_ENV]!r} names no signal; use e.g. TERM, USR1 "
                                   "or none.") from None


def _on_signal(signum: int, frame: FrameType | None) -> None:
    _REQUESTED.set()


@contextlib.contextmanager
def handling() -> Iterator[None]:
    """Turn the preemption signal into the flag for the block (in the main thread; elsewhere, nothing to do)."""
    _REQUESTED.clear()
    signum = preempt_signal()
    if signum is None or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signum, _on_signal)
    try:
        yield
    finally:
        signal.signal(signum, previous)
