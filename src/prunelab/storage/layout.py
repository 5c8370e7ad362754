"""Every path of an experiment directory, and the checks that nothing in it is followed through a link.

::

    EXP/experiment.json            format version, state class name, prunelab version
    EXP/states/ab/<id>/meta.json   the record (with a digest of itself)
    EXP/states/ab/<id>/values.json how each stored attribute is encoded
    EXP/states/ab/<id>/results/    one immutable record per function result
    EXP/tags/  EXP/runs/           append-only tag assignments; one manifest per run()
    EXP/prereg/                    registrations, blinds, unblinds; withheld/<id>/ blinded values
    EXP/blobs/ab/<digest>          content-addressed bytes, stored once
    EXP/envs/<digest>.json         captured environments
    EXP/leases/                    who is computing what (see lease.py)
    EXP/partials/<id>.<0|1>.ckpt   the checkpoints of a state being computed (see partials.py)
    EXP/tmp/                       work in progress and removed states (gc clears it)
    EXP/lock, EXP/generation       the experiment lock; the write generation
    EXP/index.sqlite               a cache of the records (see index.py)

No other module builds a path into the directory: they ask a :class:`Layout`.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path

from ..core.errors import CorruptStateError, ReadOnlyError
from ..core.schema import is_id
from .files import check_hex, kind_of, not_regular

__all__ = ["FORMAT_VERSION", "LAYOUT", "LOGS", "Layout"]

#: The on-disk format this prunelab writes (and the newest it reads).
FORMAT_VERSION = 1
#: The folders created with the experiment.
FOLDERS = ("states", "blobs", "tags", "runs", "envs", "tmp", "prereg")
#: Everything prunelab keeps at the top of an experiment directory.
LAYOUT = frozenset({*FOLDERS, "leases", "partials", "lock", "generation", "experiment.json", "index.sqlite",
                    "index.sqlite-wal", "index.sqlite-shm", "index.sqlite-journal"})
#: The append-only logs (one sealed entry a file) and the folder of environments.
LOGS = ("tags", "runs", "prereg")
_LAYOUT_FOLDERS = frozenset({*FOLDERS, "leases", "partials"})
_INDEX_FILES = frozenset(n for n in LAYOUT if n.startswith("index.sqlite"))


def real_folder(path: Path) -> bool:
    """Whether ``path`` is a real directory: False when missing, an error for anything else there."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return False
    if not stat.S_ISDIR(mode):
        raise not_regular(path, mode)
    return True


def odd_part(path: Path, mode: int, folder: bool) -> CorruptStateError:
    """The error for a part of the directory that is a link, or not the kind of entry prunelab keeps there."""
    link = f" (to {os.readlink(path)!r:.80})" if stat.S_ISLNK(mode) else ""
    return CorruptStateError(
        f"{path} is a {kind_of(mode)}{link}, where prunelab keeps a {'folder' if folder else 'regular file'}; "
        "prunelab never follows links inside an experiment directory and opened nothing through it. Replace "
        "it with what it stands for (e.g. move the linked folder into place), or open that experiment "
        "directly.", str(path))


class Layout:
    """The paths of one experiment directory, and which of its folders are known to be real.

    Parameters
    ----------
    root : Path or str
        The experiment directory (made absolute once: a recipe's ``os.chdir`` cannot move it).
    """

    def __init__(self, root: Path | str):
        self.root = Path(os.path.abspath(root))
        self.info = self.root / "experiment.json"
        self.lock_file = self.root / "lock"
        self.generation_file = self.root / "generation"
        self.leases = self.root / "leases"
        self.partials = self.root / "partials"
        self.tmp_folder = self.root / "tmp"
        self.index_file = self.root / "index.sqlite"
        self.withheld = self.root / "prereg" / "withheld"
        self._blobs = f"{self.root}/blobs/"  # the hot path builds blob paths as text (pathlib is slow)
        self._real_dirs: set[str] = set()

    # ---------------------------------------------------------------- paths
    def state_dir(self, node_id: str) -> Path:
        """The directory of a state (whether or not it exists)."""
        return self.root / "states" / node_id[:2] / node_id

    def blob_path(self, name: str) -> Path:
        """The file of a blob."""
        return self.root / "blobs" / name[:2] / name

    def blob_folder(self, name: str) -> str:
        """The prefix folder of a blob, as text."""
        return self._blobs + name[:2]

    def result_path(self, node_id: str, name: str, version: int) -> Path:
        """The file of one function result."""
        return self.state_dir(node_id) / "results" / f"{name}@v{version}.json"

    def partial_path(self, node_id: str, slot: int) -> str:
        """The file of one of a state's two checkpoint slots (whether or not it exists), as text."""
        check_hex(node_id, "state id", self.partials)
        return f"{self.partials}/{node_id}.{slot}.ckpt"

    def withheld_path(self, node_id: str, name: str, version: int) -> Path:
        """The withheld (blinded) part of one function result."""
        check_hex(node_id, "state id", self.root / "prereg")
        return self.withheld / node_id / f"{name}@v{version}.json"

    def log_folder(self, kind: str) -> Path:
        """The folder of one append-only log (``tags``, ``runs``, ``prereg``) or of the environments (``envs``)."""
        return self.root / kind

    def env_path(self, name: str) -> Path:
        """The file of one captured environment."""
        check_hex(name, "environment digest", self.root / "envs")
        return self.root / "envs" / f"{name}.json"

    def tmp(self, what: str) -> str:
        """A fresh name under ``tmp/`` for work in progress or a removed entry (``what`` says which)."""
        return f"{self.tmp_folder}/{what}.{secrets.token_hex(4)}"

    # ----------------------------------------------------------- the whole
    def is_experiment(self) -> bool:
        """Whether the directory holds an experiment.json (a symlink or other odd file counts too)."""
        return os.path.lexists(self.info)

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

    def create_folders(self) -> None:
        """Make the folders of a new experiment."""
        for sub in FOLDERS:
            (self.root / sub).mkdir(exist_ok=True)

    def check(self) -> None:
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
                    raise odd_part(Path(entry.path), mode, folder)

    # ------------------------------------------------------------- folders
    def real_dir(self, path: str | Path, create: bool = False) -> bool:
        """Whether a folder inside the experiment exists as a real directory (a symlink there is an error).

        With ``create``, make it when missing — one level only: a parent that
        vanished (the experiment deleted under a run) is an error, never
        recreated. The folders no process removes (the layout and the ``ab``
        prefixes) are remembered until :meth:`forget`; a state's own folders
        are looked at every time, since another process may remove them.
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
                raise self.vanished(key) from None
            mode = os.lstat(key).st_mode
        if not stat.S_ISDIR(mode):
            raise odd_part(Path(key), mode, True)
        if key.count(os.sep) - str(self.root).count(os.sep) <= 2:
            self._real_dirs.add(key)
        return True

    def ensure_dir(self, path: str | Path) -> None:
        """Make a folder inside the experiment if it is missing (see :meth:`real_dir`)."""
        self.real_dir(path, create=True)

    def forget(self) -> None:
        """Forget which folders exist (after gc or a repair changed the files)."""
        self._real_dirs.clear()

    def vanished(self, path: str) -> FileNotFoundError:
        """The error for a folder that disappeared under a write."""
        return FileNotFoundError(errno.ENOENT, f"{os.path.dirname(path)} is gone: the experiment directory "
                                 f"{self.root} was deleted or moved while prunelab was writing to it; nothing was "
                                 "recreated", path)

    def state_file(self, node_id: str, *names: str) -> Path:
        """The path of a file in a state's directory, once every folder on the way is known to be real.

        A symlinked prefix or state directory is a :class:`CorruptStateError`
        (nothing is read through it); a missing one is ``FileNotFoundError``.
        """
        check_hex(node_id, "state id", self.root / "states")
        folder = self.state_dir(node_id)
        try:
            present = self.real_dir(folder.parent) and all(
                real_folder(part) for part in (folder, *(folder / n for n in names[:-1])))
        except CorruptStateError as err:
            raise CorruptStateError(str(err), err.path, [node_id]) from None
        if not present:
            raise FileNotFoundError(errno.ENOENT, f"state {node_id[:12]} is not stored", str(folder))
        return folder.joinpath(*names)

    def discard(self, target: Path) -> None:
        """Move a state directory out of sight, for gc to delete (a link there is moved, never followed)."""
        os.rename(target, self.tmp(f"removed.{target.name}"))

    # ------------------------------------------------------------ listings
    def prefixed(self, folder: str, odd: list[str] | None, ordered: bool = True
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

    def state_entries(self, odd: list[str] | None, ordered: bool = True) -> Iterator[os.DirEntry[str]]:
        """Every ``states/ab/<id>`` that is a real directory named by its id; the rest goes to ``odd``.

        Work in progress (names starting with ``.``) is neither. Anything else —
        a stray file, a symlink, a folder not named by a 32-hex id under its
        prefix — is no state: it is never counted, listed or followed.
        """
        for entry, placed in self.prefixed("states", odd, ordered):
            if placed and entry.is_dir(follow_symlinks=False):
                yield entry
            elif odd is not None:
                odd.append(os.path.relpath(entry.path, self.root))

    def iter_state_dirs(self, odd: list[str] | None = None) -> Iterator[Path]:
        """Yield every state directory (never following symlinks); odd entries are added to ``odd``."""
        for entry in self.state_entries(odd):
            yield Path(entry.path)

    def count_states(self) -> int:
        """Count the state directories (the index's second validity check).

        A state published but not indexed (a crash between the two) changes the
        count; writes that do not (tags, replacing a failed record, removals)
        bump the generation instead.
        """
        return sum(1 for _ in self.state_entries(None, ordered=False))
