"""Opening ``index.sqlite``: the file when it can be used, else an in-memory copy for this process.

Where the file cannot be used — the directory is read-only, the disk is full,
or ``index.sqlite`` is a symlink or some other odd file (never followed) — the
index lives in memory for the process, copied from the file when it can be
read and rebuilt from the records when it is stale, so reading an experiment
never needs a write. A damaged database file is deleted and made anew.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import stat
import urllib.parse
import warnings
from pathlib import Path

from ..core.errors import PrunelabWarning
from .files import disk_full, kind_of
from .layout import Layout

__all__ = ["INDEX_DIR_ENV", "SCHEMA_VERSION", "connect", "in_memory", "index_path"]

#: Put index files in this directory instead of inside each experiment.
INDEX_DIR_ENV = "PRUNELAB_INDEX_DIR"
#: The version of the tables below (an index of another version is rebuilt).
SCHEMA_VERSION = "1"
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


def index_path(layout: Layout) -> Path:
    """Where the index of an experiment lives: inside it, or under ``PRUNELAB_INDEX_DIR`` when that is set."""
    folder = os.environ.get(INDEX_DIR_ENV)
    if not folder:
        return layout.index_file
    key = hashlib.sha256(str(layout.root.resolve()).encode()).hexdigest()[:16]
    Path(folder).mkdir(parents=True, exist_ok=True)
    return Path(folder) / f"{layout.root.name}-{key}.sqlite"


def connect(path: Path) -> tuple[sqlite3.Connection, str | None]:
    """Open the index at ``path``; return the connection and why it is in memory (None: it is the file)."""
    reason = _unusable(path)
    if reason is None:
        try:
            return _open_file(path), None
        except (sqlite3.Error, OSError) as err:
            if not (disk_full(err) or isinstance(err, sqlite3.OperationalError)):
                raise
            reason = f"cannot be written ({err})"
    return in_memory(path, reason), reason


def _open_file(path: Path) -> sqlite3.Connection:
    try:
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=OFF")
        db.executescript(_SCHEMA)
        return db
    except sqlite3.DatabaseError as err:
        if isinstance(err, sqlite3.OperationalError) and "locking" not in str(err):
            raise  # read-only, full, unreachable: not damage (the caller keeps it in memory)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        db.executescript(_SCHEMA)
        return db


def _unusable(path: Path) -> str | None:
    """Why the index file must not be opened (None when it may be)."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        part = Path(f"{path}{suffix}")
        try:
            mode = part.lstat().st_mode
        except FileNotFoundError:
            continue
        if not stat.S_ISREG(mode):
            return f"is not used: {part.name} is a {kind_of(mode)}, and prunelab never opens one there"
    if not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        return "is read-only"
    return None


def in_memory(path: Path, reason: str) -> sqlite3.Connection:
    """An in-memory index for this process: a copy of the file when it can be read, else empty (then rebuilt).

    Parameters
    ----------
    path : Path
        The index file.
    reason : str
        Why the file is not used (warned about, unless the directory is merely read-only).

    Returns
    -------
    sqlite3.Connection
        The connection, with the tables made.
    """
    if not reason.startswith("is read-only"):
        warnings.warn(f"index: {path} {reason}; this process keeps the index in memory instead (rebuilt "
                      "from the records). Move the odd file away, or free space, to have it stored again.",
                      PrunelabWarning, stacklevel=4)
    db = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
    if reason.startswith("is read-only") and path.is_file() and not path.is_symlink():
        try:  # immutable: reads the file without the locks and journal a read-only directory cannot hold
            source = sqlite3.connect(f"file:{urllib.parse.quote(str(path))}?immutable=1", uri=True)
            try:
                source.backup(db)
            finally:
                source.close()
        except sqlite3.Error:
            pass  # unreadable: rebuilt from the records
    db.executescript(_SCHEMA)
    return db
