"""The seed talk's dagger program, with only its import line changed (``import dagger as dg``).

Usage: python talk.py DIR. The helpers (data, model, training) are plain PyTorch
on the bundled digits; the program below them is the talk's, as written.
"""

import sys

import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.nn.utils import prune

import prunelab as dg


def get_data(dataset_name):
    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) / 16.0
    y = torch.tensor(digits.target)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    cut = int(0.8 * len(y))
    return (x[order[:cut]], y[order[:cut]]), (x[order[cut:]], y[order[cut:]])


def get_model(model_name):
    return nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))


def train_model(model, data, nb_epochs, lr):
    x, y = data
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    for _ in range(nb_epochs):
        order = torch.randperm(len(y))
        for start in range(0, len(y), 32):
            idx = order[start:start + 32]
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            optimizer.step()


def eval_model(model, data):
    x, y = data
    with torch.no_grad():
        return (model(x).argmax(1) == y).sum().item() / len(y)


# ------------------------------------------------------------------ the talk's program
class State(dg.ExperimentState):
    PROPERTIES = ["dataset_name", "model_name"]
    NONHASHED_ATTRIBUTES = ["model"]
    DERIVED_ATTRIBUTES = ["train_data", "eval_data"]

    def initialize_state(self, **kwargs):
        self.train_data, self.eval_data = get_data(self.dataset_name)
        self.model = get_model(self.model_name)


class TrainRecipe(dg.Recipe):
    PROPERTIES = ["nb_epochs", "lr"]

    def run(self, state):
        train_model(state.model, state.train_data, self.nb_epochs, self.lr)
        return state


class PruneRecipe(dg.Recipe):
    PROPERTIES = ["pruning_technique", "pruning_fraction"]

    def run(self, state):
        technique = getattr(prune, self.pruning_technique)
        technique(state.model[0], "weight", amount=self.pruning_fraction)
        return state


@dg.function
def eval_fn(state):
    eval_acc = eval_model(state.model, state.eval_data)
    print(f"Experiment: {state.tags}, Accuracy: {eval_acc}")


exp = dg.Experiment(sys.argv[1], state_class=State)
root = exp.spawn_new_tree(dataset_name="digits", model_name="mlp")
for lr in [0.01, 0.1]:
    s = root
    with exp.tag(f"lr:{lr}"):
        s = TrainRecipe(nb_epochs=3, lr=lr)(s)
        eval_fn(s)
        with exp.tag("pruned"):
            s = PruneRecipe(pruning_technique="l1_unstructured", pruning_fraction=0.2)(s)
            eval_fn(s)
exp.run()

exp = dg.Experiment.restore(sys.argv[1], slim=True)
graph = exp.graph
print("drawn:", graph.draw()[:4])
s = graph.nodes.filter("pruned") & graph.nodes.filter("lr:0.1")
print("nodes:", len(graph.nodes), "selected:", len(s))
print("restored:", s[0].restore().model[0].weight_mask.mean().item())
