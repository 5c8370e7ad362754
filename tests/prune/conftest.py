"""Small real models and per-technique call arguments for the pruning tests."""

import pytest
import torch
from torch import nn

from prunelab.prune import available_techniques

INPUT_SHAPE = (6, 3, 8, 8)
DATA_TECHNIQUES = {"snip", "grasp", "taylor"}


def small_cnn(seed: int = 0) -> nn.Sequential:
    """conv-ReLU-conv-ReLU-linear-ReLU-linear, with biases."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 8, 3), nn.ReLU(), nn.Flatten(),
                         nn.Linear(8 * 4 * 4, 16), nn.ReLU(), nn.Linear(16, 4))


def batch(seed: int = 1):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(INPUT_SHAPE, generator=gen), torch.randint(0, 4, (INPUT_SHAPE[0],), generator=gen)


def call_kwargs(technique: str) -> dict:
    """What each technique needs besides the amount."""
    x, y = batch()
    if technique in DATA_TECHNIQUES:
        return {"inputs": x, "targets": y}
    if technique == "synflow":
        return {"inputs": x, "iterations": 3}
    return {}


def sgd_steps(model, optimizer, n=3):
    """Take ``n`` cross-entropy steps on the fixed batch."""
    x, y = batch()
    for _ in range(n):
        loss = nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


@pytest.fixture
def model():
    return small_cnn()


TECHNIQUES = available_techniques()
AMOUNT_TECHNIQUES = [t for t in TECHNIQUES if t != "nm"]
