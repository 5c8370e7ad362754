"""Pretrained weights from a local file: named by their digest, part of the root's id, checked when loaded."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

import prunelab as pl
from prunelab.core.identity import root_id
from prunelab.recipes import ModelState, Train
from prunelab.zoo import ZooError, build_model, load_weights, weights_file

ROOT = {"dataset_name": "digits", "model_name": "lenet5", "replicate": 0}


def _trained(seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return {k: v.clone() for k, v in build_model("lenet5", (1, 8, 8), 10).state_dict().items()}


def test_a_pretrained_root_starts_from_the_file_and_its_digest_is_in_the_id(tmp_path):
    weights = _trained(7)
    save_file(weights, tmp_path / "a.safetensors")
    torch.save({"state_dict": _trained(8), "epoch": 3}, tmp_path / "b.pt")  # a trainer's layout
    exp = pl.Experiment(tmp_path / "exp", ModelState)
    scratch = exp.spawn_new_tree(**ROOT)
    a = exp.spawn_new_tree(**ROOT, pretrained=weights_file(tmp_path / "a.safetensors"))
    b = exp.spawn_new_tree(**ROOT, pretrained=weights_file(tmp_path / "b.pt"))
    trained = Train(epochs=1, batch_size=64)(a)
    exp.run(quiet=True)
    # a root left without pretrained weights has the id it had before the property existed
    assert scratch.id == root_id("ModelState", {**ROOT, "split_seed": 0, "val_fraction": 0.1, "imbalance": None})
    assert len({scratch.id, a.id, b.id}) == 3
    state = a.restore()
    for name, tensor in weights.items():
        assert torch.equal(state.model.state_dict()[name], tensor)
        assert torch.equal(state.init_weights[name], tensor)  # rewinding to init goes back to the pretrained weights
    assert torch.equal(b.restore().model.state_dict()["0.0.weight"], _trained(8)["0.0.weight"])
    assert a.properties["pretrained"]["digest"] == weights_file(tmp_path / "a.safetensors")["digest"]
    assert trained.status == "done"


def test_a_file_changed_since_the_state_was_declared_is_refused(tmp_path):
    save_file(_trained(1), tmp_path / "w.safetensors")
    named = weights_file(tmp_path / "w.safetensors")
    save_file(_trained(2), tmp_path / "w.safetensors")
    with pytest.raises(ZooError, match=r"w\.safetensors have changed since the state was declared: their digest is "
                                       r"[0-9a-f]{32}, the state's id holds " + named["digest"]):
        load_weights(build_model("lenet5", (1, 8, 8), 10), named)
    exp = pl.Experiment(tmp_path / "exp", ModelState)
    node = exp.spawn_new_tree(**ROOT, pretrained=named)
    report = exp.run(quiet=True, raise_on_failure=False)
    assert "have changed since the state was declared" in report.failed[node.id]
    assert node.status != "done"


def test_missing_foreign_and_ill_fitting_files_are_refused_naming_the_file(tmp_path):
    model = build_model("lenet5", (1, 8, 8), 10)
    with pytest.raises(ZooError, match=r"cannot read the pretrained weights .*nowhere\.pt"):
        weights_file(tmp_path / "nowhere.pt")
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ZooError, match=r"junk\.safetensors cannot be read as a safetensors file"):
        load_weights(model, weights_file(tmp_path / "junk.safetensors"))
    torch.save({"epoch": 3}, tmp_path / "nodict.pt")
    with pytest.raises(ZooError, match=r"nodict\.pt hold no state dict"):
        load_weights(model, weights_file(tmp_path / "nodict.pt"))
    torch.save({"model": torch.nn.Linear(2, 2)}, tmp_path / "pickled.pt")  # a whole module: needs unpickling code
    with pytest.raises(ZooError, match=r"pickled\.pt cannot be read as a torch\.save file"):
        load_weights(model, weights_file(tmp_path / "pickled.pt"))
    save_file({k: v for k, v in _trained(0).items() if not k.startswith("0.0.")}, tmp_path / "part.safetensors")
    with pytest.raises(ZooError, match=r"part\.safetensors do not fit the Sequential built for this state: .*"
                                       r"Missing key\(s\).*Check model_name"):
        load_weights(model, weights_file(tmp_path / "part.safetensors"))
    with pytest.raises(ZooError, match=r"pretrained must be what prunelab\.zoo\.weights_file\(path\) returns"):
        load_weights(model, {"path": str(tmp_path / "part.safetensors")})
