"""The standard Train checkpoints and logs: killed anywhere in a train → prune → finetune chain, it resumes
to the uninterrupted run's states and curves, bit for bit."""

import signal

import pytest

import prunelab as pl
from helpers import run_pruning_chain
from prunelab.recipes import ModelState

@pytest.mark.slow
@pytest.mark.timeout(900)
def test_train_killed_mid_epoch_in_both_trainings_resumes_bitwise(tmp_path):
    code, reference = run_pruning_chain(tmp_path / "reference")
    assert code == 0
    directory = tmp_path / "exp"
    # 11 steps an epoch, a checkpoint after each but the last: killed at the first training's step 5, then (resumed
    # there) at its step 14, then (resumed there) at the pruned model's fifth finetuning step
    for crash in ("partial-written:5", "partial-written:9", "partial-written:12"):
        code, _ = run_pruning_chain(directory, crash=crash, checkpoint_every=1e-9)
        assert code == -signal.SIGKILL
    code, resumed = run_pruning_chain(directory, checkpoint_every=1e-9)
    assert code == 0
    assert resumed["trained"][:2] == reference["trained"][:2] and resumed["finetuned"][:2] == \
        reference["finetuned"][:2]
    assert resumed["trained"][2] == [5, 14] and resumed["finetuned"][2] == [5]  # resumed, not recomputed


def test_train_logs_loss_per_step_and_val_accuracy_per_epoch_and_history_joins_the_chain(tmp_path):
    from prunelab.recipes import Prune, Train

    exp = pl.Experiment(tmp_path / "exp", ModelState)
    root = exp.spawn_new_tree(dataset_name="digits", model_name="lenet300100", replicate=0)
    trained = Train(epochs=2, lr=0.05, batch_size=256, val_accuracy=True)(root)
    pruned = Prune(technique="global_magnitude", amount=0.5)(trained)
    finetuned = Train(epochs=1, lr=0.02, batch_size=256, treatment="finetune")(pruned)
    exp.run()
    steps = -(-len(trained.restore().data.train[1]) // 256)
    loss = trained.series("loss")
    assert loss["step"].tolist() == list(range(2 * steps))
    assert trained.series("val_accuracy")["step"].tolist() == [1, 2]
    assert 0.0 <= trained.series("val_accuracy")["value"].min() <= 1.0
    assert finetuned.series("val_accuracy").empty  # not asked for
    losses = trained.restore().train_config[-1]["losses"]
    assert len(losses) == 2  # the epoch means are kept as before
    curve = finetuned.history("loss")
    assert curve["global_step"].tolist() == list(range(3 * steps))
    events = [(e["recipe"], e["global_step"], e["kind"]) for e in curve.attrs["events"]]
    assert events == [("Train", 0, "recipe"), ("Prune", 2 * steps, "prune"), ("Train", 2 * steps, "recipe")]
    frame = exp.graph.nodes.series("loss")
    assert set(frame["treatment"].dropna()) == {"finetune"} and set(frame["node_id"]) == {trained.id, finetuned.id}


def test_train_refuses_a_bad_checkpoint_every():
    from prunelab.recipes import Train

    for bad in (0, -1.0, "often", True):
        with pytest.raises(pl.StateDefinitionError, match="checkpoint_every"):
            Train(checkpoint_every=bad)
