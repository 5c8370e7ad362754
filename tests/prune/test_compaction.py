"""compact: channel-pruned models become physically smaller with the same outputs."""

import torch
from torch import nn

from prunelab.prune import compact, prune_model


def conv_relu_conv_linear():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 16, 3), nn.ReLU(), nn.Conv2d(16, 16, 3), nn.ReLU(), nn.Flatten(),
                         nn.Linear(16 * 4 * 4, 10))


def test_compact_removes_pruned_channels_and_keeps_outputs():
    model = conv_relu_conv_linear()
    prune_model(model, "l1_structured", amount=0.5, parameters=["0.weight", "2.weight"])
    x = torch.randn(4, 3, 8, 8)
    small = compact(model, x)
    assert sum(p.numel() for p in small.parameters()) < 0.5 * sum(p.numel() for p in model.parameters())
    assert small[0].out_channels == 8 and small[2].in_channels == 8 and small[2].out_channels == 8
    assert torch.allclose(small(x), model(x), atol=1e-5)
    assert hasattr(model[0], "weight_mask")  # the original is untouched
