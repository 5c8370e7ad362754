"""Pruning benchmarks: global magnitude at ResNet-50 size, and masked training steps.

1. ``global_magnitude`` to 50% over a ResNet-50-sized set of weights (25,502,912
   weights in 54 tensors), one thread, against
   ``torch.nn.utils.prune.global_unstructured(L1Unstructured)``: time of the call
   and peak extra memory (ru_maxrss over the RSS before the call), each in a
   fresh interpreter, alternating; then the masks of both are compared.
2. A training step of LeNet-300-100 at 90% sparsity, batch 128, one thread:
   dense, PyTorch's hooks, and ``masked_training``.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import paired, save  # noqa: E402

RESNET50 = """
import resource, sys, time, torch
from torch import nn
torch.set_num_threads(1)

def shapes():
    out = [(64, 3, 7, 7)]
    inplanes = 64
    for planes, blocks in ((64, 3), (128, 4), (256, 6), (512, 3)):
        for b in range(blocks):
            out += [(planes, inplanes, 1, 1), (planes, planes, 3, 3), (planes * 4, planes, 1, 1)]
            if b == 0:
                out.append((planes * 4, inplanes, 1, 1))
            inplanes = planes * 4
    return out

def model():
    gen = torch.Generator().manual_seed(0)
    layers = []
    for shape in shapes():
        conv = nn.utils.skip_init(nn.Conv2d, shape[1], shape[0], shape[2], bias=False)
        with torch.no_grad():
            conv.weight.normal_(generator=gen)
        layers.append(conv)
    fc = nn.utils.skip_init(nn.Linear, 2048, 1000, bias=False)
    with torch.no_grad():
        fc.weight.normal_(generator=gen)
    layers.append(fc)
    return nn.ModuleList(layers)

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096

m = model()
assert sum(p.numel() for p in m.parameters()) == 25_502_912 and len(list(m.parameters())) == 54
if sys.argv[1] == "compare":  # both on identical weights: do the masks differ anywhere but at tied values?
    import torch.nn.utils.prune as P
    from prunelab.prune import prune_model
    theirs = model()
    P.global_unstructured([(l, "weight") for l in theirs], pruning_method=P.L1Unstructured, amount=0.5)
    prune_model(m, "global_magnitude", amount=0.5)
    threshold = max(float(l.weight_orig[l.weight_mask == 0].abs().max()) for l in m)
    differ = tied = 0
    for a, b in zip(m, theirs):
        d = a.weight_mask != b.weight_mask
        differ += int(d.sum())
        tied += int((a.weight_orig.detach()[d].abs() == threshold).sum())
    print(differ, tied)
    sys.exit(0)
before = rss()
start = time.perf_counter()
if sys.argv[1] == "torch":
    import torch.nn.utils.prune as P
    P.global_unstructured([(l, "weight") for l in m], pruning_method=P.L1Unstructured, amount=0.5)
else:
    from prunelab.prune import prune_model
    prune_model(m, "global_magnitude", amount=0.5)
elapsed = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print((peak - before) / 2**20)
print(elapsed)
"""


def bench_global_magnitude(pairs: int = 3) -> dict:
    import subprocess

    mems = {"torch": [], "prunelab": []}

    def run(which: str) -> float:
        proc = subprocess.run([sys.executable, "-c", RESNET50, which], capture_output=True, text=True, check=True,
                              env=_env())
        mem, elapsed = proc.stdout.split()
        mems[which].append(float(mem))
        return float(elapsed)

    result = paired(lambda i: run("torch"), lambda i: run("prunelab"), pairs)
    compare = subprocess.run([sys.executable, "-c", RESNET50, "compare"], capture_output=True, text=True, check=True,
                             env=_env())
    differing, tied = (int(v) for v in compare.stdout.split())
    return {"torch_s": result["median_baseline_s"], "prunelab_s": result["median_prunelab_s"],
            "time_ratio": result["median_ratio"], "torch_peak_extra_mib": statistics.median(mems["torch"]),
            "prunelab_peak_extra_mib": statistics.median(mems["prunelab"]),
            "memory_ratio": statistics.median(mems["prunelab"]) / statistics.median(mems["torch"]),
            "mask_entries_differing": differing, "of_which_tied_at_the_threshold": tied}


def _env() -> dict:
    import os

    from common import PINNED

    return {**os.environ, **PINNED}


def bench_masked_training(blocks: int = 10, steps: int = 20) -> dict:
    """Seconds per step: dense, hooks and masked_training, alternating blocks in one process."""
    import torch
    from torch import nn

    from prunelab.prune import copy_model, masked_training, prune_model

    torch.set_num_threads(1)
    torch.manual_seed(0)
    dense = nn.Sequential(nn.Flatten(), nn.Linear(784, 300), nn.ReLU(), nn.Linear(300, 100), nn.ReLU(),
                          nn.Linear(100, 10))
    hooked = copy_model(dense)
    prune_model(hooked, "l1_unstructured", sparsity=0.9)
    baked = copy_model(hooked)
    x, y = torch.randn(128, 1, 28, 28), torch.randint(0, 10, (128,))
    optimizers = {name: torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
                  for name, m in (("dense", dense), ("hooks", hooked), ("masked_training", baked))}
    models = {"dense": dense, "hooks": hooked, "masked_training": baked}
    times: dict[str, list[float]] = {name: [] for name in models}

    def block(name: str) -> float:
        model, optimizer = models[name], optimizers[name]
        start = time.perf_counter()
        for _ in range(steps):
            loss = nn.functional.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return (time.perf_counter() - start) / steps

    with masked_training(baked, optimizers["masked_training"]):
        for name in models:
            block(name)  # warm-up
        for _ in range(blocks):
            for name in models:
                times[name].append(block(name))
    med = {name: statistics.median(v) for name, v in times.items()}
    return {"dense_ms": med["dense"] * 1e3, "hooks_ms": med["hooks"] * 1e3,
            "masked_training_ms": med["masked_training"] * 1e3,
            "hooks_over_dense": statistics.median(h / d for h, d in zip(times["hooks"], times["dense"])),
            "masked_over_dense": statistics.median(m / d for m, d in zip(times["masked_training"], times["dense"]))}


def main() -> dict:
    """Run the pruning benchmarks, print them against their targets, save them."""
    figures = {"global_magnitude_resnet50": bench_global_magnitude(), "masked_training": bench_masked_training()}
    g, t = figures["global_magnitude_resnet50"], figures["masked_training"]
    print("prune (one torch thread, pinned allocator; medians; ratios are paired, same run)")
    print(f"  global_magnitude 50% of 25.5M weights: {g['prunelab_s']:.2f} s vs torch {g['torch_s']:.2f} s, ratio "
          f"{g['time_ratio']:.2f}x (target <= 0.5x); peak extra {g['prunelab_peak_extra_mib']:.0f} MiB vs "
          f"{g['torch_peak_extra_mib']:.0f} MiB, ratio {g['memory_ratio']:.2f}x (target <= 0.3x); "
          f"{g['mask_entries_differing']} mask entries differ, {g['of_which_tied_at_the_threshold']} of them "
          "tied at the threshold")
    print(f"  LeNet-300-100 step at 90%, batch 128: dense {t['dense_ms']:.2f} ms, hooks {t['hooks_ms']:.2f} ms "
          f"({t['hooks_over_dense']:.2f}x), masked_training {t['masked_training_ms']:.2f} ms "
          f"({t['masked_over_dense']:.2f}x; target <= 1.05x)")
    print(f"  saved to {save('prune_techniques', figures)}")
    return figures


if __name__ == "__main__":
    main()
