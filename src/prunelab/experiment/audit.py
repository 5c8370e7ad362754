"""What ``prunelab status`` checks beyond counts: held leases, stale states, differing environments.

A state is *stale* when the source of the recipe (or function) that made it
has changed since: the fingerprint in its record differs from that of the
same class or function (the recorded module and qualname) imported now. Only
code already imported is compared (the caller imports the script), since
opening a directory never imports a module; the rest is *not checked*.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..core.identity import class_name
from ..storage.lease import pid_alive, read_lease
from ..core.function import Function
from ..core.recipe import Recipe, fingerprint
from ..core.records import Status

if TYPE_CHECKING:
    from .experiment import Experiment

__all__ = ["held_leases", "stale_states", "Staleness", "environment_groups", "recorded_class", "SCRIPT_PREFIX"]


#: The prefix of the module name a script given with ``--script`` is imported under (``prunelab_script_<stem>``).
SCRIPT_PREFIX = "prunelab_script_"

def held_leases(exp: Experiment) -> list[dict[str, Any]]:
    """Every lease file: what it is for, its holder, whether the holder is alive (this host only), its age."""
    import socket

    out = []
    folder = exp.store.layout.leases
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


def _imported_code() -> dict[str, dict[str, list[Any]]]:
    """Imported recipe classes and functions by kind (``recipe``, ``function``), then by name (several may share one)."""
    from ..core.discovery import imported

    code: dict[str, dict[str, list[Any]]] = {"recipe": {}, "function": {}}
    for value in imported(lambda v: isinstance(v, Function) or _is_recipe(v)):
        if isinstance(value, Function):
            code["function"].setdefault(value.name, []).append(value)
        else:
            code["recipe"].setdefault(class_name(value), []).append(value)
    return code


def _is_recipe(value: Any) -> bool:
    """Whether ``value`` is a recipe class (a subclass of :class:`~prunelab.core.recipe.Recipe`, not it)."""
    return isinstance(value, type) and issubclass(value, Recipe) and value is not Recipe


def _script_modules() -> list[str]:
    """The names of the scripts ``--script`` imported (``prunelab_script_<stem>``), read from ``sys.modules``."""
    return [name for name in list(sys.modules) if name.startswith(SCRIPT_PREFIX)]


def _lookup(module: str, qualname: str, scripts: list[str]) -> Any:
    """The object at ``qualname`` in the imported module ``module`` (None if it is not imported there).

    A recorded module ``__main__`` (a script run directly) is looked for in
    ``scripts`` (see :func:`_script_modules`), then in ``__main__``; any other
    module where it was imported, else in the script of the same file name
    (``--script mystudy.py`` for a record of ``mystudy`` or ``pkg.mystudy``).
    Only namespaces are read: nothing is imported or executed.

    Parameters
    ----------
    module, qualname : str
        Where the record says the code was defined.
    scripts : list of str
        The modules of the scripts ``--script`` imported.
    """
    same_file = [name for name in scripts if name == f"{SCRIPT_PREFIX}{module.rsplit('.', 1)[-1]}"]
    for name in [*scripts, "__main__"] if module == "__main__" else [module, *same_file]:
        value: Any = sys.modules.get(name)
        for part in qualname.split("."):
            value = getattr(value, "__dict__", {}).get(part)
        if value is not None:
            return value
    return None


def _recorded(kind: str, record: dict[str, Any], scripts: list[str]) -> Any:
    """The recipe class (or function) ``record`` names by module and qualname; None if it names none imported."""
    module, qualname = record.get("module"), record.get("qualname")
    if not (isinstance(module, str) and isinstance(qualname, str)):
        return None
    found = _lookup(module, qualname, scripts)
    return found if (_is_recipe(found) if kind == "recipe" else isinstance(found, Function)) else None


def recorded_class(spec: dict[str, Any]) -> type[Recipe] | None:
    """The imported recipe class a record's ``recipe`` entry names by module and qualname (None if not imported).

    A recorded ``__main__`` is also looked for in the scripts ``--script``
    imported (see :func:`_lookup`).

    Parameters
    ----------
    spec : dict
        The ``recipe`` entry of a state record.
    """
    found: type[Recipe] | None = _recorded("recipe", spec, _script_modules())
    return found


def _candidates(kind: str, record: dict[str, Any], scripts: list[str],
                code: dict[str, dict[str, list[Any]]]) -> list[tuple[Any, Any]]:
    """(version, source object) of the imported code that made ``record``.

    Found by the recorded module and qualname; records without them (made
    before prunelab recorded them) by name among ``code``.

    Parameters
    ----------
    kind : {"recipe", "function"}
        What made the record: a recipe (a state's record) or a function (a result's).
    record : dict
        The state's ``recipe`` entry, or the result record.
    scripts : list of str
        The modules of the scripts ``--script`` imported.
    code : dict
        The imported recipes and functions by kind and name (:func:`_imported_code`).
    """
    if isinstance(record.get("module"), str) and isinstance(record.get("qualname"), str):
        found = _recorded(kind, record, scripts)
        matches = [] if found is None else [found]
    else:
        matches = code[kind].get(str(record.get("name")), [])
    return [(c.VERSION, c) if kind == "recipe" else (c.version, c.fn) for c in matches]


def _judge(record: dict[str, Any], candidates: list[tuple[Any, Any]]) -> set[str] | None:
    """The current fingerprints to compare ``record`` with; None when it cannot be checked.

    An empty set means the code imported now is another version (the record
    is an older version's, not stale).

    Parameters
    ----------
    record : dict
        With the recorded ``version`` and ``fingerprint``.
    candidates : list of (version, source object)
        What :func:`_candidates` found.
    """
    same_version = [source for version, source in candidates if version == record.get("version")]
    if candidates and not same_version:
        return set()
    current = {f for f in map(fingerprint, same_version) if f}
    return current if current and record.get("fingerprint") else None


@dataclass(frozen=True)
class Staleness:
    """What :func:`stale_states` found.

    Attributes
    ----------
    stale : list of dict
        One entry per stale state or result: ``id``, ``kind`` (``recipe`` or
        ``function``), ``name``, ``recorded`` and ``current`` fingerprints.
    not_checked_states, not_checked_results : int
        States (and results) whose recipe (function) is not imported here, or
        whose source is unknown: nothing to compare them with.
    """

    stale: list[dict[str, Any]]
    not_checked_states: int
    not_checked_results: int


def stale_states(exp: Experiment) -> Staleness:
    """Find the states (and results) whose recipe's (or function's) source changed since they were computed.

    Each is judged only against the class (or function) that made it: the one
    at the recorded module and qualname, if that module is imported. States
    recorded before prunelab kept the module are compared with every imported
    recipe of their name (stale only when none has the recorded source).
    Results of another version than the imported function's are not compared.

    Parameters
    ----------
    exp : Experiment
        The experiment whose stored states are checked.

    Returns
    -------
    Staleness
        The stale states and results, and how many could not be checked.
    """
    code, scripts = _imported_code(), _script_modules()
    stale: list[dict[str, Any]] = []
    not_checked = Counter[str]()
    for node in exp.graph.nodes:
        if node.stored_status is None:
            continue
        spec = node.record.get("recipe")
        items = [("recipe", str(spec.get("name")), spec)] if isinstance(spec, dict) else []
        items += [("function", key, record) for key, record in exp.index.results(node.id).items()]
        for kind, name, record in items:
            current = _judge(record, _candidates(kind, record, scripts, code))
            if current is None:
                not_checked[kind] += 1
            elif current and record["fingerprint"] not in current:
                stale.append({"id": node.id, "kind": kind, "name": name, "recorded": record["fingerprint"],
                              "current": sorted(current)})
    return Staleness(stale, not_checked["recipe"], not_checked["function"])


def environment_groups(exp: Experiment) -> list[dict[str, Any]]:
    """Stored states grouped by (environment, threads, deterministic), largest first, with what differs.

    ``differences`` lists, against the largest group's environment, every
    field (and package version) that is not the same.
    """
    groups = Counter((n.record.get("environment"), n.record.get("threads"), n.record.get("deterministic"))
                     for n in exp.graph.nodes if n.stored_status == Status.DONE)
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
    return exp.store.logs.environment(digest)


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
