"""The experiment lock (``EXP/lock``, an flock) and the write generation (``EXP/generation``)."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import threading
from collections.abc import Iterator

from .files import not_regular, read_file, write_atomic
from .layout import Layout

__all__ = ["Lock"]

_READ_ONLY = (errno.EROFS, errno.EACCES, errno.EPERM)


class Lock:
    """The lock every writer of one experiment holds, and the generation that marks its writes.

    Parameters
    ----------
    layout : Layout
        The directory's paths.
    durable : bool
        fsync the generation file when it is written.
    """

    def __init__(self, layout: Layout, durable: bool):
        self.layout = layout
        self.durable = durable
        self._fd: int | None = None
        self._pid = 0
        self._depth = 0
        self._threads = threading.RLock()  # the flock is the process's: its threads take turns here first
        self._threads_pid = os.getpid()

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """Hold the experiment lock (re-entrant within this process).

        The lock file is opened when the outermost hold starts and closed when
        it ends, so no descriptor outlives its use. Where the directory cannot
        be written (a read-only mount) and holds no lock file, readers go on
        without one: nothing can change such a directory from here. Threads of
        one process (a Dask worker's) hold it one at a time, each re-entrantly.
        """
        if self._threads_pid != os.getpid():  # a forked child: no thread of it holds the parent's turn
            self._threads, self._threads_pid = threading.RLock(), os.getpid()
        with self._threads:
            if self._depth == 0 or self._pid != os.getpid():
                self._fd, self._pid, self._depth = self._open(), os.getpid(), 0
                if self._fd is not None:
                    fcntl.flock(self._fd, fcntl.LOCK_EX)
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0 and self._fd is not None:
                    fd, self._fd = self._fd, None
                    os.close(fd)  # releases the flock

    def _open(self) -> int | None:
        path = self.layout.lock_file
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

    def generation(self) -> int:
        """Return the write generation (0 when never written, -1 when its file is not a number)."""
        try:
            return int(read_file(self.layout.generation_file) or b"0")
        except FileNotFoundError:
            return 0
        except ValueError:
            return -1

    def bump_generation(self) -> int:
        """Advance the write generation (call under the lock, before the write it covers)."""
        value = max(self.generation(), 0) + 1
        write_atomic(self.layout.generation_file, str(value).encode(), durable=self.durable)
        return value
