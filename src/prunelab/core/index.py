"""``index.sqlite``: a cache of the records, for fast queries.

The index is never trusted blindly. It stores the store's write generation and
the count of state directories it saw; when either differs from the directory
(a writer crashed between publishing and indexing, or files were copied in), it
is rebuilt from the records. A damaged database is deleted and rebuilt. It may
live outside the experiment (``PRUNELAB_INDEX_DIR``), e.g. on a local disk when
the experiment is on a shared filesystem.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from .errors import CorruptStateError, PrunelabWarning
from .files import crash_point, read_file
from .store import Store, unseal

__all__ = ["Index", "INDEX_DIR_ENV"]

#: Put index files in this directory instead of inside each experiment.
INDEX_DIR_ENV = "PRUNELAB_INDEX_DIR"
_SCHEMA_VERSION = "1"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS info(key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS nodes(id TEXT PRIMARY KEY, parent_id TEXT, status TEXT, record BLOB);
CREATE TABLE IF NOT EXISTS results(node_id TEXT, key TEXT, record BLOB, PRIMARY KEY(node_id, key));
CREATE TABLE IF NOT EXISTS tags(node_id TEXT, tag TEXT, PRIMARY KEY(node_id, tag));
CREATE TABLE IF NOT EXISTS blob_users(digest TEXT, node_id TEXT);
CREATE INDEX IF NOT EXISTS blob_users_digest ON blob_users(digest);
CREATE INDEX IF NOT EXISTS blob_users_node ON blob_users(node_id);
CREATE INDEX IF NOT EXISTS nodes_parent ON nodes(parent_id);
"""


def _index_path(store: Store) -> Path:
    folder = os.environ.get(INDEX_DIR_ENV)
    if not folder:
        return store.root / "index.sqlite"
    key = hashlib.sha256(str(store.root.resolve()).encode()).hexdigest()[:16]
    Path(folder).mkdir(parents=True, exist_ok=True)
    return Path(folder) / f"{store.root.name}-{key}.sqlite"


def _blobs_of(record: dict[str, Any]) -> list[str]:
    return list(record.get("blobs", []))


class Index:
    """The SQLite cache of one store's records."""

    def __init__(self, store: Store):
        self.store = store
        self.path = _index_path(store)
        with store.lock():  # two processes opening a new index at once would race on its schema and WAL switch
            self.db = self._connect()

    def _connect(self) -> sqlite3.Connection:
        try:
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=OFF")
            db.executescript(_SCHEMA)
            return db
        except sqlite3.DatabaseError:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            db.executescript(_SCHEMA)
            return db

    # ------------------------------------------------------------ validity
    def _info(self) -> dict[str, str]:
        return dict(self.db.execute("SELECT key, value FROM info").fetchall())

    def ensure_valid(self) -> bool:
        """Rebuild the index if it is stale; return whether it was rebuilt."""
        with self.store.lock():
            info = self._info()
            fresh = (
                info.get("schema") == _SCHEMA_VERSION
                and info.get("generation") == str(self.store.generation())
                and info.get("count") == str(self.store.count_states())
            )
            if not fresh:
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

    def rebuild(self) -> None:
        """Rebuild every table from the files (call under the lock)."""
        db = self.db
        db.execute("BEGIN")
        try:
            for table in ("nodes", "results", "tags", "blob_users", "info"):
                db.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed table names
            count = 0
            for folder in self.store.iter_state_dirs():
                count += 1
                path = folder / "meta.json"
                try:
                    data = read_file(path)
                    record = unseal(data, path, [folder.name])
                except (OSError, CorruptStateError) as err:
                    warnings.warn(f"index: skipping {folder.name[:12]}: {err}", PrunelabWarning, stacklevel=2)
                    continue
                self._put_node(record, data)
                try:
                    results = self.store.read_results(record["id"])
                except CorruptStateError as err:
                    warnings.warn(f"index: skipping a result of {folder.name[:12]}: {err}", PrunelabWarning,
                                  stacklevel=2)
                    results = []
                for result in results:
                    self._put_result(record["id"], result)
            for _, entry in self.store.read_logs("tags"):
                self._apply_tags(entry.get("entries", []))
            db.executemany(
                "INSERT OR REPLACE INTO info VALUES (?, ?)",
                [("schema", _SCHEMA_VERSION), ("generation", str(self.store.generation())), ("count", str(count))],
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    # ------------------------------------------------------------- writes
    def _put_node(self, record: dict[str, Any], data: bytes, new: bool = False) -> None:
        node_id = record["id"]
        self.db.execute("INSERT OR REPLACE INTO nodes VALUES (?, ?, ?, ?)",
                        (node_id, record.get("parent_id"), record.get("status"), data))
        if not new:  # a replaced record's blobs are listed anew
            self.db.execute("DELETE FROM blob_users WHERE node_id = ?", (node_id,))
        self.db.executemany("INSERT INTO blob_users VALUES (?, ?)", [(d, node_id) for d in _blobs_of(record)])

    def _put_result(self, node_id: str, record: dict[str, Any]) -> None:
        key = f"{record['name']}@v{record['version']}"
        self.db.execute("INSERT OR REPLACE INTO results VALUES (?, ?, ?)",
                        (node_id, key, json.dumps(record, allow_nan=True)))
        self.db.executemany("INSERT INTO blob_users VALUES (?, ?)", [(d, node_id) for d in _blobs_of(record)])

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
            self.db.execute("ROLLBACK")
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

    def result_keys(self) -> dict[str, set[str]]:
        """Return, per node, the keys of its stored results."""
        out: dict[str, set[str]] = {}
        for node_id, key in self.db.execute("SELECT node_id, key FROM results"):
            out.setdefault(node_id, set()).add(key)
        return out

    def blob_users(self, digest: str) -> list[str]:
        """Return the states whose values or results use a blob."""
        rows = self.db.execute("SELECT DISTINCT node_id FROM blob_users WHERE digest = ?", (digest,)).fetchall()
        return sorted(r[0] for r in rows)
