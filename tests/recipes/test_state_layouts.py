"""Loading states: one engine loading states of several structures equals fresh engines loading each."""

import torch

import prunelab as pl
from prunelab.prune import pruned_parameters
from prunelab.recipes import ModelState, Prune, Train

ROOT = {"dataset_name": "digits", "model_name": "lenet5", "replicate": 0, "split_seed": 0, "val_fraction": 0.1,
        "imbalance": None}


def _describe(state: ModelState) -> dict:
    model = state.model
    return {
        "state_dict": [(k, v.dtype, v.requires_grad, v.detach().clone()) for k, v in model.state_dict(keep_vars=True).items()],
        "hooks": [(path, [type(h).__name__ for h in m._forward_pre_hooks.values()], pruned_parameters(m))
                  for path, m in model.named_modules()],
        "masked": [getattr(m, n).detach().clone() for m in model.modules() for n in pruned_parameters(m)],
        "init": {k: v.clone() for k, v in state.init_weights.items()},
        "config": state.train_config,
        "output": model.eval()(state.data.test[0][:16]).detach(),
    }


def _same(a: dict, b: dict) -> None:
    assert [x[:3] for x in a["state_dict"]] == [x[:3] for x in b["state_dict"]]
    assert all(torch.equal(x[3], y[3]) for x, y in zip(a["state_dict"], b["state_dict"]))
    assert a["hooks"] == b["hooks"] and a["config"] == b["config"]
    assert all(torch.equal(x, y) for x, y in zip(a["masked"], b["masked"])) and len(a["masked"]) == len(b["masked"])
    assert a["init"].keys() == b["init"].keys() and all(torch.equal(a["init"][k], b["init"][k]) for k in a["init"])
    assert torch.equal(a["output"], b["output"])


def test_states_of_several_layouts_load_alike_in_one_engine_and_in_fresh_ones(tmp_path):
    exp = pl.Experiment(tmp_path / "exp", ModelState)
    root = exp.spawn_new_tree(**ROOT)
    trained = Train(epochs=1, lr=0.05, batch_size=64)(root)
    nodes = [root, trained]
    for technique in ("l1_unstructured", "l1_structured"):
        once = Prune(technique=technique, amount=0.3, round=1)(trained)
        nodes += [once, Prune(technique=technique, amount=0.3, round=2)(once)]
    exp.run(quiet=True)
    order = nodes + nodes[::-1]  # each layout after the others, so later loads copy templates shaped earlier
    mixed = [_describe(exp.engine.materialiser.load_state(n.id, n.properties, n.record["root_id"])) for n in order]
    for node, described in zip(order, mixed):
        fresh = pl.Experiment.restore(tmp_path / "exp", ModelState)
        reference = fresh.engine.materialiser.load_state(node.id, node.properties, node.record["root_id"])
        _same(described, _describe(reference))
    layouts = {tuple(tuple(names) for _, _, names in d["hooks"]) for d in mixed}
    assert len(layouts) == 3  # unpruned, weights pruned, weights and biases pruned
