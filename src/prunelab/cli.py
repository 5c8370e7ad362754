"""The ``prunelab`` command: look into experiment directories.

Thin by design: a dict maps each subcommand to a handler that parses its
arguments and calls one library function. A user error prints one ``error:``
line with what to do and exits with code 2; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .core.experiment import Experiment

__all__ = ["main"]


def _open(directory: str) -> Experiment:
    from .core.experiment import Experiment

    return Experiment.restore(directory)


def _tree(args: argparse.Namespace) -> None:
    exp = _open(args.directory)
    nodes = exp.graph.nodes.filter(*args.patterns) if args.patterns else None
    exp.graph.print(nodes=nodes)


def _ls(args: argparse.Namespace) -> None:
    exp = _open(args.directory)
    for node in exp.graph.nodes.filter(*args.patterns):
        recipe = (node.recipe or {}).get("name", "root")
        print(f"{node.id}  {node.status:8s} d{node.depth:<3d} {recipe:16s} {','.join(sorted(node.tags))}")


def _status(args: argparse.Namespace) -> None:
    exp = _open(args.directory)
    counts = Counter(node.status for node in exp.graph.nodes)
    runs = exp.graph.runs
    print(f"{exp.directory}: {len(exp.graph.nodes)} states of class {exp.info.get('state_class')} "
          f"({', '.join(f'{n} {s}' for s, n in sorted(counts.items())) or 'none'}); {len(runs)} run(s)")
    for node in exp.graph.nodes:
        if node.status == "failed":
            last = (node.record.get("error") or "").strip().splitlines()[-1:] or ["?"]
            print(f"  failed {node.id[:12]}: {last[0]}")


def _draw(args: argparse.Namespace) -> None:
    exp = _open(args.directory)
    exp.graph.draw(args.output)
    print(f"wrote {args.output}")


def _gc(args: argparse.Namespace) -> None:
    exp = _open(args.directory)
    report = exp.gc(repair=args.repair, min_age_s=args.min_age, dry_run=args.dry_run)
    print(("(dry run) " if args.dry_run else "") + report.summary())
    for node_id in report.states_removed:
        print(f"  removed {node_id[:12]} (uses a corrupt blob): re-run the script to recompute it")


def _demo(args: argparse.Namespace) -> None:
    from dataclasses import replace

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
    exp, rows = study.run(args.out, config, executor=executor)
    from .analysis import report

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the report lists what limits the analysis
        report_path = report(exp)
    names = exp.graph.nodes[0].results.get("class_shares", {}).get("class_names") if len(exp.graph.nodes) else None
    print(f"experiment: {exp.directory} ({len(exp.graph.nodes)} states); look inside with "
          f"`prunelab tree {exp.directory} outcome`")
    print(f"{'arm':10s} {'technique':20s} {'treatment':9s} {'round':>5s} {'sparsity':>8s} "
          f"{'test accuracy':>15s}  worst-hit class (drop)")
    for row in rows:
        sparsity = "blinded" if row["sparsity"] is None else f"{row['sparsity']:.3f}"
        if row["blinded"]:
            print(f"{row['arm']:10s} {row['technique']:20s} {row['treatment']:9s} {row['round']:5d} "
                  f"{sparsity:>8s} {'blinded':>15s}  blinded")
            continue
        label = names[row["worst_class"]] if names else str(row["worst_class"])
        worst = "-" if row["technique"] == "dense" else f"{label} ({row['worst_drop']:+.3f})"
        print(f"{row['arm']:10s} {row['technique']:20s} {row['treatment']:9s} {row['round']:5d} "
              f"{sparsity:>8s} {row['accuracy']:8.3f} ± {row['std']:.3f}  {worst}")
    print(f"report: {report_path}")


def _report(args: argparse.Namespace) -> None:
    from .analysis import report

    path = report(_open(args.directory), args.output)
    print(f"report: {path}")


COMMANDS: dict[str, tuple[Callable[[argparse.Namespace], None], str, str]] = {
    "tree": (_tree, "print the graph as an indented tree", "prunelab tree runs/lr-sweep 'lr:*'"),
    "ls": (_ls, "list states: id, status, depth, recipe, tags", "prunelab ls runs/lr-sweep pruned"),
    "status": (_status, "count states by status and show failures", "prunelab status runs/lr-sweep"),
    "draw": (_draw, "draw the graph to SVG, PNG or PDF", "prunelab draw runs/lr-sweep graph.svg"),
    "gc": (_gc, "delete crash leftovers and unreferenced blobs; --repair also fixes corruption",
           "prunelab gc runs/lr-sweep --repair"),
    "demo": (_demo, "run the Prune Responsibly study, print its summary and write its report (a second run is "
                    "immediate)", "prunelab demo --quick"),
    "report": (_report, "write the study's HTML report (figures, tables, pre-registration, environment)",
               "prunelab report runs/demo -o report.html"),
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="prunelab", description="Look into prunelab experiment directories.",
                                     epilog="example: prunelab tree runs/lr-sweep")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (_, summary, example) in COMMANDS.items():
        cmd = sub.add_parser(name, help=summary, description=summary, epilog=f"example: {example}")
        if name == "demo":
            cmd.add_argument("--dataset", default="digits", help="digits (default), fashion-mnist, mnist, cifar10")
            cmd.add_argument("--out", default="runs/demo", help="experiment directory (default: runs/demo)")
            cmd.add_argument("--seeds", type=int, help="number of seeds (default 3; 1 with --quick)")
            cmd.add_argument("--rounds", type=int, help="pruning rounds, 20%% of what remains each (default 5)")
            cmd.add_argument("--workers", type=int, help="run on a local Dask cluster of this many workers")
            cmd.add_argument("--quick", action="store_true", help="a small study, under a minute")
            continue
        cmd.add_argument("directory", help="an experiment directory")
        if name == "draw":
            cmd.add_argument("output", help="file to write; its suffix (.svg, .png, .pdf) picks the format")
        elif name == "report":
            cmd.add_argument("-o", "--output", help="the HTML file to write (default: DIRECTORY/report.html)")
        elif name == "gc":
            cmd.add_argument("--repair", action="store_true",
                             help="verify every blob; delete corrupt ones and the states using them")
            cmd.add_argument("--min-age", type=float, default=3600.0, metavar="SECONDS",
                             help="keep anything younger (default: 3600)")
            cmd.add_argument("--dry-run", action="store_true", help="report only")
        else:
            cmd.add_argument("patterns", nargs="*", help="tag patterns to filter on (shell-style, !negates)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    from .core.errors import PrunelabError

    args = _parser().parse_args(argv)
    try:
        COMMANDS[args.command][0](args)
    except PrunelabError as err:
        if args.debug:
            raise
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
