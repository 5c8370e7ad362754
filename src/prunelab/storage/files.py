"""Small file primitives: atomic writes, safe reads, checksums, crash points."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import secrets
import signal
import stat
from pathlib import Path
from typing import Any

import xxhash

from ..core.errors import CorruptStateError

__all__ = ["write_atomic", "open_regular", "read_file", "digest_words", "read_json", "crash_point", "check_hex", "check_depth",
           "disk_full", "CRASH_ENV", "RECORD_LIMIT", "VALUES_LIMIT", "MAX_DEPTH"]

#: Test hook: ``PRUNELAB_CRASH_AT=<phase>[:<n>]`` SIGKILLs the process the n-th time (default 1st)
#: it reaches that write phase. Phases: blobs-written, record-written, before-rename,
#: after-rename, index-update.
CRASH_ENV = "PRUNELAB_CRASH_AT"
#: How often each phase was reached; a publishing helper continues its parent's counts.
crash_counts: dict[str, int] = {}
#: A process the crash hook kills first (a publishing helper's parent: the run dies as one).
ALSO_KILL: int | None = None
_HEX = re.compile(r"[0-9a-f]{32}")
_DIGEST_WORD = re.compile(rb"[0-9a-f]{32}")
#: The largest record, result, log entry, environment or lease prunelab reads (bytes): checked before reading,
#: so a crafted (e.g. sparse) file cannot exhaust memory.
RECORD_LIMIT = 64 * 2**20
_IOV_MAX = 1024  # buffers one pwritev may take (Linux's IOV_MAX)
#: The largest value file (``values.json``) prunelab reads.
VALUES_LIMIT = 1024 * 2**20
#: The deepest nesting of lists and dicts accepted in a stored JSON file.
MAX_DEPTH = 200
_KINDS = {stat.S_IFDIR: "directory", stat.S_IFIFO: "FIFO", stat.S_IFSOCK: "socket", stat.S_IFCHR: "character device",
          stat.S_IFBLK: "block device", stat.S_IFLNK: "symbolic link"}


def crash_point(phase: str) -> None:
    """SIGKILL this process here if the crash test hook names ``phase``."""
    wanted = os.environ.get(CRASH_ENV)
    if not wanted:
        return
    name, _, nth = wanted.partition(":")
    if name != phase:
        return
    crash_counts[phase] = crash_counts.get(phase, 0) + 1
    if crash_counts[phase] == int(nth or 1):
        if ALSO_KILL is not None:
            os.kill(ALSO_KILL, signal.SIGKILL)
        os.kill(os.getpid(), signal.SIGKILL)


def checksum(data: bytes) -> str:
    """Return the fast checksum (xxh3-128, hex) used for integrity."""
    return xxhash.xxh3_128_hexdigest(data)


def check_hex(value: Any, what: str, path: Path | str) -> str:
    """Return ``value`` if it is a 32-hex-digit name, else raise naming the file."""
    if not isinstance(value, str) or not _HEX.fullmatch(value):
        raise CorruptStateError(
            f"{path}: {what} {value!r:.80} is not a 32-hex-digit name; the file was altered or is not "
            "from prunelab. Nothing was read through it.",
            str(path),
        )
    return value


def fsync_dir(path: str | Path) -> None:
    """Flush a directory entry to disk."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_file(path: str | Path, data: bytes | memoryview, *, durable: bool) -> None:
    """Write ``data`` to a new file ``path`` (no rename), fsyncing when ``durable``."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)


def write_in_place(path: str, parts: list[bytes | memoryview], *, durable: bool) -> None:
    """Overwrite the file ``path`` (made if missing, never through a link) with ``parts``, one after another.

    Not atomic: a crash may leave the file half old, half new. Only for files
    whose readers tell a whole one by its checksums (checkpoint slots).

    Raises
    ------
    CorruptStateError
        If something other than a regular file stands at ``path``.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o644)
    except OSError as err:
        if err.errno in (errno.ELOOP, errno.ENXIO):  # a link; a FIFO with no reader
            raise not_regular(path, stat.S_IFLNK if err.errno == errno.ELOOP else stat.S_IFIFO) from None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise not_regular(path, info.st_mode)
        views = [memoryview(part).cast("B") for part in parts]
        offset = 0
        while views:  # the parts are written where they are, uncopied
            written = os.pwritev(fd, views[:_IOV_MAX], offset)
            offset += written
            while views and written >= len(views[0]):
                written -= len(views.pop(0))
            if views:
                views[0] = views[0][written:]
        os.ftruncate(fd, offset)
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    if durable and info.st_size == 0:
        fsync_dir(os.path.dirname(path))


def temp_name(path: str | Path) -> str:
    """Return a unique temporary sibling of ``path`` (ignored by every reader)."""
    folder, name = os.path.split(path)
    return os.path.join(folder, f".tmp-{name}-{os.getpid()}-{secrets.token_hex(4)}")


def write_atomic(path: str | Path, data: bytes | memoryview, *, durable: bool = False) -> None:
    """Write ``data`` to ``path`` so readers see the old file or the whole new one."""
    tmp = temp_name(path)
    try:
        write_file(tmp, data, durable=durable)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if durable:
        fsync_dir(os.path.dirname(path))


def kind_of(mode: int) -> str:
    """Name the kind of file a ``st_mode`` describes (``"regular file"``, ``"FIFO"``, …)."""
    return "regular file" if stat.S_ISREG(mode) else _KINDS.get(stat.S_IFMT(mode), "special file")


def not_regular(path: str | Path, mode: int, state_ids: list[str] | None = None) -> CorruptStateError:
    """The error for a name in the experiment that holds something other than what prunelab put there."""
    what = kind_of(mode)
    follow = " prunelab never follows links inside an experiment directory." if stat.S_ISLNK(mode) else ""
    return CorruptStateError(
        f"{path} is a {what}, not the regular file prunelab wrote there; nothing was read through it.{follow} "
        "Move it away (and re-run the script, or `prunelab gc --repair`, to rebuild what it held).",
        str(path), state_ids or [])


def open_regular(path: str | Path, state_ids: list[str] | None = None) -> tuple[int, os.stat_result]:
    """Open a regular file for reading, never through a symlink at its name nor blocking; return its fd and fstat.

    A FIFO, device, socket, directory or symlink is refused (opened
    non-blocking, checked with ``fstat``) with a :class:`CorruptStateError`
    naming the file and ``state_ids``. A missing file raises ``FileNotFoundError``.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise not_regular(path, stat.S_IFLNK, state_ids) from None
        raise
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise not_regular(path, info.st_mode, state_ids)
    return fd, info


def read_file(path: str | Path, limit: int = RECORD_LIMIT, state_ids: list[str] | None = None) -> bytes:
    """Read a whole regular file of at most ``limit`` bytes, never following a symlink at its name.

    A FIFO, device, socket, directory or symlink is refused without blocking
    (opened non-blocking, checked with ``fstat`` before any read), and so is a
    file larger than ``limit`` (checked before reading), each with a
    :class:`CorruptStateError` naming the file. A missing file raises
    ``FileNotFoundError``.
    """
    fd, info = open_regular(path, state_ids)
    try:
        if info.st_size > limit:
            raise CorruptStateError(
                f"{path} is {info.st_size:,} bytes, more than the {limit:,} a file of its kind may hold; it was "
                "altered or is not from prunelab, and was not read.", str(path), state_ids or [])
        with os.fdopen(fd, "rb", closefd=False) as handle:
            return handle.read()
    finally:
        os.close(fd)


def digest_words(data: bytes) -> set[str]:
    """Every 32-hex word in ``data``: the blobs a file may name, read from it even when it is damaged."""
    return {m.decode() for m in _DIGEST_WORD.findall(data)}


def check_depth(value: Any, path: str | Path, limit: int = MAX_DEPTH) -> Any:
    """Return ``value`` if its lists and dicts nest at most ``limit`` deep, else raise naming the file."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            raise CorruptStateError(f"{path} nests deeper than {limit} levels; it was altered or is not from "
                                    "prunelab.", str(path))
        if isinstance(item, list):
            stack.extend((x, depth + 1) for x in item if isinstance(x, (list, dict)))
        elif isinstance(item, dict):
            stack.extend((x, depth + 1) for x in item.values() if isinstance(x, (list, dict)))
    return value


def parse_json(data: bytes, path: str | Path, state_ids: list[str] | None = None) -> Any:
    """Parse stored JSON bytes (depth-limited), raising :class:`CorruptStateError` naming the file."""
    try:
        return check_depth(json.loads(data), path)
    except (ValueError, UnicodeDecodeError, RecursionError) as err:
        raise CorruptStateError(
            f"{path} is not valid JSON ({str(err)[:120]}); the file is damaged.", str(path), state_ids or []
        ) from None


def read_json(path: Path, *, state_ids: list[str] | None = None, limit: int = RECORD_LIMIT) -> Any:
    """Read and parse a JSON file, raising :class:`CorruptStateError` naming it."""
    return parse_json(read_file(path, limit, state_ids), path, state_ids)


def disk_full(err: BaseException) -> bool:
    """Whether an error says the file system is full (``ENOSPC``/``EDQUOT``, or SQLite's "disk is full")."""
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return type(err).__module__ == "sqlite3" and "full" in str(err)
