"""``index.sqlite``: a cache of the records, for fast queries.

The index is never trusted blindly. It stores the store's write generation and
the count of state directories it saw; when either differs from the directory
(a writer crashed between publishing and indexing, or files were copied in), it
is rebuilt from the records. It may live outside the experiment
(``PRUNELAB_INDEX_DIR``), e.g. on a local disk when the experiment is on a
shared filesystem; where its file cannot be used it lives in memory (see
:mod:`.database`). :func:`.consistency.index_differences` checks it against the files.
"""

from __future__ import annotations

import json
import sqlite3
import warnings
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from ..core.errors import CorruptStateError, PrunelabWarning
from .database import INDEX_DIR_ENV, SCHEMA_VERSION, connect, in_memory, index_path
from .files import crash_point, read_file
from .store import Store

__all__ = ["Index", "INDEX_DIR_ENV", "blobs_of"]


def blobs_of(record: dict[str, Any]) -> list[str]:
    """The blobs a state or result record uses."""
    return list(record.get("blobs", []))


def _rollback(db: sqlite3.Connection) -> None:
    """Roll back, if a transaction is still open: SQLite ends one itself on some errors (a full disk), and a
    failing ROLLBACK must not hide the error that caused it."""
    try:
        db.execute("ROLLBACK")
    except sqlite3.Error:
        pass


class Index:
    """The SQLite cache of one store's records.

    Attributes
    ----------
    in_memory : str or None
        Why the index is kept in memory for this process (None: it is the file).
    skipped : list of str
        What the last :meth:`rebuild` could not index (damaged records, results, log entries), one line each.
    """

    def __init__(self, store: Store):
        self.store = store
        self.path = index_path(store.layout)
        self.skipped: list[str] = []
        with store.lock():  # two processes opening a new index at once would race on its schema and WAL switch
            self.db, self.in_memory = connect(self.path)

    # ------------------------------------------------------------ validity
    def _info(self) -> dict[str, str]:
        return dict(self.db.execute("SELECT key, value FROM info").fetchall())

    def ensure_valid(self) -> bool:
        """Rebuild the index if it is stale; return whether it was rebuilt.

        A file index that cannot be rebuilt for want of space (or write access)
        is replaced by an in-memory one for this process.
        """
        with self.store.lock():
            info = self._info()
            fresh = (
                info.get("schema") == SCHEMA_VERSION
                and info.get("generation") == str(self.store.generation())
                and info.get("count") == str(self.store.layout.count_states())
            )
            if not fresh:
                try:
                    self.rebuild()
                except sqlite3.OperationalError as err:
                    if self.in_memory is not None:
                        raise
                    self.db.close()
                    self.in_memory = f"cannot be written ({err})"
                    self.db = in_memory(self.path, self.in_memory)
                    self.rebuild()
            return not fresh

    def _set_info(self, count_delta: int, bumped: bool) -> None:
        """Carry the validity stamps over a write: the state count, and the generation when the write bumped it.

        A stale stamp stays stale: the generation is advanced only from the
        value just before this write's bump, so a writer that bumped and then
        crashed before indexing is never hidden by the next writer.
        """
        if count_delta:
            self.db.execute("UPDATE info SET value = CAST(CAST(value AS INTEGER) + ? AS TEXT) WHERE key = 'count'",
                            (count_delta,))
        if bumped:
            generation = self.store.generation()
            self.db.execute("UPDATE info SET value = ? WHERE key = 'generation' AND value = ?",
                            (str(generation), str(generation - 1)))

    def rebuild(self) -> list[str]:
        """Rebuild every table from the files (call under the lock); return what could not be indexed.

        A damaged record, result or tag entry is skipped (and warned about),
        never fatal: the rest is indexed. The list is also kept in :attr:`skipped`.
        """
        db = self.db
        skipped: list[str] = []
        db.execute("BEGIN")
        try:
            for table in ("nodes", "results", "tags", "blob_users", "info"):
                db.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed table names
            count = 0
            for folder in self.store.layout.iter_state_dirs():
                count += 1
                path = folder / "meta.json"
                try:
                    data = read_file(path, state_ids=[folder.name])
                    record = self.store.states.parse_record(data, path, folder.name)
                except (OSError, CorruptStateError) as err:
                    skipped.append(f"state {folder.name}: {err}")
                    continue
                self._put_node(record, data)
                errors: list[CorruptStateError] = []
                for result in self.store.results.read_all(record["id"], errors):
                    self._put_result(record["id"], result)
                skipped += [f"a result of {folder.name}: {err}" for err in errors]
            for line in skipped:
                warnings.warn(f"index: skipping {line}", PrunelabWarning, stacklevel=2)
            for _, entry in self.store.logs.read("tags"):  # a damaged entry is skipped, and warned about there
                self._apply_tags(entry["entries"])
            skipped += [f"tags entry {Path(p).name}: {why}" for p, why in self.store.logs.damaged.items() if "/tags/" in p]
            db.executemany(
                "INSERT OR REPLACE INTO info VALUES (?, ?)",
                [("schema", SCHEMA_VERSION), ("generation", str(self.store.generation())), ("count", str(count))],
            )
            db.execute("COMMIT")
        except BaseException:
            _rollback(db)
            raise
        self.skipped = skipped
        return skipped

    # ------------------------------------------------------------- writes
    def _put_node(self, record: dict[str, Any], data: bytes, new: bool = False) -> None:
        node_id = record["id"]
        self.db.execute("INSERT OR REPLACE INTO nodes VALUES (?, ?, ?, ?)",
                        (node_id, record.get("parent_id"), record.get("status"), data))
        if not new:  # a replaced record's blobs are listed anew
            self.db.execute("DELETE FROM blob_users WHERE node_id = ?", (node_id,))
        self.db.executemany("INSERT INTO blob_users VALUES (?, ?)", [(d, node_id) for d in blobs_of(record)])

    def _put_result(self, node_id: str, record: dict[str, Any]) -> None:
        key = f"{record['name']}@v{record['version']}"
        self.db.execute("INSERT OR REPLACE INTO results VALUES (?, ?, ?)",
                        (node_id, key, json.dumps(record, allow_nan=True)))
        self.db.executemany("INSERT INTO blob_users VALUES (?, ?)", [(d, node_id) for d in blobs_of(record)])

    def _apply_tags(self, entries: Iterable[list[str]]) -> None:
        for op, node_id, tag in entries:
            if op == "+":
                self.db.execute("INSERT OR IGNORE INTO tags VALUES (?, ?)", (node_id, tag))
            else:
                self.db.execute("DELETE FROM tags WHERE node_id = ? AND tag = ?", (node_id, tag))

    def _write(self, action: Callable[[], None], count_delta: int = 0, bumped: bool = True) -> None:
        """Apply ``action`` in one transaction with the validity stamps (under the store lock).

        ``bumped``: the write it indexes advanced the store's generation just before.
        """
        self.db.execute("BEGIN")
        try:
            action()
            self._set_info(count_delta, bumped)
            crash_point("index-update")
            self.db.execute("COMMIT")
        except BaseException:
            _rollback(self.db)
            raise

    def record_published(self, data: bytes, new_dir: bool) -> None:
        """Index a record just published (called by the store under the lock).

        A new state directory changes the count; replacing a record (not new) bumped the generation.
        """
        record = json.loads(data)
        self._write(lambda: self._put_node(record, data, new_dir), count_delta=1 if new_dir else 0,
                    bumped=not new_dir)

    def result_written(self, node_id: str, record: dict[str, Any]) -> None:
        """Index a function result just written (results change neither the count nor the generation)."""
        self._write(lambda: self._put_result(node_id, record), bumped=False)

    def tags_written(self, entries: list[list[str]]) -> None:
        """Index tag assignments just appended to the log."""
        self._write(lambda: self._apply_tags(entries))

    def nodes_removed(self, node_ids: list[str]) -> None:
        """Drop removed states from the index."""

        def action() -> None:
            for table, column in (("nodes", "id"), ("results", "node_id"), ("tags", "node_id"),
                                  ("blob_users", "node_id")):
                self.db.executemany(f"DELETE FROM {table} WHERE {column} = ?",  # noqa: S608
                                    [(i,) for i in node_ids])

        self._write(action, count_delta=-len(node_ids))

    def touch(self) -> None:
        """Stamp the generation after a write that bumped it but needs no row change."""
        self._write(lambda: None)

    # -------------------------------------------------------------- reads
    def node_rows(self) -> list[tuple[str, str | None, str]]:
        """Return (id, parent_id, status) of every stored state."""
        return self.db.execute("SELECT id, parent_id, status FROM nodes").fetchall()

    def status_of(self, node_ids: list[str]) -> dict[str, str]:
        """Return the stored status of those of ``node_ids`` that are stored."""
        out: dict[str, str] = {}
        for start in range(0, len(node_ids), 500):
            chunk = node_ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            out.update(self.db.execute(f"SELECT id, status FROM nodes WHERE id IN ({marks})", chunk).fetchall())  # noqa: S608
        return out

    def record(self, node_id: str) -> dict[str, Any] | None:
        """Return a state's record from the cache (None if not stored)."""
        row = self.db.execute("SELECT record FROM nodes WHERE id = ?", (node_id,)).fetchone()
        return json.loads(row[0]) if row else None

    def records(self, node_ids: list[str]) -> dict[str, dict[str, Any]]:
        """Return the records of many states at once."""
        out = {}
        for start in range(0, len(node_ids), 500):
            chunk = node_ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for node_id, data in self.db.execute(f"SELECT id, record FROM nodes WHERE id IN ({marks})", chunk):  # noqa: S608
                out[node_id] = json.loads(data)
        return out

    def tags(self) -> dict[str, set[str]]:
        """Return every node's tags."""
        out: dict[str, set[str]] = {}
        for node_id, tag in self.db.execute("SELECT node_id, tag FROM tags"):
            out.setdefault(node_id, set()).add(tag)
        return out

    def results(self, node_id: str) -> dict[str, dict[str, Any]]:
        """Return a state's result records keyed by ``name@vN``."""
        rows = self.db.execute("SELECT key, record FROM results WHERE node_id = ?", (node_id,)).fetchall()
        return {key: json.loads(data) for key, data in rows}

    def result_records(self) -> list[dict[str, Any]]:
        """Every stored result record."""
        return [json.loads(data) for (data,) in self.db.execute("SELECT record FROM results")]

    def result_keys(self, node_ids: list[str] | None = None) -> dict[str, set[str]]:
        """Return, per node (of ``node_ids``, or every node), the keys of its stored results."""
        out: dict[str, set[str]] = {}
        if node_ids is None:
            rows: Iterable[tuple[str, str]] = self.db.execute("SELECT node_id, key FROM results")
        else:
            rows = [row for start in range(0, len(node_ids), 500) for chunk in [node_ids[start:start + 500]]
                    for row in self.db.execute("SELECT node_id, key FROM results WHERE node_id IN "  # noqa: S608
                                               f"({','.join('?' * len(chunk))})", chunk)]
        for node_id, key in rows:
            out.setdefault(node_id, set()).add(key)
        return out

    def blob_users(self, digest: str) -> list[str]:
        """Return the states whose values or results use a blob."""
        rows = self.db.execute("SELECT DISTINCT node_id FROM blob_users WHERE digest = ?", (digest,)).fetchall()
        return sorted(r[0] for r in rows)
