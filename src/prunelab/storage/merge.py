"""Merging one experiment directory into another: a union, since blobs and ids mean the same in both."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ..core.errors import CorruptStateError
from ..core.schema import check_log_entry
from ..core.records import Status
from .files import checksum, read_file, write_atomic
from .seal import seal, unseal
from .store import Store

__all__ = ["merge"]


def merge(into: Store, other: Store) -> list[str]:
    """Copy in every blob, state, result, log entry and environment of ``other`` that ``into`` lacks.

    A done state replaces a failed one; everything copied is verified first,
    so a damaged source file is reported, never spread. Call under ``into``'s lock.

    Parameters
    ----------
    into : Store
        The experiment that receives.
    other : Store
        The experiment merged in (only read).

    Returns
    -------
    list of str
        The ids of the states added.

    Raises
    ------
    CorruptStateError
        A source file is damaged, or ``other`` holds entries prunelab did not
        write (everything else was merged; merging again is harmless).
    """
    other.layout.check()
    odd: list[str] = []
    layout = into.layout
    for name, _, _ in other.blobs.files(odd):
        target = layout.blob_path(name)
        if not (os.path.lexists(target) and into.blobs.intact(target, name)):
            data = other.blobs.read(name)
            layout.ensure_dir(target.parent)
            write_atomic(target, data, durable=into.durable)
    for kind in ("envs", "tags", "runs"):
        for path in other.logs.files(kind):
            target = layout.log_folder(kind) / path.name
            if not os.path.lexists(target):
                data = read_file(path)
                if kind != "envs":
                    check_log_entry(kind, unseal(data, path, [], "The source is damaged."), path)
                elif checksum(data) != path.stem:
                    raise CorruptStateError(f"{path} fails its checksum; the source is damaged.", str(path))
                write_atomic(target, data, durable=into.durable)
    added = []
    for folder in other.layout.iter_state_dirs(odd):
        if _merge_state(into, other, folder):
            added.append(folder.name)
    if odd:
        raise CorruptStateError(f"{other.root} holds entries prunelab did not write ({', '.join(odd[:5])}); "
                                "they were not merged. Move them away and merge again (merging twice is "
                                "harmless).", str(other.root / odd[0]))
    return added


def _merge_state(into: Store, other: Store, folder: Path) -> bool:
    """Copy one state of ``other`` (or the results ``into`` lacks); return whether the state was added."""
    node_id, layout = folder.name, into.layout
    theirs = other.states.read_record(node_id)
    if theirs.get("status") == Status.DONE:
        other.states.read_values(node_id, theirs)
    results = other.results.read_all(node_id)  # every file copied is verified: damage is never spread
    target = layout.state_dir(node_id)
    ours = into.states.peek_status(target) if os.path.lexists(target) else None
    if ours is None or (ours == Status.FAILED and theirs.get("status") == Status.DONE):
        tmp = layout.tmp(f"merge.{node_id}")
        shutil.copytree(folder, tmp, symlinks=True)
        layout.ensure_dir(target.parent)
        if os.path.lexists(target):
            layout.discard(target)
        os.rename(tmp, target)
        return True
    if ours == Status.DONE:
        for result in results:
            path = layout.result_path(node_id, result["name"], result["version"])
            if not os.path.lexists(path):
                layout.ensure_dir(path.parent)
                write_atomic(path, seal(result), durable=into.durable)
    return False
