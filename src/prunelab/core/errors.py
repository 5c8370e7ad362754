"""Exceptions and warnings raised by prunelab.

Every exception derives from :class:`PrunelabError` and from the builtin it
refines, so callers can catch either (``except TypeError`` still works for an
unencodable property).
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import PrunelabError, PrunelabWarning

__all__ = [
    "PrunelabError",
    "UnhashableValueError",
    "UnknownNameError",
    "CorruptStateError",
    "ExperimentFormatError",
    "StateDefinitionError",
    "RunError",
    "PublishError",
    "ReadOnlyError",
    "PrunelabWarning",
]


class UnhashableValueError(PrunelabError, TypeError):
    """A property value has no identity encoding."""


class UnknownNameError(PrunelabError, LookupError):
    """A name (property, node id, technique …) is not known."""

    def __str__(self) -> str:  # LookupError would quote the message like KeyError
        return str(self.args[0]) if self.args else ""


class CorruptStateError(PrunelabError, OSError):
    """A stored file fails its checksum or cannot be parsed.

    Parameters
    ----------
    message : str
        What is wrong with the file (the exception's text).
    path : str, default=""
        The file at fault; kept as the ``path`` attribute.
    state_ids : sequence of str, default=()
        Every state that uses the file; kept as the ``state_ids`` attribute (a list).
    """

    def __init__(self, message: str, path: str = "", state_ids: Sequence[str] = ()):
        super().__init__(message)
        self.path = path
        self.state_ids = list(state_ids)

    def __str__(self) -> str:
        return str(self.args[0])


class ExperimentFormatError(PrunelabError, ValueError):
    """A directory is not a prunelab experiment, or comes from a newer format."""


class StateDefinitionError(PrunelabError, ValueError):
    """A state, recipe or function is declared or used inconsistently."""


class RunError(PrunelabError, RuntimeError):
    """One or more nodes failed during :meth:`Experiment.run`.

    The message counts the failures and skips and gives the last line of each traceback.

    Parameters
    ----------
    failed : dict of str to str
        Failed node id (or ``"<id> function <name>"``) to the traceback of its failure; kept (copied)
        as the ``failed`` attribute.
    skipped : sequence of str, default=()
        Ids of the nodes skipped because an ancestor failed; kept as the ``skipped`` attribute (a list).
    """

    def __init__(self, failed: dict[str, str], skipped: Sequence[str] = ()):
        self.failed = dict(failed)
        self.skipped = list(skipped)
        lines = [f"{len(self.failed)} node(s) failed, {len(self.skipped)} skipped:"]
        for key, tb in self.failed.items():
            node_id, _, what = key.partition(" ")
            last = tb.strip().splitlines()[-1] if tb.strip() else "?"
            lines.append(f"  {node_id[:12]}{' ' + what if what else ''}: {last}")
        lines.append(
            "Fix the cause and run the script again: failed nodes are retried and "
            "everything already done is kept."
        )
        super().__init__("\n".join(lines))


class PublishError(PrunelabError, OSError):
    """Storing computed states failed in the process that publishes them during a run.

    Nothing is stored partially: each state and result is published whole or
    not at all, and what was not stored is computed again by the next run.
    """


class ReadOnlyError(PrunelabError, PermissionError):
    """A command that writes was given an experiment directory it cannot write (a read-only mount, say).

    Everything that only reads works on such a directory.
    """


#: The exit status of a process whose run was preempted (``EX_TEMPFAIL``: a job script requeues on it).
PREEMPTED_EXIT = 75


class Preempted(PrunelabError, SystemExit):
    """A run stopped because the process was asked to (SIGTERM, or the signal in ``PRUNELAB_PREEMPT_SIGNAL``).

    Raised by :meth:`Recipe.checkpoint` once it has written the partial, and
    by :meth:`Experiment.run` after the run's summary: the preempted nodes
    are left declared, their leases released, and re-running resumes them
    from their newest checkpoint. Left uncaught, it ends the process with
    exit status 75 (:data:`PREEMPTED_EXIT`), which a job script requeues on.

    Parameters
    ----------
    message : str
        What was preempted.
    nodes : sequence of str, default=()
        The ids of the preempted nodes; kept as the ``nodes`` attribute (a list).
    """

    def __init__(self, message: str, nodes: Sequence[str] = ()):
        super().__init__(message)
        self.code = PREEMPTED_EXIT
        self.nodes = list(nodes)
