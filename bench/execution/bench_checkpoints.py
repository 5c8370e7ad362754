"""Checkpoint and logging benchmarks.

1. **Checkpoint cost** of the standard ``Train`` on LeNet-300-100 (digits, batch
   128, SGD with momentum), after each epoch: prunelab's checkpoint (the
   state's stored attributes, the optimizer, the training place, the
   generators and the series, into the experiment directory, content-addressed)
   against ``torch.save`` of the model's and optimizer's state dicts to one
   file. Both run in one process, in the same epoch loop, alternating which goes
   first; the figure is the median of the per-epoch ratios. Every tensor has
   changed after an epoch, so nothing dedupes but the data shared with the parent.
2. **Logging cost**: one million ``pl.log("loss", x)`` calls inside a running
   body, against one million ``list.append`` calls of the same floats; and
   the same with a 0-d tensor (what the standard ``Train`` logs each step).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import save  # noqa: E402

EPOCHS = 12
CALLS = 1_000_000


def checkpoint_cost() -> dict[str, object]:
    import torch
    from torch import nn

    import prunelab as pl
    from prunelab.execution.checkpoints import BodyRuntime
    from prunelab.execution.engine import Engine
    from prunelab.core.runtime import running
    from prunelab.recipes import ModelState, Train

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as folder:
        exp = pl.Experiment(Path(folder) / "exp", ModelState)
        root = exp.spawn_new_tree(dataset_name="digits", model_name="lenet300100", replicate=0)
        exp.run(quiet=True)
        state = root.restore()
        engine: Engine = exp.engine
        recipe = Train(epochs=EPOCHS, batch_size=128)
        runtime = BodyRuntime("0" * 32, exp.store, engine.materialiser)
        opt = torch.optim.SGD(state.model.parameters(), lr=0.05, momentum=0.9)
        x, y = state.data.train
        ours, theirs = [], []
        target = Path(folder) / "torch.pt"
        with running(runtime):
            for epoch in range(EPOCHS):
                for start in range(0, len(y), 128):
                    loss = nn.functional.cross_entropy(state.model(x[start:start + 128]), y[start:start + 128])
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    pl.log("loss", loss.detach())
                order = (0, 1) if epoch % 2 else (1, 0)
                for which in order:
                    began = time.perf_counter()
                    if which == 0:
                        recipe.checkpoint(state, epoch + 1, optimizer=opt)
                        ours.append(time.perf_counter() - began)
                    else:
                        torch.save({"model": state.model.state_dict(), "optimizer": opt.state_dict()}, target)
                        theirs.append(time.perf_counter() - began)
        size = target.stat().st_size
    ratios = [o / t for o, t in zip(ours, theirs)]
    return {"epochs": EPOCHS, "prunelab_s": ours, "torch_save_s": theirs, "median_prunelab_s": statistics.median(ours),
            "median_torch_save_s": statistics.median(theirs), "median_ratio": statistics.median(ratios),
            "torch_save_bytes": size}


def logging_cost() -> dict[str, object]:
    import torch

    import prunelab as pl
    from prunelab.core.runtime import running
    from prunelab.execution.checkpoints import BodyRuntime

    out: dict[str, object] = {"calls": CALLS}
    for kind, values in (("float", [i * 0.001 for i in range(CALLS)]), ("tensor", [torch.tensor(0.5)] * CALLS)):
        base, ours = [], []
        for _ in range(3):
            plain: list[object] = []
            began = time.perf_counter()
            for v in values:
                plain.append(v)
            base.append(time.perf_counter() - began)
            with running(BodyRuntime("0" * 32)):
                began = time.perf_counter()
                for v in values:
                    pl.log("loss", v)
                ours.append(time.perf_counter() - began)
        out[kind] = {"list_append_s": base, "pl_log_s": ours, "per_call_ns": statistics.median(ours) / CALLS * 1e9,
                     "median_ratio": statistics.median(o / b for o, b in zip(ours, base))}
    return out


def main() -> None:
    figures = {"checkpoint": checkpoint_cost(), "log": logging_cost()}
    c, lg = figures["checkpoint"], figures["log"]
    print("checkpoints (one process, one torch thread; medians; ratios are paired, same epoch)")
    print(f"  checkpoint per epoch (LeNet-300-100 + SGD): prunelab {c['median_prunelab_s'] * 1e3:.2f} ms, torch.save "
          f"{c['median_torch_save_s'] * 1e3:.2f} ms, median ratio {c['median_ratio']:.2f}x (target <= 1.0x)")
    for kind in ("float", "tensor"):
        figure = lg[kind]
        print(f"  pl.log of a {kind}: {figure['per_call_ns']:.0f} ns a call, {figure['median_ratio']:.1f}x a "
              "list.append (target: well under a microsecond)")
    print(f"  saved to {save('execution_checkpoints', figures)}")


if __name__ == "__main__":
    main()
