"""Drawing benchmarks: Graphviz in full at the size threshold, summarised at 20,000 states.

Workload D1: 20 roots (one per seed, tagged ``seed=K``), each with a fan-out of
37 ``Prune`` recipes, each followed by a chain of 26 ``Train`` recipes: 20 x
(1 + 37 x 27) = 20,000 states, no tensors stored, every recipe a no-op. One
root's subtree is 1,000 states, the size up to which ``draw`` lays out one box
per state (``prunelab.core.draw.MAX_NODES``). Before issue 12, drawing ~22,000
states this way took 167 s; the target is under 10 s at 20,000.
"""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import save, timed_script  # noqa: E402

ROOTS, FAN_OUT, CHAIN = 20, 37, 26

DRAW = """
import sys, time, warnings
import prunelab as pl
from prunelab.core.draw import MAX_NODES
directory, target, tag, expected = sys.argv[1:5]
exp = pl.Experiment.restore(directory)
nodes = exp.graph.nodes.filter(tag) if tag else None
drawn = len(nodes) if nodes is not None else len(exp.graph.nodes)
start = time.perf_counter()
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    exp.graph.draw(target, nodes=nodes)
elapsed = time.perf_counter() - start
summarised = any(issubclass(w.category, pl.PrunelabWarning) for w in caught)
assert summarised == (expected == "summarised"), (drawn, MAX_NODES, [str(w.message) for w in caught])
print(drawn)
print(elapsed)
"""

TEXT_TREE = """
import sys, time
import prunelab as pl
from prunelab.core.draw import text_tree
exp = pl.Experiment.restore(sys.argv[1])
start = time.perf_counter()
lines = text_tree(exp.graph).count("\\n") + 1
elapsed = time.perf_counter() - start
assert lines == len(exp.graph.nodes), lines
print(elapsed)
"""


def build_d1(directory: Path) -> int:
    """Workload D1 (see the module docstring); return its number of states."""
    import prunelab as pl

    class Seeded(pl.ExperimentState):
        PROPERTIES = ["seed"]

    class Prune(pl.Recipe):
        PROPERTIES = ["amount"]

        def run(self, state):
            return state

    class Train(pl.Recipe):
        PROPERTIES = ["epoch"]

        def run(self, state):
            return state

    exp = pl.Experiment(directory, Seeded)
    for seed in range(ROOTS):
        with exp.tag(f"seed={seed}"):
            root = exp.spawn_new_tree(seed=seed)
            for i in range(FAN_OUT):
                node = Prune(amount=i / FAN_OUT)(root)
                for epoch in range(CHAIN):
                    node = Train(epoch=epoch)(node)
    exp.run(quiet=True)
    return len(exp.graph.nodes)


def bench_draw(reps: int = 3) -> dict:
    """Median seconds of ``Graph.draw`` to SVG: one root's subtree in full, and all of D1 summarised."""
    from prunelab.core.draw import MAX_NODES

    tmp = Path(tempfile.mkdtemp(prefix="prunelab-bench-"))
    start = time.perf_counter()
    states = build_d1(tmp / "exp")
    build_s = time.perf_counter() - start
    exp, svg = str(tmp / "exp"), str(tmp / "graph.svg")
    timed_script(TEXT_TREE, exp)  # validates the index once, like any first open
    full = [timed_script(DRAW, exp, svg, "seed=0", "full") for _ in range(reps)]
    summarised = [timed_script(DRAW, exp, svg, "", "summarised") for _ in range(reps)]
    text = [timed_script(TEXT_TREE, exp) for _ in range(reps)]
    shutil.rmtree(tmp)
    return {"states": states, "max_nodes": MAX_NODES, "full_states": 1 + FAN_OUT * (1 + CHAIN),
            "full_at_threshold_s": statistics.median(full), "summarised_s": statistics.median(summarised),
            "text_tree_s": statistics.median(text), "build_s": build_s,
            "raw": {"full_s": full, "summarised_s": summarised, "text_tree_s": text}}


def main() -> dict:
    """Run the drawing benchmark, print the figures against their targets, save them."""
    figures = bench_draw()
    print("draw (Graphviz SVG, fresh interpreter per run, medians of 3; timed from an opened experiment)")
    print(f"  workload D1: {figures['states']:,} states built in {figures['build_s']:.1f} s")
    print(f"  in full, {figures['full_states']:,} states (max_nodes={figures['max_nodes']:,}): "
          f"{figures['full_at_threshold_s']:.2f} s   (target: well under 10 s)")
    print(f"  summarised, {figures['states']:,} states: {figures['summarised_s']:.2f} s   "
          "(target: < 10 s; 167 s in full before issue 12)")
    print(f"  text tree, {figures['states']:,} states: {figures['text_tree_s']:.2f} s")
    print(f"  saved to {save('core_draw', figures)}")
    return figures


if __name__ == "__main__":
    main()
