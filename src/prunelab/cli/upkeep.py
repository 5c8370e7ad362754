"""The subcommands that run, check and maintain an experiment: run, verify, reindex, gc."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import warnings
from pathlib import Path

from .output import Output, escape
from .reading import open_experiment
from .scripts import import_code

__all__ = ["verify", "run_script", "reindex", "gc"]

def verify(args: argparse.Namespace) -> Output:
    """``prunelab verify``: check every file, re-execute stored states and compare (exit 1 if anything differs)."""
    from ..experiment.verify import verify as verify_experiment

    import_code(args.script, "verify")
    exp = open_experiment(args.directory)
    report = verify_experiment(exp, sample=None if args.all else args.sample, atol=args.atol)
    lines = [f"damaged: {d['file']} (states: {', '.join(s[:12] for s in d['states']) or 'none known'})"
             + ("" if d["states"] else f": {d['error']}") for d in report.damaged]
    lines += [f"{r['id'][:12]}  {r['outcome']:12s} {r['detail']}" for r in report.rows]
    lines.append(report.summary())
    return Output({"ok": report.ok, "rows": report.rows, "damaged": report.damaged}, "\n".join(map(escape, lines)),
                  0 if report.ok else 1)


def run_script(args: argparse.Namespace) -> Output:
    """Run a script as ``__main__`` with the executor chosen here (through ``PRUNELAB_EXECUTOR``)."""
    import os
    import runpy
    import traceback

    from ..core.errors import UnknownNameError

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


def reindex(args: argparse.Namespace) -> Output:
    """``prunelab reindex``: rebuild the index from the records."""
    from ..experiment import reindex as rebuild_index

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # what could not be indexed is listed below
        exp, notes = rebuild_index(args.directory)
    states = len(exp.index.node_rows())
    where = f"{exp.index.path}" + (f" (kept in memory: the file {exp.index.in_memory})" if exp.index.in_memory else "")
    lines = [f"rebuilt {where}: {states} states"] + [f"  not restored: {note}" for note in notes]
    if notes:
        lines.append("  `prunelab gc --repair` sets damaged states and results aside; re-running the script recomputes "
                     "them.")
    return Output({"states": states, "index": str(exp.index.path), "in_memory": exp.index.in_memory,
                   "not_restored": notes}, "\n".join(map(escape, lines)))


def gc(args: argparse.Namespace) -> Output:
    """``prunelab gc``: delete crash leftovers and unreferenced blobs; --repair also fixes corruption."""
    exp = open_experiment(args.directory)
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
    return Output({**dataclasses.asdict(report), "dry_run": args.dry_run}, "\n".join(map(escape, lines)))
