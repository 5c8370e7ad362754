"""The ``prunelab`` command: look into, export, report on and maintain experiment directories.

Thin by design: a dict maps each subcommand to a handler that calls library
functions and returns an :class:`Output` — the data ``--json`` prints, and the
text a person reads. Exit codes: 0 when the command did its job; 1 when
``verify`` found a difference or a damaged file; 2 for a usage error or a user
error (one ``error:`` line saying what to do; ``--debug`` shows the
traceback); ``run`` exits with its script's code (1 when it raised). State
ids are accepted by unique prefix.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .core.experiment import Experiment
    from .core.nodes import Node, NodeSet

__all__ = ["main", "Output"]


@dataclass
class Output:
    """What a subcommand produced: ``data`` for ``--json``, ``text`` for people, and the exit code."""

    data: Any
    text: str
    code: int = 0


def _open(directory: str) -> Experiment:
    from .core.experiment import Experiment

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
    text = "\n".join(f"{r['id']}  {r['status']:8s} d{r['depth']:<3d} {r['recipe']:16s} {','.join(r['tags'])}"
                     for r in rows)
    return Output(rows, text)


def _show(args: argparse.Namespace) -> Output:
    exp = _open(args.directory)
    node = exp.graph.node(args.id)
    record = node.record
    results = {name: _summarise(value) for name, value in node.results.items()} if node.stored_status else {}
    environment = exp.store.read_env(record["environment"]) if record.get("environment") else None
    data = {**_row(node), "properties": node.properties, "lineage": node.lineage, "record": record,
            "results": results, "environment": environment}
    lines = [f"state {node.id}  ({node.status}, depth {node.depth}, {_row(node)['recipe']})",
             f"parent: {node.parent_id or '-'}", f"tags: {', '.join(sorted(node.tags)) or '-'}",
             "properties: " + json.dumps(node.properties, default=str),
             "recipe: " + json.dumps(record.get("recipe"), default=str),
             "lineage: " + json.dumps(node.lineage, default=str),
             f"seed {record.get('seed')}, threads {record.get('threads')}, deterministic {record.get('deterministic')}, "
             f"wall {record.get('wall_s', 0.0):.3f} s, worker {record.get('worker')}",
             f"fingerprint: {(record.get('recipe') or {}).get('fingerprint') or record.get('fingerprint') or '-'}",
             f"pre-registrations: {', '.join(d[:16] for d in record.get('prereg') or []) or '-'}"]
    if record.get("error"):
        lines += ["error:", record["error"].rstrip()]
    lines += ["results:"] + [f"  {name}: {json.dumps(value, default=str)[:400]}" for name, value in results.items()]
    if environment is not None:
        torch_info = environment.get("torch") or {}
        lines += [f"environment {record['environment'][:16]}: Python {environment.get('python')} on "
                  f"{environment.get('os')}, {environment.get('cpu_count')} CPUs, torch {torch_info.get('version')}, "
                  f"git {(environment.get('git') or {}).get('commit', '-')}"]
    return Output(data, "\n".join(lines))


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
    from .core.audit import environment_groups, held_leases, stale_states

    _import_code(args.script)
    exp = _open(args.directory)
    counts = Counter(node.status for node in exp.graph.nodes)
    runs = exp.graph.runs
    failed = [{"id": n.id, "error": "\n".join((n.record.get("error") or "?").strip().splitlines()[-3:])}
              for n in exp.graph.nodes if n.status == "failed"]
    leases, stale, environments = held_leases(exp), stale_states(exp), environment_groups(exp)
    text = [f"{exp.directory}: {len(exp.graph.nodes)} states of class {exp.info.get('state_class')} "
            f"({', '.join(f'{n} {s}' for s, n in sorted(counts.items())) or 'none'}); {len(runs)} run(s)"]
    for f in failed:
        text.append(f"  failed {f['id'][:12]}:")
        text += [f"    {line}" for line in f["error"].splitlines()]
    for lease in leases:
        alive = {True: "alive", False: "dead", None: "on another host"}[lease["alive"]]
        text.append(f"  lease {lease['key'][:40]} held by {lease['host']}:{lease['pid']} ({alive}), "
                    f"{lease['age_s']:.0f} s since its last heartbeat")
    for item in stale:
        text.append(f"  stale {item['id'][:12]}: {item['kind']} {item['name']} changed since (fingerprint "
                    f"{item['recorded']} -> {', '.join(item['current'])})")
    if len(environments) > 1:
        text.append(f"  {len(environments)} environments or thread settings:")
        for group in environments:
            text.append(f"    {group['states']} state(s): environment {str(group['environment'])[:12]}, threads "
                        f"{group['threads']}, deterministic {group['deterministic']}"
                        + (f"; differs in {'; '.join(group['differences'][:6])}" if group["differences"] else ""))
    return Output({"directory": str(exp.directory), "states": len(exp.graph.nodes), "counts": dict(counts),
                   "runs": len(runs), "failed": failed, "leases": leases, "stale": stale,
                   "environments": environments}, "\n".join(text))


def _draw(args: argparse.Namespace) -> Output:
    exp = _open(args.directory)
    nodes = _select(exp, args) if args.tag else None
    exp.graph.draw(args.output, nodes=nodes)
    return Output({"path": str(args.output)}, f"wrote {args.output}")


def _export(args: argparse.Namespace) -> Output:
    from .analysis import class_frame, state_frame
    from .core.errors import UnknownNameError

    target = Path(args.output)
    if target.suffix not in (".csv", ".parquet"):
        raise UnknownNameError(f"export writes .csv or .parquet files, not {target.name!r}; pick one of those suffixes.")
    exp = _open(args.directory)
    frame = class_frame(exp) if args.classes else exp.graph.nodes.to_frame() if args.all else state_frame(exp)
    if target.suffix == ".csv":
        frame.to_csv(target, index=False)
    else:
        import importlib.util

        if importlib.util.find_spec("pyarrow") is None:  # pandas writes Parquet through pyarrow
            raise UnknownNameError("Parquet needs pyarrow: pip install 'prunelab[parquet]', or export to .csv.")
        frame.to_parquet(target, index=False)
    what = "the class frame" if args.classes else "every node" if args.all else "the state frame: outcome states"
    note = "" if len(frame) or args.all else "; there are no outcome states, --all exports every node"
    return Output({"path": str(target), "rows": len(frame), "columns": list(frame.columns)},
                  f"wrote {target}: {len(frame)} rows ({what}){note}")


def _import_script(path: str) -> None:
    """Import a user's script under a name other than ``__main__`` (so its main block does not run)."""
    import importlib.util

    from .core.errors import UnknownNameError

    script = Path(path)
    spec = importlib.util.spec_from_file_location(f"prunelab_script_{script.stem}", script)
    if not script.is_file() or spec is None or spec.loader is None:
        raise UnknownNameError(f"--script {path}: no such Python file; give the script that defines the classes.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)


def _import_code(script: str | None) -> None:
    """Import prunelab's own recipes and, if given, the user's script (to find classes and their sources)."""
    import importlib

    importlib.import_module("prunelab.recipes")
    if script:
        _import_script(script)


def _verify(args: argparse.Namespace) -> Output:
    from .core.verify import verify

    _import_code(args.script)
    exp = _open(args.directory)
    report = verify(exp, sample=None if args.all else args.sample, atol=args.atol)
    lines = [f"damaged: {d['file']} (states: {', '.join(s[:12] for s in d['states']) or 'none known'})"
             for d in report.damaged]
    lines += [f"{r['id'][:12]}  {r['outcome']:12s} {r['detail']}" for r in report.rows]
    lines.append(report.summary())
    return Output({"ok": report.ok, "rows": report.rows, "damaged": report.damaged}, "\n".join(lines),
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
    if args.workers is not None and (args.address or args.executor == "local" or args.workers < 1):
        raise UnknownNameError("--workers N (N >= 1) sizes a local Dask cluster; it does not go with --address "
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
    exp = _open(args.directory)
    with exp.store.lock():
        exp.index.rebuild()
    states = len(exp.index.node_rows())
    return Output({"states": states, "index": str(exp.index.path)}, f"rebuilt {exp.index.path}: {states} states")


def _gc(args: argparse.Namespace) -> Output:
    exp = _open(args.directory)
    report = exp.gc(repair=args.repair, min_age_s=args.min_age, dry_run=args.dry_run)
    lines = [("(dry run) " if args.dry_run else "") + report.summary()]
    lines += [f"  removed {node_id[:12]} (uses a corrupt blob): re-run the script to recompute it"
              for node_id in report.states_removed]
    return Output({**dataclasses.asdict(report), "dry_run": args.dry_run}, "\n".join(lines))


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
    if args.workers:
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
             f"{'test accuracy':>15s}  worst-hit class (drop)"]
    for row in rows:
        sparsity = "blinded" if row["sparsity"] is None else f"{row['sparsity']:.3f}"
        start = f"{row['arm']:10s} {row['technique']:20s} {row['treatment']:9s} {row['round']:5d} {sparsity:>8s}"
        if row["blinded"]:
            lines.append(f"{start} {'blinded':>15s}  blinded")
            continue
        label = names[row["worst_class"]] if names else str(row["worst_class"])
        worst = "-" if row["technique"] == "dense" else f"{label} ({row['worst_drop']:+.3f})"
        lines.append(f"{start} {row['accuracy']:8.3f} ± {row['std']:.3f}  {worst}")
    lines.append(f"report: {report_path}")
    return Output({"experiment": str(exp.directory), "states": len(exp.graph.nodes), "rows": rows,
                   "report": str(report_path)}, "\n".join(lines))


def _report(args: argparse.Namespace) -> Output:
    from .analysis import report

    path = report(_open(args.directory), args.output)
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
    "export": (_export, "write the state frame (or --classes: the class frame) to CSV or Parquet",
               "prunelab export runs/demo -o states.parquet"),
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
        cmd.add_argument("--workers", type=int, metavar="N", help="a local Dask cluster of N workers")
        cmd.add_argument("--address", metavar="ADDR", help="a running Dask scheduler (host:port)")
        return
    if name == "demo":
        cmd.add_argument("--dataset", default="digits", help="digits (default), fashion-mnist, mnist, cifar10")
        cmd.add_argument("--out", default="runs/demo", help="experiment directory (default: runs/demo)")
        cmd.add_argument("--seeds", type=int, help="number of seeds (default 3; 1 with --quick)")
        cmd.add_argument("--rounds", type=int, help="pruning rounds, 20%% of what remains each (default 5)")
        cmd.add_argument("--workers", type=int, help="run on a local Dask cluster of this many workers")
        cmd.add_argument("--quick", action="store_true", help="a small study, under a minute")
        return
    cmd.add_argument("directory", help="an experiment directory")
    if name in ("tree", "ls", "draw"):
        cmd.add_argument("--tag", action="append", metavar="PATTERN",
                         help="keep states whose tags match (shell-style, !negates; repeatable)")
    if name == "ls":
        cmd.add_argument("--where", action="append", metavar="PROP=VALUE",
                         help="keep states whose property, lineage field or recipe property equals VALUE")
        cmd.add_argument("--run", type=int, metavar="K", help="only the states run K declared (-1: the latest)")
    if name == "show":
        cmd.add_argument("id", help="a state id or unique prefix")
    if name in ("draw", "export"):
        cmd.add_argument("-o", "--output", required=True, help="the file to write (its suffix picks the format)")
    if name == "export":
        cmd.add_argument("--classes", action="store_true", help="the class frame: one row per (state, class)")
        cmd.add_argument("--all", action="store_true", help="every node (not only outcome states)")
    if name == "report":
        cmd.add_argument("-o", "--output", help="the HTML file to write (default: DIRECTORY/report.html)")
    if name in ("verify", "status"):
        cmd.add_argument("--script", metavar="FILE",
                         help="import this script (not as __main__) to find its classes and compare their sources")
    if name == "verify":
        which = cmd.add_mutually_exclusive_group()
        which.add_argument("--sample", type=int, default=10, metavar="N",
                           help="re-execute N states drawn at random (seeded; default 10)")
        which.add_argument("--all", action="store_true", help="re-execute every stored state")
        cmd.add_argument("--atol", type=float, default=0.0, metavar="X",
                         help="tensors differing by at most X count as close (default 0: bit for bit)")

    if name == "gc":
        cmd.add_argument("--repair", action="store_true",
                         help="verify every blob; delete corrupt ones and the states using them")
        cmd.add_argument("--min-age", type=float, default=3600.0, metavar="SECONDS",
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
    """Run the command line; return the exit code."""
    from .core.errors import PrunelabError

    args = _parser().parse_args(argv)
    try:
        output = COMMANDS[args.command][0](args)
    except PrunelabError as err:
        if args.debug:
            raise
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(output.data, indent=2, default=str, allow_nan=True))
    elif output.text:
        print(output.text)
    return output.code


if __name__ == "__main__":
    sys.exit(main())
