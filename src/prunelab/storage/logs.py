"""The append-only logs (tags, runs, registrations: one sealed entry a file) and the captured environments."""

from __future__ import annotations

import os
import re
import time
import secrets
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..core.errors import CorruptStateError, PrunelabWarning
from ..core.records import canonical_json
from ..core.schema import check_log_entry
from .files import checksum, parse_json, read_file, write_atomic
from .layout import LOGS, Layout
from .lock import Lock
from .seal import LOG_ADVICE, seal, unseal

__all__ = ["Logs"]

_LOG_NAME = re.compile(r"[0-9]+-[0-9]+-[0-9a-f]+\.json")
_ENV_NAME = re.compile(r"[0-9a-f]{32}\.json")


class Logs:
    """The ``tags/``, ``runs/``, ``prereg/`` and ``envs/`` folders of one experiment.

    Parameters
    ----------
    layout : Layout
        The directory's paths.
    lock : Lock
        The experiment lock, held around each entry written (its generation is bumped).
    durable : bool
        fsync every file written.
    """

    def __init__(self, layout: Layout, lock: Lock, durable: bool):
        self.layout = layout
        self.lock = lock
        self.durable = durable
        #: Damaged files met while reading logs (path -> why), each skipped and warned about once.
        self.damaged: dict[str, str] = {}

    def append(self, kind: str, payload: dict[str, Any], on_written: Callable[[str], None] | None = None) -> str:
        """Write one entry under ``kind`` (``tags``, ``runs`` or ``prereg``); return its name.

        ``on_written(name)`` runs under the lock once the entry is written (the index update).
        """
        name = f"{time.time_ns():020d}-{os.getpid()}-{secrets.token_hex(3)}.json"
        with self.lock.hold():
            self.lock.bump_generation()
            write_atomic(self.layout.log_folder(kind) / name, seal(payload), durable=self.durable)
            if on_written is not None:
                on_written(name)
        return name

    def read(self, kind: str, *, strict: bool = False) -> list[tuple[str, dict[str, Any]]]:
        """Read every entry of an append-only log (``tags``, ``runs``, ``prereg``), oldest first.

        A damaged entry (failing its seal or its shape check, a link, a FIFO …)
        is isolated: it is skipped, remembered in :attr:`damaged` and warned
        about once, and the rest of the log is read. With ``strict`` it raises
        instead (where acting on a partial log would be wrong).
        """
        out = []
        for path in self.files(kind):
            try:
                entry = unseal(read_file(path), path, [], LOG_ADVICE[kind])
                out.append((path.name, check_log_entry(kind, entry, path)))
            except CorruptStateError as err:
                if strict:
                    raise
                if str(path) not in self.damaged:
                    self.damaged[str(path)] = str(err)
                    warnings.warn(f"skipping a damaged {kind} entry: {err}", PrunelabWarning, stacklevel=2)
        return out

    def damaged_files(self) -> dict[str, str]:
        """Every damaged tag, run or pre-registration entry and environment record (path -> why)."""
        for kind in LOGS:
            self.read(kind)  # a damaged entry is remembered in self.damaged
        found = dict(self.damaged)
        for path in self.files("envs"):
            try:
                self.read_env(path.stem)
            except (OSError, CorruptStateError) as err:
                found[str(path)] = str(err)
        return found

    def files(self, kind: str) -> list[Path]:
        """The entries of one log folder (or ``envs``), by name (oldest first); work in progress is left out."""
        folder = self.layout.log_folder(kind)
        if not self.layout.real_dir(folder):
            return []
        named = _ENV_NAME if kind == "envs" else _LOG_NAME
        return sorted((Path(e.path) for e in os.scandir(folder) if named.fullmatch(e.name)), key=lambda p: p.name)

    # ------------------------------------------------------- environments
    def read_env(self, name: str) -> dict[str, Any]:
        """Read a stored environment, verifying it against its name."""
        path = self.layout.env_path(name)
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
        path = self.layout.env_path(name)
        if not os.path.lexists(path):
            write_atomic(path, data, durable=self.durable)
        return name
