"""Gradual pruning's cost per event, against a bare ``prune_model`` call.

An event of ``Train(prune_schedule=...)`` is what
:meth:`prunelab.recipes.gradual.GradualPruning.prune_if_due` does between two
optimizer steps: step out of masked training, prune with ``prune_model`` to the
event's sparsity, measure the sparsity reached, step back in, log it. The
baseline is ``prune_model(model, "global_magnitude", sparsity=s)`` on a twin
model at the same sparsity. LeNet-300-100 on the digits, SGD with momentum,
events of Zhu & Gupta's cubic schedule (0 → 90%, 21 events), one process, one
torch thread; the two alternate which goes first at each event, and the figure
is the median of the per-event ratios over several runs of the schedule.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import save  # noqa: E402

RUNS = 6


def event_cost() -> dict[str, object]:
    import torch

    import prunelab as pl
    from prunelab.core.runtime import running
    from prunelab.execution.checkpoints import BodyRuntime
    from prunelab.prune import cubic, prune_model
    from prunelab.recipes import ModelState
    from prunelab.recipes.gradual import GradualPruning, Segment

    torch.set_num_threads(1)
    events = [list(e) for e in cubic(0.0, 0.9, 0, 40, 2).steps]
    ours, theirs = [], []
    with tempfile.TemporaryDirectory() as folder:
        exp = pl.Experiment(Path(folder) / "exp", ModelState)
        root = exp.spawn_new_tree(dataset_name="digits", model_name="lenet300100", replicate=0)
        exp.run(quiet=True)
        for run in range(RUNS):
            state, twin = root.deflate().restore(), root.deflate().restore()  # two fresh copies
            opt = torch.optim.SGD(state.model.parameters(), lr=0.05, momentum=0.9)
            pruning = GradualPruning(events, "global_magnitude", "Train")
            with running(BodyRuntime("0" * 32)), Segment(state.model, None) as segment:
                for index, (step, sparsity) in enumerate(events):
                    for which in ((0, 1) if (index + run) % 2 else (1, 0)):
                        began = time.perf_counter()
                        if which == 0:
                            pruning.prune_if_due(state, segment, opt, int(step), 256)
                            ours.append(time.perf_counter() - began)
                        else:
                            prune_model(twin.model, "global_magnitude", sparsity=float(sparsity))
                            theirs.append(time.perf_counter() - began)
    ratios = [o / t for o, t in zip(ours, theirs)]
    return {"events": len(events), "runs": RUNS, "gradual_event_s": ours, "prune_model_s": theirs,
            "median_event_s": statistics.median(ours), "median_prune_model_s": statistics.median(theirs),
            "median_ratio": statistics.median(ratios)}


def main() -> dict[str, object]:
    figures = event_cost()
    print("gradual pruning (one process, one torch thread; medians; ratios paired per event)")
    print(f"  an event of Train(prune_schedule=...) on LeNet-300-100: {figures['median_event_s'] * 1e3:.2f} ms, a bare "
          f"prune_model {figures['median_prune_model_s'] * 1e3:.2f} ms, median ratio {figures['median_ratio']:.2f}x "
          "(target <= 1.1x)")
    print(f"  saved to {save('prune_gradual', figures)}")
    return figures


if __name__ == "__main__":
    main()
