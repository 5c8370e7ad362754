"""``report(exp, path)``: one self-contained HTML file with the study's findings and how to reproduce them.

Figures are embedded as PNG data, tables are plain HTML, and every string that
came from the user or the experiment (tags, names, hypotheses, errors) is
escaped. Findings are labelled *confirmatory* when an intact, on-time
pre-registration covers them, *exploratory* otherwise; blinded metrics are
left out (the sections that need them say so).
"""

from __future__ import annotations

import base64
import html
import io
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.prereg import covers_metric
from .frames import AnalysisError, class_frame, outcome_nodes, state_frame
from .metrics import disparity
from .prereg import registrations
from .regression import prune_responsibly_model
from .stats import welch_per_class

if TYPE_CHECKING:
    import pandas
    from matplotlib.figure import Figure

    from ..experiment import Experiment

__all__ = ["report"]

_STYLE = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;font-size:13px;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 6px}
th{background:#f3f3f3}img{max-width:100%}.note{color:#555}.label{font-weight:bold;padding:1px 6px;
border-radius:3px}.confirmatory{background:#d8f0d8}.exploratory{background:#f6ecd0}.edited{color:#b00}
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _table(frame: pandas.DataFrame, max_rows: int = 200) -> str:
    shown = frame.head(max_rows)
    more = f"<p class='note'>{len(frame) - max_rows} more rows not shown.</p>" if len(frame) > max_rows else ""
    table: str = shown.to_html(index=False, escape=True, float_format=lambda v: f"{v:.4g}", na_rep="–")
    return table + more


def _png(fig: Figure, alt: str = "figure") -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f"<img alt='{_e(alt)}' src='data:image/png;base64,{data}'>"


def _graph_image(exp: Experiment) -> str:
    import shutil
    import tempfile

    suffix = ".svg" if shutil.which("dot") else ".png"
    with tempfile.TemporaryDirectory() as folder:
        target = Path(folder) / f"graph{suffix}"
        exp.graph.draw(target)
        data = base64.b64encode(target.read_bytes()).decode("ascii")
    kind = "svg+xml" if suffix == ".svg" else "png"
    return f"<img alt='experiment graph' src='data:image/{kind};base64,{data}'>"


def _label(confirmatory: bool) -> str:
    kind = "confirmatory" if confirmatory else "exploratory"
    return f"<span class='label {kind}'>{kind}</span>"


def _section(title: str, body: str) -> str:
    return f"<h2>{_e(title)}</h2>\n{body}\n"


def report(exp: Experiment, path: str | Path | None = None) -> Path:
    """Write the study's HTML report (default ``EXP/report.html``); return its path.

    Sections: pre-registration and blinding status, outcomes by technique,
    treatment and round, figures (accuracy against sparsity, learning curves
    of the loss and validation accuracy along each outcome's lineage, per-class
    change, Pareto front, regression coefficients, the experiment graph), the Prune
    Responsibly regression, per-class tests, disparity, tags, the environment
    and how to reproduce the results.

    Parameters
    ----------
    exp : Experiment
        The experiment to report on.
    path : str or Path, optional
        The file to write (replaced if it exists); None: ``report.html`` in the experiment's directory.

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    CorruptStateError
        If an entry of the pre-registration log is damaged (from :func:`registrations`).
    """
    from .. import __version__
    from .plots import accuracy_vs_sparsity, class_change_heatmap, learning_curves, population_labels

    target = Path(path) if path is not None else exp.directory / "report.html"
    parts = [f"<h1>prunelab report: {_e(exp.directory.name)}</h1>",
             f"<p class='note'>{len(exp.graph.nodes)} states; written {_e(time.strftime('%Y-%m-%d %H:%M:%S'))} "
             f"by prunelab {_e(__version__)}.</p>"]
    regs = registrations(exp)
    confirmed = [r for r in regs if r["status"] == "intact" and not r["late"]]
    parts.append(_section("Pre-registration and blinding", _prereg_html(exp, regs)))
    states = state_frame(exp)
    figures: list[str] = []
    if len(states):
        states["population"] = states["population"].map(population_labels(states["population"]))
        summary = states.groupby(["population", "technique", "treatment", "round"], dropna=False).agg(
            states=("state_id", "count"), sparsity=("sparsity", "mean"), test_accuracy=("test_accuracy", "mean"),
            std=("test_accuracy", "std")).reset_index()
        parts.append(_section("Outcomes (test accuracy, mean and std over training runs)", _table(summary)))
        figures.append(_png(accuracy_vs_sparsity(states)))
        outcomes = outcome_nodes(exp)
        for series in ("loss", "val_accuracy"):
            try:
                figures.append(_png(learning_curves(outcomes, series), f"learning curve: {series}"))
            except AnalysisError:  # no recipe logged it
                pass
    else:
        parts.append(_section("Outcomes", "<p>No outcome states (lineage <code>outcome=True</code>) are stored; "
                                          "a study marks the states it analyses.</p>"))
    try:
        classes = class_frame(exp) if len(states) else None
    except AnalysisError as err:
        classes = None
        parts.append(_section("Per-class analysis", f"<p>{_e(err)}</p>"))
    if classes is not None and (classes["technique"] != "none").any():
        classes["population"] = classes["population"].map(population_labels(classes["population"]))
        covered = any(covers_metric(r["metrics"], "evaluate", "test") for r in confirmed)
        parts.append(_per_class_html(classes, states, covered, figures))
        formula = next((r["formula"] for r in confirmed if r["formula"]), None)
        parts.append(_regression_html(classes, formula, covered, figures))
        figures.insert(1, _png(class_change_heatmap(classes)))
    figures.append(_graph_image(exp))
    parts.insert(4, _section("Figures", "\n".join(figures)))
    tags = Counter(tag for node in exp.graph.nodes for tag in node.tags)
    parts.append(_section("Tags", "<table><tr><th>tag</th><th>states</th></tr>" + "".join(
        f"<tr><td>{_e(t)}</td><td>{n}</td></tr>" for t, n in sorted(tags.items())) + "</table>"))
    parts.append(_section("Environment and how to reproduce", _environment_html(exp)))
    page = (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>prunelab report: "
            f"{_e(exp.directory.name)}</title><style>{_STYLE}</style></head><body>{''.join(parts)}</body></html>")
    target.write_text(page, encoding="utf-8")
    return target


def _prereg_html(exp: Experiment, regs: list[dict[str, Any]]) -> str:
    rows = "".join(
        f"<tr><td>{_e(r['name'])}</td><td><code>{_e(r['digest'][:16])}</code></td>"
        f"<td class='{'edited' if r['status'] == 'edited' else ''}'>{_e(r['status'])}: {_e(r['why'])}</td>"
        f"<td>{'late' if r['late'] else 'on time'}</td><td>{_e(', '.join(r['metrics']))}</td>"
        f"<td>{_e(', '.join(r['nodes']) or 'all')}</td><td>{_e('; '.join(r['hypotheses']))}</td>"
        f"<td>{_e(r['formula'] or '')}</td><td>{r['alpha']:g}</td></tr>" for r in regs)
    body = ("<table><tr><th>name</th><th>digest</th><th>status</th><th>registered</th><th>metrics</th>"
            f"<th>nodes</th><th>hypotheses</th><th>formula</th><th>alpha</th></tr>{rows}</table>" if regs else
            "<p>No pre-registration: every finding below is exploratory.</p>")
    blinds = exp.graph.prereg.blinds
    if blinds:
        withheld = sorted({m for b in blinds for m in b.get("metrics") or []})
        body += f"<p>Blinded until unblinding: {_e(', '.join(withheld))} (shown nowhere in this report).</p>"
    return body


def _per_class_html(classes: pandas.DataFrame, states: pandas.DataFrame, covered: bool, figures: list[str]) -> str:
    from .plots import pareto_plot

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # SciPy on populations with equal values
        welch = welch_per_class(classes)
    hurt = welch[welch["reject"] & (welch["difference"] < 0)]
    spread = disparity(classes)
    merged = states.merge(spread, on="state_id")
    figures.append(_png(pareto_plot(merged[merged["technique"] != "none"])))
    by_comparison = merged[merged["technique"] != "none"].groupby(["technique", "treatment", "round"]).agg(
        worst_drop=("worst_drop", "mean"), range=("range", "mean"), gini=("gini", "mean"),
        excess_loss_gap=("excess_loss_gap", "mean")).reset_index()
    return (_section("Per-class tests", f"{_label(covered)} <p>Welch's t-test per class, pruned against "
                     "unpruned test accuracy over training runs, Benjamini–Hochberg within each comparison. "
                     f"{len(hurt)} of {len(welch)} (comparison, class) pairs lost accuracy significantly.</p>"
                     + _table(hurt if len(hurt) else welch.head(20)))
            + _section("Disparity between classes (mean over training runs)", _table(by_comparison)))


def _regression_html(classes: pandas.DataFrame, formula: str | None, covered: bool, figures: list[str]) -> str:
    from .plots import coefficient_plot

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the result lists its warnings; they are shown below
            result = prune_responsibly_model(classes, formula)
    except AnalysisError as err:
        return _section("Prune Responsibly regression", f"<p>{_e(err)}</p>")
    figures.append(_png(coefficient_plot(result)))
    notes = "".join(f"<li>{_e(w)}</li>" for w in result.warnings)
    return _section("Prune Responsibly regression",
                    f"{_label(covered and formula is not None)} <p><code>{_e(result.formula)}</code>: {result.n} "
                    f"rows, {result.clusters} training runs, errors clustered by run.</p>"
                    + _table(result.table) + "<h3>F-test per term</h3>" + _table(result.factor_tests)
                    + "<h3>Binomial GLM check</h3>" + _table(result.glm)
                    + (f"<ul class='note'>{notes}</ul>" if notes else ""))


def _environment_html(exp: Experiment) -> str:
    runs = exp.graph.runs
    if not runs or not runs[-1].get("environment"):
        return "<p>No run recorded yet.</p>"
    last = runs[-1]
    env = exp.store.logs.environment(last["environment"])
    if "damaged" in env:
        return f"<p>The environment record is damaged: {html.escape(env['damaged'])}</p>"
    packages = ", ".join(f"{k} {v}" for k, v in sorted((env.get("packages") or {}).items()))
    git = env.get("git") or {}
    rows = [("Python", f"{env.get('implementation', '')} {env.get('python', '')}"), ("OS", env.get("os", "")),
            ("CPUs", env.get("cpu_count", "")), ("torch", (env.get("torch") or {}).get("version", "")),
            ("packages", packages), ("script", env.get("script", "")),
            ("git", f"{git.get('commit', 'not a git checkout')}{' (uncommitted changes)' if git.get('dirty') else ''}"),
            ("threads", last.get("threads")), ("deterministic", last.get("deterministic")),
            ("runs", len(runs))]
    table = "<table>" + "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows) + "</table>"
    steps = ("<ol><li>Install the packages above (<code>pip install -c constraints.txt .</code> in the prunelab "
             "checkout that made this).</li><li>Check out the script's commit and run it: finished states are "
             "not recomputed, and a fresh directory reproduces them (seeds derive from state ids).</li></ol>")
    return table + steps
