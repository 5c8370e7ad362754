"""Leases: each state is computed once, however many drivers and workers share a directory.

A lease is a file ``EXP/leases/<key>.lease`` created exclusively, holding the
holder's host, pid, a random token and a heartbeat counter that a background
thread advances. A waiter judges staleness on its *own* clock: a counter that
has not moved for the lease timeout means the holder is gone (no clock
synchronisation between hosts is needed); a holder on the same host whose pid
is dead is taken over at once. Before publishing, the holder checks that the
lease is still its own; if two writers ever race anyway, the store's first
rename wins and the other copy is discarded, so leases save work and never
decide correctness.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..core.errors import CorruptStateError
from .files import read_file, temp_name, write_atomic, write_file

__all__ = ["Lease", "acquire", "lease_timeout", "read_lease", "pid_alive", "BUSY", "LEASE_TIMEOUT_ENV"]

#: Seconds without a heartbeat after which a lease held on another host (or by a live
#: pid that stopped beating) is taken over. Default 60.
LEASE_TIMEOUT_ENV = "PRUNELAB_LEASE_TIMEOUT"
_HOST = socket.gethostname()
_FOLDERS: set[Path] = set()
_SEEN: dict[Path, tuple[Any, float]] = {}  # lease file -> (last (token, counter) seen, when, on our clock)

#: What :func:`acquire` returns with ``wait=False`` while another live holder has the lease.
BUSY = "busy"


def lease_timeout() -> float:
    """The lease timeout in seconds (``PRUNELAB_LEASE_TIMEOUT``, default 60)."""
    try:
        return max(1.0, float(os.environ.get(LEASE_TIMEOUT_ENV, "60")))
    except ValueError:
        return 60.0


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_lease(path: Path) -> dict[str, Any] | None:
    """A lease file's content (host, pid, token, counter), or None when it is gone or torn."""
    try:
        data = json.loads(read_file(path, limit=4096))  # a regular file only: a FIFO there must not block
    except (OSError, ValueError, CorruptStateError):
        return None
    return data if isinstance(data, dict) else None


class _Heartbeat:
    """One daemon thread per process advancing the counter of every lease it holds."""

    def __init__(self) -> None:
        self.leases: set[Lease] = set()
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.thread: threading.Thread | None = None
        self.pid = 0

    def add(self, lease: Lease, interval: float) -> None:
        with self.lock:
            self.leases.add(lease)
            if self.thread is None or self.pid != os.getpid() or not self.thread.is_alive():
                self.pid = os.getpid()
                self.thread = threading.Thread(target=self._run, args=(interval,), daemon=True,
                                               name="prunelab-lease-heartbeat")
                self.thread.start()

    def remove(self, lease: Lease) -> None:
        with self.lock:
            self.leases.discard(lease)

    def _run(self, interval: float) -> None:
        while True:
            time.sleep(interval)
            with self.lock:
                held = list(self.leases)
            for lease in held:
                lease.beat()


_HEARTBEAT = _Heartbeat()


class Lease:
    """A held lease; :meth:`release` (or leaving a ``with`` block) gives it up."""

    def __init__(self, path: Path, durable: bool):
        self.path = path
        self.token = secrets.token_hex(8)
        self.durable = durable
        self.counter = 0
        self.released = False

    def _content(self) -> bytes:
        return json.dumps({"host": _HOST, "pid": os.getpid(), "token": self.token, "counter": self.counter}).encode()

    def beat(self) -> None:
        """Advance the heartbeat counter, if the lease is still ours."""
        if self.released or not self.owned():
            return
        self.counter += 1
        try:
            write_atomic(self.path, self._content(), durable=False)
        except OSError:
            pass

    def start(self, interval: float) -> None:
        """Join the process's heartbeat thread."""
        _HEARTBEAT.add(self, interval)

    def owned(self) -> bool:
        """Whether the lease file is still this holder's."""
        info = read_lease(self.path)
        return info is not None and info.get("token") == self.token

    def release(self) -> None:
        """Stop the heartbeat and remove the lease file if it is still ours."""
        self.released = True
        _HEARTBEAT.remove(self)
        if self.owned():
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def acquire(folder: Path, key: str, is_done: Callable[[], bool], *, timeout: float | None = None,
            poll: float = 0.05, durable: bool = False, wait: bool = True) -> Lease | str | None:
    """Take the lease on ``key``; return None as soon as ``is_done()`` says the work exists.

    Waits while another live holder keeps beating (or, with ``wait=False``,
    returns :data:`BUSY` at once, so the caller can do other work first); takes
    over a holder on this host whose pid is dead at once, and any other after
    ``timeout`` seconds without a heartbeat (measured on this process's
    monotonic clock, across calls).
    """
    timeout = lease_timeout() if timeout is None else timeout
    if folder not in _FOLDERS:
        folder.mkdir(exist_ok=True)
        _FOLDERS.add(folder)
    path = folder / f"{key}.lease"
    seen, seen_at = _SEEN.get(path, (None, time.monotonic()))
    delay = poll
    while True:
        if is_done():
            return None
        lease = Lease(path, durable)
        try:
            _create(path, lease._content())
        except FileNotFoundError:  # the folder was removed since this process made it
            folder.mkdir(exist_ok=True)
            continue
        except FileExistsError:
            info = read_lease(path)
            stale = False
            if info is not None:
                marker = (info.get("token"), info.get("counter"))
                if info.get("host") == _HOST and isinstance(info.get("pid"), int) and not pid_alive(info["pid"]):
                    stale = True
                elif marker != seen:
                    seen, seen_at = marker, time.monotonic()
                elif time.monotonic() - seen_at > timeout:
                    stale = True
            elif time.monotonic() - seen_at > timeout:  # unreadable for a whole timeout: a torn file
                stale = True
            _SEEN[path] = (seen, seen_at)
            if stale:
                _break(path, info)
                continue
            if not wait:
                return BUSY
            time.sleep(delay)
            delay = min(delay * 1.5, max(poll, timeout / 20))
            continue
        _SEEN.pop(path, None)
        lease.start(interval=max(timeout / 4, 0.05))
        return lease


def _create(path: Path, content: bytes) -> None:
    """Create the lease file with its whole content, or raise ``FileExistsError``.

    The content is written to a private file first and linked into place, so
    a lease file is never seen empty or torn (a full disk fails the private
    write, before any lease exists). Where hard links are not supported, an
    exclusive create is used instead (and removed again if its write fails).
    """
    tmp = temp_name(path)
    try:
        write_file(tmp, content, durable=False)
        try:
            os.link(tmp, path)
            return
        except OSError as err:
            if isinstance(err, FileExistsError) or err.errno not in (errno.EPERM, errno.ENOTSUP, errno.EXDEV):
                raise
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    try:
        os.write(fd, content)
    except BaseException:
        os.unlink(path)
        raise
    finally:
        os.close(fd)


def _break(path: Path, observed: dict[str, Any] | None) -> None:
    """Remove a stale lease, unless it changed since it was judged stale."""
    current = read_lease(path)
    if current == observed or observed is None:
        try:
            path.unlink()
        except FileNotFoundError:
            pass
