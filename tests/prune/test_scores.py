"""Data-dependent and normalised techniques on a tiny network whose scores are computed by hand.

The network is f(x) = v^T W x (no bias, no activation) with W 2x2 and v 2x1, the
loss L = (f - t)^2 / 2 on one sample, so r = f - t, dL/dW = r v x^T, dL/dv = r W x,
and the Hessian-gradient product has a closed form (see test_grasp).
"""

import pytest
import torch
from torch import nn

from prunelab.prune import prune_model
from prunelab.prune.targets import select_parameters
from prunelab.prune.techniques import Context, get_technique

W = torch.tensor([[0.5, -1.0], [2.0, 0.25]])
V = torch.tensor([[1.5, -0.5]])
X = torch.tensor([[1.0, 2.0]])
T = torch.tensor([[0.3]])


def network():
    first, second = nn.Linear(2, 2, bias=False), nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        first.weight.copy_(W)
        second.weight.copy_(V)
    return nn.Sequential(first, second)


def half_squared(output, target):
    return ((output - target) ** 2).sum() / 2


def scores_of(technique, **options):
    model = network()
    context = Context(model, X, T, half_squared, None, {})
    return get_technique(technique, **options).scores(select_parameters(model, None), context)


def by_hand():
    h = W @ X[0]                   # hidden activations
    f = float(V[0] @ h)
    r = f - float(T)
    g_w = r * V[0][:, None] * X[0][None, :]
    g_v = r * h[None, :]
    return h, r, g_w, g_v


def removed_by(technique, n=1, **options):
    model = network()
    prune_model(model, technique, n_prune=n, inputs=X, targets=T, loss_fn=half_squared, **options)
    return [(i, tuple(idx.tolist())) for i, layer in enumerate(model)
            for idx in (layer.weight_mask == 0).nonzero()]


def flat_argmin(score_w, score_v, largest=False):
    flat = torch.cat([score_w.reshape(-1), score_v.reshape(-1)])
    index = int(flat.argmax() if largest else flat.argmin())
    return [(0, divmod(index, 2))] if index < 4 else [(1, (0, index - 4))]


def test_snip_is_the_magnitude_of_gradient_times_weight():
    _, _, g_w, g_v = by_hand()
    expected_w, expected_v = (g_w * W).abs(), (g_v * V).abs()
    got = scores_of("snip")
    assert torch.allclose(got[0], expected_w) and torch.allclose(got[1], expected_v)
    assert removed_by("snip") == flat_argmin(expected_w, expected_v)


def test_taylor_squares_the_channel_sum_of_gradient_times_weight():
    _, _, g_w, g_v = by_hand()
    expected_w = (g_w * W).sum(1) ** 2  # one score per output channel (row)
    expected_v = (g_v * V).sum(1) ** 2
    got = scores_of("taylor")
    assert torch.allclose(got[0], expected_w) and torch.allclose(got[1], expected_v)
    snip = (g_w * W).abs().sum(1)
    assert not torch.allclose(expected_w, snip**2)  # not SNIP: the sum is inside the square
    model = network()
    prune_model(model, "taylor", n_prune=1, inputs=X, targets=T, loss_fn=half_squared)
    channel = int(torch.cat([expected_w, expected_v]).argmin())
    layer, row = (0, channel) if channel < 2 else (1, channel - 2)
    assert bool((model[layer].weight_mask[row] == 0).all())


def test_grasp_is_minus_weight_times_hessian_gradient_and_removes_the_largest():
    h, r, g_w, g_v = by_hand()
    # grad f: df/dW = v x^T, df/dv = h.  g = r grad f.  H = grad f grad f^T + r d2f, with
    # d2f coupling v_c and W_cj by x_j.  So Hg = grad f (grad f . g) + r d2f g.
    df_w, df_v = V[0][:, None] * X[0][None, :], h[None, :]
    dot = float((df_w * g_w).sum() + (df_v * g_v).sum())
    hg_w = df_w * dot + r * (X[0][None, :] * g_v[0][:, None])
    hg_v = df_v * dot + r * (X[0][None, :] * g_w).sum(1)[None, :]
    expected_w, expected_v = -W * hg_w, -V * hg_v
    got = scores_of("grasp")
    assert torch.allclose(got[0], expected_w, atol=1e-5) and torch.allclose(got[1], expected_v, atol=1e-5)
    assert removed_by("grasp") == flat_argmin(expected_w, expected_v, largest=True)


def test_synflow_is_weight_times_synaptic_flow_gradient():
    # R = sum_c |v_c| sum_j |W_cj| on an all-ones input: dR/dW_cj = |v_c|, dR/dv_c = sum_j |W_cj|.
    expected_w = W.abs() * V.abs()[0][:, None]
    expected_v = V.abs() * W.abs().sum(1)[None, :]
    got = scores_of("synflow", input_shape=(1, 2))
    assert torch.allclose(got[0].float(), expected_w) and torch.allclose(got[1].float(), expected_v)
    assert removed_by("synflow", iterations=1) == flat_argmin(expected_w, expected_v)


def test_lamp_normalises_by_the_tail_of_larger_weights():
    def lamp(weights):
        flat = weights.reshape(-1).double()
        out = torch.empty_like(flat)
        for i, w in enumerate(flat):
            out[i] = w**2 / (flat**2)[flat.abs() >= w.abs()].sum()
        return out.view(weights.shape)

    got = scores_of("lamp")
    assert torch.allclose(got[0], lamp(W)) and torch.allclose(got[1], lamp(V))
    assert float(got[0].max()) == pytest.approx(1.0) and float(got[1].max()) == pytest.approx(1.0)
    assert removed_by("lamp") == flat_argmin(lamp(W).float(), lamp(V).float())
