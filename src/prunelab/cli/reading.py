"""The subcommands that read an experiment: tree, ls, show, status, draw, export."""

from __future__ import annotations

import argparse
import json
import subprocess
import warnings
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.records import Status
from ..errors import PrunelabWarning
from .output import Output, WriteError, escape, writing
from .scripts import import_code

if TYPE_CHECKING:
    from ..experiment import Experiment
    from ..core.nodes import Node
    from ..core.nodeset import NodeSet

__all__ = ["open_experiment", "tree", "ls", "show", "status", "draw", "export"]

def open_experiment(directory: str) -> Experiment:
    """Restore the experiment in ``directory`` (slim: no state class needed)."""
    from ..experiment import Experiment

    return Experiment.restore(directory)


def _row(node: Node) -> dict[str, Any]:
    return {"id": node.id, "parent_id": node.parent_id, "status": node.status, "depth": node.depth,
            "recipe": (node.recipe or {}).get("name", "root"), "tags": sorted(node.tags)}


def _where(text: str) -> tuple[str, Any]:
    key, sep, raw = text.partition("=")
    if not sep or not key:
        from ..core.errors import UnknownNameError

        raise UnknownNameError(f"--where takes prop=value (e.g. --where lr=0.1), got {text!r}.")
    try:
        return key, json.loads(raw)
    except ValueError:
        return key, raw


def _select(exp: Experiment, args: argparse.Namespace) -> NodeSet:
    nodes = exp.graph.nodes
    if getattr(args, "run", None) is not None:
        nodes = nodes.in_run(args.run)
    return nodes.filter(*(args.tag or []), **dict(_where(w) for w in getattr(args, "where", None) or []))


def tree(args: argparse.Namespace) -> Output:
    """``prunelab tree``: print the graph as an indented tree."""
    exp = open_experiment(args.directory)
    nodes = _select(exp, args) if args.tag else None
    from ..core.draw import text_tree

    shown = nodes if nodes is not None else exp.graph.nodes
    return Output([_row(n) for n in shown], text_tree(exp.graph, nodes))


def ls(args: argparse.Namespace) -> Output:
    """``prunelab ls``: list states: id, status, depth, recipe, tags."""
    rows = [_row(n) for n in _select(open_experiment(args.directory), args)]
    text = "\n".join(escape(f"{r['id']}  {r['status']:8s} d{r['depth']:<3d} {r['recipe']:16s} {','.join(r['tags'])}")
                     for r in rows)
    return Output(rows, text)


def show(args: argparse.Namespace) -> Output:
    """``prunelab show``: show one state: record, lineage, results, environment."""
    exp = open_experiment(args.directory)
    node = exp.graph.node(args.id)
    record = node.record
    results = {name: _summarise(value) for name, value in node.results.items()} if node.stored_status else {}
    environment = exp.store.logs.environment(record.get("environment")) or None
    data = {**_row(node), "properties": node.properties, "lineage": node.lineage, "record": record,
            "results": results, "environment": environment}
    head = [f"state {node.id}  ({node.status}, depth {node.depth}, {_row(node)['recipe']})",
            f"parent: {node.parent_id or '-'}", f"tags: {', '.join(sorted(node.tags)) or '-'}",
            "properties: " + json.dumps(node.properties, default=str),
            "recipe: " + json.dumps(record.get("recipe"), default=str),
            "lineage: " + json.dumps(node.lineage, default=str),
            f"seed {record.get('seed')}, threads {record.get('threads')}, deterministic {record.get('deterministic')}, "
            f"wall {record.get('wall_s', 0.0):.3f} s, worker {record.get('worker')}",
            f"fingerprint: {(record.get('recipe') or {}).get('fingerprint') or record.get('fingerprint') or '-'}",
            f"pre-registrations: {', '.join(d[:16] for d in record.get('prereg') or []) or '-'}"]
    tail = ["results:"] + [f"  {name}: {json.dumps(value, default=str)[:400]}" for name, value in results.items()]
    if environment is not None and "damaged" in environment:
        tail += [f"environment {record['environment'][:16]}: damaged ({environment['damaged']})"]
    elif environment is not None:
        torch_info = environment.get("torch") or {}
        tail += [f"environment {record['environment'][:16]}: Python {environment.get('python')} on "
                 f"{environment.get('os')}, {environment.get('cpu_count')} CPUs, torch {torch_info.get('version')}, "
                 f"git {(environment.get('git') or {}).get('commit', '-')}"]
    error = ["error:", escape(str(record["error"]).rstrip(), multiline=True)] if record.get("error") else []
    return Output(data, "\n".join([*map(escape, head), *error, *map(escape, tail)]))


def _summarise(value: Any) -> Any:
    """A result as JSON: tensors and arrays by dtype and shape."""
    if isinstance(value, dict):
        return {str(k): _summarise(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_summarise(v) for v in value]
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return {"dtype": str(value.dtype), "shape": list(value.shape)}
    return value


def status(args: argparse.Namespace) -> Output:
    """``prunelab status``: counts by status, failures, checkpoints, held leases, stale states, differing environments."""
    from ..experiment.audit import environment_groups, held_leases, stale_states

    import_code(args.script, "status")
    exp = open_experiment(args.directory)
    counts = Counter(node.status for node in exp.graph.nodes)
    runs = exp.graph.runs
    failed = [{"id": n.id, "error": "\n".join(str(n.record.get("error") or "?").strip().split("\n")[-3:])}
              for n in exp.graph.nodes if n.status == Status.FAILED]  # split at newlines only: a "\r" stays visible
    leases, staleness, environments = held_leases(exp), stale_states(exp), environment_groups(exp)
    stale = staleness.stale
    not_checked = {"states": staleness.not_checked_states, "results": staleness.not_checked_results}
    text = [f"{exp.directory}: {len(exp.graph.nodes)} states of class {exp.info.get('state_class')} "
            f"({', '.join(f'{n} {s}' for s, n in sorted(counts.items())) or 'none'}); {len(runs)} run(s)"]
    for f in failed:
        text.append(f"  failed {f['id'][:12]}:")
        text += [f"    {line}" for line in f["error"].split("\n")]
    found = exp.storage.partials()
    done = exp.storage.status_of([p.node_id for p in found])
    partials: list[dict[str, Any]] = [{"id": p.node_id, "step": p.step, "age_s": round(p.age_s, 1), "worker": p.worker,
                 "state_done": done.get(p.node_id) == Status.DONE} for p in found]
    for partial in partials:
        then = "its state is done: `prunelab gc` removes it" if partial["state_done"] else "the next run resumes it"
        text.append(f"  checkpoint {partial['id'][:12]} at step {partial['step']}, {partial['age_s']:.0f} s old "
                    f"(written by {partial['worker']}): {then}")
    for lease in leases:
        alive = {True: "alive", False: "dead", None: "on another host"}[lease["alive"]]
        text.append(f"  lease {lease['key'][:40]} held by {lease['host']}:{lease['pid']} ({alive}), "
                    f"{lease['age_s']:.0f} s since its last heartbeat")
    for item in stale:
        text.append(f"  stale {item['id'][:12]}: {item['kind']} {item['name']} changed since (fingerprint "
                    f"{item['recorded']} -> {', '.join(item['current'])})")
    if any(not_checked.values()):
        text.append(_not_checked_line(not_checked, args.script))
    if len(environments) > 1:
        text.append(f"  {len(environments)} environments or thread settings:")
        for group in environments:
            text.append(f"    {group['states']} state(s): environment {str(group['environment'])[:12]}, threads "
                        f"{group['threads']}, deterministic {group['deterministic']}"
                        + (f"; differs in {'; '.join(group['differences'][:6])}" if group["differences"] else ""))
    return Output({"directory": str(exp.directory), "states": len(exp.graph.nodes), "counts": dict(counts),
                   "runs": len(runs), "failed": failed, "partials": partials, "leases": leases, "stale": stale,
                   "not_checked": not_checked, "environments": environments}, "\n".join(map(escape, text)))


def _not_checked_line(not_checked: dict[str, int], script: str | None) -> str:
    """Say how many states and results could not be checked for staleness, and how to check them.

    Parameters
    ----------
    not_checked : dict
        ``states`` and ``results``: how many were not checked.
    script : str or None
        The ``--script`` given, if any (without one, the line says to give it).
    """
    hint = ("" if script else "; --script FILE imports the script that defines them")
    return (f"  not checked for staleness: {not_checked['states']} state(s) and {not_checked['results']} "
            f"result(s) whose recipe or function is not imported here{hint}")


def draw(args: argparse.Namespace) -> Output:
    """Draw the graph; what the drawing says about itself (a large graph summarised) follows ``wrote OUT``."""
    exp = open_experiment(args.directory)
    nodes = _select(exp, args) if args.tag else None
    target = Path(args.output)
    with writing(target):
        notes = _draw_noting(exp, target, nodes, args.max_nodes)
    return Output({"path": str(target), "notes": notes}, "\n".join(map(escape, [f"wrote {target}", *notes])))


def _draw_noting(exp: Experiment, target: Path, nodes: NodeSet | None, max_nodes: int | None) -> list[str]:
    """Draw the graph of ``exp`` to ``target``; return what its prunelab warnings said (a large graph summarised)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            exp.graph.draw(target, nodes=nodes, max_nodes=max_nodes)
        except subprocess.CalledProcessError as err:  # Graphviz's dot writes the file itself
            said = err.stderr.decode(errors="replace") if isinstance(err.stderr, bytes) else str(err.stderr or "")
            reason = (said.strip().splitlines() or [f"exit status {err.returncode}"])[-1]
            raise WriteError(f"cannot write {target}: Graphviz's dot failed ({reason}); free space or pick "
                              "another -o path.") from err
    for w in caught:  # other warnings go on as if uncaught
        if not issubclass(w.category, PrunelabWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)
    return [str(w.message) for w in caught if issubclass(w.category, PrunelabWarning)]


def export(args: argparse.Namespace) -> Output:
    """``prunelab export``: every node (``--outcomes``: the state frame; ``--classes``: the class frame) to CSV or Parquet."""
    from ..analysis import class_frame, state_frame
    from ..core.errors import UnknownNameError

    target = Path(args.output)
    if target.suffix not in (".csv", ".parquet"):
        raise UnknownNameError(f"export writes .csv or .parquet files, not {target.name!r}; pick one of those suffixes.")
    if target.suffix == ".parquet":
        import importlib.util

        if importlib.util.find_spec("pyarrow") is None:  # pandas writes Parquet through pyarrow
            raise UnknownNameError("Parquet needs pyarrow: pip install 'prunelab[parquet]', or export to .csv.")
    exp = open_experiment(args.directory)
    with writing(target):
        frame = class_frame(exp) if args.classes else state_frame(exp) if args.outcomes else exp.graph.nodes.to_frame()
        if target.suffix == ".csv":
            frame.to_csv(target, index=False)
        else:
            frame.to_parquet(target, index=False)
    study = args.classes or args.outcomes
    what = "the class frame" if args.classes else "the state frame: outcome states" if args.outcomes else "every node"
    note = ("; there are no outcome states (lineage outcome=True, which a study sets): without --outcomes or "
            "--classes export writes every node" if study and not len(frame) else "")
    return Output({"path": str(target), "rows": len(frame), "columns": list(frame.columns)},
                  f"wrote {target}: {len(frame)} rows ({what}){note}")
