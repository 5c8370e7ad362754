"""Figures of a pruning study (matplotlib ``Figure`` objects; no global pyplot state).

Each function takes the frames of :mod:`prunelab.analysis.frames` (or a
:class:`~prunelab.analysis.RegressionResult`) and returns a figure; save it
with ``fig.savefig(path)``. Blinded figures are NaN in the frames and simply
do not appear.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .frames import AnalysisError

if TYPE_CHECKING:
    import pandas
    from matplotlib.figure import Figure

    from .regression import RegressionResult

__all__ = ["accuracy_vs_sparsity", "class_change_heatmap", "coefficient_plot", "learning_curves", "pareto_plot",
           "population_labels"]

_STYLES = {"finetune": "-", "rewind": "--", "none": ":"}


def _figure(width: float = 7.0, height: float = 4.5) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def population_labels(populations: Any) -> dict[str, str]:
    """Short labels for population strings: only the properties that differ between them.

    Parameters
    ----------
    populations : iterable of str
        Population strings as in the ``population`` column of the frames (``"key=value; key=value"``);
        repeats are allowed.

    Returns
    -------
    dict of str to str
        Each distinct population to its label: the ``key=value`` pairs that vary between the
        populations, or ``"all runs"`` when none varies.
    """
    values = sorted(set(populations))
    split = {p: dict(part.split("=", 1) for part in p.split("; ") if "=" in part) for p in values}
    keys = sorted({k for fields in split.values() for k in fields})
    varying = [k for k in keys if len({fields.get(k) for fields in split.values()}) > 1]
    return {p: "; ".join(f"{k}={split[p].get(k)}" for k in varying) or "all runs" for p in values}


def accuracy_vs_sparsity(state_frame: pandas.DataFrame, metric: str = "test_accuracy") -> Figure:
    """Mean accuracy against mean sparsity per technique (colour) and treatment (line style), ± 1 std band.

    One panel per population (training runs sharing every root property but
    the replicate); the band is over training runs at each round, and the
    unpruned models' mean is a horizontal grey line.

    Parameters
    ----------
    state_frame : pandas.DataFrame
        From :func:`~prunelab.analysis.state_frame`; rows where ``metric`` or
        ``sparsity`` is NaN (e.g. blinded) are left out.
    metric : str, default="test_accuracy"
        The column drawn on the vertical axis (e.g. ``"val_accuracy"``).

    Returns
    -------
    matplotlib.figure.Figure
        One panel per population.
    """
    frame = state_frame.dropna(subset=[metric, "sparsity"])
    labels = population_labels(frame["population"]) if len(frame) else {"": "no data"}
    fig = _figure(7.0, 3.8 * len(labels))
    colours: dict[str, Any] = {}
    for i, (population, label) in enumerate(labels.items()):
        ax = fig.add_subplot(len(labels), 1, i + 1)
        data = frame[frame["population"] == population] if len(frame) else frame
        dense = data[data["technique"] == "none"]
        if len(dense):
            ax.axhline(dense[metric].mean(), color="grey", lw=1, label="unpruned (mean)")
        pruned = data[data["technique"] != "none"]
        for (technique, treatment), group in pruned.groupby(["technique", "treatment"], sort=True):
            by_round = group.groupby("round").agg(x=("sparsity", "mean"), y=(metric, "mean"), s=(metric, "std"))
            colour = colours.setdefault(technique, f"C{len(colours) % 10}")
            ax.plot(by_round["x"], by_round["y"], _STYLES.get(treatment, "-."), marker="o", ms=3, color=colour,
                    label=f"{technique} / {treatment}")
            spread = by_round["s"].fillna(0.0)
            ax.fill_between(by_round["x"], by_round["y"] - spread, by_round["y"] + spread, color=colour,
                            alpha=0.12)
        ax.set_xlabel("sparsity (fraction of weights pruned)")
        ax.set_ylabel(metric.replace("_", " "))
        ax.set_title(f"Accuracy against sparsity, mean ± std over seeds ({label})", fontsize=9)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, ncol=2)
    return fig


def class_change_heatmap(class_frame: pandas.DataFrame) -> Figure:
    """Mean per-class change of test accuracy from the unpruned reference, per (technique, treatment, round).

    Parameters
    ----------
    class_frame : pandas.DataFrame
        From :func:`~prunelab.analysis.class_frame`; the unpruned rows are left out.

    Returns
    -------
    matplotlib.figure.Figure
        A heatmap: one row per (technique, treatment, round), one column per class.

    Raises
    ------
    AnalysisError
        If the frame has no pruned states, or lacks a column :func:`~prunelab.analysis.class_change` needs.
    """
    from .metrics import class_change

    pruned = class_change(class_frame[class_frame["technique"] != "none"])
    if not len(pruned):
        raise AnalysisError("the class frame has no pruned states to draw.")
    table = pruned.pivot_table(index=["technique", "treatment", "round"], columns="class", values="change",
                               aggfunc="mean")
    fig = _figure(7.0, max(3.0, 0.28 * len(table) + 1.5))
    ax = fig.add_subplot()
    limit = float(np.nanmax(np.abs(table.to_numpy()))) or 1.0
    image = ax.imshow(table.to_numpy(), cmap="RdBu", vmin=-limit, vmax=limit, aspect="auto")
    ax.set_xticks(range(table.shape[1]), [str(c) for c in table.columns])
    ax.set_yticks(range(table.shape[0]), [f"{t} / {r} / {n}" for t, r, n in table.index], fontsize=7)
    ax.set_xlabel("class")
    ax.set_title("Per-class change of test accuracy (mean over seeds)")
    fig.colorbar(image, ax=ax, label="accuracy change")
    return fig


def coefficient_plot(result: RegressionResult) -> Figure:
    """Each coefficient of the Prune Responsibly regression with its 95% interval (clustered).

    Parameters
    ----------
    result : RegressionResult
        From :func:`~prunelab.analysis.prune_responsibly_model`; the intercept is not drawn.

    Returns
    -------
    matplotlib.figure.Figure
        One point and interval per term.
    """
    table = result.table[result.table["term"] != "Intercept"]
    fig = _figure(7.0, max(2.5, 0.4 * len(table) + 1.2))
    ax = fig.add_subplot()
    y = np.arange(len(table))
    ax.errorbar(table["estimate"], y, xerr=[table["estimate"] - table["ci_low"], table["ci_high"] - table["estimate"]],
                fmt="o", color="C0", capsize=3)
    ax.axvline(0, color="grey", lw=1)
    ax.set_yticks(y, table["term"].tolist(), fontsize=8)
    ax.set_xlabel("coefficient (95% interval, errors clustered by training run)")
    ax.set_title("Prune Responsibly regression")
    return fig


def pareto_plot(frame: pandas.DataFrame, x: str = "sparsity", y: str = "test_accuracy",
                colour: str = "worst_drop") -> Figure:
    """States by ``x`` and ``y`` (coloured by ``colour``), the front over (max x, max y, min colour) ringed.

    Parameters
    ----------
    frame : pandas.DataFrame
        One row per state with the three columns, e.g. a state frame merged with
        :func:`~prunelab.analysis.disparity` on ``state_id``; rows with a NaN in one of them are left out.
    x : str, default="sparsity"
        The column on the horizontal axis (larger is better on the front).
    y : str, default="test_accuracy"
        The column on the vertical axis (larger is better on the front).
    colour : str, default="worst_drop"
        The column giving each point's colour (smaller is better on the front).

    Returns
    -------
    matplotlib.figure.Figure
        The scatter plot; empty axes when no row remains.
    """
    from .metrics import pareto_front

    data = frame.dropna(subset=[x, y, colour])
    fig = _figure()
    ax = fig.add_subplot()
    if len(data):
        points = ax.scatter(data[x], data[y], c=data[colour], cmap="viridis_r", s=18)
        fig.colorbar(points, ax=ax, label=colour.replace("_", " "))
        front = pareto_front(data, {x: "max", y: "max", colour: "min"})
        ax.scatter(front[x], front[y], s=70, facecolors="none", edgecolors="red", label="Pareto front")
        ax.legend(fontsize=8)
    ax.set_xlabel(x.replace("_", " "))
    ax.set_ylabel(y.replace("_", " "))
    ax.set_title(f"Pareto front: {x}, {y} and {colour.replace('_', ' ')}")
    return fig


def learning_curves(nodes: Any, name: str = "loss") -> Figure:
    """The series ``name`` along each node's lineage (:meth:`Node.history <prunelab.Node.history>`), as curves.

    Nodes are grouped by technique and treatment; each group's curve is the
    mean over its nodes (its training runs: replicates, seeds) at each global
    step, with a band from the lowest to the highest. Dotted verticals mark
    where the pruning rounds of the first node of each group begin.

    Parameters
    ----------
    nodes : iterable of Node
        The last states of the curves (e.g. the outcome states of a study).
    name : str, default="loss"
        The series.

    Returns
    -------
    matplotlib.figure.Figure
        One panel, the global step on the x axis.

    Raises
    ------
    AnalysisError
        If no node has the series.
    """
    import pandas as pd

    frames = []
    events: dict[str, list[int]] = {}
    for node in nodes:
        curve = node.history(name)
        if curve.empty:
            continue
        lineage = node.lineage
        label = f"{lineage.get('technique') or 'dense'} / {lineage.get('treatment') or 'trained'}"
        frames.append(curve.assign(group=label, run=node.id))
        events.setdefault(label, [e["global_step"] for e in curve.attrs["events"] if e["kind"] == "prune"])
    if not frames:
        raise AnalysisError(f"no node has a series {name!r}; recipes log one with pl.log({name!r}, value).")
    data = pd.concat(frames, ignore_index=True)
    fig = _figure()
    ax = fig.add_subplot()
    for (label, group), color in zip(data.groupby("group"), _colors()):
        stats = group.groupby("global_step")["value"].agg(["mean", "min", "max", "count"])
        runs = group["run"].nunique()
        ax.plot(stats.index, stats["mean"], color=color, label=f"{label} ({runs} run{'s' if runs != 1 else ''})")
        if runs > 1:
            ax.fill_between(stats.index, stats["min"], stats["max"], color=color, alpha=0.2, linewidth=0)
        for step in events[label]:
            ax.axvline(step, color=color, linestyle=":", linewidth=1)
    ax.set_xlabel("step (along the lineage)")
    ax.set_ylabel(name)
    ax.set_title(f"{name}: mean and range over runs")
    ax.legend(fontsize=8)
    return fig


def _colors() -> Any:
    from itertools import cycle

    return cycle(f"C{i}" for i in range(10))
