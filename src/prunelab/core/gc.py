"""Garbage collection: delete leftovers of crashes and removals, and repair corruption."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .codecs import digest
from .errors import CorruptStateError
from .files import read_file

if TYPE_CHECKING:
    from .experiment import Experiment

__all__ = ["GCReport", "collect"]

#: Nothing younger than this is collected: it may belong to a writer still at work.
MIN_AGE_S = 3600.0


@dataclass
class GCReport:
    """What :func:`collect` removed (or, with ``dry_run``, would remove)."""

    leftovers: list[str] = field(default_factory=list)
    unreferenced_blobs: list[str] = field(default_factory=list)
    bytes_freed: int = 0
    corrupt_blobs: list[str] = field(default_factory=list)
    states_removed: list[str] = field(default_factory=list)
    live_runs: int = 0

    def summary(self) -> str:
        """One line for the terminal."""
        kept = (f" (unreferenced blobs kept: {self.live_runs} run(s) in progress may still need them)"
                if self.live_runs else "")
        return (f"gc: {len(self.leftovers)} leftover(s), {len(self.unreferenced_blobs)} unreferenced blob(s), "
                f"{self.bytes_freed:,} bytes freed; {len(self.corrupt_blobs)} corrupt blob(s), "
                f"{len(self.states_removed)} state(s) removed for recomputation{kept}")


def collect(exp: Experiment, *, repair: bool = False, min_age_s: float = MIN_AGE_S,
            dry_run: bool = False) -> GCReport:
    """Delete crash leftovers, removed states and unreferenced blobs older than ``min_age_s``.

    Parameters
    ----------
    exp : Experiment
        The experiment (its lock is held throughout).
    repair : bool, default=False
        Also verify every blob; delete corrupt ones and remove the states using
        them, so that re-running the script recomputes exactly those states.
    min_age_s : float, default=3600
        Keep anything younger (a concurrent writer may still be using it); work
        in progress of a state whose lease is held is kept whatever its age, and
        no unreferenced blob is deleted while a run holds its run lease. Leases
        whose holder died on this host are removed with the other leftovers.
    dry_run : bool, default=False
        Report only.
    """
    store, report = exp.store, GCReport()
    cutoff = time.time() - min_age_s
    with store.lock():
        leased: set[str] = set()
        for path in sorted((store.root / "leases").glob("*.lease")) if (store.root / "leases").is_dir() else []:
            if _holder_dead(path):  # its process died (SIGKILL): the lease is a leftover too
                report.leftovers.append(f"leases/{path.name}")
                if not dry_run:
                    path.unlink(missing_ok=True)
            elif path.name.startswith("run."):
                report.live_runs += 1
            else:
                leased.add(path.name.split(".")[0])
        for path in sorted((store.root / "tmp").iterdir()):
            if path.name.split(".")[0] in leased:
                continue  # a writer holding the state's lease may still be using it
            if path.lstat().st_mtime < cutoff:
                report.leftovers.append(path.name)
                if not dry_run:
                    shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
        referenced: dict[str, list[str]] = {}
        for folder in store.iter_state_dirs():
            node_id = folder.name
            try:
                record = store.read_record(node_id)
                results = store.read_results(node_id)
            except (OSError, CorruptStateError):
                continue  # a damaged record keeps its blobs: gc never widens damage
            for name in [*record.get("blobs", []), *(d for r in results for d in r.get("blobs", []))]:
                referenced.setdefault(name, []).append(node_id)
        for blob in sorted((store.root / "blobs").glob("*/*")):
            name, stat = blob.name, blob.lstat()
            if name not in referenced:
                if stat.st_mtime < cutoff and not report.live_runs:  # a live run may publish a state using it
                    report.unreferenced_blobs.append(name)
                    report.bytes_freed += stat.st_size
                    if not dry_run:
                        blob.unlink()
            elif repair and digest(read_file(blob)) != name:
                report.corrupt_blobs.append(name)
                report.states_removed.extend(referenced[name])
                if not dry_run:
                    blob.unlink()
        report.states_removed = sorted(set(report.states_removed))
        if report.states_removed and not dry_run:
            store.bump_generation()
            for node_id in report.states_removed:
                store.remove_state(node_id)
            exp.index.rebuild()
            exp.graph.forget(report.states_removed)
    return report


def _holder_dead(path: Path) -> bool:
    """Whether a lease's holder is gone: a process on this host that no longer exists, or no heartbeat for
    twice the lease timeout (the holder rewrites the file every quarter of it)."""
    import socket

    from .lease import lease_timeout, pid_alive, read_lease

    info = read_lease(path) or {}
    pid = info.get("pid")
    if info.get("host") == socket.gethostname() and isinstance(pid, int) and not pid_alive(pid):
        return True
    try:
        return time.time() - path.stat().st_mtime > 2 * lease_timeout()
    except FileNotFoundError:
        return False
