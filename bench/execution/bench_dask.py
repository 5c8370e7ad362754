"""Dask benchmarks: parallel speed-up of independent CPU-bound branches, and per-task overhead.

1. 16 independent branches, each 500 LeNet-300-100 training steps at batch 128 (one
   torch thread per task), run with ``DaskExecutor(n_workers=2)`` against
   ``n_workers=1``, each in a fresh interpreter (cluster start-up and the workers'
   imports excluded: the timed phase is ``exp.run`` on a started, warm cluster).
2. Per-state overhead of ``DaskExecutor`` against ``LocalExecutor`` on no-op recipes.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import paired, save, timed_script  # noqa: E402

SCRIPT = """
import sys, time, torch
from torch import nn
import dask
from distributed import LocalCluster
import prunelab as pl

class LeNet(pl.ExperimentState):
    PROPERTIES = ["branch"]
    NONHASHED_ATTRIBUTES = ["model"]
    def initialize_state(self):
        self.model = nn.Sequential(nn.Flatten(), nn.Linear(784, 300), nn.ReLU(), nn.Linear(300, 100), nn.ReLU(),
                                   nn.Linear(100, 10))

class Steps(pl.Recipe):
    PROPERTIES = ["steps"]
    def run(self, state):
        x, y = torch.randn(128, 1, 28, 28), torch.randint(0, 10, (128,))
        opt = torch.optim.SGD(state.model.parameters(), lr=0.01)
        for _ in range(self.steps):
            loss = nn.functional.cross_entropy(state.model(x), y)
            opt.zero_grad(); loss.backward(); opt.step()
        return state

class Nothing(pl.Recipe):
    PROPERTIES = ["i"]
    def run(self, state):
        return state

mode, directory, workers = sys.argv[1], sys.argv[2], int(sys.argv[3])
exp = pl.Experiment(directory, LeNet)
if mode == "branches":
    for b in range(16):
        Steps(steps=500)(exp.spawn_new_tree(branch=b))
else:
    root = exp.spawn_new_tree(branch=0)
    for i in range(200):
        Nothing(i=i)(root)
if workers == 0:
    start = time.perf_counter()
    exp.run(quiet=True)
else:
    with dask.config.set({"distributed.worker.daemon": False}):
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0")
    from distributed import Client
    with Client(cluster) as client:  # warm the workers: imports are start-up, not per-task cost
        client.run(lambda: __import__("prunelab.prune") and __import__("torch").ones(1).sum())
    executor = pl.DaskExecutor(cluster=cluster)
    start = time.perf_counter()
    exp.run(executor=executor, quiet=True)
elapsed = time.perf_counter() - start
print(elapsed)
"""


def bench_speedup(pairs: int = 3) -> dict:
    import tempfile

    tmp = tempfile.mkdtemp(prefix="prunelab-bench-")
    result = paired(lambda i: timed_script(SCRIPT, "branches", f"{tmp}/one{i}", "1"),
                    lambda i: timed_script(SCRIPT, "branches", f"{tmp}/two{i}", "2"), pairs)
    return {"one_worker_s": result["median_baseline_s"], "two_workers_s": result["median_prunelab_s"],
            "speedup": 1 / result["median_ratio"]}


def bench_overhead(pairs: int = 3) -> dict:
    import tempfile

    tmp = tempfile.mkdtemp(prefix="prunelab-bench-")
    result = paired(lambda i: timed_script(SCRIPT, "noop", f"{tmp}/local{i}", "0"),
                    lambda i: timed_script(SCRIPT, "noop", f"{tmp}/dask{i}", "1"), pairs)
    return {"local_ms_per_state": result["median_baseline_s"] / 201 * 1e3,
            "dask_ms_per_state": result["median_prunelab_s"] / 201 * 1e3, "ratio": result["median_ratio"]}


def main() -> dict:
    """Run the Dask benchmarks, print them against their targets, save them."""
    figures = {"speedup": bench_speedup(), "overhead": bench_overhead()}
    s, o = figures["speedup"], figures["overhead"]
    print("execution (fresh interpreters, one torch thread per task, medians of paired runs)")
    print(f"  16 branches x 500 LeNet-300-100 steps (batch 128): 1 worker {s['one_worker_s']:.2f} s, 2 workers "
          f"{s['two_workers_s']:.2f} s, speed-up {s['speedup']:.2f}x (target >= 1.7x)")
    print(f"  no-op recipes: LocalExecutor {o['local_ms_per_state']:.2f} ms/state, DaskExecutor (1 worker) "
          f"{o['dask_ms_per_state']:.2f} ms/state ({o['ratio']:.1f}x)")
    print(f"  saved to {save('execution_dask', figures)}")
    return figures


if __name__ == "__main__":
    main()
