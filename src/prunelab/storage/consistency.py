"""The index checked against the files it caches: what ``verify`` reports and ``reindex`` repairs."""

from __future__ import annotations

import json
from typing import Any

from ..core.errors import CorruptStateError
from .files import read_file
from .index import Index, blobs_of

__all__ = ["catch_up", "index_differences"]


def index_differences(index: Index) -> list[str]:
    """Every way the index disagrees with the files, one line each (empty: it is true to them).

    Damaged files are left out here (verify reports them).

    Parameters
    ----------
    index : Index
        The index, read as it is (not rebuilt).

    Returns
    -------
    list of str
        One line per state, result, blob reference count or tag count that differs.
    """
    out: list[str] = []
    rows = {i: (p, st, bytes(d)) for i, p, st, d in index.db.execute("SELECT id, parent_id, status, record FROM nodes")}
    results: dict[tuple[str, str], Any] = {(i, k): json.loads(d) for i, k, d in
                                           index.db.execute("SELECT node_id, key, record FROM results")}
    users = set(index.db.execute("SELECT DISTINCT digest, node_id FROM blob_users").fetchall())
    expected_users: set[tuple[str, str]] = set()
    for folder in index.store.layout.iter_state_dirs():
        node_id = folder.name
        try:
            data = read_file(folder / "meta.json", state_ids=[node_id])
            record = index.store.states.parse_record(data, folder / "meta.json", node_id)
        except (OSError, CorruptStateError):
            rows.pop(node_id, None)
            continue
        held = rows.pop(node_id, None)
        if held is None:
            out.append(f"state {node_id} is stored but missing from the index")
        elif held != (record.get("parent_id"), record["status"], data):
            out.append(f"state {node_id}: the index's copy of its record differs from {folder / 'meta.json'}")
        expected_users.update((d, node_id) for d in blobs_of(record))
        for result in index.store.results.read_all(node_id, []):
            key = (node_id, f"{result['name']}@v{result['version']}")
            held = results.pop(key, None)
            if held is None or {**held, "digest": None} != {**result, "digest": None}:
                out.append(f"result {key[1]} of {node_id}: the index's copy differs from its file")
            expected_users.update((d, node_id) for d in blobs_of(result))
    out += [f"state {node_id} is in the index but not stored" for node_id in sorted(rows)]
    out += [f"result {key} of {node_id} is in the index but not stored" for node_id, key in sorted(results)]
    if users != expected_users:
        out.append(f"{len(users ^ expected_users)} blob reference(s) in the index differ from the records")
    tags: set[tuple[str, str]] = set()
    for _, entry in index.store.logs.read("tags"):
        for op, node_id, tag in entry["entries"]:
            (tags.add if op == "+" else tags.discard)((node_id, tag))
    stored = {i for (i,) in index.db.execute("SELECT id FROM nodes")}  # tags of states not stored: no matter
    indexed = {(i, t) for i, t in index.db.execute("SELECT node_id, tag FROM tags") if i in stored}
    tags = {(i, t) for i, t in tags if i in stored}
    if indexed != tags:
        out.append(f"{len(indexed ^ tags)} tag assignment(s) in the index differ from the tag log")
    return out


def catch_up(index: Index, statuses: dict[str, str], results: list[str]) -> int:
    """Index what other processes stored with an index of their own (``PRUNELAB_INDEX_DIR`` on each worker).

    A run's report says what was stored; a state the index holds with
    another status, or not at all, is read from its record, and a result it
    lacks from its file. (A whole rebuild would read every record.)

    Parameters
    ----------
    index : Index
        The index to bring up to date (its store is read).
    statuses : dict of str to str
        State id to the status a run reports for it (``done`` or ``failed``); those the index holds
        otherwise are read from their files (one not stored, computed elsewhere, is left out).
    results : list of str
        ``"<id> <name>@v<version>"`` of the results the run stored; those the index lacks are read.

    Returns
    -------
    int
        How many records were indexed.
    """
    indexed = index.status_of(list(statuses))
    behind = [i for i, status in statuses.items() if indexed.get(i) != status]
    wanted = [item.partition(" ")[::2] for item in results]
    have = index.result_keys(sorted({node_id for node_id, _ in wanted})) if wanted else {}
    missing_results = [(node_id, key) for node_id, key in wanted if key not in have.get(node_id, ())]
    if not behind and not missing_results:
        return 0
    count = 0
    with index.store.lock():
        for node_id in behind:
            try:
                data = read_file(index.store.layout.state_file(node_id, "meta.json"), state_ids=[node_id])
            except FileNotFoundError:
                continue  # not stored (yet): a state whose lease another process took over
            index.record_published(data, node_id not in indexed)
            count += 1
        for node_id, key in missing_results:
            name, _, version = key.rpartition("@v")
            record = index.store.results.read(node_id, name, int(version))
            if record is not None:
                index.result_written(node_id, record)
                count += 1
    return count
