"""Verification: are the stored files intact, and does re-executing a stored edge give the stored state?

:func:`verify` first reads every record, value file, result and blob with
its checksum. It then re-executes the chosen states in memory (nothing is
written): a root by ``initialize_state`` under its seed, any other state by
its recipe — rebuilt from the record and checked to give the same id — on
its stored parent, with the recorded thread count and deterministic flag. The
encoded outcome is compared with the stored one: *identical* (every value
and tensor bit for bit), *close* (tensors within ``atol``; the largest
difference is reported), or *different* (the first differing value named).
"""

from __future__ import annotations

import dataclasses
import math
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..core.errors import CorruptStateError, PrunelabError
from ..core.identity import child_id, class_name, root_id
from ..core.records import StateRecord, Status, canonical_json
from ..core.state import identity_properties
from ..execution.checkpoints import BodyRuntime
from ..execution.engine import Engine
from ..execution.task import Task
from ..storage.consistency import index_differences
from ..storage.files import checksum
from ..storage.series import encode_series
from ..storage.sources import MemorySource, StoreSource
from .audit import recorded_class

if TYPE_CHECKING:
    from .experiment import Experiment
    from ..core.nodes import Node
    from ..core.recipe import Recipe

__all__ = ["verify", "VerifyReport", "OUTCOMES"]

#: What verification can say of a state.
OUTCOMES = ("identical", "close", "different", "corrupt", "unverifiable")


@dataclass
class VerifyReport:
    """Per state: ``outcome`` (one of :data:`OUTCOMES`), ``detail`` and ``max_difference``; and damaged files."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    damaged: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing differs and nothing is corrupt."""
        return not self.damaged and all(r["outcome"] in ("identical", "close", "unverifiable") for r in self.rows)

    def summary(self) -> str:
        """One line of counts."""
        counts = {o: sum(r["outcome"] == o for r in self.rows) for o in OUTCOMES}
        shown = ", ".join(f"{n} {o}" for o, n in counts.items() if n) or "nothing re-executed"
        return f"verify: {len(self.damaged)} damaged file(s); {shown}"


def check_files(exp: Experiment) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Read every stored file with its checksum; return the damaged files and, per state using one, why."""
    store = exp.store
    damaged: list[dict[str, Any]] = []
    bad: dict[str, str] = {}
    seen_blobs: dict[str, str | None] = {}

    def fail(err: CorruptStateError, users: list[str]) -> None:
        damaged.append({"file": err.path, "error": str(err), "states": sorted(set(users) | set(err.state_ids))})
        for user in users:
            bad.setdefault(user, str(err))

    damaged += [{"file": path, "error": why, "states": []} for path, why in store.logs.damaged_files().items()]
    odd: list[str] = []
    for folder in store.layout.iter_state_dirs(odd):
        node_id = folder.name
        try:
            record = store.states.read_record(node_id)
            blobs = list(record.get("blobs") or [])
            if record.get("status") == Status.DONE:
                store.states.read_values(node_id, record)
            for result in store.results.read_all(node_id):
                blobs += list(result.get("blobs") or [])
        except (OSError, CorruptStateError) as err:
            fail(err if isinstance(err, CorruptStateError) else CorruptStateError(str(err), str(folder)), [node_id])
            continue
        for digest in blobs:
            if digest not in seen_blobs:
                try:
                    store.blobs.read(digest)
                    seen_blobs[digest] = None
                except CorruptStateError as err:
                    seen_blobs[digest] = str(err)
                    damaged.append({"file": err.path, "error": str(err), "states": list(err.state_ids)})
            if seen_blobs[digest] is not None:
                bad.setdefault(node_id, str(seen_blobs[digest]))
    damaged += [{"file": str(store.root / entry), "states": [],
                 "error": "not a state prunelab wrote (a link, a stray file or a misnamed folder); it is ignored"}
                for entry in odd]
    return damaged, bad


def verify(exp: Experiment, node_ids: list[str] | None = None, *, sample: int | None = None, atol: float = 0.0,
           seed: int = 0) -> VerifyReport:
    """Check every file, then re-execute ``node_ids`` (default: a seeded ``sample`` of the stored states, or all).

    Parameters
    ----------
    exp : Experiment
        Opened with its state class (and with its recipe classes imported).
    node_ids : list of str, optional
        The states to re-execute; default every stored, done state (or ``sample`` of them).
    sample : int, optional
        Re-execute this many states, drawn with ``random.Random(seed)``.
    atol : float, default=0.0
        Tensors differing by at most this much count as *close*.
    """
    damaged, bad = check_files(exp)
    differences = index_differences(exp.index)
    if differences:  # the index is a cache, but queries answer from it: rot there is damage too
        shown = "; ".join(differences[:5]) + (f"; and {len(differences) - 5} more" if len(differences) > 5 else "")
        damaged.append({"file": str(exp.index.path), "states": [],
                        "error": f"the index disagrees with the records ({shown}); `prunelab reindex "
                                 f"{exp.store.root}` rebuilds it from them"})
    report = VerifyReport(damaged=damaged)
    engines: dict[tuple[int, bool], Engine] = {}
    done = [n for n in exp.graph.nodes if n.stored_status == Status.DONE]
    if node_ids is not None:
        chosen = [exp.graph.node(i) for i in node_ids]
    elif sample is not None and sample < len(done):
        chosen = random.Random(seed).sample(done, sample)
    else:
        chosen = done
    for node in sorted(chosen, key=lambda n: (n.depth, n.id)):
        parent_id = node.parent_id or ""
        if node.id in bad:
            report.rows.append({"id": node.id, "outcome": "corrupt", "detail": bad[node.id], "max_difference": None})
            continue
        if parent_id in bad:
            report.rows.append({"id": node.id, "outcome": "unverifiable", "max_difference": None,
                                "detail": f"its parent {parent_id[:12]} is damaged, so it cannot be re-executed"})
            continue
        try:
            outcome, detail, largest = _reexecute(exp, node, atol, engines)
        except PrunelabError as err:
            outcome, detail, largest = "unverifiable", str(err), None
        report.rows.append({"id": node.id, "outcome": outcome, "detail": detail, "max_difference": largest})
    return report


def _engine(exp: Experiment, engines: dict[tuple[int, bool], Engine], threads: int, deterministic: bool) -> Engine:
    """An engine of ``exp`` under the torch settings a state was recorded with (the experiment's own if they match)."""
    if (threads, deterministic) == (exp.engine.threads, exp.engine.deterministic):
        return exp.engine
    key = (threads, deterministic)
    if key not in engines:
        engines[key] = Engine(dataclasses.replace(exp.engine.spec, threads=threads, deterministic=deterministic),
                              exp.store, exp.index)
    return engines[key]


def _reexecute(exp: Experiment, node: Node, atol: float, engines: dict[tuple[int, bool], Engine]
               ) -> tuple[str, str, float | None]:
    from ..core.discovery import named_subclasses
    from ..core.recipe import Recipe, fingerprint

    record = exp.store.states.read_record(node.id)
    engine = _engine(exp, engines, record.get("threads", 1), bool(record.get("deterministic")))
    cls = engine.materialiser.require_class()
    properties = exp.graph.decode_properties(record)
    recipe = None
    if node.parent_id is None:
        if root_id(class_name(cls), identity_properties(cls.PROPERTIES, properties)) != node.id:
            return "unverifiable", "the root's properties do not give its id back from the record", None
    else:
        spec = record.get("recipe") or {}
        made_by = recorded_class(spec)
        candidates = [made_by] if made_by is not None else named_subclasses(str(spec.get("name")), Recipe)
        if len(candidates) > 1:  # several classes share the name: the one with the recorded source, if any
            candidates = [c for c in candidates if fingerprint(c) == spec.get("fingerprint")] or candidates
        if len(candidates) != 1:
            why = "is not imported" if not candidates else f"names {len(candidates)} imported classes"
            return "unverifiable", (f"recipe class {spec.get('name')!r} {why}; pass the script that defines it "
                                    "(--script)"), None
        recipe = _rebuilt(candidates[0], exp.graph.decode_properties(spec), spec.get("options") or {})
        if child_id(node.parent_id, spec["name"], type(recipe).VERSION,
                    identity_properties(type(recipe).PROPERTIES, recipe.properties)) != node.id:
            return "unverifiable", (f"{spec['name']} as imported now (VERSION {type(recipe).VERSION}) with the "
                                    "recorded properties makes another id: the code or its VERSION changed"), None
    task = Task(node.id, node.parent_id, properties, recipe, StateRecord.from_dict(record), True,
                tags=sorted(exp.graph.tags_of(node)))
    runtime = BodyRuntime(node.id, threads=engine.threads, deterministic=engine.deterministic)
    # the run's own path (alone, or as a cohort of one as each member of a cohort computes): templates, seeds, checks
    state, _ = engine.make(task, None, runtime, cohort="cohort" in record)
    materialized, _ = engine.materialiser.encode_state(state)
    series = encode_series(runtime.series.frozen())
    if (None if series is None else series.digest) != record.get("series"):
        return "different", "the series its recipe logs differ from the stored ones", None
    if checksum(canonical_json(materialized.values)) == record.get("values_checksum"):
        return "identical", "every value and tensor bit for bit" + (", and its series" if series else ""), 0.0
    stored = exp.store.states.read_values(node.id, record)
    return _compare(stored, materialized.values, StoreSource(exp.store), MemorySource(materialized.blobs), atol)


def _rebuilt(cls: type[Recipe], properties: dict[str, Any], options: dict[str, Any]) -> Recipe:
    """The recipe of a record: made by its ``__init__`` from the recorded values, else holding them as attributes.

    A recipe whose own ``__init__`` takes other arguments (dagger's way) is
    made without it; either way it is then read as at application.
    """
    try:
        recipe = cls(**properties, **options)
    except TypeError:
        recipe = cls.__new__(cls)
        for name, value in {**options, **properties}.items():
            setattr(recipe, name, value)
    return recipe.applied()


def _compare(stored: Any, fresh: Any, old: Any, new: Any, atol: float) -> tuple[str, str, float | None]:
    """Walk two value specs side by side; compare tensors numerically, everything else exactly."""
    largest, where = 0.0, ""
    stack: list[tuple[str, Any, Any]] = [("", stored, fresh)]
    while stack:
        path, a, b = stack.pop()
        if isinstance(a, dict) and isinstance(b, dict):
            if a.keys() != b.keys():
                return "different", f"{path or 'the state'} has attributes {sorted(a)} stored, {sorted(b)} now", None
            stack.extend((f"{path}.{k}" if path else k, a[k], b[k]) for k in a)
        elif isinstance(a, list) and isinstance(b, list) and a and b and a[0] == b[0] == "dict":
            x, y = ({canonical_json(k).decode(): v for k, v in spec[1]} for spec in (a, b))
            if x.keys() != y.keys():
                return "different", f"{path} has keys {sorted(x)[:6]} stored, {sorted(y)[:6]} now", None
            stack.extend((f"{path}[{k}]", x[k], y[k]) for k in x)
        elif isinstance(a, list) and isinstance(b, list) and a and b and a[0] == b[0] == "tensor":
            if a[1] == b[1]:
                continue
            if a[2:4] != b[2:4]:
                return "different", f"{path}: a {a[2]} tensor of shape {a[3]} stored, {b[2]} {b[3]} now", None
            x, y = old.tensor(a[1], a[2], a[3]).double(), new.tensor(b[1], b[2], b[3]).double()
            difference = float((x - y).abs().max()) if x.numel() else 0.0
            if math.isnan(difference) or difference >= largest:
                largest, where = difference, path
        elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
            stack.extend((f"{path}[{i}]", u, v) for i, (u, v) in enumerate(zip(a, b)))
        elif a != b:
            return "different", f"{path}: {str(a)[:60]} stored, {str(b)[:60]} now", None
    if not where:
        return "identical", "every value and tensor bit for bit (stored in another order)", 0.0
    if largest <= atol:
        return "close", f"tensors within {atol:g} (largest difference {largest:.3g} at {where})", largest
    return "different", f"largest difference {largest:.3g} at {where} (atol {atol:g})", largest
