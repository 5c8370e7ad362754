"""Garbage collection: delete leftovers of crashes and removals, and repair damage.

Two rules make it safe on a directory in any state:

* **Nothing is followed through a symlink.** Every folder is listed without
  following links; a link (or any entry prunelab did not write) is reported and
  left alone, never deleted through.
* **Damage never widens.** A blob is kept while *any* readable file names it —
  a record, a value file whose checksum fails, a result, a withheld result — and
  the bytes of a file that cannot be parsed at all are searched for digests,
  which are kept too. A state with a damaged file is reported, not collected;
  only ``repair`` sets it aside, and only so that the next run recomputes it.
"""

from __future__ import annotations

import os
import shutil
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .codecs import digest
from ..core.errors import CorruptStateError
from ..core.records import Status
from .files import digest_words, read_file

if TYPE_CHECKING:
    from .index import Index
    from .store import Store

__all__ = ["GCReport", "collect"]

#: Nothing younger than this is collected: it may belong to a writer still at work.
MIN_AGE_S = 3600.0
#: What setting aside a damaged entry of each log loses.
_LOST = {"tags": "its tag assignments are lost (add them again with exp.add_tag)",
         "runs": "that run's manifest is lost (the states it made are intact)",
         "prereg": "that registration, blind or unblind is lost: check your registration digests against your notes",
         "envs": "cannot be restored (it described the machine of a past run); the states made under it are intact"}


@dataclass
class GCReport:
    """What :func:`collect` removed (or, with ``dry_run``, would remove), and what it found damaged.

    ``damaged`` holds one entry per damaged file (``file``, ``error``,
    ``states``); ``links`` every symlink or foreign entry left alone;
    ``states_removed`` the states set aside for recomputation (``repair``),
    ``results_removed`` and ``logs_removed`` the result files and log entries
    set aside, each with what it means; ``partials_removed`` the ids whose
    checkpoint was removed because the state is done.
    """

    leftovers: list[str] = field(default_factory=list)
    unreferenced_blobs: list[str] = field(default_factory=list)
    bytes_freed: int = 0
    corrupt_blobs: list[str] = field(default_factory=list)
    missing_blobs: list[str] = field(default_factory=list)
    states_removed: list[str] = field(default_factory=list)
    results_removed: list[str] = field(default_factory=list)
    logs_removed: list[str] = field(default_factory=list)
    partials_removed: list[str] = field(default_factory=list)
    damaged: list[dict[str, Any]] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    live_runs: int = 0
    why: dict[str, str] = field(default_factory=dict)  # state id -> why it is (or would be) removed

    def summary(self) -> str:
        """One line for the terminal."""
        kept = (f" (unreferenced blobs kept: {self.live_runs} run(s) in progress may still need them)"
                if self.live_runs else "")
        found = (f"; {len(self.damaged)} damaged file(s) found" if self.damaged else "") + (
            f"; {len(self.links)} link(s) or foreign entries left alone" if self.links else "")
        return (f"gc: {len(self.leftovers)} leftover(s), {len(self.unreferenced_blobs)} unreferenced blob(s), "
                f"{self.bytes_freed:,} bytes freed; {len(self.corrupt_blobs)} corrupt blob(s), "
                f"{len(self.missing_blobs)} missing blob(s), {len(self.states_removed)} state(s) removed for "
                f"recomputation, {len(self.results_removed)} result(s) and {len(self.logs_removed)} log entries set "
                f"aside, {len(self.partials_removed)} checkpoint(s) of done states removed{found}{kept}")


def collect(store: Store, index: Index, *, repair: bool = False, min_age_s: float = MIN_AGE_S,
            dry_run: bool = False) -> GCReport:
    """Delete crash leftovers, removed states and unreferenced blobs older than ``min_age_s``.

    Parameters
    ----------
    store : Store
        The experiment directory (its lock is held throughout).
    index : Index
        Its index, rebuilt when anything indexed was removed.
    repair : bool, default=False
        Also verify every blob, and set aside what is damaged so that
        re-running the script recomputes exactly that: a state whose record or
        value file is damaged or that uses a corrupt or missing blob (the blob
        is deleted), a damaged result file, a damaged tag, run or
        pre-registration entry, a damaged environment record. The report says
        what each loses.
    min_age_s : float, default=3600
        Keep anything younger (a concurrent writer may still be using it); work
        in progress of a state whose lease is held is kept whatever its age, and
        no unreferenced blob is deleted while a run holds its run lease. Leases
        whose holder died on this host are removed with the other leftovers.
        The checkpoint of a state is removed once the state is done (and its
        lease not held); those of states not done are kept, with their blobs.
    dry_run : bool, default=False
        Report only.
    """
    report = GCReport()
    if not dry_run:
        store.layout.require_writable("gc")
    cutoff = time.time() - min_age_s
    with store.lock():
        leased = _leases(store, report, dry_run)
        _leftovers(store, report, leased, cutoff, dry_run)
        _partials(store, report, leased, dry_run)
        refs = _references(store, report)
        _blobs(store, report, refs, cutoff, repair, dry_run)
        if repair:
            for node_id, why in refs.bad.items():
                report.why.setdefault(node_id, why)
            report.states_removed = sorted(set(report.states_removed) | set(refs.bad))
            _repair_files(store, report, dry_run)
        if not dry_run:
            store.forget_caches()  # what this process knew of blobs and folders may be gone now
        if report.states_removed and not dry_run:
            store.bump_generation()
            for node_id in report.states_removed:
                store.states.remove(node_id)
        if (report.states_removed or report.results_removed or report.logs_removed) and not dry_run:
            index.rebuild()
    return report


def _entries(folder: Path, report: GCReport) -> list[os.DirEntry[str]]:
    """A folder's entries (none when it is missing); the folder itself must not be a link."""
    try:
        if stat.S_ISLNK(folder.lstat().st_mode):
            report.links.append(str(folder))
            return []
        return sorted(os.scandir(folder), key=lambda e: e.name)
    except FileNotFoundError:
        return []


def _leases(store: Store, report: GCReport, dry_run: bool) -> set[str]:
    """Remove the leases of dead holders; return the keys of the live ones (counting live runs)."""
    leased: set[str] = set()
    for entry in _entries(store.layout.leases, report):
        if not entry.name.endswith(".lease"):
            continue  # a lease being written
        if not entry.is_file(follow_symlinks=False):
            report.links.append(f"leases/{entry.name}")
        elif _holder_dead(Path(entry.path)):  # its process died (SIGKILL): the lease is a leftover too
            report.leftovers.append(f"leases/{entry.name}")
            if not dry_run:
                Path(entry.path).unlink(missing_ok=True)
        elif entry.name.startswith("run."):
            report.live_runs += 1
        else:
            leased.add(entry.name.split(".")[0])
    return leased


def _partials(store: Store, report: GCReport, leased: set[str], dry_run: bool) -> None:
    """Remove the checkpoints (both slots) of done states whose lease is not held."""
    for node_id, entry in store.partials.entries(report.links):  # both slots of a state, one after the other
        if node_id not in report.partials_removed:
            if node_id in leased or store.states.status(node_id) != Status.DONE:
                continue
            report.partials_removed.append(node_id)
        if not dry_run:
            os.unlink(entry.path)


def _leftovers(store: Store, report: GCReport, leased: set[str], cutoff: float, dry_run: bool) -> None:
    for entry in _entries(store.layout.tmp_folder, report):
        if entry.name.split(".")[0] in leased:
            continue  # a writer holding the state's lease may still be using it
        info = entry.stat(follow_symlinks=False)
        if stat.S_ISLNK(info.st_mode):
            report.links.append(f"tmp/{entry.name}")
        elif info.st_mtime < cutoff:
            report.leftovers.append(entry.name)
            if not dry_run:
                if stat.S_ISDIR(info.st_mode):
                    shutil.rmtree(entry.path)  # fd-based on Linux: links inside are removed, never followed
                else:
                    os.unlink(entry.path)


@dataclass
class _References:
    """Blob digest -> states: ``named`` by any readable file or damaged bytes (kept), ``needed`` by an intact
    record (missing: the state is recomputed); and the states whose record or value file is damaged (-> which)."""

    named: dict[str, list[str]] = field(default_factory=dict)
    needed: dict[str, list[str]] = field(default_factory=dict)
    bad: dict[str, str] = field(default_factory=dict)


def _references(store: Store, report: GCReport) -> _References:
    """Read every state, result and withheld file once, for what names which blob."""
    refs = _References()
    odd: list[str] = []

    def keep(names: Any, node_id: str) -> None:
        for name in names:
            refs.named.setdefault(name, []).append(node_id)

    def damaged(err: BaseException, path: Path, node_id: str) -> None:
        report.damaged.append({"file": str(path), "error": str(err), "states": [node_id] if node_id else []})
        keep(_digests_in(path), node_id)

    for folder in store.layout.iter_state_dirs(odd):
        node_id = folder.name
        try:
            record = store.states.read_record(node_id)
            keep(record.get("blobs", []), node_id)
            for name in record.get("blobs", []):
                refs.needed.setdefault(name, []).append(node_id)
        except (OSError, CorruptStateError) as err:
            record = None
            refs.bad[node_id] = "its record is damaged"
            damaged(err, folder / "meta.json", node_id)
        if record is None:
            keep(_digests_in(folder / "values.json"), node_id)
        elif record.get("status") == Status.DONE:
            try:
                store.states.read_values(node_id, record)
            except (OSError, CorruptStateError) as err:
                refs.bad[node_id] = "its value file is damaged"
                damaged(err, folder / "values.json", node_id)
        errors: list[CorruptStateError] = []
        try:
            for result in store.results.read_all(node_id, errors):
                keep(result.get("blobs", []), node_id)
        except (OSError, CorruptStateError) as err:
            errors.append(err if isinstance(err, CorruptStateError) else CorruptStateError(str(err), str(folder)))
        for error in errors:
            damaged(error, Path(error.path), node_id)
    for node_id in sorted({node_id for node_id, _ in store.partials.entries()} - set(report.partials_removed)):
        keep(store.partials.named_blobs(node_id), node_id)
    for node_id, path in store.results.iter_withheld(odd):
        try:
            keep(store.results.read_withheld(node_id, *_result_key(path)).get("blobs", []), node_id)
        except (OSError, CorruptStateError, ValueError) as err:
            damaged(err, path, node_id)
    report.links += odd
    return refs


def _result_key(path: Path) -> tuple[str, int]:
    name, _, version = path.name.removesuffix(".json").rpartition("@v")
    return name, int(version)


def _digests_in(path: Path) -> list[str]:
    """Every 32-hex name in a file's bytes (a damaged file still keeps the blobs it may name)."""
    try:
        return sorted(digest_words(read_file(path)))
    except (OSError, CorruptStateError):
        return []


def _blobs(store: Store, report: GCReport, refs: _References, cutoff: float, repair: bool, dry_run: bool) -> None:
    referenced = refs.named
    present: set[str] = set()
    for name, path, info in store.blobs.files(report.links):
        present.add(name)
        if name not in referenced:
            if info.st_mtime < cutoff and not report.live_runs:  # a live run may publish a state using it
                report.unreferenced_blobs.append(name)
                report.bytes_freed += info.st_size
                if not dry_run:
                    path.unlink()
        elif repair and not _intact(path, name):
            report.corrupt_blobs.append(name)
            report.states_removed.extend(referenced[name])
            report.why.update({u: f"uses the corrupt blob {name[:12]}" for u in referenced[name]})
            if not dry_run:
                path.unlink()
    if repair:
        for name in sorted(set(refs.needed) - present):
            report.missing_blobs.append(name)
            report.states_removed.extend(refs.needed[name])
            report.why.update({u: f"uses the missing blob {name[:12]}" for u in refs.needed[name]})


def _intact(path: Path, name: str) -> bool:
    try:
        return digest(read_file(path, limit=2**62)) == name
    except (OSError, CorruptStateError):
        return False


def _repair_files(store: Store, report: GCReport, dry_run: bool) -> None:
    """Set aside damaged result files, log entries and environments (states are removed by the caller)."""
    removing = set(report.states_removed)
    for item in report.damaged:
        path = Path(item["file"])
        if item["states"] and item["states"][0] in removing or not os.path.lexists(path):
            continue
        if path.parent.name == "results" or "withheld" in path.parts:
            report.results_removed.append(f"{item['states'][0]} {path.name}")
            _set_aside(store, path, dry_run)
            twin = (store.layout.withheld_path(item["states"][0], *_result_key(path)) if path.parent.name == "results"
                    else store.layout.result_path(item["states"][0], *_result_key(path)))
            if os.path.lexists(twin):  # a result and its withheld part go together: both are recomputed
                _set_aside(store, twin, dry_run)
    for path_text, why in sorted(store.logs.damaged_files().items()):
        path = Path(path_text)
        report.logs_removed.append(f"{path.parent.name}/{path.name}: {_LOST[path.parent.name]}")
        report.damaged.append({"file": path_text, "error": why, "states": []})
        _set_aside(store, path, dry_run)
    if not dry_run:
        store.logs.damaged.clear()


def _set_aside(store: Store, path: Path, dry_run: bool) -> None:
    """Move a damaged file into ``tmp/`` (collected by a later gc), out of every read path."""
    if not dry_run:
        os.rename(path, store.layout.tmp(f"damaged.{path.name}"))


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

