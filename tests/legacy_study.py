"""The study behind ``tests/data/format1``: an experiment directory written by prunelab before the layers.

Its classes must not change: the checked-in directory records their code (module, qualname and
fingerprint), and the on-disk format test re-runs it expecting nothing to compute.
To write the directory again (with the code of that day):
``PYTHONPATH=tests python -c "import legacy_study; legacy_study.build('tests/data/format1').run()"``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import prune

import prunelab as pl


class TinyState(pl.ExperimentState):
    """A 4-3-2 MLP and its optimizer; a small derived dataset."""

    PROPERTIES = ["width", "replicate"]
    NONHASHED_ATTRIBUTES = ["model", "optimizer"]
    DERIVED_ATTRIBUTES = ["data"]

    def initialize_state(self):
        gen = torch.Generator().manual_seed(7)
        self.data = (torch.randn(32, 4, generator=gen), torch.randint(0, 2, (32,), generator=gen))
        self.model = nn.Sequential(nn.Linear(4, self.width), nn.ReLU(), nn.Linear(self.width, 2))
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.1, momentum=0.9)


class Fit(pl.Recipe):
    """A few SGD steps on random mini-batches."""

    PROPERTIES = ["steps"]

    def run(self, state):
        x, y = state.data
        for _ in range(self.steps):
            idx = torch.randint(0, len(x), (8,))
            loss = nn.functional.cross_entropy(state.model(x[idx]), y[idx])
            state.optimizer.zero_grad()
            loss.backward()
            state.optimizer.step()
        return state


class Cut(pl.Recipe):
    """L1-unstructured pruning of the first layer."""

    PROPERTIES = ["amount"]

    def run(self, state):
        prune.l1_unstructured(state.model[0], "weight", amount=self.amount)
        return state


@pl.function
def score(state):
    """Training accuracy."""
    x, y = state.data
    with torch.no_grad():
        return {"accuracy": float((state.model(x).argmax(1) == y).float().mean())}


def build(directory: str) -> pl.Experiment:
    """Declare the study in ``directory`` (two replicates, fit, cut, scored)."""
    exp = pl.Experiment(directory, state_class=TinyState)
    for replicate in (0, 1):
        with exp.tag(f"replicate:{replicate}"):
            root = exp.spawn_new_tree(width=3, replicate=replicate)
            fitted = Fit(steps=3)(root)
            score(fitted)
            with exp.tag("pruned"):
                score(Cut(amount=0.5)(fitted))
    return exp

