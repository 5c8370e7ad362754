"""DESIGN.md's user's view, as written: an lr sweep with pruning on the digits data.

Run it with ``python examples/lr_sweep.py [DIRECTORY]`` (default ``runs/lr-sweep``).
Running it again computes nothing: every state is already stored.
"""

import sys
from functools import lru_cache

import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.nn.utils import prune

import prunelab as pl


# ---------------------------------------------------------------- real helpers
@lru_cache(maxsize=None)
def get_data(dataset_name):
    """The scikit-learn digits (8x8 images, 10 classes), split 80/20 with a fixed permutation."""
    if dataset_name != "digits":
        raise ValueError(f"this example knows only the 'digits' dataset, got {dataset_name!r}")
    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(digits.target, dtype=torch.int64)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    cut = int(0.8 * len(y))
    return (x[order[:cut]], y[order[:cut]]), (x[order[cut:]], y[order[cut:]])


def get_model(model_name):
    """A LeNet-5-style network for 8x8 inputs."""
    if model_name != "lenet5":
        raise ValueError(f"this example knows only 'lenet5', got {model_name!r}")
    return nn.Sequential(
        nn.Conv2d(1, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 3, padding=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(16 * 4 * 4, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10),
    )


def train_model(model, data, nb_epochs, lr, batch_size=16):
    """Plain SGD; the shuffling draws from torch's generator, which prunelab seeds per state."""
    x, y = data
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.5)
    model.train()
    for _ in range(nb_epochs):
        order = torch.randperm(len(y))
        for start in range(0, len(y), batch_size):
            idx = order[start:start + batch_size]
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()


def eval_model(model, data):
    """Top-1 accuracy."""
    x, y = data
    model.eval()
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


# ------------------------------------------------------------ the user's view
class State(pl.ExperimentState):
    PROPERTIES = ["dataset_name", "model_name"]          # hashed: identity
    NONHASHED_ATTRIBUTES = ["model"]                     # stored and carried, not hashed
    DERIVED_ATTRIBUTES = ["train_data", "eval_data"]     # rebuilt from the properties

    def initialize_state(self, **kwargs):
        self.train_data, self.eval_data = get_data(self.dataset_name)
        self.model = get_model(self.model_name)


class TrainRecipe(pl.Recipe):
    PROPERTIES = ["nb_epochs", "lr"]

    def run(self, state):
        train_model(state.model, state.train_data, self.nb_epochs, self.lr)
        return state


class PruneRecipe(pl.Recipe):
    """Prune every conv and linear weight with a torch.nn.utils.prune technique."""

    PROPERTIES = ["pruning_technique", "pruning_fraction"]
    LINEAGE = {"technique": "pruning_technique", "sparsity": "pruning_fraction"}

    def run(self, state):
        technique = getattr(prune, self.pruning_technique)
        for module in state.model.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                technique(module, "weight", amount=self.pruning_fraction)
        return state


@pl.function
def eval_fn(state):
    return {"accuracy": eval_model(state.model, state.eval_data)}   # stored as results


def main(directory):
    exp = pl.Experiment(directory, state_class=State)
    root = exp.spawn_new_tree(dataset_name="digits", model_name="lenet5")
    for lr in [0.01, 0.1]:
        s = root
        with exp.tag(f"lr:{lr}"):
            s = TrainRecipe(nb_epochs=3, lr=lr)(s)
            eval_fn(s)
            with exp.tag("pruned"):
                s = PruneRecipe(pruning_technique="l1_unstructured", pruning_fraction=0.2)(s)
                eval_fn(s)
    exp.run()                                   # local, in-process

    exp = pl.Experiment.restore(directory, slim=True)
    exp.graph.print()
    exp.graph.draw(f"{directory}/graph.svg")
    s = exp.graph.nodes.filter("pruned") & exp.graph.nodes.filter("lr:0.1")
    model = s[0].restore().model                # full state, loaded on demand
    kept = float(model[0].weight_mask.mean())
    print(f"pruned state {s[0].id[:12]}: {kept:.0%} of the first conv's weights kept")
    df = exp.graph.nodes.to_frame()             # pandas: one row per state
    print(df[["id", "tags", "recipe", "eval_fn.accuracy"]].to_string(index=False))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "runs/lr-sweep")
