"""Scale (a 10,000-deep chain) and drawing: text, Graphviz SVG, matplotlib PNG."""

from __future__ import annotations

import io
import shutil
import sys

import pytest

import prunelab as pl


class Counter(pl.ExperimentState):
    PROPERTIES = ["start"]
    NONHASHED_ATTRIBUTES = ["value"]

    def initialize_state(self):
        self.value = self.start


class Increment(pl.Recipe):
    PROPERTIES = ["step"]

    def run(self, state):
        state.value += 1
        return state


def test_a_10000_deep_chain_runs_restores_and_prints(exp_dir):
    limit = sys.getrecursionlimit()
    exp = pl.Experiment(exp_dir, Counter)
    node = exp.spawn_new_tree(start=0)
    for i in range(10_000):
        node = Increment(step=i)(node)
    exp.run(quiet=True)
    assert node.status == "done" and node.depth == 10_000
    restored = pl.Experiment.restore(exp_dir, Counter)
    deepest = restored.graph.node(node.id)
    assert deepest.restore().value == 10_000
    assert len(pl.NodeSet([deepest]).ancestors()) == 10_000
    out = io.StringIO()
    restored.graph.print(file=out)
    lines = out.getvalue().splitlines()
    assert len(lines) == 10_001 and lines[-1].lstrip().startswith(f"{node.id[:8]} d10000 Increment(step=9999)")
    assert sys.getrecursionlimit() == limit


def small_graph(exp_dir):
    exp = pl.Experiment(exp_dir, Counter)
    root = exp.spawn_new_tree(start=1)
    with exp.tag("<script>alert(1)</script>"):
        child = Increment(step=1)(root)
    with exp.tag('say "hi" \\ bye'):
        Increment(step=2)(child)
    exp.run(quiet=True)
    return exp


def test_print_shows_id_prefix_depth_tags_recipe_and_status(exp_dir):
    exp = small_graph(exp_dir)
    out = io.StringIO()
    exp.graph.print(file=out)
    lines = out.getvalue().splitlines()
    child = [n for n in exp.graph.nodes if n.depth == 1][0]
    assert lines[0].startswith(f"{exp.graph.nodes.filter(start=1)[0].id[:8]} d0 root(start=1) done")
    assert lines[1] == f"  {child.id[:8]} d1 Increment(step=1) [<script>alert(1)</script>] done"


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed (apt-get install graphviz)")
def test_draw_writes_svg_through_graphviz_with_user_strings_escaped(exp_dir, tmp_path):
    exp = small_graph(exp_dir)
    path = tmp_path / "graph.svg"
    exp.graph.draw(path)
    svg = path.read_text()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    for node in exp.graph.nodes:
        assert node.id[:8] in svg
    assert "<script>" not in svg and "&lt;script&gt;alert(1)&lt;/script&gt;" in svg
    assert "say &quot;hi&quot; \\ bye" in svg
    assert exp.graph._repr_svg_().count("<svg") == 1  # notebooks display it inline


def test_draw_falls_back_to_matplotlib_without_graphviz(exp_dir, tmp_path, monkeypatch):
    exp = small_graph(exp_dir)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))  # no dot on the PATH
    assert shutil.which("dot") is None
    path = tmp_path / "graph.png"
    exp.graph.draw(path)
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 2000
    svg = exp.graph.draw()
    assert "<svg" in svg and "<script>" not in svg


def test_draw_refuses_an_unknown_format(exp_dir, tmp_path):
    exp = small_graph(exp_dir)
    with pytest.raises(pl.StateDefinitionError, match="draw\\(\\) writes svg, png, pdf; got a path ending in 'gif'"):
        exp.graph.draw(tmp_path / "graph.gif")


# ------------------------------------------------- crafted ids (issue 12, item 5)
CRAFTED_IDS = ['x [URL="javascript:alert(1)"]; ny', 'z -> evil [URL="javascript:alert(2)", target="_top"]; nq',
               "0123456789ABCDEF0123456789ABCDEF"]  # valid DOT as today's names were written; upper case is no id
DOT_NAME = r'"(?:n[0-9a-f]{32}|x\d+|g\d+)"'
DOT_STRING = r'"(?:[^"\\\n]|\\.)*"'


def crafted_graph(exp_dir):
    """The small graph plus states whose ids are crafted DOT, one under a real state and one under a crafted one."""
    exp = small_graph(exp_dir)
    root = exp.graph.nodes.filter(start=1)[0]
    parent = root.id
    for crafted in CRAFTED_IDS:
        exp.graph.declare(crafted, parent)
        parent = crafted
    exp.graph.declare("f" * 32, parent)  # a well-formed id below the crafted ones
    return exp


def test_dot_names_are_quoted_ids_and_a_crafted_id_is_never_dot_syntax(exp_dir):
    import re

    from prunelab.core.draw import to_dot

    exp = crafted_graph(exp_dir)
    lines = to_dot(exp.graph).splitlines()
    body = lines[2:-1]
    node_line = re.compile(rf"  {DOT_NAME} \[label={DOT_STRING}, fillcolor=\"#[0-9a-f]{{6}}\"\];")
    edge_line = re.compile(rf"  {DOT_NAME} -> {DOT_NAME};")
    assert lines[0] == "digraph prunelab {" and lines[-1] == "}"
    assert all(node_line.fullmatch(line) or edge_line.fullmatch(line) for line in body), body
    assert sum(1 for line in body if node_line.fullmatch(line)) == len(exp.graph.nodes)
    assert sum(1 for line in body if edge_line.fullmatch(line)) == len(exp.graph.nodes) - 1
    assert f'"n{"f" * 32}"' in "\n".join(body)  # a well-formed id stays the box's name


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed (apt-get install graphviz)")
def test_a_crafted_id_writes_no_link_into_the_svg(exp_dir, tmp_path):
    exp = crafted_graph(exp_dir)
    path = tmp_path / "graph.svg"
    exp.graph.draw(path)
    svg = path.read_text()
    assert "javascript" not in svg and "href" not in svg and 'target="_top"' not in svg
    assert svg.count('class="node"') == len(exp.graph.nodes) and svg.count('class="edge"') == len(exp.graph.nodes) - 1


# ------------------------------------- control characters in user strings (item 6)
UNSAFE = [*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
FORGED_TAGS = ["a\n0123abcd d0 root() done", "\x1b[31mred", "\u202eevil", "\x9b2J", "p\u2028q", "t\tu\rv"]


class Forged(pl.Recipe):
    NAME = "Forged\x1b]8;;javascript:x\x07link\x1b]8;;\x07\nfake 1 2"
    PROPERTIES = ["text"]

    def run(self, state):
        return state


def forged_graph(exp_dir):
    exp = pl.Experiment(exp_dir, Counter)
    root = exp.spawn_new_tree(start=0)
    node = root
    for tag in FORGED_TAGS:
        with exp.tag(tag):
            node = Forged(text=tag)(node)
    exp.run(quiet=True)
    return exp


def assert_printable(text):
    bad = sorted({f"U+{ord(c):04X}" for c in text if ord(c) in UNSAFE})
    assert not bad, bad


def test_text_tree_shows_control_characters_as_escapes_one_line_per_node(exp_dir):
    exp = forged_graph(exp_dir)
    out = io.StringIO()
    exp.graph.print(file=out)
    text = out.getvalue()
    lines = text.splitlines()  # splits at \r, \x1c-\x1e, \x85, \u2028 too
    assert len(lines) == len(exp.graph.nodes) == 1 + len(FORGED_TAGS)
    assert_printable(text.rstrip("\n").replace("\n", ""))
    assert "[a\\n0123abcd d0 root() done]" in lines[1] and lines[1].endswith(" done")
    assert "[\\x1b[31mred]" in lines[2] and "[\\u202eevil]" in lines[3] and "[\\x9b2J]" in lines[4]
    assert "[p\\u2028q]" in lines[5] and "[t\\tu\\rv]" in lines[6]
    assert lines[1].lstrip().split(" ", 2)[2].startswith("Forged\\x1b]8;;javascript:x\\x07link\\x1b]8;;\\x07\\nfake 1 2(")
    assert "text='\\x1b[31mred'" in lines[2]  # property values keep their repr escapes, not escaped twice


def test_dot_labels_show_control_characters_as_escapes(exp_dir, tmp_path):
    from prunelab.core.draw import to_dot

    exp = forged_graph(exp_dir)
    dot = to_dot(exp.graph)
    assert len(dot.splitlines()) == 3 + 2 * len(exp.graph.nodes) - 1  # header, a line per box and per edge
    assert_printable(dot.replace("\n", ""))
    assert "[\\\\x1b[31mred]" in dot  # the escape's backslash, DOT-quoted
    if shutil.which("dot") is not None:
        path = tmp_path / "graph.svg"
        exp.graph.draw(path)
        svg = path.read_text()
        assert_printable(svg.replace("\n", ""))
        assert "[\\x1b[31mred]" in svg and "[a\\n0123abcd d0 root() done]" in svg


# ---------------------------------------------- summarised large graphs (item 23)
def wide_graph(exp_dir):
    """Two roots, each with 3 Increment children, each child with a chain of 2: 2 + 6 + 12 = 20 states."""
    exp = pl.Experiment(exp_dir, Counter)
    for start in (0, 1):
        with exp.tag(f"start={start}"):
            root = exp.spawn_new_tree(start=start)
            for step in range(3):
                with exp.tag("a-very-long-tag-that-is-cut-short-" + str(step)):
                    node = Increment(step=step)(root)
                    for _ in range(2):
                        node = Increment(step=10)(node)
    exp.run(quiet=True)
    return exp


SUMMARY_NOTE = ("20 states are more than max_nodes=5, so they were drawn as 4 groups (one box per recipe path from "
                "the root); to draw a part in full, select at most 5 states (`prunelab draw --tag PATTERN`, or "
                "`nodes=` in Python).")


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed (apt-get install graphviz)")
def test_a_graph_above_max_nodes_is_drawn_as_one_box_per_recipe_path(exp_dir, tmp_path):
    from prunelab.core.draw import draw

    exp = wide_graph(exp_dir)
    path = tmp_path / "graph.svg"
    with pytest.warns(pl.PrunelabWarning) as caught:
        draw(exp.graph, path, max_nodes=5)
    assert [str(w.message) for w in caught] == [SUMMARY_NOTE]
    svg = path.read_text()
    assert svg.count('class="node"') == 4 and svg.count('class="edge"') == 3
    assert "20 states summarised as 4 groups" in svg
    assert ">root Counter<" in svg and ">2 states: 2 done<" in svg and ">6 states: 6 done<" in svg
    assert svg.count(">Increment<") == 3
    cut_tags = ", ".join(f"a-very-long…-cut-short-{step}" for step in range(3))
    assert svg.replace("&#45;", "-").count(f">[{cut_tags}] +2 more<") == 3  # each tag cut in the middle
    assert not any(n.id[:8] in svg for n in exp.graph.nodes)


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed (apt-get install graphviz)")
def test_recipe_paths_past_the_cut_share_one_box(exp_dir, tmp_path):
    from prunelab.core.draw import draw

    exp = wide_graph(exp_dir)
    with pytest.warns(pl.PrunelabWarning, match="drawn as 3 groups .one box per recipe path from the root, the paths "
                                                "cut after 2 steps.; to draw a part in full, select at most 3 states"):
        svg = draw(exp.graph, None, max_nodes=3)
    assert svg.count('class="node"') == 3 and ">… (deeper states)<" in svg and ">12 states: 12 done<" in svg
    with pytest.warns(pl.PrunelabWarning, match="drawn as 1 group .one box for all of them.;"):
        svg = draw(exp.graph, None, max_nodes=1)
    assert svg.count('class="node"') == 1 and ">(all states)<" in svg and ">20 states: 20 done<" in svg


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed (apt-get install graphviz)")
def test_a_graph_within_max_nodes_or_a_part_of_it_is_drawn_in_full(exp_dir, tmp_path):
    import warnings

    from prunelab.core.draw import draw

    exp = wide_graph(exp_dir)
    part = exp.graph.nodes.filter("start=1")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        svg = exp.graph.draw()
        svg_part = draw(exp.graph, None, part, max_nodes=len(part))
    assert svg.count('class="node"') == 20 and all(n.id[:8] in svg for n in exp.graph.nodes)
    assert svg_part.count('class="node"') == len(part) == 10 and all(n.id[:8] in svg_part for n in part)


def test_a_summarised_graph_falls_back_to_matplotlib_without_graphviz(exp_dir, tmp_path, monkeypatch):
    from prunelab.core.draw import draw

    exp = wide_graph(exp_dir)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    path = tmp_path / "graph.png"
    with pytest.warns(pl.PrunelabWarning, match="drawn as 4 groups"):
        draw(exp.graph, path, max_nodes=5)
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 2000


@pytest.mark.parametrize("bad", [0, -1, True, 2.5, "10"])
def test_draw_refuses_a_bad_max_nodes(exp_dir, bad):
    from prunelab.core.draw import draw

    exp = small_graph(exp_dir)
    with pytest.raises(pl.StateDefinitionError, match="draw\\(\\) max_nodes must be a positive int, got "):
        draw(exp.graph, None, max_nodes=bad)
