"""Render the experiment graph as text, DOT/Graphviz or matplotlib.

User strings (tags, property values) are escaped in every rendering: DOT
quoting here, and SVG/XML escaping by Graphviz and matplotlib themselves.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import StateDefinitionError

if TYPE_CHECKING:
    from .graph import Graph
    from .nodes import Node, NodeSet

__all__ = ["text_tree", "to_dot", "draw"]

_MAX_INDENT = 24  # deeper levels keep this indent; the depth column still tells
_FORMATS = ("svg", "png", "pdf")


def _label(node: Node) -> tuple[str, str, str]:
    recipe = node.record.get("recipe")
    if recipe is None:
        props = node.record.get("properties") or {}
        what = "root(" + ", ".join(f"{k}={v!r}" for k, v in props.items()) + ")"
    else:
        props = recipe.get("properties") or {}
        what = f"{recipe['name']}(" + ", ".join(f"{k}={v!r}" for k, v in props.items()) + ")"
    tags = ",".join(sorted(node.tags))
    return what, tags, node.status


def _walk(graph: Graph, nodes: NodeSet | None) -> list[tuple[int, Node]]:
    """Depth-first order of the graph (or of ``nodes``), iteratively: (level, node)."""
    keep = None if nodes is None else {n.id for n in nodes}
    out: list[tuple[int, Node]] = []
    stack = [(0, n) for n in reversed(graph.roots())]
    while stack:
        level, node = stack.pop()
        if keep is None or node.id in keep:
            out.append((level, node))
        stack.extend((level + 1, c) for c in reversed(graph.children_of(node.id)))
    return out


def text_tree(graph: Graph, nodes: NodeSet | None = None) -> str:
    """Return the tree as lines of ``id-prefix depth recipe [tags] status``."""
    lines = []
    for level, node in _walk(graph, nodes):
        what, tags, status = _label(node)
        indent = "  " * min(level, _MAX_INDENT)
        lines.append(f"{indent}{node.id[:8]} d{node.depth} {what}{' [' + tags + ']' if tags else ''} {status}")
    return "\n".join(lines) if lines else "(empty experiment)"


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def to_dot(graph: Graph, nodes: NodeSet | None = None) -> str:
    """Return the graph in Graphviz DOT, with every user string quoted."""
    walked = _walk(graph, nodes)
    shown = {n.id for _, n in walked}
    colours = {"done": "#d8f0d8", "failed": "#f4c7c3", "stale": "#fce8b2", "declared": "#ffffff",
               "skipped": "#eeeeee", "running": "#c6dafc"}
    lines = ["digraph prunelab {", '  rankdir=TB; node [shape=box, style="rounded,filled", fontname="Helvetica"];']
    for _, node in walked:
        what, tags, status = _label(node)
        label = f"{node.id[:8]}\n{what}" + (f"\n[{tags}]" if tags else "") + f"\n{status}"
        lines.append(f"  n{node.id} [label={_quote(label)}, fillcolor={_quote(colours.get(status, '#ffffff'))}];")
        if node.parent_id in shown:
            lines.append(f"  n{node.parent_id} -> n{node.id};")
    lines.append("}")
    return "\n".join(lines)


def draw(graph: Graph, path: str | Path | None, nodes: NodeSet | None = None) -> str | None:
    """Render to ``path`` (format from its suffix) or return SVG text when ``path`` is None."""
    fmt = "svg" if path is None else Path(path).suffix.lstrip(".").lower()
    if fmt not in _FORMATS:
        raise StateDefinitionError(f"draw() writes {', '.join(_FORMATS)}; got a path ending in {fmt!r}.")
    dot = shutil.which("dot")
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(path) if path is not None else Path(tmp) / "graph.svg"
        if dot is not None:
            subprocess.run([dot, f"-T{fmt}", "-o", str(target)], input=to_dot(graph, nodes).encode(),
                           check=True, capture_output=True)
        else:
            _draw_matplotlib(graph, nodes, target, fmt)
        return target.read_text(encoding="utf-8") if path is None else None


def _draw_matplotlib(graph: Graph, nodes: NodeSet | None, target: Path, fmt: str) -> None:
    from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global state

    walked = _walk(graph, nodes)
    shown = {n.id for _, n in walked}
    kids: dict[str, list[str]] = {}
    for _, node in walked:
        if node.parent_id in shown:
            kids.setdefault(node.parent_id, []).append(node.id)
    position: dict[str, tuple[float, float]] = {}
    leaves = 0
    for level, node in walked:  # leaves in depth-first order get consecutive columns
        if node.id not in kids:
            position[node.id] = (float(leaves), -float(level))
            leaves += 1
    for level, node in reversed(walked):  # a parent sits above the middle of its children
        if node.id in kids:
            xs = [position[k][0] for k in kids[node.id]]
            position[node.id] = ((min(xs) + max(xs)) / 2, -float(level))
    width = max(4.0, min(2.8 * max(leaves, 1), 200.0))
    height = max(3.0, min(1.3 * (max((lv for lv, _ in walked), default=0) + 1), 200.0))
    fig = Figure(figsize=(width, height))
    ax = fig.add_subplot()
    ax.axis("off")
    for _, node in walked:
        x, y = position[node.id]
        if node.parent_id in position:
            px, py = position[node.parent_id]
            ax.plot([px, x], [py, y], color="#888888", linewidth=0.8, zorder=1)
        what, tags, status = _label(node)
        text = f"{node.id[:8]}\n{what}" + (f"\n[{tags}]" if tags else "") + f"\n{status}"
        ax.text(x, y, text, ha="center", va="center", fontsize=7, zorder=2,
                bbox={"boxstyle": "round", "facecolor": "#f5f5f5", "edgecolor": "#888888"})
    ax.set_xlim(-0.6, max(leaves, 1) - 0.4)
    ax.set_ylim(min((p[1] for p in position.values()), default=0) - 0.6, 0.6)
    fig.savefig(target, format=fmt, bbox_inches="tight")
