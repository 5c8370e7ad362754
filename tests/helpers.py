"""Real states and recipes for the test suite (torch models, numpy, random)."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.utils import prune

import prunelab as pl

PRUNING_CHAIN = Path(__file__).resolve().parent / "scripts" / "pruning_chain.py"


def run_pruning_chain(directory, crash=None, **options):
    """Run ``scripts/pruning_chain.py`` in a fresh process (``crash``: a crash point); (exit code, its JSON or None)."""
    from prunelab.storage.files import CRASH_ENV

    env = {k: v for k, v in os.environ.items() if k != CRASH_ENV}
    env["PRUNING_CHAIN"] = json.dumps(options)
    if crash:
        env[CRASH_ENV] = crash
    out = subprocess.run([sys.executable, str(PRUNING_CHAIN), str(directory)], env=env, capture_output=True,
                         text=True, timeout=600)
    return out.returncode, (json.loads(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 else None)


# Side-effect log: recipes append their node's label here so tests can count runs.
CALLS: list[str] = []


class MLPState(pl.ExperimentState):
    """A small MLP with an optimizer (momentum buffers), and a derived dataset."""

    PROPERTIES = ["width", "replicate"]
    NONHASHED_ATTRIBUTES = ["model", "optimizer", "history"]
    DERIVED_ATTRIBUTES = ["data"]

    def initialize_state(self):
        gen = torch.Generator().manual_seed(1234)
        self.data = (torch.randn(64, 10, generator=gen), torch.randint(0, 3, (64,), generator=gen))
        self.model = nn.Sequential(nn.Linear(10, self.width), nn.ReLU(), nn.Linear(self.width, 3))
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.1, momentum=0.9)
        self.history = []


class Train(pl.Recipe):
    """A few SGD steps on random mini-batches drawn from torch, numpy and random."""

    PROPERTIES = ["steps", "lr"]

    def run(self, state):
        CALLS.append(f"Train({self.steps},{self.lr})")
        x, y = state.data
        for group in state.optimizer.param_groups:
            group["lr"] = self.lr
        for _ in range(self.steps):
            idx = torch.randint(0, len(x), (16,))
            noise = float(np.random.normal(scale=0.01)) + random.random() * 0.01
            loss = nn.functional.cross_entropy(state.model(x[idx] + noise), y[idx])
            state.optimizer.zero_grad()
            loss.backward()
            state.optimizer.step()
        state.history = [*state.history, loss.item()]
        return state


class Prune(pl.Recipe):
    """L1-unstructured pruning of the first layer with torch.nn.utils.prune."""

    PROPERTIES = ["amount"]
    LINEAGE = {"technique": "l1_unstructured", "amount": "amount"}

    def run(self, state):
        CALLS.append(f"Prune({self.amount})")
        prune.l1_unstructured(state.model[0], "weight", amount=self.amount)
        return state


class Noise(pl.Recipe):
    """Add noise drawn from random, numpy and torch to every parameter."""

    PROPERTIES = ["scale"]

    def run(self, state):
        CALLS.append(f"Noise({self.scale})")
        with torch.no_grad():
            for p in state.model.parameters():
                p.add_(torch.randn_like(p) * self.scale + float(np.random.rand()) + random.random())
        return state


@pl.function
def evaluate(state):
    """Loss on the derived data, and the first layer's sparsity."""
    x, y = state.data
    with torch.no_grad():
        loss = float(nn.functional.cross_entropy(state.model(x), y))
    weight = state.model[0].weight
    return {"loss": loss, "sparsity": float((weight == 0).float().mean()), "draw": float(torch.rand(()))}


def declare_tree(exp, scales=(0.1, 0.2, 0.3)):
    """Root, a trained state (evaluated) and per scale a noised-then-pruned leaf (evaluated), tagged scale:<s>."""
    root = exp.spawn_new_tree(width=8, replicate=0)
    trained = Train(steps=3, lr=0.1)(root)
    evaluate(trained)
    leaves = []
    for scale in scales:
        with exp.tag(f"scale:{scale}"):
            leaf = Prune(amount=0.5)(Noise(scale=scale)(trained))
            evaluate(leaf)
            leaves.append(leaf)
    return root, trained, leaves


def stored_values(exp_dir: Path) -> dict[str, tuple]:
    """Map every stored state id to (values checksum, sorted blob digests, status)."""
    exp = pl.Experiment.restore(exp_dir)
    out = {}
    for node in exp.graph.nodes:
        record = node.record
        out[node.id] = (record.get("values_checksum"), tuple(record.get("blobs", [])), record.get("status"))
    return out


class Noisy(pl.ExperimentState):
    PROPERTIES = ["replicate"]
    NONHASHED_ATTRIBUTES = ["value"]

    def initialize_state(self):
        self.value = torch.zeros(3)


class AddNoise(pl.Recipe):
    """Adds scale × noise drawn from torch's generator: alone in run, or a cohort's members in run_cohort."""

    PROPERTIES = {"scale": 1.0}

    def run(self, state):
        state.value = state.value + self.scale * torch.rand(3)
        pl.log("scale", self.scale)
        return state

    def cohort_key(self):
        return "noise"

    def run_cohort(self, states):
        for state in states:
            with self.member(state) as own:
                state.value = state.value + own.scale * torch.rand(3)
                pl.log("scale", own.scale)
        return states
