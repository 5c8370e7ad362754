"""Masks as data: reports, Jaccard, files, multiply-adds."""

import pytest
import torch
from torch import nn

from conftest import small_cnn
from prunelab.prune import (
    PruningError,
    apply_masks,
    flops,
    get_masks,
    jaccard,
    load_masks,
    make_permanent,
    prune_model,
    save_masks,
    sparsity_report,
)


def test_jaccard_of_a_mask_with_itself_is_one(model):
    prune_model(model, "l1_unstructured", amount=0.7)
    result = jaccard(model, model)
    assert result.pooled == 1.0 and set(result.per_tensor.values()) == {1.0}


def test_jaccard_of_independent_random_masks_matches_chance():
    masks = []
    for seed in (1, 2):
        model = nn.Sequential(nn.Linear(300, 200), nn.ReLU(), nn.Linear(200, 100))
        prune_model(model, "random_unstructured", amount=0.6, generator=torch.Generator().manual_seed(seed))
        masks.append(get_masks(model))
    result = jaccard(masks[0], masks[1])
    d = 0.4
    assert result.chance == pytest.approx(d * d / (2 * d - d * d), abs=1e-3)
    n = 300 * 200 + 200 * 100
    assert abs(result.pooled - result.chance) < 5 * (result.chance / n) ** 0.5  # a few standard errors


def test_jaccard_refuses_masks_of_different_parameters():
    with pytest.raises(PruningError, match="cover different parameters"):
        jaccard({"a": torch.ones(2)}, {"b": torch.ones(2)})


def test_masks_round_trip_through_a_safetensors_file(model, tmp_path):
    prune_model(model, "l2_structured", amount=0.5)
    path = tmp_path / "masks.safetensors"
    save_masks(model, path)
    loaded = load_masks(path)
    assert loaded.keys() == get_masks(model).keys()
    fresh = small_cnn(seed=3)
    apply_masks(fresh, loaded)
    assert all(torch.equal(a, b) for a, b in zip(get_masks(fresh).values(), get_masks(model).values()))


def test_bad_mask_files_and_masks_are_refused(model, tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "other.safetensors"
    save_file({"x": torch.ones(2)}, str(path))
    with pytest.raises(PruningError, match="is not a prunelab mask file"):
        load_masks(path)
    (tmp_path / "junk.safetensors").write_bytes(b"not a file")
    with pytest.raises(PruningError, match="is not a readable safetensors file"):
        load_masks(tmp_path / "junk.safetensors")
    with pytest.raises(PruningError, match="mask '9.weight' names no parameter"):
        apply_masks(model, {"9.weight": torch.ones(3)})
    with pytest.raises(PruningError, match="mask '0.weight' has shape \\(3,\\)"):
        apply_masks(model, {"0.weight": torch.ones(3)})
    with pytest.raises(PruningError, match="has entries other than 0 and 1"):
        apply_masks(model, {"0.weight": torch.full((8, 3, 3, 3), 0.5)})
    assert get_masks(model) == {}


def test_sparsity_report_counts_explicit_and_effective_sparsity():
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    prune_model(model, "l1_unstructured", n_prune=0)
    with torch.no_grad():
        model[0].weight_mask[1] = 0  # hidden unit 1 has no surviving input
        model[2].weight_mask[:, 2] = 0  # hidden unit 2 has no surviving output
    report = sparsity_report(model, input_shape=(1, 4))
    assert report.sparsity == pytest.approx((4 + 2) / (12 + 6))
    rows = {row["parameter"]: row for row in report.rows}
    # unit 1: its 2 outgoing weights are dead too; unit 2: its 4 incoming weights are dead too
    assert rows["0.weight"]["effective_zeros"] == 8 and rows["2.weight"]["effective_zeros"] == 4
    assert rows["0.weight"]["effective_bias_zeros"] == 1  # the bias of unit 2 cannot reach the output
    assert report.effective_sparsity == pytest.approx(12 / 18)
    assert report.effective_sparsity >= report.sparsity
    assert list(report.to_frame().columns[:4]) == ["parameter", "size", "zeros", "sparsity"]


def test_effective_sparsity_sees_through_max_pooling(model):
    prune_model(model, "l1_unstructured", amount=0.2)
    report = sparsity_report(model, input_shape=(1, 3, 8, 8))
    assert report.sparsity <= report.effective_sparsity < report.sparsity + 0.1


def test_flops_counts_dense_and_kept_multiply_adds(model):
    dense = flops(model, (1, 3, 8, 8))
    conv1, conv2 = 6 * 6 * 8 * 27, 4 * 4 * 8 * 72
    assert dense == {"dense": conv1 + conv2 + 128 * 16 + 16 * 4, "effective": conv1 + conv2 + 128 * 16 + 16 * 4}
    prune_model(model, "l1_structured", amount=0.5, parameters=["0.weight"])
    assert flops(model, (1, 3, 8, 8))["effective"] == dense["dense"] - conv1 // 2


def test_make_permanent_folds_the_masks(model):
    prune_model(model, "l1_unstructured", amount=0.5)
    x = torch.randn(2, 3, 8, 8)
    before = model(x)
    make_permanent(model)
    assert get_masks(model) == {} and isinstance(model[0].weight, nn.Parameter)
    assert torch.equal(model(x), before)
