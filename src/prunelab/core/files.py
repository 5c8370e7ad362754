"""Small file primitives: atomic writes, safe reads, canonical JSON, crash points."""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
from pathlib import Path
from typing import Any

import xxhash

from .errors import CorruptStateError

__all__ = ["canonical_json", "write_atomic", "read_file", "read_json", "crash_point", "check_hex", "CRASH_ENV"]

#: Test hook: ``PRUNELAB_CRASH_AT=<phase>[:<n>]`` SIGKILLs the process the n-th time (default 1st)
#: it reaches that write phase. Phases: blobs-written, record-written, before-rename,
#: after-rename, index-update.
CRASH_ENV = "PRUNELAB_CRASH_AT"
#: How often each phase was reached; a publishing helper continues its parent's counts.
crash_counts: dict[str, int] = {}
#: A process the crash hook kills first (a publishing helper's parent: the run dies as one).
ALSO_KILL: int | None = None
_HEX = re.compile(r"[0-9a-f]{32}")


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


def canonical_json(obj: Any) -> bytes:
    """Serialise ``obj`` deterministically (sorted keys, no spaces, NaN allowed)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


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


def read_file(path: str | Path) -> bytes:
    """Read a whole file without following a symlink at its name."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        with os.fdopen(fd, "rb", closefd=False) as handle:
            return handle.read()
    finally:
        os.close(fd)


def read_json(path: Path, *, state_ids: list[str] | None = None) -> Any:
    """Read and parse a JSON file, raising :class:`CorruptStateError` naming it."""
    try:
        return json.loads(read_file(path))
    except (ValueError, UnicodeDecodeError) as err:
        raise CorruptStateError(
            f"{path} is not valid JSON ({err}); the file is damaged.", str(path), state_ids or []
        ) from None
