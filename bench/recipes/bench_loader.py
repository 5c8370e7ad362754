"""``Train``'s loader path against a hand-written PyTorch loop doing the same work.

Both train LeNet-300-100 on Fashion-MNIST (54,000 training images; the digits
when Fashion-MNIST is not installed, said in the output) for one epoch: SGD
with momentum, batch 64, a fresh permutation, cross-entropy, ``loss.item()``
each step. prunelab's side is :func:`prunelab.recipes.train_model` as ``Train``
runs it (a ``DataLoader`` of whole batches, the per-step loss logged to the
series, no checkpoint); the baseline indexes the tensors in a bare loop. Each
side runs in a fresh interpreter with one torch thread, alternating A B, B A;
the figure is the median of the per-pair ratios. Both have made an optimizer
before the clock starts: torch's first imports ``torch._dynamo``, a second.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import paired, save, timed_script  # noqa: E402

PAIRS = 6

SETUP = """
import sys, time, torch
from prunelab.recipes import dataset_for
from prunelab.zoo import build_model
torch.set_num_threads(1)
name = sys.argv[1]
data = dataset_for(name)
torch.manual_seed(0)
model = build_model("lenet300100", data.input_shape, data.num_classes)
torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)  # the first optimizer imports torch._dynamo (~1 s)
"""

BARE = SETUP + """
x, y = data.train
opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
began = time.perf_counter()
model.train()
order, total, losses = torch.randperm(len(y)), 0.0, []
for start in range(0, len(y), 64):
    index = order[start:start + 64]
    loss = torch.nn.functional.cross_entropy(model(x[index]), y[index])
    opt.zero_grad()
    loss.backward()
    opt.step()
    total += loss.item() * len(index)
    losses.append(loss.detach())
print(time.perf_counter() - began)
"""

OURS = SETUP + """
from prunelab.core.runtime import running
from prunelab.execution.checkpoints import BodyRuntime
from prunelab.recipes import train_model

class State:
    pass

state = State()
state.model, state.data = model, data
with running(BodyRuntime("0" * 32)):
    began = time.perf_counter()
    train_model(state, epochs=1, lr=0.05, batch_size=64, optimizer="sgd", momentum=0.9, weight_decay=5e-4,
                schedule="constant", rewind_epoch=None, device="cpu")
    print(time.perf_counter() - began)
"""


def main() -> dict[str, object]:
    fashion = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz").exists()
    name = "fashion-mnist" if fashion else "digits"
    figures = {"dataset": name, "pairs": PAIRS,
               **paired(lambda i: timed_script(BARE, name), lambda i: timed_script(OURS, name), PAIRS)}
    print(f"Train's loader path vs a hand-written loop (LeNet-300-100, one epoch of {name}, batch 64, one thread)")
    if not fashion:
        print("  Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist): measured on the digits")
    print(f"  bare loop {figures['median_baseline_s']:.2f} s, train_model {figures['median_prunelab_s']:.2f} s, "
          f"median ratio {figures['median_ratio']:.3f}x (target <= 1.05x)")
    print(f"  saved to {save('train_loader', figures)}")
    return figures


if __name__ == "__main__":
    main()
