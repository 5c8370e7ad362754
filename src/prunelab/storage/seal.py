"""Sealed files: a record as canonical JSON with a digest of its other fields, verified on every read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..core.errors import CorruptStateError
from ..core.records import canonical_json
from .files import checksum, parse_json

__all__ = ["LOG_ADVICE", "RESULT_ADVICE", "STATE_ADVICE", "seal", "unseal"]

#: What to do about a damaged sealed file of a state (the default advice of :func:`unseal`).
STATE_ADVICE = ("Run `prunelab gc --repair` (it sets the damaged state aside) and re-run the script to recompute "
                "it.")
#: What to do about a damaged result file.
RESULT_ADVICE = ("Run `prunelab gc --repair` (it sets the damaged result aside; the state is intact) and re-run the "
                 "script to compute it again.")
#: What to do about a damaged entry of each append-only log.
LOG_ADVICE = {
    "tags": "It was skipped: the tag assignments it held are not shown. `prunelab gc --repair` sets it aside; add "
            "the tags again with exp.add_tag.",
    "runs": "It was skipped: that run is missing from exp.graph.runs (and run numbers after it shift). `prunelab gc "
            "--repair` sets it aside; the states it made are intact.",
    "prereg": "Which metrics are registered or blinded cannot be trusted, so nothing is run until it is resolved; "
              "restore the file from a copy, or let `prunelab gc --repair` set it aside (check your registration "
              "digests against your notes after).",
}


def seal(record: dict[str, Any]) -> bytes:
    """Return the record as canonical JSON with a ``digest`` of its other fields, appended last.

    The body is serialised once: the digest covers those bytes, and
    :func:`unseal` recomputes them from the parsed fields.

    Parameters
    ----------
    record : dict
        A JSON-able record (a ``digest`` field in it is replaced).

    Returns
    -------
    bytes
        The sealed file's content.
    """
    body = canonical_json({k: v for k, v in record.items() if k != "digest"})
    return b"%s%s\"digest\":\"%s\"}" % (body[:-1], b"," if len(body) > 2 else b"", checksum(body).encode())


def unseal(data: bytes, path: Path, state_ids: list[str], advice: str = STATE_ADVICE) -> dict[str, Any]:
    """Parse a sealed record and verify its digest.

    Parameters
    ----------
    data : bytes
        The file's content.
    path : Path
        The file, named in the error.
    state_ids : list of str
        The states that use it, named in the error.
    advice : str, default=STATE_ADVICE
        What to do about it, appended to the error.

    Returns
    -------
    dict
        The record, digest included.

    Raises
    ------
    CorruptStateError
        The content is not JSON, or its digest does not match.
    """
    try:
        record: dict[str, Any] = parse_json(data, path, state_ids)
        body = {k: v for k, v in record.items() if k != "digest"}
        ok = isinstance(record, dict) and record.get("digest") == checksum(canonical_json(body))
    except (CorruptStateError, AttributeError, RecursionError):
        ok = False
    if not ok:
        users = ", ".join(s[:12] for s in state_ids) or "none known"
        raise CorruptStateError(
            f"{path} fails its checksum (states using it: {users}); other states are intact. {advice}",
            str(path),
            state_ids,
        )
    return record
