"""The subcommands of the complete study: demo and report."""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path
from typing import Any

from .output import Output, writing
from .reading import open_experiment

__all__ = ["demo", "report"]

def demo(args: argparse.Namespace) -> Output:
    """``prunelab demo``: run the Prune Responsibly study, print its summary and write its report."""
    from dataclasses import replace

    from ..analysis import report as write_report
    from ..studies import prune_responsibly as study

    config = study.StudyConfig.quick() if args.quick else study.StudyConfig()
    config = replace(config, datasets=(args.dataset,))
    if args.seeds is not None:
        config = replace(config, seeds=tuple(range(args.seeds)))
    if args.rounds is not None:
        config = replace(config, rounds=args.rounds)
    if args.dataset != "digits" and config.imbalance is not None and args.dataset not in ("mnist", "fashion-mnist",
                                                                                          "cifar10"):
        config = replace(config, imbalance=None)
    from ..execution import DaskExecutor, Executor, LocalExecutor, resolve_executor

    executor: Executor = resolve_executor(None)
    if args.workers is not None:
        executor = DaskExecutor(n_workers=args.workers)
    elif isinstance(executor, LocalExecutor):  # each round's trainings as one computation
        executor = LocalExecutor(max_cohort=args.max_cohort or None)
    exp, rows = study.run(args.out, config, executor=executor, quiet=args.json)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the report lists what limits the analysis
        report_path = write_report(exp)
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


def report(args: argparse.Namespace) -> Output:
    """``prunelab report``: write the study's HTML report (figures, tables, pre-registration, environment)."""
    from ..analysis import report as write_report

    exp = open_experiment(args.directory)
    target = Path(args.output) if args.output is not None else exp.directory / "report.html"
    with writing(target):
        path = write_report(exp, target)
    return Output({"path": str(path)}, f"report: {path}")
