"""Render the experiment graph as text, DOT/Graphviz or matplotlib.

User strings (ids, tags, recipe names, property values, statuses) are made
printable in every rendering: control characters and bidi overrides are shown
as escapes (``\\n``, ``\\x1b``, ``\\u202e``), so a node is always one line of
text and never sends a terminal sequence. DOT names and labels are quoted, only
a well-formed id (32 lowercase hex characters) is ever part of a DOT name, and
Graphviz and matplotlib escape SVG/XML themselves.

Graphviz's layout grows about quadratically with the number of boxes, so a
graph of more than ``max_nodes`` states is drawn summarised: one box per recipe
path from the root, with a :class:`~prunelab.core.errors.PrunelabWarning` that
says so.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import PrunelabWarning, StateDefinitionError
from .records import Status

if TYPE_CHECKING:
    from .graph import Graph
    from .nodes import Node
    from .nodeset import NodeSet

__all__ = ["text_tree", "to_dot", "draw", "MAX_NODES"]

MAX_NODES = 1000
"""Above this many states :func:`draw` summarises. Graphviz lays out 1,000 boxes in ~0.25 s on two cores (4,000 in
~2 s, 8,000 in ~8 s), and matplotlib, without Graphviz, draws 1,000 in 3 s (SVG) to 9 s (PNG)."""

_MAX_INDENT = 24  # deeper levels keep this indent; the depth column still tells
_FORMATS = ("svg", "png", "pdf")
_ID = re.compile("[0-9a-f]{32}")
# C0 and C1 controls, DEL, the line and paragraph separators, and the bidi embeddings, overrides and isolates
_UNSAFE = [*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
_ESCAPES = {c: chr(c).encode("unicode_escape").decode("ascii") for c in _UNSAFE}
_COLOURS: dict[str, str] = {Status.DONE: "#d8f0d8", Status.FAILED: "#f4c7c3", Status.STALE: "#fce8b2", Status.DECLARED: "#ffffff",
            Status.SKIPPED: "#eeeeee", Status.RUNNING: "#c6dafc"}
_STATUS_ORDER = (Status.DONE, Status.FAILED, Status.STALE, Status.RUNNING, Status.SKIPPED, Status.DECLARED)
_GROUP_TAGS = 3  # tags shown per group box
_TAG_WIDTH = 24  # characters kept of each


@dataclass(frozen=True)
class _Box:
    """One box of a drawing: a state, or a group of states when summarised."""

    name: str  # its DOT name: ``n`` + a well-formed id, else a counter
    level: int  # rows below the top
    label: str  # printable lines
    status: str  # picks the fill colour
    parent: str | None  # the box drawn above it, with an edge to it


def _printable(text: str) -> str:
    """``text`` with every control character and bidi override shown as its escape."""
    return text.translate(_ESCAPES)


def _label(node: Node) -> tuple[str, str, str]:
    """A node's ``recipe(properties)`` (or ``root(...)``), its tags and its status, all printable."""
    recipe = node.record.get("recipe")
    if recipe is None:
        props = node.record.get("properties") or {}
        what = "root(" + ", ".join(f"{k}={v!r}" for k, v in props.items()) + ")"
    else:
        props = recipe.get("properties") or {}
        what = f"{recipe['name']}(" + ", ".join(f"{k}={v!r}" for k, v in props.items()) + ")"
    tags = ",".join(sorted(node.tags))
    return _printable(what), _printable(tags), _printable(node.status)


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
    """Return the tree as lines of ``id-prefix depth recipe [tags] status``, one line per node."""
    lines = []
    for level, node in _walk(graph, nodes):
        what, tags, status = _label(node)
        indent = "  " * min(level, _MAX_INDENT)
        lines.append(f"{indent}{_printable(node.id[:8])} d{node.depth} {what}{' [' + tags + ']' if tags else ''} "
                     f"{status}")
    return "\n".join(lines) if lines else "(empty experiment)"


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _state_boxes(walked: list[tuple[int, Node]]) -> list[_Box]:
    """One box per state; a state whose id is malformed is drawn under a counter name."""
    names: dict[str, str] = {}
    boxes = []
    for i, (level, node) in enumerate(walked):
        name = f"n{node.id}" if _ID.fullmatch(node.id) else f"x{i}"
        names[node.id] = name
        what, tags, status = _label(node)
        label = f"{_printable(node.id[:8])}\n{what}" + (f"\n[{tags}]" if tags else "") + f"\n{status}"
        parent = names.get(node.parent_id) if node.parent_id is not None else None
        boxes.append(_Box(name, level, label, status, parent))
    return boxes


def _dot(boxes: list[_Box], title: str | None = None) -> str:
    """The boxes in Graphviz DOT, every name and attribute quoted."""
    lines = ["digraph prunelab {", '  rankdir=TB; node [shape=box, style="rounded,filled", fontname="Helvetica"];']
    if title is not None:
        lines.append(f'  labelloc="t"; fontname="Helvetica"; label={_quote(title)};')
    for box in boxes:
        colour = _COLOURS.get(box.status, "#ffffff")
        lines.append(f"  {_quote(box.name)} [label={_quote(box.label)}, fillcolor={_quote(colour)}];")
        if box.parent is not None:
            lines.append(f"  {_quote(box.parent)} -> {_quote(box.name)};")
    lines.append("}")
    return "\n".join(lines)


def to_dot(graph: Graph, nodes: NodeSet | None = None) -> str:
    """Return the graph (or ``nodes``) in Graphviz DOT, one box per state, with every user string quoted."""
    return _dot(_state_boxes(_walk(graph, nodes)))


@dataclass
class _Group:
    """States that share a recipe path from the top (or, below a cut, a path prefix)."""

    title: str
    depth: int  # steps below the top group
    parent: int | None  # index of the group above
    has_children: bool = False
    states: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    tags: set[str] = field(default_factory=set)


def _step(node: Node) -> tuple[str, str]:
    """The key of a state's last step on its recipe path: (kind, printable name)."""
    record = node.record
    recipe = record.get("recipe")
    if recipe is None:
        return "root", _printable(f"root {record.get('state_class', '?')}")
    return "recipe", _printable(str(recipe.get("name", "?")))


def _recipe_paths(walked: list[tuple[int, Node]]) -> tuple[list[_Group], list[int]]:
    """Group the walked states by recipe path, as a trie; return the groups and each state's group.

    A state whose parent is not drawn starts a path of its own. Each state
    extends its parent's group by one step, so the trie is built in one pass,
    linear in the number of states whatever their depth.
    """
    groups: list[_Group] = []
    index: dict[tuple[int | None, str, str], int] = {}
    of_id: dict[str, int] = {}
    of_state = []
    for _, node in walked:  # a parent comes before its children
        parent = of_id.get(node.parent_id) if node.parent_id is not None else None
        key = (parent, *_step(node))
        found = index.get(key)
        if found is None:
            found = index[key] = len(groups)
            groups.append(_Group(key[2], 0 if parent is None else groups[parent].depth + 1, parent))
            if parent is not None:
                groups[parent].has_children = True
        of_id[node.id] = found
        of_state.append(found)
    return groups, of_state


def _depth_cut(groups: list[_Group], max_nodes: int) -> int | None:
    """The deepest level ``d`` such that the groups down to ``d``, plus one box per group at ``d`` for all
    its deeper states, number at most ``max_nodes``: -1 for a single box, None when no cut is needed."""
    if len(groups) <= max_nodes:
        return None
    at: Counter[int] = Counter(g.depth for g in groups)
    with_children: Counter[int] = Counter(g.depth for g in groups if g.has_children)
    shown = 0
    cut = -1
    for depth in range(max(at) + 1):
        shown += at[depth]
        if shown + with_children[depth] > max_nodes:
            break
        cut = depth
    return cut


def _cut(groups: list[_Group], cut: int | None) -> tuple[list[_Group], list[int]]:
    """Merge the groups deeper than ``cut`` into one box below their ancestor at ``cut``; return the boxes
    and, per group, the index of the box it is drawn in."""
    boxes: list[_Group] = []
    drawn_in: list[int] = []
    below: dict[int | None, int] = {}  # a box at the cut (None: the top) -> its box of deeper states
    for group in groups:  # a parent comes before its children
        parent = None if group.parent is None else drawn_in[group.parent]
        if cut is None or group.depth <= cut:
            drawn_in.append(len(boxes))
            boxes.append(_Group(group.title, group.depth, parent))
        elif group.depth == cut + 1:
            if parent not in below:
                below[parent] = len(boxes)
                boxes.append(_Group("(all states)" if cut < 0 else "… (deeper states)", cut + 1, parent))
            drawn_in.append(below[parent])
        else:
            assert parent is not None  # below the cut, so not at the top
            drawn_in.append(parent)
    return boxes, drawn_in


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _shorten(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters in the middle, where tags sharing a prefix and a suffix differ least."""
    if len(text) <= width:
        return text
    head = (width - 1) // 2
    return text[:head] + "…" + text[len(text) - (width - 1 - head):]


def _group_label(group: _Group) -> str:
    """Title, number of states, count per status and a few (truncated) tags."""
    statuses = group.statuses
    order = [s for s in _STATUS_ORDER if s in statuses] + sorted(set(statuses) - set(_STATUS_ORDER))
    counts = ", ".join(f"{statuses[s]:,} {s}" for s in order)
    lines = [group.title, f"{_count(group.states, 'state')}: {counts}"]
    tags = sorted(group.tags)
    if tags:
        shown = [_shorten(t, _TAG_WIDTH) for t in tags[:_GROUP_TAGS]]
        more = f" +{len(tags) - _GROUP_TAGS:,} more" if len(tags) > _GROUP_TAGS else ""
        lines.append(f"[{', '.join(shown)}]{more}")
    return "\n".join(lines)


def _group_boxes(walked: list[tuple[int, Node]], max_nodes: int) -> tuple[list[_Box], int | None]:
    """At most ``max_nodes`` boxes summarising the walked states, and the depth cut (see :func:`_depth_cut`)."""
    groups, of_state = _recipe_paths(walked)
    cut = _depth_cut(groups, max_nodes)
    shown, drawn_in = _cut(groups, cut)
    for (_, node), trie_group in zip(walked, of_state):
        box = shown[drawn_in[trie_group]]
        box.states += 1
        box.statuses[_printable(node.status)] += 1
        box.tags.update(map(_printable, node.tags))
    boxes = []
    for i, group in enumerate(shown):
        parent = None if group.parent is None else f"g{group.parent}"
        boxes.append(_Box(f"g{i}", group.depth, _group_label(group), group.statuses.most_common(1)[0][0], parent))
    return boxes, cut


def _summary_note(states: int, groups: int, cut: int | None, max_nodes: int) -> str:
    """What the summarised drawing shows, and how to draw a part of it in full."""
    if cut is None:
        how = "one box per recipe path from the root"
    elif cut < 0:
        how = "one box for all of them"
    else:
        how = f"one box per recipe path from the root, the paths cut after {cut + 1} steps"
    return (f"{states:,} states are more than max_nodes={max_nodes:,}, so they were drawn as "
            f"{_count(groups, 'group')} ({how}); to draw a part in full, select at most {max_nodes:,} states "
            "(`prunelab draw --tag PATTERN`, or `nodes=` in Python).")


def draw(graph: Graph, path: str | Path | None, nodes: NodeSet | None = None, *,
         max_nodes: int = MAX_NODES) -> str | None:
    """Render to ``path`` (format from its suffix) or return SVG text when ``path`` is None.

    Parameters
    ----------
    graph : Graph
        The experiment graph.
    path : str or Path or None
        Where to write; the suffix picks SVG, PNG or PDF. None returns SVG text.
    nodes : NodeSet, optional
        Draw only these states (default: all).
    max_nodes : int, default=MAX_NODES
        Draw at most this many states one box each. More are summarised: one
        box per recipe path from the root (its name, number of states, count
        per status and a few tags), with a :class:`PrunelabWarning` saying how
        many states became how many groups.

    Returns
    -------
    str or None
        The SVG text when ``path`` is None.
    """
    if not isinstance(max_nodes, int) or isinstance(max_nodes, bool) or max_nodes < 1:
        raise StateDefinitionError(f"draw() max_nodes must be a positive int, got {max_nodes!r}.")
    fmt = "svg" if path is None else Path(path).suffix.lstrip(".").lower()
    if fmt not in _FORMATS:
        raise StateDefinitionError(f"draw() writes {', '.join(_FORMATS)}; got a path ending in {fmt!r}.")
    walked = _walk(graph, nodes)
    title = None
    if len(walked) <= max_nodes:
        boxes = _state_boxes(walked)
    else:
        boxes, cut = _group_boxes(walked, max_nodes)
        title = f"{len(walked):,} states summarised as {_count(len(boxes), 'group')}"
        warnings.warn(_summary_note(len(walked), len(boxes), cut, max_nodes), PrunelabWarning, stacklevel=2)
    dot = shutil.which("dot")
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(path) if path is not None else Path(tmp) / "graph.svg"
        if dot is not None:
            subprocess.run([dot, f"-T{fmt}", "-o", str(target)], input=_dot(boxes, title).encode(),
                           check=True, capture_output=True)
        else:
            _draw_matplotlib(boxes, title, target, fmt)
        return target.read_text(encoding="utf-8") if path is None else None


def _positions(boxes: list[_Box]) -> tuple[dict[str, tuple[float, float]], int]:
    """A tree layout: leaves in depth-first order get consecutive columns, a parent sits above its children."""
    kids: dict[str, list[str]] = {}
    for box in boxes:
        if box.parent is not None:
            kids.setdefault(box.parent, []).append(box.name)
    position: dict[str, tuple[float, float]] = {}
    leaves = 0
    for box in boxes:
        if box.name not in kids:
            position[box.name] = (float(leaves), -float(box.level))
            leaves += 1
    for box in reversed(boxes):  # children come after their parent
        if box.name in kids:
            xs = [position[k][0] for k in kids[box.name]]
            position[box.name] = ((min(xs) + max(xs)) / 2, -float(box.level))
    return position, leaves


def _draw_matplotlib(boxes: list[_Box], title: str | None, target: Path, fmt: str) -> None:
    from matplotlib.collections import LineCollection
    from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global state

    position, leaves = _positions(boxes)
    width = max(4.0, min(2.8 * max(leaves, 1), 200.0))
    height = max(3.0, min(1.3 * (max((b.level for b in boxes), default=0) + 1), 200.0))
    fig = Figure(figsize=(width, height))
    ax = fig.add_subplot()
    ax.axis("off")
    if title is not None:
        ax.set_title(title, fontsize=9)
    edges = [[position[b.parent], position[b.name]] for b in boxes if b.parent is not None]
    ax.add_collection(LineCollection(edges, colors="#888888", linewidths=0.8, zorder=1))
    for box in boxes:
        x, y = position[box.name]
        ax.text(x, y, box.label, ha="center", va="center", fontsize=7, zorder=2,
                bbox={"boxstyle": "round", "facecolor": _COLOURS.get(box.status, "#ffffff"), "edgecolor": "#888888"})
    ax.set_xlim(-0.6, max(leaves, 1) - 0.4)
    ax.set_ylim(min((p[1] for p in position.values()), default=0) - 0.6, 0.6)
    fig.savefig(target, format=fmt, bbox_inches="tight")
