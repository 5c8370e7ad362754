"""Parts of many result records read in SQLite, for analyses over populations (see :mod:`prunelab.core.bulk`).

The index keeps each result's record as JSON; SQLite's JSON paths pick the
parts a frame reads out of it, so only they are parsed in Python.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any, cast

__all__ = ["result_parts", "result_sample", "result_versions"]


def result_versions(db: sqlite3.Connection, name: str) -> list[str]:
    """The keys (``name@vN``) under which results of the function ``name`` are stored in the index ``db``."""
    return [key for (key,) in db.execute("SELECT DISTINCT key FROM results WHERE key >= ? AND key < ?",
                                         (f"{name}@v", f"{name}@w"))]


def result_sample(db: sqlite3.Connection, key: str) -> dict[str, Any] | None:
    """One stored record of the result ``key`` (``name@vN``), any state's (None: none stored)."""
    row = db.execute("SELECT record FROM results WHERE key = ? LIMIT 1", (key,)).fetchone()
    return None if row is None else cast(dict[str, Any], json.loads(row[0]))


def result_parts(db: sqlite3.Connection, key: str, paths: Sequence[str]) -> Iterator[tuple[str, list[Any]]]:
    """Per stored record of the result ``key``: its state's id, and the parts of the record at ``paths``.

    Parameters
    ----------
    db : sqlite3.Connection
        The index.
    key : str
        The result's key, ``name@vN``.
    paths : sequence of str
        SQLite JSON paths, at least two (e.g. ``"$.version"``, ``"$.value[1][0][1]"``).

    Yields
    ------
    tuple
        The state's id, and the parts at ``paths`` (None where the record has nothing there). The records
        are parsed by SQLite: only the parts asked for reach Python.
    """
    cursor = db.cursor()  # its own: the caller may query the index between two rows
    marks = ",".join("?" * len(paths))
    for node_id, data in cursor.execute(f"SELECT node_id, json_extract(record, {marks}) FROM results "  # noqa: S608
                                        "WHERE key = ?", (*paths, key)):
        yield node_id, json.loads(data)
