"""dagger's tutorial pattern, run by prunelab through ``prunelab.compat.dagger``.

A state holding data loaders and a model, ``TrainRecipe`` and ``PruneRecipe`` with their own ``__init__``, a
function printing accuracy, then a restore, a drawing and ``lazy_load``, all written as in dagger's tutorial
(tutorials/Tutorial.ipynb), on the bundled digits with a small MLP. Against the same script for dagger, only
two places differ (see the README's "Coming from dagger"): the import line and the attribute declarations (the
loaders are ``DERIVED_ATTRIBUTES``, rebuilt from the properties, since prunelab stores no pickles). As in dagger,
the ``lazy_load`` block reads the state's attributes through the node.

Run it with ``python examples/dagger_tutorial.py [DIRECTORY]`` (default ``runs/dagger-tutorial``). Running it
again computes nothing: every state and result is already stored.
"""

import sys
from functools import lru_cache

import torch
from torch import nn
from torch.nn.utils import prune

import prunelab.compat.dagger as dg
from prunelab.zoo import build_model, load_dataset


# ---------------------------------------------------------------- helpers, as any ML code has them
@lru_cache(maxsize=None)
def get_data(dataset_name):
    """The dataset's train and test splits, read once per process."""
    data = load_dataset(dataset_name)
    return data.train, data.test


def get_dataloaders(dataset_name, batch_size):
    """Shuffled training batches and ordered test batches (shuffling draws from torch's generator)."""
    train, test = get_data(dataset_name)
    train_loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(*train), batch_size=batch_size,
                                               shuffle=True)
    test_loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(*test), batch_size=256)
    return train_loader, test_loader


def get_model(model_name):
    """A model of prunelab's zoo for 8x8 grey images and 10 classes."""
    return build_model(model_name, (1, 8, 8), 10)


def eval_model(model, loader):
    """Top-1 accuracy over a loader."""
    model.eval()
    correct = 0
    with torch.no_grad():
        for x, y in loader:
            correct += int((model(x).argmax(1) == y).sum())
    return correct / len(loader.dataset)


# ---------------------------------------------------------------- dagger's tutorial pattern
class MyExperimentState(dg.ExperimentState):
    PROPERTIES = ["dataset_name", "model_name", "batch_size"]
    NONHASHED_ATTRIBUTES = ["model"]
    DERIVED_ATTRIBUTES = ["train_dataloader", "test_dataloader"]

    def initialize_state(self, **kwargs):
        self.train_dataloader, self.test_dataloader = get_dataloaders(self.dataset_name, self.batch_size)
        self.model = get_model(self.model_name)


class TrainRecipe(dg.Recipe):
    PROPERTIES = ["nb_epochs", "lr"]

    def __init__(self, nb_epochs, lr):
        self.nb_epochs = nb_epochs
        self.lr = lr

    def run(self, new_state):
        optimizer = torch.optim.SGD(new_state.model.parameters(), lr=self.lr, momentum=0.9)
        new_state.model.train()
        for _ in range(self.nb_epochs):
            for x, y in new_state.train_dataloader:
                optimizer.zero_grad()
                nn.functional.cross_entropy(new_state.model(x), y).backward()
                optimizer.step()
        return new_state


class PruneRecipe(dg.Recipe):
    PROPERTIES = ["amount"]

    def __init__(self, amount):
        self.amount = amount

    def run(self, new_state):
        for module in new_state.model.modules():
            if isinstance(module, nn.Linear):
                prune.random_unstructured(module, "weight", amount=self.amount)
        return new_state


@dg.Function
def print_accuracy(state):
    accuracy = eval_model(state.model, state.test_dataloader)
    print(f"tags {state.tags}: accuracy {accuracy:.3f}")
    return accuracy


def main(directory):
    exp = dg.Experiment(directory=directory, state_class=MyExperimentState)
    x = exp.spawn_new_tree(dataset_name="digits", model_name="mlp", batch_size=32)
    print(f"root model: {sum(p.numel() for p in x.get().model.parameters())} parameters")
    with exp.tag("dense"):
        a = TrainRecipe(nb_epochs=2, lr=0.05)(x)
        print_accuracy(a)
    with exp.tag("pruned"):
        b = TrainRecipe(nb_epochs=1, lr=0.05)(PruneRecipe(amount=0.5)(a))
        print_accuracy(b)
    exp.run()

    exp = dg.Experiment.restore(directory=directory, state_class=MyExperimentState)
    exp.graph.draw(filename=f"{directory}/graph", format="svg")
    for distance in range(4):
        print(f"distance {distance}: {len(exp.graph.nodes_at_distance(distance))} state(s)")
    for node in exp.graph.nodes_at_distance(3):
        with node.lazy_load():
            print(node.tags, float(node.model[1].weight_mask.mean()))

if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "runs/dagger-tutorial")
