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
import errno
import fcntl
import os
import re
import secrets
import shutil
import stat
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .codecs import Blob, digest
from ..core.errors import CorruptStateError, ExperimentFormatError, PrunelabWarning, ReadOnlyError
from ..core.records import canonical_json
from .files import (
    VALUES_LIMIT,
    check_hex,
    checksum,
    crash_point,
    fsync_dir,
    kind_of,
    not_regular,
    parse_json,
    read_file,
    read_json,
    write_atomic,
    write_file,
)
from ..core.schema import check_log_entry, check_result_record, check_state_record, is_id

__all__ = ["Store", "FORMAT_VERSION", "LAYOUT", "seal", "unseal"]

_FOLDERS = ("states", "blobs", "tags", "runs", "envs", "tmp", "prereg")
#: Every name prunelab itself puts at the top of an experiment directory.
LAYOUT = frozenset({*_FOLDERS, "leases", "lock", "generation", "experiment.json", "index.sqlite",
                    "index.sqlite-wal", "index.sqlite-shm", "index.sqlite-journal"})
#: The names of LAYOUT that are folders (the rest are files); the index files are the index's to judge.
_LAYOUT_FOLDERS = frozenset({*_FOLDERS, "leases"})
_INDEX_FILES = frozenset(n for n in LAYOUT if n.startswith("index.sqlite"))
_LOG_NAME = re.compile(r"[0-9]+-[0-9]+-[0-9a-f]+\.json")
_ENV_NAME = re.compile(r"[0-9a-f]{32}\.json")
_READ_ONLY = (errno.EROFS, errno.EACCES, errno.EPERM)

#: Version of the on-disk format this prunelab writes and the newest it reads.
FORMAT_VERSION = 1


def seal(record: dict[str, Any]) -> bytes:
    """Return the record as canonical JSON with a ``digest`` of its other fields, appended last.

    The body is serialised once: the digest covers those bytes, and
    :func:`unseal` recomputes them from the parsed fields.
    """
    body = canonical_json({k: v for k, v in record.items() if k != "digest"})
    return b"%s%s\"digest\":\"%s\"}" % (body[:-1], b"," if len(body) > 2 else b"", checksum(body).encode())


_RESULT_ADVICE = ("Run `prunelab gc --repair` (it sets the damaged result aside; the state is intact) and re-run the "
                  "script to compute it again.")
_LOG_ADVICE = {
    "tags": "It was skipped: the tag assignments it held are not shown. `prunelab gc --repair` sets it aside; add "
            "the tags again with exp.add_tag.",
    "runs": "It was skipped: that run is missing from exp.graph.runs (and run numbers after it shift). `prunelab gc "
            "--repair` sets it aside; the states it made are intact.",
    "prereg": "Which metrics are registered or blinded cannot be trusted, so nothing is run until it is resolved; "
              "restore the file from a copy, or let `prunelab gc --repair` set it aside (check your registration "
              "digests against your notes after).",
}
#: What to do about a damaged sealed file of a state (the default advice of :func:`unseal`).
STATE_ADVICE = ("Run `prunelab gc --repair` (it sets the damaged state aside) and re-run the script to recompute "
                "it.")


def unseal(data: bytes, path: Path, state_ids: list[str], advice: str = STATE_ADVICE) -> dict[str, Any]:
    """Parse a sealed record and verify its digest, raising naming the file (``advice``: what to do)."""
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


def _lstat_dir(path: Path) -> bool:
    """Whether ``path`` is a real directory: False when missing, an error for anything else there."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return False
    if not stat.S_ISDIR(mode):
        raise not_regular(path, mode)
    return True


def _memory_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return 2**62


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
        self.root = Path(os.path.abspath(root))  # resolved once: a recipe's os.chdir cannot move it
        self.durable = durable
        self.counters: Counter[str] = Counter()
        self._verified_blobs: set[str] = set()
        self._lock_fd: int | None = None
        self._lock_pid = 0
        self._lock_depth = 0
        self._real_dirs: set[str] = set()
        self._blobs = f"{self.root}/blobs/"  # the hot path builds blob paths as text (pathlib is slow)
        self.blob_users: Callable[[str], list[str]] = lambda d: []
        #: Damaged files met while reading logs (path -> why), each skipped and warned about once.
        self.damaged: dict[str, str] = {}

    def forget_caches(self) -> None:
        """Forget which blobs were verified and which folders exist (after gc or a repair changed the files)."""
        self._verified_blobs.clear()
        self._real_dirs.clear()

    # ---------------------------------------------------------------- layout
    def state_dir(self, node_id: str) -> Path:
        """Return the directory of a state (whether or not it exists)."""
        return self.root / "states" / node_id[:2] / node_id

    def blob_path(self, name: str) -> Path:
        """Return the file of a blob."""
        return self.root / "blobs" / name[:2] / name

    def is_experiment(self) -> bool:
        """Return whether the directory holds an experiment.json (a symlink or other odd file counts too)."""
        return os.path.lexists(self.root / "experiment.json")

    @property
    def writable(self) -> bool:
        """Whether this process may write the directory (False on a read-only mount or an immutable folder)."""
        return os.access(self.root, os.W_OK)

    def require_writable(self, what: str) -> None:
        """Raise :class:`ReadOnlyError` unless the directory can be written; ``what`` names the command."""
        if not self.writable:
            raise ReadOnlyError(
                f"{self.root} is read-only, and {what} writes to it. Everything that only reads (queries, ls, "
                f"tree, show, status, verify, export, report to another path) works as it is; to {what}, copy the "
                "experiment to a writable place first (`cp -r`).")

    def create(self, info: dict[str, Any]) -> None:
        """Create the directory layout and ``experiment.json`` (written once; call under the lock)."""
        for sub in _FOLDERS:
            (self.root / sub).mkdir(exist_ok=True)
        path = self.root / "experiment.json"
        if not os.path.lexists(path):
            write_atomic(path, canonical_json({"format": FORMAT_VERSION, **info}), durable=self.durable)

    def check_layout(self) -> None:
        """Refuse a directory whose own parts are symlinks or of the wrong kind (a FIFO for ``lock``, say).

        Nothing inside an experiment is ever followed through a symlink: a
        linked ``states/``, ``blobs/``, ``tmp/`` or ``leases/`` could make a
        listing show files from elsewhere, or gc delete there. The index files
        are left to the index (a cache: it is kept in memory instead).
        """
        with os.scandir(self.root) as entries:
            for entry in entries:
                if entry.name not in LAYOUT or entry.name in _INDEX_FILES:
                    continue
                mode = entry.stat(follow_symlinks=False).st_mode
                folder = entry.name in _LAYOUT_FOLDERS
                if stat.S_ISLNK(mode) or (stat.S_ISDIR(mode) != folder) or not (folder or stat.S_ISREG(mode)):
                    raise self._odd_part(Path(entry.path), mode, folder)

    def _odd_part(self, path: Path, mode: int, folder: bool) -> CorruptStateError:
        link = f" (to {os.readlink(path)!r:.80})" if stat.S_ISLNK(mode) else ""
        return CorruptStateError(
            f"{path} is a {kind_of(mode)}{link}, where prunelab keeps a {'folder' if folder else 'regular file'}; "
            "prunelab never follows links inside an experiment directory and opened nothing through it. Replace "
            "it with what it stands for (e.g. move the linked folder into place), or open that experiment "
            "directly.", str(path))

    def restore_info(self) -> str:
        """Write ``experiment.json`` again from the state records (after it was damaged); return the state class.

        Its format and state class can be restored (every record names its
        class); the prunelab version that created the experiment cannot, and
        is recorded as unknown.
        """
        names: set[str] = set()
        for folder in self.iter_state_dirs():
            with contextlib.suppress(OSError, CorruptStateError):
                names.add(str(self.read_record(folder.name).get("state_class")))
        path = self.root / "experiment.json"
        if len(names) != 1:
            raise CorruptStateError(
                f"{path} is damaged, and the state records name {len(names)} state classes ({sorted(names)[:3]}), "
                "so it cannot be written again from them; write it yourself as "
                '{"format": 1, "state_class": "<the class name>"}.', str(path))
        with self.lock():
            if os.path.lexists(path):
                os.rename(path, self.root / "tmp" / f"damaged.experiment.json.{secrets.token_hex(4)}")
            write_atomic(path, canonical_json({"format": FORMAT_VERSION, "state_class": next(iter(names)),
                                               "prunelab": None, "restored": True}), durable=self.durable)
        return next(iter(names))

    def read_info(self) -> dict[str, Any]:
        """Read ``experiment.json``, refusing a directory that is not an experiment or is newer."""
        path = self.root / "experiment.json"
        if not self.root.is_dir():
            raise ExperimentFormatError(f"{self.root} does not exist; pass the directory an experiment was run in.")
        if not os.path.lexists(path):
            raise ExperimentFormatError(
                f"{self.root} is not a prunelab experiment (it has no experiment.json); pass the directory "
                "given to pl.Experiment(...)."
            )
        self.check_layout()
        try:
            info: dict[str, Any] = read_json(path)
        except CorruptStateError as err:
            raise CorruptStateError(f"{err} It names the experiment's state class and format: `prunelab reindex "
                                    f"{self.root}` writes it again from the state records.", str(path)) from None
        version = info.get("format") if isinstance(info, dict) else None
        if not isinstance(version, int) or isinstance(version, bool) or not isinstance(info.get("state_class"), str):
            raise CorruptStateError(f"{path} has no format version or state class; it was altered. `prunelab "
                                    f"reindex {self.root}` writes it again from the state records.", str(path))
        if version > FORMAT_VERSION:
            raise ExperimentFormatError(
                f"{self.root} was written in format {version} by a newer prunelab; this prunelab reads format "
                f"{FORMAT_VERSION} and older. Upgrade prunelab to open it."
            )
        return info

    # ------------------------------------------------------------ locking
    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the experiment lock (re-entrant within this Store).

        The lock file is opened when the outermost hold starts and closed when
        it ends, so no descriptor outlives its use. Where the directory cannot
        be written (a read-only mount) and holds no lock file, readers go on
        without one: nothing can change such a directory from here.
        """
        if self._lock_depth == 0 or self._lock_pid != os.getpid():
            self._lock_fd, self._lock_pid, self._lock_depth = self._open_lock(), os.getpid(), 0
            if self._lock_fd is not None:
                fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        self._lock_depth += 1
        try:
            yield
        finally:
            self._lock_depth -= 1
            if self._lock_depth == 0 and self._lock_fd is not None:
                fd, self._lock_fd = self._lock_fd, None
                os.close(fd)  # releases the flock

    def _open_lock(self) -> int | None:
        path = self.root / "lock"
        flags = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | flags, 0o644)
        except OSError as err:
            if err.errno == errno.ELOOP:
                raise not_regular(path, stat.S_IFLNK) from None
            if err.errno not in (*_READ_ONLY, errno.ENOSPC):
                raise
            try:
                fd = os.open(path, os.O_RDONLY | flags)  # flock needs no write access
            except FileNotFoundError:
                return None
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            os.close(fd)
            raise not_regular(path, mode)
        return fd

    def _real_dir(self, path: str | Path, create: bool = False) -> bool:
        """Whether a folder inside the experiment exists as a real directory (a symlink there is an error).

        With ``create``, make it when missing — one level only: a parent that
        vanished (the experiment deleted under a run) is an error, never
        recreated. The folders no process removes (the layout and the ``ab``
        prefixes) are remembered until :meth:`forget_caches`; a state's own
        folders are looked at every time, since another process may remove them.
        """
        key = os.fspath(path)
        if key in self._real_dirs:
            return True
        try:
            mode = os.lstat(key).st_mode
        except FileNotFoundError:
            if not create:
                return False
            try:
                os.mkdir(key)
            except FileExistsError:
                pass
            except FileNotFoundError:
                raise self._vanished(key) from None
            mode = os.lstat(key).st_mode
        if not stat.S_ISDIR(mode):
            raise self._odd_part(Path(key), mode, True)
        if key.count(os.sep) - str(self.root).count(os.sep) <= 2:
            self._real_dirs.add(key)
        return True

    def _vanished(self, path: str) -> FileNotFoundError:
        return FileNotFoundError(errno.ENOENT, f"{os.path.dirname(path)} is gone: the experiment directory "
                                 f"{self.root} was deleted or moved while prunelab was writing to it; nothing was "
                                 "recreated", path)

    def _ensure_dir(self, path: str | Path) -> None:
        self._real_dir(path, create=True)

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
        return sum(1 for _ in self._state_entries(None, ordered=False))

    def _prefixed(self, folder: str, odd: list[str] | None, ordered: bool = True
                  ) -> Iterator[tuple[os.DirEntry[str], bool]]:
        """Every entry of ``folder/ab/`` (sorted when ``ordered``; work in progress left out), with whether it
        is well placed: named by a 32-hex id under its own two-character prefix. A prefix that is not a real
        two-character folder goes to ``odd``."""
        order = (lambda items: sorted(items, key=lambda e: e.name)) if ordered else list
        try:
            prefixes = order(os.scandir(self.root / folder))
        except FileNotFoundError:
            return
        for prefix in prefixes:
            if not (len(prefix.name) == 2 and prefix.is_dir(follow_symlinks=False)):
                if odd is not None:
                    odd.append(f"{folder}/{prefix.name}")
                continue
            with os.scandir(prefix.path) as listing:
                entries = order(listing)
            for entry in entries:
                if not entry.name.startswith("."):
                    yield entry, is_id(entry.name) and entry.name[:2] == prefix.name

    def _state_entries(self, odd: list[str] | None, ordered: bool = True) -> Iterator[os.DirEntry[str]]:
        """Every ``states/ab/<id>`` that is a real directory named by its id; the rest goes to ``odd``.

        Work in progress (names starting with ``.``) is neither. Anything else —
        a stray file, a symlink, a folder not named by a 32-hex id under its
        prefix — is no state: it is never counted, listed or followed.
        """
        for entry, placed in self._prefixed("states", odd, ordered):
            if placed and entry.is_dir(follow_symlinks=False):
                yield entry
            elif odd is not None:
                odd.append(os.path.relpath(entry.path, self.root))

    def iter_state_dirs(self, odd: list[str] | None = None) -> Iterator[Path]:
        """Yield every state directory (never following symlinks); odd entries are added to ``odd``."""
        for entry in self._state_entries(odd):
            yield Path(entry.path)

    def iter_blobs(self, odd: list[str] | None = None) -> Iterator[tuple[str, Path, os.stat_result]]:
        """Yield (digest, path, lstat) of every blob file; links and misnamed entries go to ``odd``."""
        for entry, placed in self._prefixed("blobs", odd):  # blobs being written start with ".tmp-"
            info = entry.stat(follow_symlinks=False)
            if placed and stat.S_ISREG(info.st_mode):
                yield entry.name, Path(entry.path), info
            elif odd is not None:
                odd.append(os.path.relpath(entry.path, self.root))

    # -------------------------------------------------------------- blobs
    def write_blobs(self, blobs: dict[str, Blob]) -> int:
        """Store blobs not already present (and intact); return the bytes written."""
        written = 0
        for name, blob in blobs.items():
            folder = self._blobs + name[:2]
            path = f"{folder}/{name}"
            self._ensure_dir(folder)
            try:  # every publish confirms its blobs exist: gc in any process may have removed one since
                info = os.lstat(path)
            except FileNotFoundError:
                info = None
            if info is not None and stat.S_ISREG(info.st_mode) and info.st_size == len(blob.data) and (
                    name in self._verified_blobs or self._blob_intact(path, name)):
                self._verified_blobs.add(name)
                continue
            if info is not None and stat.S_ISDIR(info.st_mode):
                raise not_regular(path, info.st_mode, self.blob_users(name))
            write_atomic(path, blob.data, durable=self.durable)  # replaces a corrupt blob (or a link: not followed)
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
            if not self._real_dir(path.parent):
                raise FileNotFoundError(path)
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            raise self._blob_error(name, path, "is missing") from None
        except OSError as err:
            if err.errno == errno.ELOOP:
                raise self._blob_error(name, path, "is a symbolic link (never followed)") from None
            raise
        try:
            view: bytes | memoryview
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise not_regular(path, info.st_mode, self.blob_users(name))
            if into is None:
                if info.st_size > _memory_bytes():  # a crafted (sparse) file must not exhaust memory
                    raise self._blob_error(name, path, f"is {info.st_size:,} bytes, more than this machine's memory")
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
            info = self.blob_path(name).lstat()
        except FileNotFoundError:
            return -1
        return info.st_size if stat.S_ISREG(info.st_mode) else -1

    def blob_error(self, name: str, what: str) -> CorruptStateError:
        """Return the error for a damaged blob, naming its file and every state that uses it."""
        return self._blob_error(name, self.blob_path(name), what)

    def _blob_error(self, name: str, path: Path, what: str) -> CorruptStateError:
        users = self.blob_users(name)
        shown = ", ".join(u[:12] for u in users) or "none known"
        return CorruptStateError(
            f"{path} {what} (states using it: {shown}); other states are intact. Run `prunelab gc --repair` (it "
            "sets aside the states using it) and re-run the script to recompute them; that rewrites the blob.",
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
        try:
            os.mkdir(tmp)
        except FileNotFoundError:
            raise self._vanished(tmp) from None
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
                new_dir = not os.path.lexists(target)
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
        return self._peek_status(target) if os.path.lexists(target) else None

    def _peek_status(self, target: Path) -> str | None:
        try:
            return self.read_record(target.name).get("status")
        except (OSError, CorruptStateError):
            return None

    def _discard(self, target: Path) -> None:
        """Move a state directory out of sight, for gc to delete (a link there is moved, never followed)."""
        os.rename(target, self.root / "tmp" / f"removed.{target.name}.{secrets.token_hex(4)}")

    def remove_state(self, node_id: str) -> bool:
        """Remove a state from view (its files are deleted by gc); return whether it was stored."""
        target = self.state_dir(node_id)
        if not os.path.lexists(target):
            return False
        self._discard(target)
        return True

    def _state_file(self, node_id: str, *names: str) -> Path:
        """The path of a file in a state's directory, once every folder on the way is known to be real.

        A symlinked prefix or state directory is a :class:`CorruptStateError`
        (nothing is read through it); a missing one is ``FileNotFoundError``.
        """
        check_hex(node_id, "state id", self.root / "states")
        folder = self.state_dir(node_id)
        try:
            present = self._real_dir(folder.parent) and all(
                _lstat_dir(part) for part in (folder, *(folder / n for n in names[:-1])))
        except CorruptStateError as err:
            raise CorruptStateError(str(err), err.path, [node_id]) from None
        if not present:
            raise FileNotFoundError(errno.ENOENT, f"state {node_id[:12]} is not stored", str(folder))
        return folder.joinpath(*names)

    def read_record(self, node_id: str) -> dict[str, Any]:
        """Read and verify a state's record (its seal, then the type of every field readers use)."""
        path = self._state_file(node_id, "meta.json")
        self.counters["records_read"] += 1
        return self.parse_record(read_file(path, state_ids=[node_id]), path, node_id)

    @staticmethod
    def parse_record(data: bytes, path: Path, node_id: str) -> dict[str, Any]:
        """Verify a state record's bytes: its seal, then its fields (see :mod:`.schema`)."""
        return check_state_record(unseal(data, path, [node_id]), path, node_id)

    @staticmethod
    def _read_result_file(path: Path, node_id: str) -> dict[str, Any]:
        """Read and verify one result file (or withheld part): its seal, then its fields."""
        data = read_file(path, state_ids=[node_id])
        return check_result_record(unseal(data, path, [node_id], _RESULT_ADVICE), path, node_id)

    def read_values(self, node_id: str, record: dict[str, Any]) -> dict[str, Any]:
        """Read a state's value file, verifying it against the record's checksum."""
        path = self._state_file(node_id, "values.json")
        self.counters["values_read"] += 1
        data = read_file(path, VALUES_LIMIT, [node_id])
        if checksum(data) != record.get("values_checksum"):
            raise CorruptStateError(
                f"state {node_id[:12]}: {path} fails its checksum; other states are intact. {STATE_ADVICE}",
                str(path),
                [node_id],
            )
        values = parse_json(data, path, [node_id])
        if not isinstance(values, dict) or not all(isinstance(v, list) and v for v in values.values()):
            raise CorruptStateError(f"state {node_id[:12]}: {path} is not a value file prunelab wrote; the file "
                                    f"was altered. {STATE_ADVICE}", str(path), [node_id])
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
        self._state_file(node_id, "results")
        self._ensure_dir(path.parent)
        with self.lock():
            stored = self.read_result(node_id, record["name"], record["version"])
            if stored is None:  # absent, or damaged: ours replaces it
                write_atomic(path, sealed, durable=self.durable)
            on_written(record if stored is None else stored)  # the index holds what the file holds

    def read_result(self, node_id: str, name: str, version: int) -> dict[str, Any] | None:
        """Read and verify one result record; None when it is not stored or is damaged (it is then recomputed,
        and :meth:`write_result` replaces the damaged file)."""
        path = self.result_path(node_id, name, version)
        try:
            self._state_file(node_id, "results", path.name)
            return self._read_result_file(path, node_id)
        except (OSError, CorruptStateError):
            return None

    def withheld_path(self, node_id: str, name: str, version: int) -> Path:
        """Return the withheld (blinded) part of one function result."""
        check_hex(node_id, "state id", self.root / "prereg")
        return self.root / "prereg" / "withheld" / node_id / f"{name}@v{version}.json"

    def write_withheld(self, node_id: str, record: dict[str, Any], blobs: dict[str, Blob]) -> None:
        """Store the blinded part of a result, out of every read path until unblinding."""
        self.write_blobs(blobs)
        path = self.withheld_path(node_id, record["name"], record["version"])
        self._ensure_dir(path.parent.parent)
        self._ensure_dir(path.parent)
        if not os.path.lexists(path):
            write_atomic(path, seal(record), durable=self.durable)

    def read_withheld(self, node_id: str, name: str, version: int) -> dict[str, Any]:
        """Read and verify the withheld part of a result."""
        path = self.withheld_path(node_id, name, version)
        if not (self._real_dir(path.parent.parent) and _lstat_dir(path.parent)):
            raise FileNotFoundError(errno.ENOENT, "no withheld result", str(path))
        return self._read_result_file(path, node_id)

    def iter_withheld(self, odd: list[str] | None = None) -> Iterator[tuple[str, Path]]:
        """Yield (state id, path) of every withheld result file (links and odd names go to ``odd``)."""
        folder = self.root / "prereg" / "withheld"
        if not self._real_dir(folder):
            return
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            if not (is_id(entry.name) and entry.is_dir(follow_symlinks=False)):
                if odd is not None:
                    odd.append(f"prereg/withheld/{entry.name}")
                continue
            for item in sorted(os.scandir(entry.path), key=lambda e: e.name):
                if item.is_file(follow_symlinks=False):
                    yield entry.name, Path(item.path)
                elif odd is not None:
                    odd.append(f"prereg/withheld/{entry.name}/{item.name}")

    def read_results(self, node_id: str, errors: list[CorruptStateError] | None = None) -> list[dict[str, Any]]:
        """Read and verify every result record of a state.

        A damaged result raises, or with ``errors`` (a list) is added to it and
        skipped, so the state's other results are still read.
        """
        folder = self._state_file(node_id, "results")
        if not _lstat_dir(folder):
            return []
        out = []
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            if entry.name.startswith("."):
                continue  # a result being written
            try:
                out.append(self._read_result_file(Path(entry.path), node_id))
            except CorruptStateError as err:
                if errors is None:
                    raise
                errors.append(err)
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

    def read_logs(self, kind: str, *, strict: bool = False) -> list[tuple[str, dict[str, Any]]]:
        """Read every entry of an append-only log (``tags``, ``runs``, ``prereg``), oldest first.

        A damaged entry (failing its seal or its shape check, a link, a FIFO …)
        is isolated: it is skipped, remembered in :attr:`damaged` and warned
        about once, and the rest of the log is read. With ``strict`` it raises
        instead (where acting on a partial log would be wrong).
        """
        out = []
        for path in self.log_files(kind):
            try:
                entry = unseal(read_file(path), path, [], _LOG_ADVICE[kind])
                out.append((path.name, check_log_entry(kind, entry, path)))
            except CorruptStateError as err:
                if strict:
                    raise
                if str(path) not in self.damaged:
                    self.damaged[str(path)] = str(err)
                    warnings.warn(f"skipping a damaged {kind} entry: {err}", PrunelabWarning, stacklevel=2)
        return out

    def damaged_logs(self) -> dict[str, str]:
        """Every damaged tag, run or pre-registration entry and environment record (path -> why)."""
        for kind in ("tags", "runs", "prereg"):
            self.read_logs(kind)  # a damaged entry is remembered in self.damaged
        found = dict(self.damaged)
        for path in self.log_files("envs"):
            try:
                self.read_env(path.stem)
            except (OSError, CorruptStateError) as err:
                found[str(path)] = str(err)
        return found

    def log_files(self, kind: str) -> list[Path]:
        """The entries of one append-only log folder, by name (oldest first); work in progress is left out."""
        folder = self.root / kind
        if not self._real_dir(folder):
            return []
        named = _ENV_NAME if kind == "envs" else _LOG_NAME
        return sorted((Path(e.path) for e in os.scandir(folder) if named.fullmatch(e.name)), key=lambda p: p.name)

    def merge_from(self, other: Store) -> list[str]:
        """Copy in every blob, state, result, log entry and environment of ``other`` that this store lacks.

        Content addressing makes this a union: blobs and ids mean the same in
        both. A done state replaces a failed one; everything copied is verified
        first, so a damaged source file is reported, never spread. Call under the lock.
        Returns the ids of the states added.
        """
        other.check_layout()
        odd: list[str] = []
        for name, _, _ in other.iter_blobs(odd):
            target = self.blob_path(name)
            if not (os.path.lexists(target) and self._blob_intact(target, name)):
                data = other.read_blob(name)
                self._ensure_dir(target.parent)
                write_atomic(target, data, durable=self.durable)
        for kind in ("envs", "tags", "runs"):
            for path in other.log_files(kind):
                target = self.root / kind / path.name
                if not os.path.lexists(target):
                    data = read_file(path)
                    if kind != "envs":
                        check_log_entry(kind, unseal(data, path, [], "The source is damaged."), path)
                    elif checksum(data) != path.stem:
                        raise CorruptStateError(f"{path} fails its checksum; the source is damaged.", str(path))
                    write_atomic(target, data, durable=self.durable)
        added = []
        for folder in other.iter_state_dirs(odd):
            node_id = folder.name
            theirs = other.read_record(node_id)
            if theirs.get("status") == "done":
                other.read_values(node_id, theirs)
            results = other.read_results(node_id)  # every file copied is verified: damage is never spread
            target = self.state_dir(node_id)
            ours = self._peek_status(target) if os.path.lexists(target) else None
            if ours is None or (ours == "failed" and theirs.get("status") == "done"):
                tmp = self.root / "tmp" / f"merge.{node_id}.{secrets.token_hex(4)}"
                shutil.copytree(folder, tmp, symlinks=True)
                self._ensure_dir(target.parent)
                if os.path.lexists(target):
                    self._discard(target)
                os.rename(tmp, target)
                added.append(node_id)
            elif ours == "done":
                for result in results:
                    path = self.result_path(node_id, result["name"], result["version"])
                    if not os.path.lexists(path):
                        self._ensure_dir(path.parent)
                        write_atomic(path, seal(result), durable=self.durable)
        if odd:
            raise CorruptStateError(f"{other.root} holds entries prunelab did not write ({', '.join(odd[:5])}); "
                                    "they were not merged. Move them away and merge again (merging twice is "
                                    "harmless).", str(other.root / odd[0]))
        return added

    def read_env(self, name: str) -> dict[str, Any]:
        """Read a stored environment, verifying it against its name."""
        check_hex(name, "environment digest", self.root / "envs")
        path = self.root / "envs" / f"{name}.json"
        data = read_file(path)
        env = parse_json(data, path) if checksum(data) == name else None
        if not isinstance(env, dict):
            raise CorruptStateError(f"{path} fails its checksum; the environment record was altered. It cannot be "
                                    "restored (it describes the machine of a past run); the states made under it "
                                    "are intact.", str(path))
        return env

    def environment(self, name: str | None) -> dict[str, Any]:
        """A stored environment for display: ``{}`` when there is none, and ``{"damaged": why}`` when its file is
        damaged (isolated: what shows environments goes on, naming the file)."""
        if not name:
            return {}
        try:
            return self.read_env(name)
        except FileNotFoundError:
            return {}
        except (OSError, CorruptStateError) as err:
            return {"damaged": str(err)}

    def write_env(self, env: dict[str, Any]) -> str:
        """Store a captured environment once; return its digest."""
        data = canonical_json(env)
        name = checksum(data)
        path = self.root / "envs" / f"{name}.json"
        if not os.path.lexists(path):
            write_atomic(path, data, durable=self.durable)
        return name
