"""What ``prunelab status`` checks beyond counts: held leases, stale states, differing environments.

A state is *stale* when the source of the recipe (or function) that made it
has changed since: the fingerprint in its record differs from that of the
class or function imported now. Only code already imported is compared (the
caller imports the script), since opening a directory never imports a module.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import TYPE_CHECKING, Any

from .identity import class_name
from .lease import pid_alive, read_lease

if TYPE_CHECKING:
    from .experiment import Experiment

__all__ = ["held_leases", "stale_states", "environment_groups"]


def held_leases(exp: Experiment) -> list[dict[str, Any]]:
    """Every lease file: what it is for, its holder, whether the holder is alive (this host only), its age."""
    import socket

    out = []
    folder = exp.store.root / "leases"
    for path in sorted(folder.glob("*.lease")) if folder.is_dir() else []:
        info = read_lease(path) or {}
        pid, host = info.get("pid"), info.get("host")
        alive = pid_alive(pid) if host == socket.gethostname() and isinstance(pid, int) else None
        try:
            age = time.time() - path.stat().st_mtime
        except FileNotFoundError:
            continue  # released while we looked
        out.append({"key": path.stem, "host": host, "pid": pid, "alive": alive, "age_s": age,
                    "heartbeats": info.get("counter")})
    return out


def _imported_code() -> tuple[dict[str, list[Any]], dict[str, list[Any]]]:
    """Imported recipe classes and functions, by name (several may share one)."""
    from .experiment import imported
    from .recipe import Function, Recipe

    recipes: dict[str, list[Any]] = {}
    functions: dict[str, list[Any]] = {}
    for value in imported(lambda v: isinstance(v, Function) or (isinstance(v, type) and issubclass(v, Recipe)
                                                                and v is not Recipe)):
        if isinstance(value, Function):
            functions.setdefault(value.name, []).append(value)
        else:
            recipes.setdefault(class_name(value), []).append(value)
    return recipes, functions


def stale_states(exp: Experiment) -> list[dict[str, Any]]:
    """States (and results) whose recipe's (or function's) source changed since they were computed.

    Where several imported classes share a recipe's name, the state is stale
    only when none of them has the recorded source.
    """
    from .recipe import fingerprint

    recipes, functions = _imported_code()
    out = []
    for node in exp.graph.nodes:
        if node.stored_status is None:
            continue
        spec = node.record.get("recipe") or {}
        current = {fingerprint(c) for c in recipes.get(str(spec.get("name")), [])}
        if current and spec.get("fingerprint") and spec["fingerprint"] not in current:
            out.append({"id": node.id, "kind": "recipe", "name": spec["name"], "recorded": spec["fingerprint"],
                        "current": sorted(c for c in current if c)})
        for key, record in exp.index.results(node.id).items():
            current = {fingerprint(f.fn) for f in functions.get(str(record.get("name")), [])
                       if f.version == record.get("version")}
            if current and record.get("fingerprint") and record["fingerprint"] not in current:
                out.append({"id": node.id, "kind": "function", "name": key, "recorded": record["fingerprint"],
                            "current": sorted(c for c in current if c)})
    return out


def environment_groups(exp: Experiment) -> list[dict[str, Any]]:
    """Stored states grouped by (environment, threads, deterministic), largest first, with what differs.

    ``differences`` lists, against the largest group's environment, every
    field (and package version) that is not the same.
    """
    groups = Counter((n.record.get("environment"), n.record.get("threads"), n.record.get("deterministic"))
                     for n in exp.graph.nodes if n.stored_status == "done")
    ordered = groups.most_common()
    if not ordered:
        return []
    base = _environment(exp, ordered[0][0][0])
    out = []
    for (environment, threads, deterministic), count in ordered:
        env = _environment(exp, environment)
        out.append({"environment": environment, "threads": threads, "deterministic": deterministic,
                    "states": count, "differences": _differences(base, env)})
    return out


def _environment(exp: Experiment, digest: str | None) -> dict[str, Any]:
    return exp.store.environment(digest)


def _differences(base: dict[str, Any], other: dict[str, Any]) -> list[str]:
    flat_a, flat_b = _flatten(base), _flatten(other)
    keys = sorted(set(flat_a) | set(flat_b))
    return [f"{k}: {flat_a.get(k)} -> {flat_b.get(k)}" for k in keys if flat_a.get(k) != flat_b.get(k)
            and k != "script"]


def _flatten(value: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, item in value.items():
        name = f"{prefix}{key}"
        if isinstance(item, dict):
            out.update(_flatten(item, f"{name}."))
        else:
            out[name] = item
    return out
