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
