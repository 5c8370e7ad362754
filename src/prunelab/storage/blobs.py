"""Blobs: tensor bytes named by their xxh3-128 digest, stored once, verified when read."""

from __future__ import annotations

import errno
import os
import stat
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..core.errors import CorruptStateError
from .codecs import Blob, digest
from .files import check_hex, not_regular, read_file, write_atomic
from .layout import Layout

__all__ = ["Blobs"]


def _memory_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return 2**62


class Blobs:
    """The ``blobs/`` folder of one experiment.

    Parameters
    ----------
    layout : Layout
        The directory's paths.
    counters : Counter
        Where reads and writes are counted (shared with the rest of the store).
    durable : bool
        fsync every blob written.
    """

    def __init__(self, layout: Layout, counters: Counter[str], durable: bool):
        self.layout = layout
        self.counters = counters
        self.durable = durable
        self._verified: set[str] = set()
        #: The states that use a blob, named in its errors (the index sets it; none known without one).
        self.users: Callable[[str], list[str]] = lambda d: []

    def forget(self) -> None:
        """Forget which blobs were verified (after gc or a repair changed the files)."""
        self._verified.clear()

    def write(self, blobs: dict[str, Blob]) -> int:
        """Store blobs not already present (and intact); return the bytes written."""
        written = 0
        for name, blob in blobs.items():
            if self.present(name, len(blob.data), create=True):
                continue
            # replaces a corrupt blob (or a link: not followed)
            write_atomic(f"{self.layout.blob_folder(name)}/{name}", blob.data, durable=self.durable)
            self._verified.add(name)
            self.counters["blob_bytes_written"] += len(blob.data)
            written += len(blob.data)
        return written

    def present(self, name: str, size: int, create: bool = False) -> bool:
        """Whether the blob ``name`` of ``size`` bytes is stored, whole (with ``create``, make its folder).

        Every publish asks afresh: gc in any process may have removed a blob since.

        Raises
        ------
        CorruptStateError
            If a directory stands at the blob's name.
        """
        folder = self.layout.blob_folder(name)
        path = f"{folder}/{name}"
        if create:
            self.layout.ensure_dir(folder)
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            return False
        if stat.S_ISDIR(info.st_mode):
            raise not_regular(path, info.st_mode, self.users(name))
        if stat.S_ISREG(info.st_mode) and info.st_size == size and (name in self._verified or self.intact(path, name)):
            self._verified.add(name)
            return True
        return False

    @staticmethod
    def intact(path: str | Path, name: str) -> bool:
        """Whether the file at ``path`` holds the blob ``name`` (its content hashes to its name)."""
        try:
            return digest(read_file(path)) == name
        except OSError:
            return False

    def read(self, name: str, into: Any = None) -> Any:
        """Read a blob and verify it; with ``into`` (a writable buffer) fill it instead.

        Returns the bytes read, or ``into``.
        """
        check_hex(name, "blob reference", self.layout.root / "blobs")
        path = self.layout.blob_path(name)
        self.counters["blobs_read"] += 1
        try:
            if not self.layout.real_dir(path.parent):
                raise FileNotFoundError(path)
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            raise self._error(name, path, "is missing") from None
        except OSError as err:
            if err.errno == errno.ELOOP:
                raise self._error(name, path, "is a symbolic link (never followed)") from None
            raise
        try:
            view: bytes | memoryview
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise not_regular(path, info.st_mode, self.users(name))
            if into is None:
                if info.st_size > _memory_bytes():  # a crafted (sparse) file must not exhaust memory
                    raise self._error(name, path, f"is {info.st_size:,} bytes, more than this machine's memory")
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
                    raise self._error(name, path, "has the wrong size")
                data = into
        finally:
            os.close(fd)
        if digest(view) != name:
            raise self._error(name, path, "fails its checksum")
        self._verified.add(name)
        return data

    def size(self, name: str) -> int:
        """Return a blob's size in bytes (-1 when it is missing), without following symlinks."""
        check_hex(name, "blob reference", self.layout.root / "blobs")
        try:
            info = self.layout.blob_path(name).lstat()
        except FileNotFoundError:
            return -1
        return info.st_size if stat.S_ISREG(info.st_mode) else -1

    def error(self, name: str, what: str) -> CorruptStateError:
        """Return the error for a damaged blob, naming its file and every state that uses it."""
        return self._error(name, self.layout.blob_path(name), what)

    def _error(self, name: str, path: Path, what: str) -> CorruptStateError:
        users = self.users(name)
        shown = ", ".join(u[:12] for u in users) or "none known"
        return CorruptStateError(
            f"{path} {what} (states using it: {shown}); other states are intact. Run `prunelab gc --repair` (it "
            "sets aside the states using it) and re-run the script to recompute them; that rewrites the blob.",
            str(path),
            users,
        )

    def files(self, odd: list[str] | None = None) -> Iterator[tuple[str, Path, os.stat_result]]:
        """Yield (digest, path, lstat) of every blob file; links and misnamed entries go to ``odd``."""
        for entry, placed in self.layout.prefixed("blobs", odd):  # blobs being written start with ".tmp-"
            info = entry.stat(follow_symlinks=False)
            if placed and stat.S_ISREG(info.st_mode):
                yield entry.name, Path(entry.path), info
            elif odd is not None:
                odd.append(os.path.relpath(entry.path, self.layout.root))
