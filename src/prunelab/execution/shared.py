"""Shared memory between a run and its publishing helper, for checkpoints' bytes.

A buffer is an anonymous file (``memfd_create``; elsewhere an unlinked
temporary file, in the page cache all the same), mapped by both processes.
Its descriptor crosses the socket they share (``SCM_RIGHTS``), so no name is
left behind when either dies.
"""

from __future__ import annotations

import mmap
import os
import socket
import tempfile
from multiprocessing.connection import Connection

__all__ = ["SharedBuffer", "receive_buffer"]


class SharedBuffer:
    """A writable shared buffer of ``size`` bytes, on the run's side."""

    def __init__(self, size: int):
        if hasattr(os, "memfd_create"):
            self.fd = os.memfd_create("prunelab-checkpoint", os.MFD_CLOEXEC)
        else:
            self.fd, path = tempfile.mkstemp(prefix="prunelab-checkpoint-")
            os.unlink(path)
        self.size = size
        os.ftruncate(self.fd, size)
        self.map = mmap.mmap(self.fd, size)
        self.view = memoryview(self.map)
        self.sequence = 0  # the message that last used it (free once acknowledged)

    def send(self, conn: Connection, index: int) -> None:
        """Hand the buffer to the other end of ``conn`` as buffer ``index`` (see :func:`receive_buffer`)."""
        conn.send(("buffer", index, self.size))
        with socket.socket(fileno=os.dup(conn.fileno())) as sock:
            socket.send_fds(sock, [b"\0"], [self.fd])

    def close(self) -> None:
        """Unmap it and close its file (the other process's mapping stays until it closes it)."""
        self.view.release()
        self.map.close()
        os.close(self.fd)


def receive_buffer(conn: Connection, size: int) -> mmap.mmap:
    """Map, read-only, the buffer whose ``("buffer", index, size)`` message was just received from ``conn``."""
    with socket.socket(fileno=os.dup(conn.fileno())) as sock:
        _, fds, _, _ = socket.recv_fds(sock, 1, 1)
    try:
        return mmap.mmap(fds[0], size, access=mmap.ACCESS_READ)
    finally:
        os.close(fds[0])
