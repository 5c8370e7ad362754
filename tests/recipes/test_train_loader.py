"""Train's loader path: augmented batches from loader workers, bitwise the same across runs, worker counts,
executors and SIGKILLs; devices and mixed precision (CUDA where a GPU is)."""

import signal

import pytest
import torch

import prunelab as pl
from helpers import run_pruning_chain
from prunelab.core.identity import root_id
from prunelab.recipes import ModelState, Prune, Train
from prunelab.recipes.loading import EpochBatches, batch_generator
from prunelab.zoo.augmentation import Augment, augmentation_steps

AUGMENTED = {"dataset_name": "digits", "model_name": "lenet5", "replicate": 0,
             "augmentation": [{"name": "random_crop", "padding": 2}, {"name": "hflip", "p": 0.5}]}
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (none on this machine)")


def _train(directory, executor=None, root=AUGMENTED, **options):
    exp = pl.Experiment(directory, ModelState)
    node = Train(epochs=2, lr=0.05, batch_size=128, **options)(exp.spawn_new_tree(**root))
    exp.run(executor=executor, quiet=True)
    return node


def test_the_same_augmented_training_gives_the_same_bits_in_two_runs_and_with_any_worker_count(tmp_path):
    first = _train(tmp_path / "a")
    again = _train(tmp_path / "b")
    workers = _train(tmp_path / "c", num_workers=2)
    plain = _train(tmp_path / "d", root={k: v for k, v in AUGMENTED.items() if k != "augmentation"})
    assert first.record["values_checksum"] == again.record["values_checksum"] == workers.record["values_checksum"]
    assert first.series("loss")["value"].tolist() == workers.series("loss")["value"].tolist()
    assert plain.record["values_checksum"] != first.record["values_checksum"]  # the augmentation did something
    assert first.record["recipe"]["options"]["num_workers"] == 0
    assert workers.record["recipe"]["options"]["num_workers"] == 2


def test_the_augmentation_is_identity_and_lineage_and_a_state_without_one_keeps_its_old_id(tmp_path):
    exp = pl.Experiment(tmp_path / "exp", ModelState)
    plain = exp.spawn_new_tree(dataset_name="digits", model_name="lenet5", replicate=0)
    standard = exp.spawn_new_tree(dataset_name="digits", model_name="lenet5", replicate=0, augmentation="standard")
    assert plain.id == root_id("ModelState", {"dataset_name": "digits", "model_name": "lenet5", "replicate": 0,
                                              "split_seed": 0, "val_fraction": 0.1, "imbalance": None})
    assert len({plain.id, standard.id, exp.spawn_new_tree(**AUGMENTED).id}) == 3
    assert standard.properties["augmentation"] == "standard" and "augmentation" not in plain.properties


def test_a_local_and_a_dask_run_with_loader_workers_store_the_same_bits(tmp_path):
    pytest.importorskip("distributed")
    local = _train(tmp_path / "local", num_workers=2)
    dask = _train(tmp_path / "dask", executor=pl.DaskExecutor(n_workers=1), num_workers=2)
    assert dask.record["values_checksum"] == local.record["values_checksum"]


def test_killed_mid_epoch_with_loader_workers_it_resumes_to_the_uninterrupted_bits(tmp_path):
    # 12 batches an epoch, a checkpoint after each: killed at step 4 (epoch 1) and at step 15 (epoch 2)
    code, reference = run_pruning_chain(tmp_path / "reference", mode="loader")
    assert code == 0
    for crash in ("partial-written:4", "partial-written:11"):
        code, _ = run_pruning_chain(tmp_path / "exp", crash=crash, mode="loader", num_workers=2,
                                    checkpoint_every=1e-9)
        assert code == -signal.SIGKILL
    code, resumed = run_pruning_chain(tmp_path / "exp", mode="loader", num_workers=2, checkpoint_every=1e-9)
    assert code == 0
    assert resumed["loader"][:2] == reference["loader"][:2]
    assert resumed["loader"][2] == [4, 15]


def test_a_batch_is_made_from_its_numbers_alone():
    x, y = torch.rand(10, 1, 4, 4), torch.arange(10)
    augment = Augment(augmentation_steps("standard"))
    batches = EpochBatches(x, y, 4, augment, seed=7)
    order = torch.randperm(10, generator=torch.Generator().manual_seed(0))
    whole = list(batches.loader(3, order, 0, 0, False))
    resumed = list(batches.loader(3, order, 1, 0, False))
    assert [len(b[1]) for b in whole] == [4, 4, 2] and len(resumed) == 2
    for (xa, ya), (xb, yb) in zip(whole[1:], resumed):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert torch.equal(whole[0][1], order[:4])
    expected = augment(x[order[4:8]], batch_generator(7, 3, 1))
    assert torch.equal(whole[1][0], expected)
    other_epoch = list(batches.loader(4, order, 0, 0, False))
    assert not torch.equal(other_epoch[1][0], whole[1][0])  # each epoch augments anew


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_mixed_precision_trains_checkpoints_its_grad_scaler_and_resumes_bitwise(tmp_path, amp):
    from prunelab.storage import Store

    code, reference = run_pruning_chain(tmp_path / "reference", mode="loader", amp=amp, device="cpu")
    assert code == 0
    code, _ = run_pruning_chain(tmp_path / "exp", crash="partial-written:6", mode="loader", amp=amp,
                                checkpoint_every=1e-9, device="cpu")
    assert code == -signal.SIGKILL
    node_id = Train(epochs=2, lr=0.05, batch_size=128)(
        pl.Experiment(tmp_path / "ids", ModelState).spawn_new_tree(**AUGMENTED)).id
    record, _ = Store(tmp_path / "exp").partials.read_packed(node_id)
    assert sorted(record["objects"]) == (["optimizer", "place", "scaler"] if amp == "fp16" else ["optimizer", "place"])
    code, resumed = run_pruning_chain(tmp_path / "exp", mode="loader", amp=amp, checkpoint_every=1e-9, device="cpu")
    assert code == 0 and resumed["loader"][:2] == reference["loader"][:2] and resumed["loader"][2] == [6]
    full = run_pruning_chain(tmp_path / "full", mode="loader", device="cpu")[1]
    assert full["loader"][0] != reference["loader"][0]  # autocast changed the arithmetic


@pytest.mark.parametrize("options, message", [
    ({"device": "tpu:x"}, "option 'device' must be 'auto', 'cpu', 'cuda'"),
    ({"amp": "fp8"}, "option 'amp' must be False, True, 'bf16' or 'fp16'"),
    ({"num_workers": -1}, "property 'num_workers' must be a non-negative int"),
    ({"num_workers": True}, "property 'num_workers' must be a non-negative int"),
])
def test_bad_device_amp_or_worker_options_are_refused_naming_the_option(options, message):
    with pytest.raises(pl.StateDefinitionError, match=message):
        Train(**options)


def test_prune_refuses_a_device_that_names_none():
    with pytest.raises(pl.StateDefinitionError, match="Prune option 'device'"):
        Prune(device="gpu0")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_training_on_a_cuda_device_this_machine_lacks_says_so_and_stores_nothing(tmp_path):
    exp = pl.Experiment(tmp_path / "exp", ModelState)
    node = Train(epochs=1, device="cuda")(exp.spawn_new_tree(**AUGMENTED))
    report = exp.run(quiet=True, raise_on_failure=False)
    assert "no such CUDA device" in report.failed[node.id] and "device='auto'" in report.failed[node.id]
    assert node.status == "failed"


@cuda
def test_a_state_trained_on_cuda_stores_restores_on_cpu_and_cuda_and_verifies(tmp_path):
    exp = pl.Experiment(tmp_path / "exp", ModelState, deterministic=True)
    node = Train(epochs=2, lr=0.05, batch_size=128, device="cuda", num_workers=2)(exp.spawn_new_tree(**AUGMENTED))
    pruned = Prune(technique="global_magnitude", amount=0.5, device="cuda")(node)
    exp.run(quiet=True)
    assert node.record["recipe"]["options"]["device"] == "cuda"
    state = node.deflate().restore()
    assert all(p.device.type == "cpu" for p in state.model.parameters())
    x, _ = state.data.test
    on_cpu = state.model(x)
    assert torch.allclose(state.model.to("cuda")(x.cuda()).cpu(), on_cpu, atol=1e-4)
    again = pl.Experiment(tmp_path / "again", ModelState, deterministic=True)
    twin = Train(epochs=2, lr=0.05, batch_size=128, device="cuda")(again.spawn_new_tree(**AUGMENTED))
    again.run(quiet=True)
    assert twin.record["values_checksum"] == node.record["values_checksum"]  # deterministic on one GPU
    from prunelab.experiment.verify import verify

    assert verify(exp, [pruned.id]).ok
