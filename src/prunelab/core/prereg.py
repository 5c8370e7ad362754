"""Pre-registration and blinding records (``EXP/prereg/``), as the engine and every read path see them.

The records are an append-only log of sealed entries: registrations (node
patterns × metric patterns, hypotheses, formula, alpha), blinds and unblinds.
A registration carries a digest of its content; the engine embeds the digests
of every registration in the records it writes afterwards, so an edit made
later is visible as a mismatch. A blind withholds metrics: while it is active
(no unblind recorded after it), function results are written with the covered
keys replaced by :data:`BLINDED` and the true values kept in a withheld record,
and every read path shows covered keys as :data:`BLINDED`.

Node patterns are tag patterns, all of which a node's tags must match (as in
:meth:`prunelab.NodeSet.filter`; none: every node). Metric patterns name a
function (``"evaluate"``: all its keys) or its top-level keys, shell-style
(``"evaluate.test_*"``).
"""

from __future__ import annotations

import fnmatch
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .records import canonical_json

__all__ = ["BLINDED", "Registration", "Prereg", "covers_metric", "registration_digest", "split_blinded", "mask"]

#: What every read path shows in place of a blinded metric.
BLINDED = "<blinded>"
_CONTENT = ("name", "nodes", "metrics", "hypotheses", "formula", "alpha", "created", "late", "late_nodes")


def registration_digest(entry: dict[str, Any]) -> str:
    """SHA-256 of a registration's content (every field but its stored digest)."""
    return hashlib.sha256(canonical_json({k: entry.get(k) for k in _CONTENT})).hexdigest()


def covers_metric(patterns: Iterable[str], function: str, key: str | None) -> bool:
    """Whether a metric pattern names ``function`` (whole) or ``function.key``."""
    metric = function if key is None else f"{function}.{key}"
    return any(p == function or fnmatch.fnmatchcase(metric, p) for p in patterns)


def _tags_match(tags: frozenset[str], patterns: list[str]) -> bool:
    from .nodeset import match_tags

    return all(match_tags(tags, p) for p in patterns)


@dataclass(frozen=True)
class Registration:
    """One pre-registration as stored (``digest``: what it claimed when written)."""

    entry: str
    name: str
    nodes: list[str]
    metrics: list[str]
    hypotheses: list[str]
    formula: str | None
    alpha: float
    created: float
    late: bool
    late_nodes: list[str]
    digest: str

    @property
    def content_digest(self) -> str:
        """The digest of the content as it is now."""
        return registration_digest({k: getattr(self, k) for k in _CONTENT})

    def covers(self, tags: frozenset[str], function: str, key: str | None) -> bool:
        """Whether this registration covers a metric of a node with these tags."""
        return _tags_match(tags, self.nodes) and covers_metric(self.metrics, function, key)


@dataclass
class Prereg:
    """The registrations and the active blinds of one experiment."""

    registrations: list[Registration]
    blinds: list[dict[str, Any]]
    damaged: bool = False  # an entry could not be read: which metrics are blinded is not known

    @classmethod
    def from_log(cls, entries: Iterable[tuple[str, dict[str, Any]]], damaged: bool) -> Prereg:
        """Build from the log's entries, oldest first.

        Parameters
        ----------
        entries : iterable of (str, dict)
            Each entry's file name and content (seals already verified).
        damaged : bool
            Whether an entry could not be read.

        Returns
        -------
        Prereg
            The registrations, and the blinds no later unblind lifted.
        """
        registrations, blinds = [], []
        for name, entry in entries:
            kind = entry.get("kind")
            if kind == "registration":
                registrations.append(Registration(
                    entry=name, name=str(entry.get("name")), nodes=list(entry.get("nodes") or []),
                    metrics=list(entry.get("metrics") or []), hypotheses=list(entry.get("hypotheses") or []),
                    formula=entry.get("formula"), alpha=float(entry.get("alpha", 0.05)),
                    created=float(entry.get("created", 0.0)), late=bool(entry.get("late")),
                    late_nodes=list(entry.get("late_nodes") or []), digest=str(entry.get("registration_digest"))))
            elif kind == "blind":
                blinds.append(entry)
            elif kind == "unblind":
                blinds = []
        return cls(registrations, blinds, damaged)

    @property
    def digests(self) -> list[str]:
        """The current content digests of every registration (embedded in later records)."""
        return [r.content_digest for r in self.registrations]

    def blind_patterns(self, tags: frozenset[str]) -> list[str]:
        """The metric patterns blinded for a node with these tags."""
        return sorted({p for b in self.blinds if _tags_match(tags, list(b.get("nodes") or []))
                       for p in b.get("metrics") or []})


def split_blinded(value: Any, function: str, patterns: list[str]) -> tuple[Any, dict[str, Any]]:
    """Split a function's value into what may be shown and what is withheld.

    Returns ``(visible, withheld)``: covered top-level keys of a dict value (or
    the whole value, under the key ``""``, when the pattern names the function)
    are replaced by :data:`BLINDED` in ``visible`` and kept in ``withheld``.
    """
    if not patterns:
        return value, {}
    if not isinstance(value, dict) or function in patterns:
        return BLINDED, {"": value}
    withheld = {k: v for k, v in value.items() if covers_metric(patterns, function, str(k))}
    return {k: BLINDED if k in withheld else v for k, v in value.items()}, withheld


def mask(value: Any, function: str, patterns: list[str]) -> Any:
    """``value`` as a read path may show it under the blinded metric ``patterns``."""
    return split_blinded(value, function, patterns)[0]
