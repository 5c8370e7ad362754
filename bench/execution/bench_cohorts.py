"""Cohorts against sequential training: many small models trained as one computation, or one by one.

Both sides declare the same experiment (N roots, each trained one epoch by
``Train``: SGD with momentum, batch 64, each member its own seed and learning
rate) and run it: sequentially with ``LocalExecutor()`` (each node through
``Train.run``), or as cohorts with ``LocalExecutor(max_cohort=64)`` (through
``Train.run_cohort``). The time is that of ``Experiment.run`` (building the
roots, training, storing), in a fresh interpreter with the experiment's
``threads`` (2: both cores of these machines), the data loaded before the clock starts, alternating A B, B A; the figure
is the median of the per-pair ratios (sequential time / cohort time).
Workloads: 42 LeNet-5s on the digits, and 21 LeNet-300-100s on Fashion-MNIST
(the digits when Fashion-MNIST is not installed, said in the output).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import paired, save, timed_script  # noqa: E402

PAIRS = 4

SCRIPT = """
import sys, time
import prunelab as pl
from prunelab.recipes import ModelState, Train, dataset_for
directory, dataset, model, count, cohort, threads = sys.argv[1:7]
dataset_for(dataset)  # loading the data (and importing scikit-learn for the digits) is outside the clock
exp = pl.Experiment(directory, ModelState, threads=int(threads))
for r in range(int(count)):
    root = exp.spawn_new_tree(dataset_name=dataset, model_name=model, replicate=r)
    Train(epochs=1, lr=0.01 * (1 + r % 5), batch_size=64)(root)
executor = pl.LocalExecutor(max_cohort=int(cohort)) if int(cohort) else pl.LocalExecutor()
began = time.perf_counter()
exp.run(executor=executor, quiet=True)
print(time.perf_counter() - began)
"""

THREADS = "2"


def _side(dataset: str, model: str, count: int, cohort: int):
    def run(i: int) -> float:
        with tempfile.TemporaryDirectory() as tmp:
            return timed_script(SCRIPT, f"{tmp}/exp", dataset, model, str(count), str(cohort), THREADS)
    return run


def main() -> dict[str, object]:
    fashion = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz").exists()
    workloads = [("digits", "lenet5", 42), ("fashion-mnist" if fashion else "digits", "lenet300100", 21)]
    figures: dict[str, object] = {"pairs": PAIRS, "threads": int(THREADS)}
    print(f"cohorts vs sequential Train (one epoch each, batch 64, {THREADS} threads; medians of paired runs)")
    if not fashion:
        print("  Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist): LeNet-300-100 on the digits")
    for dataset, model, count in workloads:
        # paired() calls the baseline "baseline": here the cohort side, so the ratio is sequential / cohort
        got = paired(_side(dataset, model, count, 64), _side(dataset, model, count, 0), PAIRS)
        figures[f"{count} {model} on {dataset}"] = got
        print(f"  {count} {model} on {dataset}: sequential {got['median_prunelab_s']:.2f} s, "
              f"cohort {got['median_baseline_s']:.2f} s, speed-up {got['median_ratio']:.2f}x (target >= 6x)")
    print(f"  saved to {save('cohorts', figures)}")
    return figures


if __name__ == "__main__":
    main()
