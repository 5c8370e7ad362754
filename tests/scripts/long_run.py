"""A long recipe for the checkpoint tests: an MLP trained on the digits, checkpointing as it goes.

Run as ``python long_run.py DIRECTORY``; the recipe's options come from the
``LONG_RUN`` environment variable (JSON). It draws from every generator the
engine seeds (dropout from torch, noise from NumPy and ``random``), shuffles
with a :class:`~prunelab.recipes.ResumableSampler`, steps SGD with momentum
under a learning-rate schedule, and logs the loss at every step: a resume
that failed to restore any of these would store another state.
"""

import json
import math
import os
import random
import sys
import time

import numpy as np
import torch
from torch import nn

import prunelab as pl
from prunelab.recipes import ResumableSampler


class Digits(pl.ExperimentState):
    PROPERTIES = ["width"]
    NONHASHED_ATTRIBUTES = ["model"]
    DERIVED_ATTRIBUTES = ["data"]

    def initialize_state(self, width):
        from sklearn.datasets import load_digits

        x, y = load_digits(return_X_y=True)
        self.data = torch.utils.data.TensorDataset(torch.tensor(x[:480] / 16, dtype=torch.float32),
                                                   torch.tensor(y[:480]))
        self.model = nn.Sequential(nn.Linear(64, width), nn.ReLU(), nn.Dropout(0.2), nn.Linear(width, 10))


class LongFit(pl.Recipe):
    PROPERTIES = {"epochs": 3, "batch_size": 32}
    # every: checkpoint every n steps; forget: objects left out of the checkpoint (or "generators": reseeded after
    # resuming), to show the test would see it; pause: seconds per step; counter: a file each step appends to.
    OPTIONS = {"every": 1, "forget": "", "pause": 0.0, "counter": ""}

    def run(self, state):
        model = state.model
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-3)
        scheduler = torch.optim.lr_scheduler.StepLR(opt, step_size=10, gamma=0.7)
        sampler = ResumableSampler(len(state.data))
        # iterating a DataLoader draws its workers' base seed from the generator it is given (torch's global one
        # by default): a private one keeps a loader started mid-epoch after a resume from drawing an extra number
        loader = torch.utils.data.DataLoader(state.data, batch_size=self.batch_size, sampler=sampler,
                                             generator=torch.Generator())
        objects = {"optimizer": opt, "scheduler": scheduler, "sampler": sampler}
        for name in self.forget.split(","):
            objects.pop(name, None)
        step = self.resume(state, **objects) or 0
        if step and "generators" in self.forget:
            random.seed(0)
            np.random.seed(0)
            torch.manual_seed(0)
        total = self.epochs * math.ceil(len(state.data) / self.batch_size)
        model.train()
        while step < total:
            for x, y in loader:
                noise = float(np.random.normal(0, 0.01)) + random.random() * 0.01
                loss = nn.functional.cross_entropy(model(x + noise), y)
                opt.zero_grad()
                loss.backward()
                opt.step()
                scheduler.step()
                step += 1
                pl.log("loss", loss.detach())
                if self.counter:
                    with open(self.counter, "a") as f:
                        f.write(f"{step}\n")
                time.sleep(self.pause)
                self.checkpoint(state, step, every=self.every, **objects)
        model.eval()
        return state


@pl.function
def accuracy(state):
    x, y = state.data.tensors
    with torch.no_grad():
        return float((state.model(x).argmax(1) == y).float().mean())


if __name__ == "__main__":
    exp = pl.Experiment(sys.argv[1], Digits)
    node = accuracy(LongFit(**json.loads(os.environ.get("LONG_RUN", "{}")))(exp.spawn_new_tree(width=32)))
    exp.run()
    result = node.experiment.storage.results(node.id)["accuracy@v1"]
    print(json.dumps({"id": node.id, "values": node.record["values_checksum"], "series": node.record.get("series"),
                      "resumed": node.record.get("resumed", []), "result": [result["value"], result["blobs"]]}))
