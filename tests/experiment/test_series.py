"""Series: ``pl.log`` inside recipes and functions, read back per node, per set, and along a lineage."""

import warnings

import numpy as np
import pytest
import torch
from torch import nn

import prunelab as pl
from prunelab.core.runtime import every_of


class Net(pl.ExperimentState):
    PROPERTIES = ["replicate"]
    NONHASHED_ATTRIBUTES = ["model"]

    def initialize_state(self, replicate):
        self.model = nn.Linear(3, 2)


class Fit(pl.Recipe):
    PROPERTIES = {"steps": 4, "treatment": None}
    LINEAGE = {"treatment": "treatment"}

    def run(self, state):
        for _ in range(self.steps):
            loss = state.model(torch.randn(5, 3)).pow(2).mean()
            pl.log("loss", loss.detach())  # a tensor: converted when stored
        pl.log("explicit", 1, step=10)
        pl.log("explicit", np.float32(2.5), step=20)
        pl.log("explicit", True)  # one more than the last step: 21
        return state


class Cut(pl.Recipe):
    PROPERTIES = {"round": 1}
    LINEAGE = {"round": "round", "technique": "l1"}

    def run(self, state):
        with torch.no_grad():
            state.model.weight[0].zero_()
        return state


@pl.function
def probe(state):
    for i in range(3):
        pl.log("probe", i * 0.5)
    return 1.0


def chain(tmp_path, replicates=(0,)):
    exp = pl.Experiment(tmp_path / "exp", Net)
    ends = []
    for r in replicates:
        trained = Fit(steps=4)(exp.spawn_new_tree(replicate=r))
        ends.append(probe(Fit(steps=3, treatment="finetune")(Cut()(trained))))
    exp.run()
    return exp, ends


def test_a_nodes_series_are_what_was_logged_in_order(tmp_path):
    exp, (end,) = chain(tmp_path)
    trained = end.parent.parent
    frame = trained.series()
    assert list(frame.columns) == ["name", "step", "value", "source"]
    explicit = frame[frame["name"] == "explicit"]
    assert explicit["step"].tolist() == [10, 20, 21] and explicit["value"].tolist() == [1.0, 2.5, 1.0]
    loss = trained.series("loss")
    assert loss["step"].tolist() == [0, 1, 2, 3] and (loss["source"] == "recipe").all()
    assert loss["value"].dtype == np.float64 and np.isfinite(loss["value"]).all()
    fn = end.series("probe")
    assert fn["value"].tolist() == [0.0, 0.5, 1.0] and fn["source"].tolist() == ["function:probe@v1"] * 3
    assert end.parent.series().empty  # Cut logged nothing
    again = pl.Experiment.restore(tmp_path / "exp", Net)  # read from the files, not the run's memory
    assert again.graph.node(trained.id).series("loss")["value"].tolist() == loss["value"].tolist()


def test_nodeset_series_is_long_with_ids_properties_and_lineage(tmp_path):
    exp, ends = chain(tmp_path, replicates=(0, 1))
    frame = exp.graph.nodes.series("loss")
    assert set(frame["node_id"]) == {e.id for e in ends} | {e.parent.parent.id for e in ends}
    assert {"replicate", "treatment", "root_id", "depth", "technique"} <= set(frame.columns)
    finetuned = frame[frame["treatment"] == "finetune"]
    assert len(finetuned) == 2 * 3 and sorted(set(finetuned["replicate"])) == [0, 1]


def test_history_stitches_train_prune_finetune_on_one_axis(tmp_path):
    exp, (end,) = chain(tmp_path)
    curve = end.history("loss")
    assert curve["global_step"].tolist() == [0, 1, 2, 3, 4, 5, 6]
    assert curve["step"].tolist() == [0, 1, 2, 3, 0, 1, 2]
    assert curve["recipe"].tolist() == ["Fit"] * 7 and curve["begins"].tolist() == [True, False, False, False,
                                                                                    True, False, False]
    events = curve.attrs["events"]
    assert [(e["recipe"], e["global_step"], e["kind"]) for e in events] == [("Fit", 0, "recipe"),
                                                                            ("Cut", 4, "prune"), ("Fit", 4, "recipe")]
    trained_values = end.parent.parent.series("loss")["value"].tolist()
    assert curve["value"].tolist()[:4] == trained_values


def test_verify_compares_the_series_too(tmp_path):
    from prunelab.experiment.verify import verify

    exp, (end,) = chain(tmp_path)
    report = verify(exp, [end.id])
    assert [r["outcome"] for r in report.rows] == ["identical"]
    assert "series" in report.rows[0]["detail"]


def test_log_outside_a_body_and_bad_values_are_refused(tmp_path):
    with pytest.raises(pl.StateDefinitionError, match="pl.log was called outside a recipe or function"):
        pl.log("loss", 1.0)

    class Bad(pl.Recipe):
        PROPERTIES = {"what": "text"}

        def run(self, state):
            value = {"text": "high", "vector": torch.ones(3), "step": 1.0, "name": 1.0}[self.what]
            if self.what == "step":
                pl.log("x", 1.0, step=1.5)
            elif self.what == "name":
                pl.log("", value)
            pl.log("x", value)
            return state

    exp = pl.Experiment(tmp_path / "exp", Net)
    root = exp.spawn_new_tree(replicate=0)
    nodes = [Bad(what=w)(root) for w in ("text", "vector", "step", "name")]
    report = exp.run(raise_on_failure=False)
    errors = [report.failed[n.id].strip().splitlines()[-1] for n in nodes]
    assert "takes a real number" in errors[0] and "got str" in errors[0]
    assert "takes a real number" in errors[1] and "got Tensor" in errors[1]
    assert "step=) takes an int, got 1.5" in errors[2]
    assert "non-empty string name" in errors[3]


def test_checkpoint_and_resume_refuse_misuse(tmp_path):
    with pytest.raises(pl.StateDefinitionError, match="outside a recipe or function body"):
        Fit().checkpoint(None, 1)
    for every in ("soon", 0, -2, 1.5, "0s"):
        with pytest.raises(pl.StateDefinitionError, match="every="):
            every_of(every)
    assert every_of("90s") == ("seconds", 90.0) and every_of("5min") == ("seconds", 300.0)
    assert every_of(3) == ("steps", 3.0) and every_of(None) is None

    class Misuse(pl.Recipe):
        PROPERTIES = {"how": "step"}

        def run(self, state):
            if self.how == "step":
                self.checkpoint(state, -1)
            elif self.how == "object":
                self.checkpoint(state, 1, optimizer=[1, 2])
            else:
                self.checkpoint(state, 1, optimizer=torch.optim.SGD(state.model.parameters(), lr=0.1))
                self.resume(state)
            return state

    exp = pl.Experiment(tmp_path / "exp", Net)
    root = exp.spawn_new_tree(replicate=0)
    nodes = [Misuse(how=h)(root) for h in ("step", "object", "objects")]
    report = exp.run(raise_on_failure=False)
    errors = [report.failed[n.id].strip().splitlines()[-1] for n in nodes]
    assert "step must be a non-negative int, got -1" in errors[0]
    assert "optimizer= is a list, which has no state_dict()" in errors[1]
    assert "resume was given no objects, but the checkpoint" in errors[2] and "['optimizer']" in errors[2]
    # a failed node keeps its checkpoint (it is not done): the next run may resume it
    assert list((tmp_path / "exp" / "partials").glob(f"{nodes[2].id}.*.ckpt"))


def test_time_and_step_schedules_write_only_when_due(tmp_path):
    written = []

    class Often(pl.Recipe):
        def run(self, state):
            for step in range(1, 13):
                written.append((step, self.checkpoint(state, step, every=4), self.checkpoint(state, step,
                                                                                             every="1h")))
            return state

    exp = pl.Experiment(tmp_path / "exp", Net)
    Often()(exp.spawn_new_tree(replicate=0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        exp.run()
    assert [s for s, by_steps, _ in written if by_steps] == [4, 8, 12]
    assert not any(by_time for _, _, by_time in written)
    assert len(written) == 12
