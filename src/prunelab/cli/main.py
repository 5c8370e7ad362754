"""The parser: every subcommand with its summary, example and arguments, and the exit codes."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence

from ..errors import PrunelabError
from .output import Output, escape, finite_nonnegative, whole_number
from .reading import draw, export, ls, show, status, tree
from .studies import demo, report
from .upkeep import gc, reindex, run_script, verify

__all__ = ["main"]

COMMANDS: dict[str, tuple[Callable[[argparse.Namespace], Output], str, str]] = {
    "run": (run_script, "run an experiment script with the executor chosen here (exit code: the script's)",
            "prunelab run examples/lr_sweep.py --executor dask --workers 2"),
    "tree": (tree, "print the graph as an indented tree", "prunelab tree runs/lr-sweep --tag 'lr:*'"),
    "ls": (ls, "list states: id, status, depth, recipe, tags", "prunelab ls runs/lr-sweep --where lr=0.1"),
    "show": (show, "show one state: record, lineage, results, environment", "prunelab show runs/lr-sweep 3fa9"),
    "status": (status, "counts by status, failures, held leases, stale states, differing environments",
               "prunelab status runs/lr-sweep --script lr_sweep.py"),
    "draw": (draw, "draw the graph to SVG, PNG or PDF", "prunelab draw runs/lr-sweep -o graph.svg"),
    "export": (export, "write every node (--outcomes: the state frame; --classes: the class frame) to CSV or "
                        "Parquet", "prunelab export runs/demo --outcomes -o states.parquet"),
    "report": (report, "write the study's HTML report (figures, tables, pre-registration, environment)",
               "prunelab report runs/demo -o report.html"),
    "gc": (gc, "delete crash leftovers and unreferenced blobs; --repair also fixes corruption",
           "prunelab gc runs/lr-sweep --repair"),
    "verify": (verify, "check every file, re-execute stored states and compare (exit 1 if anything differs)",
               "prunelab verify runs/demo --all"),
    "reindex": (reindex, "rebuild the index from the records", "prunelab reindex runs/lr-sweep"),
    "demo": (demo, "run the Prune Responsibly study, print its summary and write its report (a second run is "
                    "immediate)", "prunelab demo --quick"),
}


def _add_arguments(name: str, cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("--json", action="store_true", help="print the result as JSON (for scripts)")
    if name == "run":
        cmd.add_argument("script", help="the Python script to run (as __main__)")
        cmd.add_argument("arguments", nargs="*", help="arguments for the script, right after it (before the options)")
        cmd.add_argument("--executor", choices=["local", "dask"], help="default: PRUNELAB_EXECUTOR, else local")
        cmd.add_argument("--workers", type=whole_number(1), metavar="N", help="a local Dask cluster of N workers")
        cmd.add_argument("--address", metavar="ADDR", help="a running Dask scheduler (host:port)")
        return
    if name == "demo":
        cmd.add_argument("--dataset", default="digits", help="digits (default), fashion-mnist, mnist, cifar10")
        cmd.add_argument("--out", default="runs/demo", help="experiment directory (default: runs/demo)")
        cmd.add_argument("--seeds", type=whole_number(1), help="number of seeds (default 3; 1 with --quick)")
        cmd.add_argument("--rounds", type=whole_number(0),
                         help="pruning rounds, 20%% of what remains each (default 5)")
        cmd.add_argument("--workers", type=whole_number(1), help="run on a local Dask cluster of this many workers")
        cmd.add_argument("--max-cohort", type=whole_number(0), default=64, metavar="N",
                         help="train up to N models of a round as one computation (default 64; 0: one at a time)")
        cmd.add_argument("--quick", action="store_true", help="a small study, under a minute")
        return
    cmd.add_argument("directory", help="an experiment directory")
    if name in ("tree", "ls", "draw"):
        cmd.add_argument("--tag", action="append", metavar="PATTERN",
                         help="keep states whose tags match (shell-style, !negates; repeatable)")
    if name == "draw":
        cmd.add_argument("--max-nodes", type=whole_number(1), default=None, metavar="N",
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
        which.add_argument("--sample", type=whole_number(0), default=10, metavar="N",
                           help="re-execute N states drawn at random (seeded; default 10)")
        which.add_argument("--all", action="store_true", help="re-execute every stored state")
        cmd.add_argument("--atol", type=finite_nonnegative, default=0.0, metavar="X",
                         help="tensors differing by at most X count as close (default 0: bit for bit)")

    if name == "gc":
        cmd.add_argument("--repair", action="store_true",
                         help="verify every blob; delete corrupt ones and the states using them")
        cmd.add_argument("--min-age", type=finite_nonnegative, default=3600.0, metavar="SECONDS",
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
        print(f"error: {escape(str(err), multiline=True)}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(output.data, indent=2, default=str, allow_nan=True))
    elif output.text:
        print(escape(output.text, multiline=True))
    sys.stdout.flush()  # a closed pipe shows here, inside main
    return output.code
