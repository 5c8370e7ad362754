"""``index.sqlite``: a cache of the records, for fast queries.

The index is never trusted blindly. It stores the store's write generation and
the count of state directories it saw; when either differs from the directory
(a writer crashed between publishing and indexing, or files were copied in), it
is rebuilt from the records. A damaged database is deleted and rebuilt. It may
live outside the experiment (``PRUNELAB_INDEX_DIR``), e.g. on a local disk when
the experiment is on a shared filesystem.

Where the file cannot be used — the directory is read-only, the disk is full,
or ``index.sqlite`` is a symlink or some other odd file (never followed) — the
index lives in memory for the process, copied from the file when it can be
read and rebuilt from the records when it is stale, so reading an experiment
never needs a write.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import stat
import urllib.parse
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ..core.errors import CorruptStateError, PrunelabWarning
from .files import crash_point, disk_full, kind_of, read_file
from .store import Store

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
        self.path = _index_path(store)
        self.in_memory: str | None = None
        self.skipped: list[str] = []
        with store.lock():  # two processes opening a new index at once would race on its schema and WAL switch
            self.db = self._connect()

    def _connect(self) -> sqlite3.Connection:
        reason = self._unusable()
        if reason is None:
            try:
                return self._open_file()
            except (sqlite3.Error, OSError) as err:
                if not (disk_full(err) or isinstance(err, sqlite3.OperationalError)):
                    raise
                reason = f"cannot be written ({err})"
        return self._memory(reason)

    def _open_file(self) -> sqlite3.Connection:
        try:
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=OFF")
            db.executescript(_SCHEMA)
            return db
        except sqlite3.DatabaseError as err:
            if isinstance(err, sqlite3.OperationalError) and "locking" not in str(err):
                raise  # read-only, full, unreachable: not damage (the caller keeps it in memory)
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            db.executescript(_SCHEMA)
            return db

    def _unusable(self) -> str | None:
        """Why the index file must not be opened (None when it may be)."""
        for suffix in ("", "-wal", "-shm", "-journal"):
            path = Path(f"{self.path}{suffix}")
            try:
                mode = path.lstat().st_mode
            except FileNotFoundError:
                continue
            if not stat.S_ISREG(mode):
                return f"is not used: {path.name} is a {kind_of(mode)}, and prunelab never opens one there"
        if not os.access(self.path.parent, os.W_OK) or (self.path.exists() and not os.access(self.path, os.W_OK)):
            return "is read-only"
        return None

    def _memory(self, reason: str) -> sqlite3.Connection:
        """An in-memory index for this process: a copy of the file when it can be read, else empty (then rebuilt)."""
        self.in_memory = reason
        if not reason.startswith("is read-only"):
            warnings.warn(f"index: {self.path} {reason}; this process keeps the index in memory instead (rebuilt "
                          "from the records). Move the odd file away, or free space, to have it stored again.",
                          PrunelabWarning, stacklevel=4)
        db = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        if reason.startswith("is read-only") and self.path.is_file() and not self.path.is_symlink():
            try:  # immutable: reads the file without the locks and journal a read-only directory cannot hold
                source = sqlite3.connect(f"file:{urllib.parse.quote(str(self.path))}?immutable=1", uri=True)
                try:
                    source.backup(db)
                finally:
                    source.close()
            except sqlite3.Error:
                pass  # unreadable: rebuilt from the records
        db.executescript(_SCHEMA)
        return db

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
                info.get("schema") == _SCHEMA_VERSION
                and info.get("generation") == str(self.store.generation())
                and info.get("count") == str(self.store.count_states())
            )
            if not fresh:
                try:
                    self.rebuild()
                except sqlite3.OperationalError as err:
                    if self.in_memory is not None:
                        raise
                    self.db.close()
                    self.db = self._memory(f"cannot be written ({err})")
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
            for folder in self.store.iter_state_dirs():
                count += 1
                path = folder / "meta.json"
                try:
                    data = read_file(path, state_ids=[folder.name])
                    record = self.store.parse_record(data, path, folder.name)
                except (OSError, CorruptStateError) as err:
                    skipped.append(f"state {folder.name}: {err}")
                    continue
                self._put_node(record, data)
                errors: list[CorruptStateError] = []
                for result in self.store.read_results(record["id"], errors):
                    self._put_result(record["id"], result)
                skipped += [f"a result of {folder.name}: {err}" for err in errors]
            for line in skipped:
                warnings.warn(f"index: skipping {line}", PrunelabWarning, stacklevel=2)
            for _, entry in self.store.read_logs("tags"):  # a damaged entry is skipped, and warned about there
                self._apply_tags(entry["entries"])
            skipped += [f"tags entry {Path(p).name}: {why}" for p, why in self.store.damaged.items() if "/tags/" in p]
            db.executemany(
                "INSERT OR REPLACE INTO info VALUES (?, ?)",
                [("schema", _SCHEMA_VERSION), ("generation", str(self.store.generation())), ("count", str(count))],
            )
            db.execute("COMMIT")
        except BaseException:
            _rollback(db)
            raise
        self.skipped = skipped
        return skipped

    def differences(self) -> list[str]:
        """Every way the index disagrees with the files, one line each (empty: it is true to them).

        The index is a cache: ``verify`` checks it with this, ``reindex``
        rebuilds it. Damaged files are left out here (verify reports them).
        """
        out: list[str] = []
        rows = {i: (p, st, bytes(d)) for i, p, st, d in self.db.execute("SELECT id, parent_id, status, record FROM nodes")}
        results: dict[tuple[str, str], Any] = {(i, k): json.loads(d) for i, k, d in
                                               self.db.execute("SELECT node_id, key, record FROM results")}
        users = set(self.db.execute("SELECT DISTINCT digest, node_id FROM blob_users").fetchall())
        expected_users: set[tuple[str, str]] = set()
        for folder in self.store.iter_state_dirs():
            node_id = folder.name
            try:
                data = read_file(folder / "meta.json", state_ids=[node_id])
                record = self.store.parse_record(data, folder / "meta.json", node_id)
            except (OSError, CorruptStateError):
                rows.pop(node_id, None)
                continue
            held = rows.pop(node_id, None)
            if held is None:
                out.append(f"state {node_id} is stored but missing from the index")
            elif held != (record.get("parent_id"), record["status"], data):
                out.append(f"state {node_id}: the index's copy of its record differs from {folder / 'meta.json'}")
            expected_users.update((d, node_id) for d in _blobs_of(record))
            for result in self.store.read_results(node_id, []):
                key = (node_id, f"{result['name']}@v{result['version']}")
                held = results.pop(key, None)
                if held is None or {**held, "digest": None} != {**result, "digest": None}:
                    out.append(f"result {key[1]} of {node_id}: the index's copy differs from its file")
                expected_users.update((d, node_id) for d in _blobs_of(result))
        out += [f"state {node_id} is in the index but not stored" for node_id in sorted(rows)]
        out += [f"result {key} of {node_id} is in the index but not stored" for node_id, key in sorted(results)]
        if users != expected_users:
            out.append(f"{len(users ^ expected_users)} blob reference(s) in the index differ from the records")
        tags: set[tuple[str, str]] = set()
        for _, entry in self.store.read_logs("tags"):
            for op, node_id, tag in entry["entries"]:
                (tags.add if op == "+" else tags.discard)((node_id, tag))
        stored = {i for (i,) in self.db.execute("SELECT id FROM nodes")}  # tags of states not stored: no matter
        indexed = {(i, t) for i, t in self.db.execute("SELECT node_id, tag FROM tags") if i in stored}
        tags = {(i, t) for i, t in tags if i in stored}
        if indexed != tags:
            out.append(f"{len(indexed ^ tags)} tag assignment(s) in the index differ from the tag log")
        return out

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
