"""Pre-registration and blind analysis: say what you will test before you look, and prove it later.

``preregister`` records node patterns × metric patterns, hypotheses, the
formula and α under ``EXP/prereg/``, and prints the registration's digest for
your notes; every state and result written afterwards carries it, so a later
edit of the registration shows (:func:`registrations` reports it). It is
refused when a covered node already has a covered metric, unless
``allow_late=True``, which is recorded. ``blind`` withholds metrics from every
read path (nodes, frames, the command line, reports, the demo summary) until
``unblind`` is recorded. This protects against accidental change and
peeking, not against an adversary with write access.
"""

from __future__ import annotations

import fnmatch
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..core.prereg import registration_digest
from .frames import AnalysisError

if TYPE_CHECKING:
    from ..experiment import Experiment

__all__ = ["preregister", "blind", "unblind", "registrations"]


def _patterns(value: Sequence[str] | str, what: str, allow_empty: bool) -> list[str]:
    items = [value] if isinstance(value, str) else list(value)
    if not all(isinstance(p, str) and p for p in items) or (not items and not allow_empty):
        raise AnalysisError(f"{what} must be a list of non-empty strings (e.g. {['evaluate.test_accuracy']!r} "
                            f"for metrics, {['outcome']!r} for node tag patterns), got {value!r}.")
    return items


def _covered_results(exp: Experiment, nodes: list[str], metrics: list[str]) -> list[str]:
    """Ids of stored nodes matching ``nodes`` that already have a result ``metrics`` cover."""
    keys = exp.graph.result_keys()
    functions = {p.split(".", 1)[0] for p in metrics}
    out = []
    for node in exp.graph.nodes.filter(*nodes):
        names = {key.rpartition("@")[0] for key in keys.get(node.id, ())}
        if any(fnmatch.fnmatchcase(name, f) for name in names for f in functions):
            out.append(node.id)
    return out


def _append(exp: Experiment, entry: dict[str, Any]) -> None:
    exp.storage.append_registration(entry)
    exp.graph.invalidate()


def preregister(exp: Experiment, name: str, *, metrics: Sequence[str], nodes: Sequence[str] = (),
                hypotheses: Sequence[str] = (), formula: str | None = None, alpha: float = 0.05,
                allow_late: bool = False) -> str:
    """Register an analysis before its metrics exist; return (and print) the registration's digest.

    Parameters
    ----------
    exp : Experiment
        The experiment the registration is recorded in (under ``EXP/prereg/``).
    name : str
        Unique within the experiment.
    metrics : list of str
        Function names or ``function.key`` patterns (``"evaluate.test_accuracy"``).
    nodes : list of str, optional
        Tag patterns a covered node matches, all of them (default: every node).
    hypotheses : list of str, optional
        In words, as you will report them.
    formula : str, optional
        The model you will fit (e.g. the Prune Responsibly formula).
    alpha : float, default=0.05
        The significance level you will test at, strictly between 0 and 1.
    allow_late : bool, default=False
        Register although some covered metrics exist already (recorded, and
        reported as late).

    Returns
    -------
    str
        The registration's digest (also printed to standard error).

    Raises
    ------
    AnalysisError
        For a taken name, bad patterns or alpha, or covered metrics that exist
        already (without ``allow_late``); nothing is written then.
    """
    if not isinstance(name, str) or not name:
        raise AnalysisError(f"a registration needs a non-empty name, got {name!r}.")
    if any(r.name == name for r in exp.graph.prereg.registrations):
        raise AnalysisError(f"a registration named {name!r} exists already; registrations are never replaced, "
                            "so choose another name.")
    metric_patterns = _patterns(metrics, "metrics", allow_empty=False)
    node_patterns = _patterns(nodes, "nodes", allow_empty=True)
    if not isinstance(alpha, (int, float)) or not 0 < alpha < 1:
        raise AnalysisError(f"alpha must be between 0 and 1, got {alpha!r}.")
    existing = _covered_results(exp, node_patterns, metric_patterns)
    if existing and not allow_late:
        raise AnalysisError(
            f"registration {name!r} is late: {len(existing)} covered node(s) already have covered metrics "
            f"(e.g. {', '.join(i[:12] for i in existing[:3])}). Register before running, or pass "
            "allow_late=True to register anyway (recorded and reported as late)."
        )
    entry: dict[str, Any] = {"kind": "registration", "name": name, "nodes": node_patterns,
                             "metrics": metric_patterns, "hypotheses": [str(h) for h in hypotheses],
                             "formula": formula, "alpha": float(alpha), "created": time.time(),
                             "late": bool(existing), "late_nodes": existing}
    digest = registration_digest(entry)
    _append(exp, {**entry, "registration_digest": digest})
    late = " (late: some covered metrics existed already)" if existing else ""
    print(f"prunelab: registered {name!r}{late}; digest {digest}. Keep this digest in your own notes: "
          "every record written from now on carries it.", file=sys.stderr)
    return digest


def blind(exp: Experiment, *, metrics: Sequence[str], nodes: Sequence[str] = ()) -> None:
    """Withhold metrics of the nodes matching ``nodes`` from every read path until :func:`unblind`.

    Results written while blinded keep the covered values in a withheld record;
    results that exist already are hidden from reads too.

    Parameters
    ----------
    exp : Experiment
        The experiment the blind is recorded in (under ``EXP/prereg/``).
    metrics : str or list of str
        Function names or ``function.key`` patterns to withhold (``"evaluate.test_accuracy"``).
    nodes : str or list of str, optional
        Tag patterns a covered node matches, all of them (default: every node).

    Raises
    ------
    AnalysisError
        If ``metrics`` is empty, or a pattern is not a non-empty string; nothing is written then.
    """
    _append(exp, {"kind": "blind", "nodes": _patterns(nodes, "nodes", allow_empty=True),
                  "metrics": _patterns(metrics, "metrics", allow_empty=False), "created": time.time()})


def unblind(exp: Experiment, reason: str = "") -> None:
    """Record the end of every blind so far; the withheld metrics show again.

    Parameters
    ----------
    exp : Experiment
        The experiment the unblinding is recorded in.
    reason : str, default=""
        Why the blind ends (e.g. the analysis is fixed), recorded with the entry.

    Raises
    ------
    AnalysisError
        If no blind is in force (none recorded, or all ended by an earlier unblind).
    """
    if not exp.graph.prereg.blinds:
        raise AnalysisError("nothing is blinded in this experiment; unblind records the end of a blind.")
    _append(exp, {"kind": "unblind", "reason": str(reason), "created": time.time()})


def registrations(exp: Experiment) -> list[dict[str, Any]]:
    """Every registration with its status: ``"intact"`` or ``"edited"`` (with why).

    A registration is edited when its content no longer gives the digest it
    was written with, or when records written after it carry another digest
    for it (it was changed, and its digest rewritten to match, afterwards).

    Parameters
    ----------
    exp : Experiment
        The experiment whose registrations are checked.

    Returns
    -------
    list of dict
        One per registration, oldest first, with ``name``, ``digest`` (of its content now),
        ``registered_digest``, ``created``, ``late``, ``metrics``, ``nodes``, ``hypotheses``,
        ``formula``, ``alpha``, ``status`` and ``why``.

    Raises
    ------
    CorruptStateError
        If an entry of the pre-registration log is damaged (nobody can check it); the message names the file.
    """
    exp.store.logs.read("prereg", strict=True)  # a damaged entry is an edit nobody can check: say which file
    prereg = exp.graph.prereg
    index = exp.index
    stamped = [r for r in index.records([i for i, _, _ in index.node_rows()]).values()]
    stamped += index.result_records()
    out = []
    for position, registration in enumerate(prereg.registrations):
        current = registration.content_digest
        # a record lists the digests of the registrations its run knew, in order: this one is at `position`
        seen = [r["prereg"][position] for r in stamped if len(r.get("prereg") or []) > position]
        if current != registration.digest:
            status, why = "edited", "its content no longer matches the digest it was registered with"
        elif any(digest != current for digest in seen):
            status, why = "edited", (f"{sum(d != current for d in seen)} record(s) written after it carry another "
                                     "digest for it: it was changed after they were written")
        else:
            status, why = "intact", f"{len(seen)} later record(s) carry its digest"
        out.append({"name": registration.name, "digest": current, "registered_digest": registration.digest,
                    "created": registration.created, "late": registration.late, "metrics": registration.metrics,
                    "nodes": registration.nodes, "hypotheses": registration.hypotheses,
                    "formula": registration.formula, "alpha": registration.alpha, "status": status, "why": why})
    return out
