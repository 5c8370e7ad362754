"""The ``prunelab`` command: look into, export, report on and maintain experiment directories.

Thin by design: a dict maps each subcommand to a handler that calls library
functions and returns an :class:`Output` — the data ``--json`` prints, and the
text a person reads. Exit codes: 0 when the command did its job; 1 when
``verify`` found a difference or a damaged file; 2 for a usage error or a user
error (one ``error:`` line saying what to do; ``--debug`` shows the
traceback); ``run`` exits with its script's code (1 when it raised). State
ids are accepted by unique prefix.

Terminal output shows every control character escaped (``\\n``, ``\\x1b``,
``\\u202e``), so that a tag, name or error text read from an experiment can
neither send escape sequences to the terminal nor forge lines: one state is one
``ls`` line, and only multi-line texts (a stored traceback) keep their newlines.
``--json`` prints the exact strings. A closed pipe (``prunelab ls DIR | head``)
ends the command quietly with exit code 0.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import re
import subprocess
import sys
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import PrunelabError, PrunelabWarning

if TYPE_CHECKING:
    from .experiment import Experiment
    from .core.nodes import Node, NodeSet

__all__ = ["main", "Output"]


@dataclass
class Output:
    """What a subcommand produced: ``data`` for ``--json``, ``text`` for people, and the exit code."""

    data: Any
    text: str
    code: int = 0


# C0 and C1 controls, DEL, the line and paragraph separators, and the bidi embeddings, overrides and isolates
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_UNSAFE_BUT_NEWLINE = re.compile("(?!\n)" + _UNSAFE.pattern)


def _escape(text: str, *, multiline: bool = False) -> str:
    """``text`` safe for a terminal: every control character shown as its escape (``\\n``, ``\\x1b``, ``\\u202e``).

    With ``multiline=True`` newlines are kept (a traceback stays readable) and
    every other control character is still escaped.
    """
    pattern = _UNSAFE_BUT_NEWLINE if multiline else _UNSAFE
    return pattern.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


class _WriteError(PrunelabError, OSError):
    """An output file (``-o``) cannot be written."""


def _check_writable(target: Path) -> None:
    """Fail before any work when ``target`` cannot be written: its folder is missing or read-only, or it is a folder."""
    folder = target.parent
    if not folder.is_dir():
        why = "no such directory" if not folder.exists() else "not a directory"
        raise _WriteError(f"cannot write {target}: {why}: {folder}; create the directory or pick another -o path.")
    if target.is_dir():
        raise _WriteError(f"cannot write {target}: it is a directory; give a file name with -o.")
    if not os.access(folder, os.W_OK | os.X_OK) or (target.exists() and not os.access(target, os.W_OK)):
        raise _WriteError(f"cannot write {target}: permission denied or a read-only file system; "
                          "pick another -o path.")


@contextlib.contextmanager
def _writing(target: Path) -> Iterator[None]:
    """Check ``target`` on entry, then turn an ``OSError`` writing it (a full disk …) into one ``error:`` line.

    An ``OSError`` that names another file (one read on the way) passes unchanged, as does a ``PrunelabError``.
    """
    _check_writable(target)
    try:
        yield
    except PrunelabError:
        raise
    except OSError as err:
        if err.filename is not None and os.fspath(err.filename) != os.fspath(target):
            raise  # another file: not an output error
        raise _WriteError(f"cannot write {target}: {err.strerror or err}; free space or pick another -o path.") from err


def _whole_number(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number of at least ``minimum``."""
    def parse(text: str) -> int:
        value: int | None
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"give a whole number >= {minimum}, not {text!r}")
        return value

    return parse


def _finite_nonnegative(text: str) -> float:
    """An argparse type: a finite number >= 0 (no nan, no inf)."""
    value: float | None
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"give a finite number >= 0, not {text!r}")
    return value


def _open(directory: str) -> Experiment:
    from .experiment import Experiment

    return Experiment.restore(directory)


def _row(node: Node) -> dict[str, Any]:
    return {"id": node.id, "parent_id": node.parent_id, "status": node.status, "depth": node.depth,
            "recipe": (node.recipe or {}).get("name", "root"), "tags": sorted(node.tags)}


def _where(text: str) -> tuple[str, Any]:
    key, sep, raw = text.partition("=")
    if not sep or not key:
        from .core.errors import UnknownNameError

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


def _tree(args: argparse.Namespace) -> Output:
    exp = _open(args.directory)
    nodes = _select(exp, args) if args.tag else None
    from .core.draw import text_tree

    shown = nodes if nodes is not None else exp.graph.nodes
    return Output([_row(n) for n in shown], text_tree(exp.graph, nodes))


def _ls(args: argparse.Namespace) -> Output:
    rows = [_row(n) for n in _select(_open(args.directory), args)]
    text = "\n".join(_escape(f"{r['id']}  {r['status']:8s} d{r['depth']:<3d} {r['recipe']:16s} {','.join(r['tags'])}")
                     for r in rows)
    return Output(rows, text)


def _show(args: argparse.Namespace) -> Output:
    exp = _open(args.directory)
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
    error = ["error:", _escape(str(record["error"]).rstrip(), multiline=True)] if record.get("error") else []
    return Output(data, "\n".join([*map(_escape, head), *error, *map(_escape, tail)]))


def _summarise(value: Any) -> Any:
    """A result as JSON: tensors and arrays by dtype and shape."""
    if isinstance(value, dict):
        return {str(k): _summarise(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_summarise(v) for v in value]
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return {"dtype": str(value.dtype), "shape": list(value.shape)}
    return value


def _status(args: argparse.Namespace) -> Output:
    from .experiment.audit import environment_groups, held_leases, stale_states

    _import_code(args.script, "status")
    exp = _open(args.directory)
    counts = Counter(node.status for node in exp.graph.nodes)
    runs = exp.graph.runs
    failed = [{"id": n.id, "error": "\n".join(str(n.record.get("error") or "?").strip().split("\n")[-3:])}
              for n in exp.graph.nodes if n.status == "failed"]  # split at newlines only: a "\r" stays visible
    leases, staleness, environments = held_leases(exp), stale_states(exp), environment_groups(exp)
    stale = staleness.stale
    not_checked = {"states": staleness.not_checked_states, "results": staleness.not_checked_results}
    text = [f"{exp.directory}: {len(exp.graph.nodes)} states of class {exp.info.get('state_class')} "
            f"({', '.join(f'{n} {s}' for s, n in sorted(counts.items())) or 'none'}); {len(runs)} run(s)"]
    for f in failed:
        text.append(f"  failed {f['id'][:12]}:")
        text += [f"    {line}" for line in f["error"].split("\n")]
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
                   "runs": len(runs), "failed": failed, "leases": leases, "stale": stale,
                   "not_checked": not_checked, "environments": environments}, "\n".join(map(_escape, text)))


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


def _draw(args: argparse.Namespace) -> Output:
    """Draw the graph; what the drawing says about itself (a large graph summarised) follows ``wrote OUT``."""
    exp = _open(args.directory)
    nodes = _select(exp, args) if args.tag else None
    target = Path(args.output)
    with _writing(target):
        notes = _draw_noting(exp, target, nodes, args.max_nodes)
    return Output({"path": str(target), "notes": notes}, "\n".join(map(_escape, [f"wrote {target}", *notes])))


def _draw_noting(exp: Experiment, target: Path, nodes: NodeSet | None, max_nodes: int | None) -> list[str]:
    """Draw the graph of ``exp`` to ``target``; return what its prunelab warnings said (a large graph summarised)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            exp.graph.draw(target, nodes=nodes, max_nodes=max_nodes)
        except subprocess.CalledProcessError as err:  # Graphviz's dot writes the file itself
            said = err.stderr.decode(errors="replace") if isinstance(err.stderr, bytes) else str(err.stderr or "")
            reason = (said.strip().splitlines() or [f"exit status {err.returncode}"])[-1]
            raise _WriteError(f"cannot write {target}: Graphviz's dot failed ({reason}); free space or pick "
                              "another -o path.") from err
    for w in caught:  # other warnings go on as if uncaught
        if not issubclass(w.category, PrunelabWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)
    return [str(w.message) for w in caught if issubclass(w.category, PrunelabWarning)]


def _export(args: argparse.Namespace) -> Output:
    from .analysis import class_frame, state_frame
    from .core.errors import UnknownNameError

    target = Path(args.output)
    if target.suffix not in (".csv", ".parquet"):
        raise UnknownNameError(f"export writes .csv or .parquet files, not {target.name!r}; pick one of those suffixes.")
    if target.suffix == ".parquet":
        import importlib.util

        if importlib.util.find_spec("pyarrow") is None:  # pandas writes Parquet through pyarrow
            raise UnknownNameError("Parquet needs pyarrow: pip install 'prunelab[parquet]', or export to .csv.")
    exp = _open(args.directory)
    with _writing(target):
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


def _import_script(path: str, command: str) -> None:
    """Import a user's script to learn its classes (as a module :func:`prunelab.experiment.audit.stale_states` finds).

    It is imported as ``prunelab_script_<stem>``, not as ``__main__`` (so its
    main block does not run), with ``sys.argv`` holding only its path, and
    computes nothing: its ``run()`` calls only declare
    (:func:`prunelab.experiment.declaring_only`). When its module-level
    code fails (e.g. it reads a result that was never computed), what it
    defined before the failing line is kept and a warning names the script,
    the line and the error.

    Parameters
    ----------
    path : str
        The script (``--script FILE``).
    command : str
        The subcommand importing it, named in the warning each ``run()`` gives.
    """
    import importlib.util

    from .core.errors import UnknownNameError
    from .experiment.audit import SCRIPT_PREFIX
    from .experiment import declaring_only

    script = Path(path)
    name = f"{SCRIPT_PREFIX}{script.stem}"
    spec = importlib.util.spec_from_file_location(name, script)
    if not script.is_file() or spec is None or spec.loader is None:
        raise UnknownNameError(f"--script {path}: no such Python file; give the script that defines the classes.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    saved_argv, sys.argv = sys.argv, [str(script)]
    try:
        with declaring_only(f"prunelab {command} --script imports {script.name} only to learn its classes; "
                            f"run the script itself to compute"):
            spec.loader.exec_module(module)
    except SyntaxError as err:
        del sys.modules[name]
        raise UnknownNameError(f"--script {path} cannot be imported: {err.msg} (line {err.lineno}); fix the script "
                               "or give the one that defines the classes.") from err
    except (Exception, SystemExit) as err:  # noqa: BLE001 - the script's own error: reported, what it defined kept
        _warn_script_failed(script, err)
    finally:
        sys.argv = saved_argv


def _warn_script_failed(script: Path, err: BaseException) -> None:
    """Warn, at the script's failing line, that its module-level code failed and what that means for the command."""
    import traceback

    frames = [f for f in traceback.extract_tb(err.__traceback__) if Path(f.filename) == script]
    line = frames[-1].lineno if frames and frames[-1].lineno is not None else 1
    warnings.warn_explicit(f"--script {script}: its module-level code failed at line {line} "
                           f"({type(err).__name__}: {err}); the classes and functions it defined before that line "
                           "are used, any defined after it are not checked. Guard the script's work with "
                           "`if __name__ == \"__main__\":` to keep it from running on import.",
                           PrunelabWarning, str(script), line)


def _import_code(script: str | None, command: str) -> None:
    """Import prunelab's own recipes and, if given, the user's script (to find classes and their sources).

    Parameters
    ----------
    script : str or None
        The user's script (``--script FILE``), if any.
    command : str
        The subcommand importing it.
    """
    import importlib

    importlib.import_module("prunelab.recipes")
    if script:
        _import_script(script, command)


def _verify(args: argparse.Namespace) -> Output:
    from .experiment.verify import verify

    _import_code(args.script, "verify")
    exp = _open(args.directory)
    report = verify(exp, sample=None if args.all else args.sample, atol=args.atol)
    lines = [f"damaged: {d['file']} (states: {', '.join(s[:12] for s in d['states']) or 'none known'})"
             + ("" if d["states"] else f": {d['error']}") for d in report.damaged]
    lines += [f"{r['id'][:12]}  {r['outcome']:12s} {r['detail']}" for r in report.rows]
    lines.append(report.summary())
    return Output({"ok": report.ok, "rows": report.rows, "damaged": report.damaged}, "\n".join(map(_escape, lines)),
                  0 if report.ok else 1)


def _run(args: argparse.Namespace) -> Output:
    """Run a script as ``__main__`` with the executor chosen here (through ``PRUNELAB_EXECUTOR``)."""
    import os
    import runpy
    import traceback

    from .core.errors import UnknownNameError

    script = Path(args.script)
    if not script.is_file():
        raise UnknownNameError(f"no such script: {script}")
    if args.address and args.executor == "local":
        raise UnknownNameError("--address names a Dask scheduler; use it with --executor dask (or alone).")
    if args.workers is not None and (args.address or args.executor == "local"):
        raise UnknownNameError("--workers N sizes a local Dask cluster; it does not go with --address "
                               "or --executor local.")
    if args.address:
        executor = "dask://" + args.address.removeprefix("tcp://")
    elif args.executor == "dask" or args.workers is not None:
        executor = "dask"
    else:
        executor = args.executor or os.environ.get("PRUNELAB_EXECUTOR", "local")
    os.environ["PRUNELAB_EXECUTOR"] = executor
    if args.workers is not None:
        os.environ["PRUNELAB_WORKERS"] = str(args.workers)
    saved_argv = sys.argv
    sys.argv = [str(script), *args.arguments]
    code = 0
    try:
        runpy.run_path(str(script), run_name="__main__")
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    except Exception:  # noqa: BLE001 - the script's own error: shown in full, exit 1
        traceback.print_exc()
        code = 1
    finally:
        sys.argv = saved_argv
    return Output({"script": str(script), "executor": executor, "exit_code": code}, "", code)


def _reindex(args: argparse.Namespace) -> Output:
    from .experiment import reindex

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # what could not be indexed is listed below
        exp, notes = reindex(args.directory)
    states = len(exp.index.node_rows())
    where = f"{exp.index.path}" + (f" (kept in memory: the file {exp.index.in_memory})" if exp.index.in_memory else "")
    lines = [f"rebuilt {where}: {states} states"] + [f"  not restored: {note}" for note in notes]
    if notes:
        lines.append("  `prunelab gc --repair` sets damaged states and results aside; re-running the script recomputes "
                     "them.")
    return Output({"states": states, "index": str(exp.index.path), "in_memory": exp.index.in_memory,
                   "not_restored": notes}, "\n".join(map(_escape, lines)))


def _gc(args: argparse.Namespace) -> Output:
    exp = _open(args.directory)
    report = exp.gc(repair=args.repair, min_age_s=args.min_age, dry_run=args.dry_run)
    lines = [("(dry run) " if args.dry_run else "") + report.summary()]
    lines += [f"  removed {node_id[:12]} ({report.why.get(node_id, 'damaged')}): re-run the script to recompute it"
              for node_id in report.states_removed]
    lines += [f"  set aside result {item}: re-run the script to compute it again" for item in report.results_removed]
    lines += [f"  set aside {item}" for item in report.logs_removed]
    lines += [f"  damaged: {d['file']}: {d['error']}" for d in report.damaged if not args.repair]
    lines += [f"  left alone (a link or an entry prunelab did not write): {link}" for link in report.links]
    if report.damaged and not args.repair:
        lines.append("  nothing damaged was collected; `prunelab gc --repair` sets it aside for recomputation")
    return Output({**dataclasses.asdict(report), "dry_run": args.dry_run}, "\n".join(map(_escape, lines)))


def _demo(args: argparse.Namespace) -> Output:
    from dataclasses import replace

    from .analysis import report
    from .studies import prune_responsibly as study

    config = study.StudyConfig.quick() if args.quick else study.StudyConfig()
    config = replace(config, datasets=(args.dataset,))
    if args.seeds is not None:
        config = replace(config, seeds=tuple(range(args.seeds)))
    if args.rounds is not None:
        config = replace(config, rounds=args.rounds)
    if args.dataset != "digits" and config.imbalance is not None and args.dataset not in ("mnist", "fashion-mnist",
                                                                                          "cifar10"):
        config = replace(config, imbalance=None)
    executor = None
    if args.workers is not None:
        from .execution import DaskExecutor

        executor = DaskExecutor(n_workers=args.workers)
    exp, rows = study.run(args.out, config, executor=executor, quiet=args.json)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the report lists what limits the analysis
        report_path = report(exp)
    names = exp.graph.nodes[0].results.get("class_shares", {}).get("class_names") if len(exp.graph.nodes) else None
    lines = [f"experiment: {exp.directory} ({len(exp.graph.nodes)} states); look inside with "
             f"`prunelab tree {exp.directory} --tag outcome`",
             f"{'arm':10s} {'technique':20s} {'treatment':9s} {'round':>5s} {'sparsity':>8s} "
             f"{'test accuracy':>16s} {'runs':>4s}  worst-hit class (drop)"]
    lines += [_demo_line(row, names) for row in rows]
    lines.append(f"report: {report_path}")
    return Output({"experiment": str(exp.directory), "states": len(exp.graph.nodes), "rows": rows,
                   "report": str(report_path)}, "\n".join(lines))


def _demo_line(row: dict[str, Any], names: list[str] | None) -> str:
    """One row of the demo's table: test accuracy as mean ± std over runs (the mean alone for one run).

    Parameters
    ----------
    row : dict
        A row of :func:`prunelab.studies.prune_responsibly.summary`.
    names : list of str or None
        The class names, for the worst-hit class.
    """
    sparsity = "blinded" if row["sparsity"] is None else f"{row['sparsity']:.3f}"
    start = f"{row['arm']:10s} {row['technique']:20s} {row['treatment']:9s} {row['round']:5d} {sparsity:>8s}"
    if row["blinded"]:
        return f"{start} {'blinded':>16s} {row['seeds']:4d}  blinded"
    spread = f" ± {row['std']:.3f}" if row["std"] is not None else " " * 8
    label = names[row["worst_class"]] if names else str(row["worst_class"])
    worst = "-" if row["technique"] == "dense" else f"{label} ({row['worst_drop']:+.3f})"
    return f"{start} {row['accuracy']:8.3f}{spread} {row['seeds']:4d}  {worst}"


def _report(args: argparse.Namespace) -> Output:
    from .analysis import report

    exp = _open(args.directory)
    target = Path(args.output) if args.output is not None else exp.directory / "report.html"
    with _writing(target):
        path = report(exp, target)
    return Output({"path": str(path)}, f"report: {path}")


COMMANDS: dict[str, tuple[Callable[[argparse.Namespace], Output], str, str]] = {
    "run": (_run, "run an experiment script with the executor chosen here (exit code: the script's)",
            "prunelab run examples/lr_sweep.py --executor dask --workers 2"),
    "tree": (_tree, "print the graph as an indented tree", "prunelab tree runs/lr-sweep --tag 'lr:*'"),
    "ls": (_ls, "list states: id, status, depth, recipe, tags", "prunelab ls runs/lr-sweep --where lr=0.1"),
    "show": (_show, "show one state: record, lineage, results, environment", "prunelab show runs/lr-sweep 3fa9"),
    "status": (_status, "counts by status, failures, held leases, stale states, differing environments",
               "prunelab status runs/lr-sweep --script lr_sweep.py"),
    "draw": (_draw, "draw the graph to SVG, PNG or PDF", "prunelab draw runs/lr-sweep -o graph.svg"),
    "export": (_export, "write every node (--outcomes: the state frame; --classes: the class frame) to CSV or "
                        "Parquet", "prunelab export runs/demo --outcomes -o states.parquet"),
    "report": (_report, "write the study's HTML report (figures, tables, pre-registration, environment)",
               "prunelab report runs/demo -o report.html"),
    "gc": (_gc, "delete crash leftovers and unreferenced blobs; --repair also fixes corruption",
           "prunelab gc runs/lr-sweep --repair"),
    "verify": (_verify, "check every file, re-execute stored states and compare (exit 1 if anything differs)",
               "prunelab verify runs/demo --all"),
    "reindex": (_reindex, "rebuild the index from the records", "prunelab reindex runs/lr-sweep"),
    "demo": (_demo, "run the Prune Responsibly study, print its summary and write its report (a second run is "
                    "immediate)", "prunelab demo --quick"),
}


def _add_arguments(name: str, cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("--json", action="store_true", help="print the result as JSON (for scripts)")
    if name == "run":
        cmd.add_argument("script", help="the Python script to run (as __main__)")
        cmd.add_argument("arguments", nargs="*", help="arguments for the script, right after it (before the options)")
        cmd.add_argument("--executor", choices=["local", "dask"], help="default: PRUNELAB_EXECUTOR, else local")
        cmd.add_argument("--workers", type=_whole_number(1), metavar="N", help="a local Dask cluster of N workers")
        cmd.add_argument("--address", metavar="ADDR", help="a running Dask scheduler (host:port)")
        return
    if name == "demo":
        cmd.add_argument("--dataset", default="digits", help="digits (default), fashion-mnist, mnist, cifar10")
        cmd.add_argument("--out", default="runs/demo", help="experiment directory (default: runs/demo)")
        cmd.add_argument("--seeds", type=_whole_number(1), help="number of seeds (default 3; 1 with --quick)")
        cmd.add_argument("--rounds", type=_whole_number(0),
                         help="pruning rounds, 20%% of what remains each (default 5)")
        cmd.add_argument("--workers", type=_whole_number(1), help="run on a local Dask cluster of this many workers")
        cmd.add_argument("--quick", action="store_true", help="a small study, under a minute")
        return
    cmd.add_argument("directory", help="an experiment directory")
    if name in ("tree", "ls", "draw"):
        cmd.add_argument("--tag", action="append", metavar="PATTERN",
                         help="keep states whose tags match (shell-style, !negates; repeatable)")
    if name == "draw":
        cmd.add_argument("--max-nodes", type=_whole_number(1), default=None, metavar="N",
                         help="above N states, draw one box per recipe path (default 1000)")
    if name == "ls":
        cmd.add_argument("--where", action="append", metavar="PROP=VALUE",
                         help="keep states whose property, lineage field or recipe property equals VALUE")
        cmd.add_argument("--run", type=int, metavar="K", help="only the states run K declared (-1: the latest)")
    if name == "show":
        cmd.add_argument("id", help="a state id or unique prefix")
    if name in ("draw", "export"):
        cmd.add_argument("-o", "--output", required=True, help="the file to write (its suffix picks the format)")
    if name == "export":
        which = cmd.add_mutually_exclusive_group()
        which.add_argument("--outcomes", action="store_true",
                           help="the state frame: one row per outcome state of a study (default: every node)")
        which.add_argument("--classes", action="store_true", help="the class frame: one row per (outcome state, class)")
    if name == "report":
        cmd.add_argument("-o", "--output", help="the HTML file to write (default: DIRECTORY/report.html)")
    if name in ("verify", "status"):
        cmd.add_argument("--script", metavar="FILE",
                         help="import this script (not as __main__) to find its classes and compare their sources; "
                              "it computes nothing: run() inside it only declares")
    if name == "verify":
        which = cmd.add_mutually_exclusive_group()
        which.add_argument("--sample", type=_whole_number(0), default=10, metavar="N",
                           help="re-execute N states drawn at random (seeded; default 10)")
        which.add_argument("--all", action="store_true", help="re-execute every stored state")
        cmd.add_argument("--atol", type=_finite_nonnegative, default=0.0, metavar="X",
                         help="tensors differing by at most X count as close (default 0: bit for bit)")

    if name == "gc":
        cmd.add_argument("--repair", action="store_true",
                         help="verify every blob; delete corrupt ones and the states using them")
        cmd.add_argument("--min-age", type=_finite_nonnegative, default=3600.0, metavar="SECONDS",
                         help="keep anything younger (default: 3600)")
        cmd.add_argument("--dry-run", action="store_true", help="report only")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="prunelab", description="Look into prunelab experiment directories.",
                                     epilog="exit codes: 0 done, 1 verify found a difference or damage, "
                                            "2 usage or user error. "
                                            "example: prunelab tree runs/lr-sweep")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (_, summary, example) in COMMANDS.items():
        cmd = sub.add_parser(name, help=summary, description=summary, epilog=f"example: {example}")
        _add_arguments(name, cmd)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code (0 when the reader closed the pipe: ``prunelab ls DIR | head``)."""
    try:
        return _main(argv)
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)  # the interpreter's last flush of stdout must not fail again
        os.dup2(devnull, sys.stdout.fileno())
        return 0


def _main(argv: Sequence[str] | None) -> int:
    args = _parser().parse_args(argv)
    try:
        output = COMMANDS[args.command][0](args)
    except PrunelabError as err:
        if args.debug:
            raise
        print(f"error: {_escape(str(err), multiline=True)}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(output.data, indent=2, default=str, allow_nan=True))
    elif output.text:
        print(_escape(output.text, multiline=True))
    sys.stdout.flush()  # a closed pipe shows here, inside main
    return output.code


if __name__ == "__main__":
    sys.exit(main())
