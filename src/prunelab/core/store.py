"""The experiment directory: the files are the truth.

::

    EXP/experiment.json            format version, state class name, prunelab version
    EXP/states/ab/<id>/meta.json   the record (with a digest of itself)
    EXP/states/ab/<id>/values.json how each stored attribute is encoded
    EXP/states/ab/<id>/results/    one immutable record per function result
    EXP/tags/                      append-only tag assignments
    EXP/runs/                      one manifest per run()
    EXP/blobs/ab/<digest>          content-addressed bytes, stored once
    EXP/envs/<digest>.json         captured environments
    EXP/tmp/                       work in progress and removed states (gc clears it)
    EXP/index.sqlite               a cache of the records (see index.py)

A state is published complete or not at all: blobs are written first (each
atomically, under its digest), then the record and value file into a private
temporary directory, which one ``rename`` makes visible. A crash at any point
leaves only leftovers under ``tmp/`` (and perhaps unreferenced blobs) for ``gc``.
Every read verifies checksums: a record's own digest, the value file's checksum
held by the record, and each blob's content against its name.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .codecs import Blob, digest
from .errors import CorruptStateError, ExperimentFormatError
from .files import (
    canonical_json,
    check_hex,
    checksum,
    crash_point,
    fsync_dir,
    read_file,
    read_json,
    write_atomic,
    write_file,
)

__all__ = ["Store", "FORMAT_VERSION", "LAYOUT", "seal", "unseal"]

_FOLDERS = ("states", "blobs", "tags", "runs", "envs", "tmp", "prereg")
#: Every name prunelab itself puts at the top of an experiment directory.
LAYOUT = frozenset({*_FOLDERS, "leases", "lock", "generation", "experiment.json", "index.sqlite",
                    "index.sqlite-wal", "index.sqlite-shm", "index.sqlite-journal"})

#: Version of the on-disk format this prunelab writes and the newest it reads.
FORMAT_VERSION = 1


def seal(record: dict[str, Any]) -> bytes:
    """Return the record as canonical JSON with a ``digest`` of its other fields, appended last.

    The body is serialised once: the digest covers those bytes, and
    :func:`unseal` recomputes them from the parsed fields.
    """
    body = canonical_json({k: v for k, v in record.items() if k != "digest"})
    return b"%s%s\"digest\":\"%s\"}" % (body[:-1], b"," if len(body) > 2 else b"", checksum(body).encode())


def unseal(data: bytes, path: Path, state_ids: list[str]) -> dict[str, Any]:
    """Parse a sealed record and verify its digest, raising naming the file."""
    try:
        record: dict[str, Any] = json.loads(data)
        body = {k: v for k, v in record.items() if k != "digest"}
        ok = isinstance(record, dict) and record.get("digest") == checksum(canonical_json(body))
    except (ValueError, AttributeError, UnicodeDecodeError):
        ok = False
    if not ok:
        users = ", ".join(s[:12] for s in state_ids) or "none known"
        raise CorruptStateError(
            f"{path} fails its checksum (states using it: {users}); other states are intact. "
            "Delete the damaged state's directory (or run `prunelab gc --repair`) and re-run the script "
            "to recompute it.",
            str(path),
            state_ids,
        )
    return record


class Store:
    """Reads and writes one experiment directory.

    Parameters
    ----------
    root : Path
        The experiment directory.
    durable : bool, default=False
        fsync files and directories on every write (power-loss safety; slower).
    """

    def __init__(self, root: Path | str, *, durable: bool = False):
        self.root = Path(root)
        self.durable = durable
        self.counters: Counter[str] = Counter()
        self._verified_blobs: set[str] = set()
        self._lock_fd: int | None = None
        self._lock_pid = 0
        self._lock_depth = 0
        self._known_dirs: set[str] = set()
        self._blobs = f"{self.root}/blobs/"  # the hot path builds blob paths as text (pathlib is slow)
        self.blob_users: Callable[[str], list[str]] = lambda d: []

    # ---------------------------------------------------------------- layout
    def state_dir(self, node_id: str) -> Path:
        """Return the directory of a state (whether or not it exists)."""
        return self.root / "states" / node_id[:2] / node_id

    def blob_path(self, name: str) -> Path:
        """Return the file of a blob."""
        return self.root / "blobs" / name[:2] / name

    def is_experiment(self) -> bool:
        """Return whether the directory holds an experiment.json."""
        return (self.root / "experiment.json").is_file()

    def create(self, info: dict[str, Any]) -> None:
        """Create the directory layout and ``experiment.json`` (written once; call under the lock)."""
        for sub in _FOLDERS:
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        path = self.root / "experiment.json"
        if not path.exists():
            write_atomic(path, canonical_json({"format": FORMAT_VERSION, **info}), durable=self.durable)

    def read_info(self) -> dict[str, Any]:
        """Read ``experiment.json``, refusing a directory that is not an experiment or is newer."""
        path = self.root / "experiment.json"
        if not self.root.is_dir():
            raise ExperimentFormatError(f"{self.root} does not exist; pass the directory an experiment was run in.")
        if not path.is_file():
            raise ExperimentFormatError(
                f"{self.root} is not a prunelab experiment (it has no experiment.json); pass the directory "
                "given to pl.Experiment(...)."
            )
        info: dict[str, Any] = read_json(path)
        version = info.get("format") if isinstance(info, dict) else None
        if not isinstance(version, int):
            raise ExperimentFormatError(f"{path} has no format version; it is not a prunelab experiment file.")
        if version > FORMAT_VERSION:
            raise ExperimentFormatError(
                f"{self.root} was written in format {version} by a newer prunelab; this prunelab reads format "
                f"{FORMAT_VERSION} and older. Upgrade prunelab to open it."
            )
        return info

    # ------------------------------------------------------------ locking
    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the experiment lock (re-entrant within this Store)."""
        if self._lock_fd is None or self._lock_pid != os.getpid():  # one descriptor per process
            self._lock_fd = os.open(self.root / "lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
            self._lock_pid, self._lock_depth = os.getpid(), 0
        if self._lock_depth == 0:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        self._lock_depth += 1
        try:
            yield
        finally:
            self._lock_depth -= 1
            if self._lock_depth == 0:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _ensure_dir(self, path: str | Path) -> None:
        key = os.fspath(path)
        if key not in self._known_dirs:
            os.makedirs(key, exist_ok=True)
            self._known_dirs.add(key)

    def generation(self) -> int:
        """Return the store's write generation (0 when never written)."""
        try:
            return int(read_file(self.root / "generation") or b"0")
        except FileNotFoundError:
            return 0
        except ValueError:
            return -1

    def bump_generation(self) -> int:
        """Advance the write generation (call under the lock, before the write it covers)."""
        value = max(self.generation(), 0) + 1
        write_atomic(self.root / "generation", str(value).encode(), durable=self.durable)
        return value

    def count_states(self) -> int:
        """Count the state directories (the index's second validity check).

        A state published but not indexed (a crash between the two) changes the
        count; writes that do not (tags, replacing a failed record, removals)
        bump the generation instead.
        """
        total = 0
        with os.scandir(self.root / "states") as prefixes:
            for prefix in prefixes:
                if prefix.is_dir(follow_symlinks=False):
                    with os.scandir(prefix.path) as entries:
                        total += sum(1 for e in entries if not e.name.startswith("."))
        return total

    def iter_state_dirs(self) -> Iterator[Path]:
        """Yield every state directory (never following symlinks)."""
        with os.scandir(self.root / "states") as prefixes:
            for prefix in sorted(prefixes, key=lambda e: e.name):
                if not prefix.is_dir(follow_symlinks=False):
                    continue
                with os.scandir(prefix.path) as entries:
                    for entry in sorted(entries, key=lambda e: e.name):
                        if not entry.name.startswith(".") and entry.is_dir(follow_symlinks=False):
                            yield Path(entry.path)

    # -------------------------------------------------------------- blobs
    def write_blobs(self, blobs: dict[str, Blob]) -> int:
        """Store blobs not already present (and intact); return the bytes written."""
        written = 0
        for name, blob in blobs.items():
            if name in self._verified_blobs:
                continue
            folder = self._blobs + name[:2]
            path = f"{folder}/{name}"
            if os.path.exists(path) and self._blob_intact(path, name):
                self._verified_blobs.add(name)
                continue
            self._ensure_dir(folder)
            write_atomic(path, blob.data, durable=self.durable)
            self._verified_blobs.add(name)
            self.counters["blob_bytes_written"] += len(blob.data)
            written += len(blob.data)
        return written

    def _blob_intact(self, path: str | Path, name: str) -> bool:
        try:
            return digest(read_file(path)) == name
        except OSError:
            return False

    def read_blob(self, name: str, into: Any = None) -> Any:
        """Read a blob and verify it; with ``into`` (a writable buffer) fill it instead.

        Returns the bytes read, or ``into``.
        """
        check_hex(name, "blob reference", self.root / "blobs")
        path = self.blob_path(name)
        self.counters["blobs_read"] += 1
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            raise self._blob_error(name, path, "is missing") from None
        try:
            view: bytes | memoryview
            if into is None:
                with os.fdopen(fd, "rb", closefd=False) as handle:
                    data: Any = handle.read()
                view = data
            else:
                view = memoryview(into).cast("B")
                got = 0
                while got < len(view):
                    n = os.readv(fd, [view[got:]])
                    if n == 0:
                        break
                    got += n
                extra = os.read(fd, 1)
                if got != len(view) or extra:
                    raise self._blob_error(name, path, "has the wrong size")
                data = into
        finally:
            os.close(fd)
        if digest(view) != name:
            raise self._blob_error(name, path, "fails its checksum")
        self._verified_blobs.add(name)
        return data

    def blob_size(self, name: str) -> int:
        """Return a blob's size in bytes (-1 when it is missing), without following symlinks."""
        check_hex(name, "blob reference", self.root / "blobs")
        try:
            return self.blob_path(name).lstat().st_size
        except FileNotFoundError:
            return -1

    def blob_error(self, name: str, what: str) -> CorruptStateError:
        """Return the error for a damaged blob, naming its file and every state that uses it."""
        return self._blob_error(name, self.blob_path(name), what)

    def _blob_error(self, name: str, path: Path, what: str) -> CorruptStateError:
        users = self.blob_users(name)
        shown = ", ".join(u[:12] for u in users) or "none known"
        return CorruptStateError(
            f"{path} {what} (states using it: {shown}); other states are intact. Re-run the script: "
            "recomputing any state that uses this blob rewrites it (or run `prunelab gc --repair`).",
            str(path),
            users,
        )

    # ------------------------------------------------------------- states
    def publish_state(self, record: dict[str, Any], values: dict[str, Any] | None, blobs: dict[str, Blob],
                      on_published: Callable[[bytes, bool], None], owned: Callable[[], bool] = lambda: True) -> bool:
        """Make a state visible, complete, in one rename.

        ``on_published(record_bytes, new_dir)`` runs under the experiment lock
        right after the rename (the index update); ``new_dir`` is False when a
        failed record was replaced. ``owned()`` is asked just before the rename
        (does this writer still hold the state's lease?). Returns False when
        another writer published a done state first, or the lease was lost
        (ours is discarded).
        """
        node_id = record["id"]
        self.write_blobs(blobs)
        crash_point("blobs-written")
        tmp = f"{self.root}/tmp/{node_id}.{os.getpid()}.{secrets.token_hex(4)}"
        os.makedirs(tmp)
        renamed = False
        try:
            if values is not None:
                values_bytes = canonical_json(values)
                write_file(f"{tmp}/values.json", values_bytes, durable=self.durable)
                record = {**record, "values_checksum": checksum(values_bytes)}
            sealed = seal(record)
            write_file(f"{tmp}/meta.json", sealed, durable=self.durable)
            if self.durable:
                fsync_dir(tmp)
            crash_point("record-written")
            target = self.state_dir(node_id)
            self._ensure_dir(target.parent)
            crash_point("before-rename")
            if not owned():
                return False
            with self.lock():
                new_dir = not target.exists()
                if not new_dir:  # replacing a failed record: the count stays, so mark the write
                    self.bump_generation()
                    if self._peek_status(target) == "done":
                        on_published(read_file(target / "meta.json"), False)
                        return False
                    self._discard(target)
                os.rename(tmp, target)
                renamed = True
                if self.durable:
                    fsync_dir(target.parent)
                crash_point("after-rename")
                on_published(sealed, new_dir)
            return True
        finally:
            if not renamed:
                shutil.rmtree(tmp, ignore_errors=True)

    def stored_status(self, node_id: str) -> str | None:
        """Return a state's stored status read from its record (None when not stored or unreadable)."""
        target = self.state_dir(node_id)
        return self._peek_status(target) if target.exists() else None

    def _peek_status(self, target: Path) -> str | None:
        try:
            return unseal(read_file(target / "meta.json"), target / "meta.json", [target.name]).get("status")
        except (OSError, CorruptStateError):
            return None

    def _discard(self, target: Path) -> None:
        """Move a state directory out of sight, for gc to delete."""
        os.rename(target, self.root / "tmp" / f"removed.{target.name}.{secrets.token_hex(4)}")

    def remove_state(self, node_id: str) -> bool:
        """Remove a state from view (its files are deleted by gc); return whether it was stored."""
        target = self.state_dir(node_id)
        if not target.exists():
            return False
        self._discard(target)
        return True

    def read_record(self, node_id: str) -> dict[str, Any]:
        """Read and verify a state's record."""
        check_hex(node_id, "state id", self.root / "states")
        path = self.state_dir(node_id) / "meta.json"
        self.counters["records_read"] += 1
        return unseal(read_file(path), path, [node_id])

    def read_values(self, node_id: str, record: dict[str, Any]) -> dict[str, Any]:
        """Read a state's value file, verifying it against the record's checksum."""
        path = self.state_dir(node_id) / "values.json"
        self.counters["values_read"] += 1
        data = read_file(path)
        if checksum(data) != record.get("values_checksum"):
            raise CorruptStateError(
                f"state {node_id[:12]}: {path} fails its checksum; other states are intact. Delete this "
                "state's directory and re-run the script to recompute it.",
                str(path),
                [node_id],
            )
        values: dict[str, Any] = json.loads(data)
        return values

    # ------------------------------------------------------------ results
    def result_path(self, node_id: str, name: str, version: int) -> Path:
        """Return the file of one function result."""
        return self.state_dir(node_id) / "results" / f"{name}@v{version}.json"

    def write_result(self, node_id: str, record: dict[str, Any], blobs: dict[str, Blob],
                     on_written: Callable[[dict[str, Any]], None]) -> None:
        """Store one immutable function result (a second writer's copy is dropped).

        No generation bump: a result written but not indexed (a crash between
        the two) is found on disk by the next plan and indexed then.
        """
        self.write_blobs(blobs)
        path = self.result_path(node_id, record["name"], record["version"])
        sealed = seal(record)
        self._ensure_dir(path.parent)
        with self.lock():
            if not path.exists():
                write_atomic(path, sealed, durable=self.durable)
            on_written(record)

    def withheld_path(self, node_id: str, name: str, version: int) -> Path:
        """Return the withheld (blinded) part of one function result."""
        check_hex(node_id, "state id", self.root / "prereg")
        return self.root / "prereg" / "withheld" / node_id / f"{name}@v{version}.json"

    def write_withheld(self, node_id: str, record: dict[str, Any], blobs: dict[str, Blob]) -> None:
        """Store the blinded part of a result, out of every read path until unblinding."""
        self.write_blobs(blobs)
        path = self.withheld_path(node_id, record["name"], record["version"])
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            write_atomic(path, seal(record), durable=self.durable)

    def read_withheld(self, node_id: str, name: str, version: int) -> dict[str, Any]:
        """Read and verify the withheld part of a result."""
        path = self.withheld_path(node_id, name, version)
        return unseal(read_file(path), path, [node_id])

    def read_results(self, node_id: str) -> list[dict[str, Any]]:
        """Read and verify every result record of a state."""
        folder = self.state_dir(node_id) / "results"
        out = []
        if folder.is_dir():
            for path in sorted(folder.iterdir()):
                if path.name.startswith(".") or path.is_symlink():
                    continue
                out.append(unseal(read_file(path), path, [node_id]))
        return out

    # -------------------------------------------------------- logs and envs
    def append_log(self, kind: str, payload: dict[str, Any], on_written: Callable[[str], None] | None = None) -> str:
        """Write one append-only log entry under ``kind`` (``tags`` or ``runs``); return its name."""
        name = f"{time.time_ns():020d}-{os.getpid()}-{secrets.token_hex(3)}.json"
        with self.lock():
            self.bump_generation()
            write_atomic(self.root / kind / name, seal(payload), durable=self.durable)
            if on_written is not None:
                on_written(name)
        return name

    def read_logs(self, kind: str) -> list[tuple[str, dict[str, Any]]]:
        """Read every entry of an append-only log, oldest first."""
        folder = self.root / kind
        out = []
        for path in sorted(folder.glob("[0-9]*.json")):
            if not path.is_symlink():
                out.append((path.name, unseal(read_file(path), path, [])))
        return out

    def merge_from(self, other: Store) -> list[str]:
        """Copy in every blob, state, result, log entry and environment of ``other`` that this store lacks.

        Content addressing makes this a union: blobs and ids mean the same in
        both. A done state replaces a failed one; everything copied is verified
        first, so a damaged source file is reported, never spread. Call under the lock.
        Returns the ids of the states added.
        """
        for blob in sorted((other.root / "blobs").glob("*/*")):
            name = check_hex(blob.name, "blob name", blob)
            target = self.blob_path(name)
            if not (target.exists() and self._blob_intact(target, name)):
                data = other.read_blob(name)
                self._ensure_dir(target.parent)
                write_atomic(target, data, durable=self.durable)
        for kind in ("envs", "tags", "runs"):
            for path in sorted((other.root / kind).glob("*.json")):
                target = self.root / kind / path.name
                if not path.is_symlink() and not target.exists():
                    data = read_file(path)
                    if kind != "envs":
                        unseal(data, path, [])
                    elif checksum(data) != path.stem:
                        raise CorruptStateError(f"{path} fails its checksum; the source is damaged.", str(path))
                    write_atomic(target, data, durable=self.durable)
        added = []
        for folder in other.iter_state_dirs():
            node_id = check_hex(folder.name, "state id", folder)
            theirs = other.read_record(node_id)
            if theirs.get("status") == "done":
                other.read_values(node_id, theirs)
            target = self.state_dir(node_id)
            ours = self._peek_status(target) if target.exists() else None
            if ours is None or (ours == "failed" and theirs.get("status") == "done"):
                tmp = self.root / "tmp" / f"merge.{node_id}.{secrets.token_hex(4)}"
                shutil.copytree(folder, tmp, symlinks=True)
                self._ensure_dir(target.parent)
                if target.exists():
                    self._discard(target)
                os.rename(tmp, target)
                added.append(node_id)
            elif ours == "done":
                for result in other.read_results(node_id):
                    path = self.result_path(node_id, result["name"], result["version"])
                    if not path.exists():
                        self._ensure_dir(path.parent)
                        write_atomic(path, seal(result), durable=self.durable)
        return added

    def read_env(self, name: str) -> dict[str, Any]:
        """Read a stored environment, verifying it against its name."""
        check_hex(name, "environment digest", self.root / "envs")
        path = self.root / "envs" / f"{name}.json"
        data = read_file(path)
        if checksum(data) != name:
            raise CorruptStateError(f"{path} fails its checksum; the environment record was altered.", str(path))
        env: dict[str, Any] = json.loads(data)
        return env

    def write_env(self, env: dict[str, Any]) -> str:
        """Store a captured environment once; return its digest."""
        data = canonical_json(env)
        name = checksum(data)
        path = self.root / "envs" / f"{name}.json"
        if not path.exists():
            write_atomic(path, data, durable=self.durable)
        return name
