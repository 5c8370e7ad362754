"""Engine benchmarks: per-edge cost, cached re-runs, slim restore, declaration, state-dict I/O.

Workload W1 (shared/BENCHMARKS.md): a root holding LeNet-300-100 (266,610
parameters), a fan-out of 200 recipes that each scale one weight tensor, and a
chain of 50 (250 edges). The baseline is a hand-written loop that copies the
model and ``torch.save``s each state to its own file.
"""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import paired, save, settle, timed_script  # noqa: E402

W1_MODEL = """
import torch, torch.nn as nn
torch.set_num_threads(1)
def lenet300100():
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 300), nn.ReLU(), nn.Linear(300, 100), nn.ReLU(),
                         nn.Linear(100, 10))
LAYERS = [1, 3, 5]
"""

W1_PRUNELAB = W1_MODEL + """
import sys, time
import prunelab as pl
class W1State(pl.ExperimentState):
    PROPERTIES = ["name"]
    NONHASHED_ATTRIBUTES = ["model"]
    def initialize_state(self):
        self.model = lenet300100()
class Scale(pl.Recipe):
    PROPERTIES = ["layer", "factor"]
    def run(self, state):
        with torch.no_grad():
            state.model[self.layer].weight.mul_(self.factor)
        return state
def declare(exp):
    root = exp.spawn_new_tree(name="lenet300100")
    for i in range(200):
        Scale(layer=LAYERS[i % 3], factor=1.0 + i / 1000)(root)
    node = root
    for i in range(50):
        node = Scale(layer=LAYERS[i % 3], factor=1.01)(node)
mode = sys.argv[2]
start = time.perf_counter()
exp = pl.Experiment(sys.argv[1], W1State)
declare(exp)
if mode == "run-only":
    start = time.perf_counter()
exp.run(quiet=True)
print(time.perf_counter() - start)
"""

W1_LOOP = W1_MODEL + """
import copy, os, sys, time
out = sys.argv[1]
start = time.perf_counter()
os.makedirs(out)
root = lenet300100()
torch.save(root, f"{out}/root.pt")
for i in range(200):
    model = copy.deepcopy(root)
    with torch.no_grad():
        model[LAYERS[i % 3]].weight.mul_(1.0 + i / 1000)
    torch.save(model, f"{out}/fan{i}.pt")
model = root
for i in range(50):
    model = copy.deepcopy(model)
    with torch.no_grad():
        model[LAYERS[i % 3]].weight.mul_(1.01)
    torch.save(model, f"{out}/chain{i}.pt")
print(time.perf_counter() - start)
"""

RESTORE = """
import sys, time
import prunelab as pl
start = time.perf_counter()
exp = pl.Experiment.restore(sys.argv[1])
picked = exp.graph.nodes.filter("even")
elapsed = time.perf_counter() - start
assert len(picked) == int(sys.argv[2]) // 2, len(picked)
print(elapsed)
"""

JSON_PER_STATE = """
import json, os, sys, time
start = time.perf_counter()
records = []
for prefix in os.scandir(os.path.join(sys.argv[1], "states")):
    for entry in os.scandir(prefix.path):
        with open(os.path.join(entry.path, "meta.json"), "rb") as f:
            records.append(json.loads(f.read()))
print(time.perf_counter() - start)
"""


def bench_w1(pairs: int = 5) -> dict:
    """First run of W1: prunelab against the copy + torch.save loop, and the cached re-run."""
    tmp = Path(tempfile.mkdtemp(prefix="prunelab-bench-"))
    first = paired(lambda i: timed_script(W1_LOOP, str(tmp / f"loop{i}")),
                   lambda i: timed_script(W1_PRUNELAB, str(tmp / f"exp{i}"), "all"), pairs)
    cached = [timed_script(W1_PRUNELAB, str(tmp / "exp0"), "run-only") for _ in range(pairs)]
    cached_all = [timed_script(W1_PRUNELAB, str(tmp / "exp0"), "all") for _ in range(pairs)]
    disk = sum(f.stat().st_size for f in (tmp / "exp0" / "blobs").rglob("*") if f.is_file())
    loop_disk = sum(f.stat().st_size for f in (tmp / "loop0").iterdir())
    shutil.rmtree(tmp)
    return {
        "edges": 250,
        "first_run_ms_per_edge": first["median_prunelab_s"] / 250 * 1e3,
        "loop_ms_per_edge": first["median_baseline_s"] / 250 * 1e3,
        "ratio_to_loop": first["median_ratio"],
        "cached_run_ms_per_edge": statistics.median(cached) / 250 * 1e3,
        "cached_open_declare_run_ms_per_edge": statistics.median(cached_all) / 250 * 1e3,
        "blob_bytes_per_state": disk / 251,
        "loop_bytes_per_state": loop_disk / 251,
        "raw": first,
    }


def build_flat(directory: Path, n: int) -> None:
    """An experiment of ``n`` small states: one root and n-1 children tagged even/odd."""
    import prunelab as pl

    class Tiny(pl.ExperimentState):
        PROPERTIES = ["name"]
        NONHASHED_ATTRIBUTES = ["value"]

        def initialize_state(self):
            self.value = 0

    class Set(pl.Recipe):
        PROPERTIES = ["value"]

        def run(self, state):
            state.value = self.value
            return state

    exp = pl.Experiment(directory, Tiny)
    root = exp.spawn_new_tree(name="root")
    with exp.tag("even"):
        for i in range(1, n, 2):
            Set(value=i)(root)
    with exp.tag("odd"):
        for i in range(2, n, 2):
            Set(value=i)(root)
    exp.run(quiet=True)


def bench_restore(sizes=(10_000, 100_000), reps: int = 3) -> dict:
    """Slim restore plus a tag filter, against reading one JSON record per state (dagger's layout)."""
    out = {}
    for n in sizes:
        tmp = Path(tempfile.mkdtemp(prefix="prunelab-bench-"))
        start = time.perf_counter()
        build_flat(tmp / "exp", n)
        build_s = time.perf_counter() - start
        timed_script(RESTORE, str(tmp / "exp"), str(n))  # validates the index once, like any first open
        result = paired(lambda i: timed_script(JSON_PER_STATE, str(tmp / "exp")),
                        lambda i: timed_script(RESTORE, str(tmp / "exp"), str(n)), reps)
        out[str(n)] = {"restore_and_filter_s": result["median_prunelab_s"],
                       "one_json_per_state_s": result["median_baseline_s"], "ratio": result["median_ratio"],
                       "build_s": build_s}
        shutil.rmtree(tmp)
    return out


def bench_declare(reps: int = 3) -> dict:
    """Declaring a chain of 2,000 / 4,000 / 8,000 recipes (no running)."""
    import prunelab as pl

    class Chain(pl.ExperimentState):
        PROPERTIES = ["name"]

    class Step(pl.Recipe):
        PROPERTIES = ["i"]

        def run(self, state):
            return state

    out = {}
    for n in (2000, 4000, 8000):
        times = []
        for _ in range(reps):
            tmp = tempfile.mkdtemp(prefix="prunelab-bench-")
            exp = pl.Experiment(Path(tmp) / "exp", Chain)
            start = time.perf_counter()
            node = exp.spawn_new_tree(name="chain")
            for i in range(n):
                node = Step(i=i)(node)
            times.append(time.perf_counter() - start)
            shutil.rmtree(tmp)
        out[str(n)] = statistics.median(times)
    out["growth_8000_over_2000"] = out["8000"] / out["2000"]  # 4.0 is linear
    return out


def bench_state_dict_io(pairs: int = 9) -> dict:
    """Save + load a ResNet-18-sized state dict (46.8 MB) with integrity checks, against torch.save + torch.load."""
    import torch

    from prunelab.storage.codecs import decode_value, encode_value
    from prunelab.storage.sources import StoreSource
    from prunelab.storage.store import Store

    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(0)
    shapes = _resnet18_shapes()
    state = {name: torch.randn(shape, generator=gen) for name, shape in shapes.items()}
    size = sum(t.numel() * 4 for t in state.values())
    tmp = Path(tempfile.mkdtemp(prefix="prunelab-bench-"))

    def baseline(i):
        path = tmp / f"sd{i}.pt"
        settle()
        start = time.perf_counter()
        torch.save(state, path)
        loaded = torch.load(path)
        elapsed = time.perf_counter() - start
        assert loaded.keys() == state.keys()
        return elapsed

    def candidate(i):
        (tmp / f"exp{i}").mkdir()
        store = Store(tmp / f"exp{i}")
        store.create({"state_class": "bench"})
        settle()
        start = time.perf_counter()
        encoded = encode_value(state, owner="state dict")
        store.blobs.write(encoded.blobs)
        fresh = Store(tmp / f"exp{i}")  # a new reader verifies every blob it reads
        loaded = decode_value(encoded.spec, StoreSource(fresh), owner="state dict")
        elapsed = time.perf_counter() - start
        assert loaded.keys() == state.keys()
        return elapsed

    result = paired(baseline, candidate, pairs)
    shutil.rmtree(tmp)
    return {"bytes": size, "torch_save_load_s": result["median_baseline_s"],
            "prunelab_save_load_s": result["median_prunelab_s"], "ratio": result["median_ratio"]}


def _resnet18_shapes() -> dict[str, tuple]:
    shapes = {"conv1.weight": (64, 3, 7, 7)}
    widths = [64, 128, 256, 512]
    in_ch = 64
    for stage, width in enumerate(widths, start=1):
        for block in range(2):
            prefix = f"layer{stage}.{block}"
            first_in = in_ch if block == 0 else width
            shapes[f"{prefix}.conv1.weight"] = (width, first_in, 3, 3)
            shapes[f"{prefix}.conv2.weight"] = (width, width, 3, 3)
            for bn in ("bn1", "bn2"):
                for p in ("weight", "bias", "running_mean", "running_var"):
                    shapes[f"{prefix}.{bn}.{p}"] = (width,)
            if block == 0 and stage > 1:
                shapes[f"{prefix}.downsample.0.weight"] = (width, first_in, 1, 1)
                for p in ("weight", "bias", "running_mean", "running_var"):
                    shapes[f"{prefix}.downsample.1.{p}"] = (width,)
        in_ch = width
    for p in ("weight", "bias", "running_mean", "running_var"):
        shapes[f"bn1.{p}"] = (64,)
    shapes["fc.weight"] = (1000, 512)
    shapes["fc.bias"] = (1000,)
    return shapes


def main() -> dict:
    """Run every engine benchmark, print the figures against their targets, save them."""
    figures = {"w1": bench_w1(), "declare": bench_declare(), "state_dict_io": bench_state_dict_io(),
               "restore": bench_restore()}
    w1, dec, io, restore = figures["w1"], figures["declare"], figures["state_dict_io"], figures["restore"]
    print("engine (one torch thread, pinned allocator; medians; ratios are paired, same run)")
    print(f"  W1 first run: {w1['first_run_ms_per_edge']:.2f} ms/edge, loop {w1['loop_ms_per_edge']:.2f} ms/edge, "
          f"ratio {w1['ratio_to_loop']:.2f}x   (targets: <= 2.0 ms, <= 1.5x)")
    print(f"  W1 bytes per state: {w1['blob_bytes_per_state']:,.0f} (loop {w1['loop_bytes_per_state']:,.0f})")
    print(f"  W1 cached re-run: {w1['cached_run_ms_per_edge']:.3f} ms/edge run(); "
          f"{w1['cached_open_declare_run_ms_per_edge']:.3f} ms/edge open+declare+run   (target: <= 0.1 ms)")
    for n, r in restore.items():
        print(f"  slim restore + tag filter, {int(n):,} nodes: {r['restore_and_filter_s']:.3f} s "
              f"(one JSON per state: {r['one_json_per_state_s']:.3f} s, ratio {r['ratio']:.2f})")
    print(f"  declare chain: 2,000 {dec['2000']:.3f} s, 4,000 {dec['4000']:.3f} s, 8,000 {dec['8000']:.3f} s; "
          f"growth x{dec['growth_8000_over_2000']:.2f} for 4x (target: 8,000 <= 0.2 s, linear)")
    print(f"  ResNet-18 state dict ({io['bytes'] / 1e6:.1f} MB) save+load: {io['prunelab_save_load_s'] * 1e3:.1f} ms "
          f"vs torch.save+load {io['torch_save_load_s'] * 1e3:.1f} ms, ratio {io['ratio']:.2f}x (target: <= 1.5x)")
    print(f"  saved to {save('core_engine', figures)}")
    return figures


if __name__ == "__main__":
    main()
