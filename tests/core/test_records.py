"""Records: one constructor per transition, the stored form unchanged, and statuses that are plain strings on disk."""

import json
from pathlib import Path

import pytest

import prunelab as pl
from helpers import MLPState, Train
from prunelab.core.records import ResultRecord, RunManifest, StateRecord, Status
from prunelab.execution.plan import make_plan

FORMAT1 = Path(__file__).resolve().parents[1] / "data" / "format1"


def _stored(path: Path) -> dict:
    return json.loads(path.read_text())


@pytest.mark.parametrize("meta", sorted(FORMAT1.glob("states/*/*/meta.json")), ids=lambda p: p.parent.name[:8])
def test_a_stored_record_reads_and_writes_back_key_for_key(meta):
    stored = _stored(meta)
    record = StateRecord.from_dict(stored)
    assert record.to_dict() == {k: v for k, v in stored.items() if k not in ("digest", "values_checksum")}
    assert record.root == stored["root_id"] and record.outcome["status"] == Status.DONE


def test_the_transitions_give_the_fields_a_run_has_always_written():
    declared = StateRecord.from_dict(StateRecord.declared_root("a" * 32, "S", {"n": 1}, {"n": ["json", 1]}))
    assert declared.to_dict() == {"id": "a" * 32, "parent_id": None, "root_id": "a" * 32, "depth": 0,
                                  "state_class": "S", "recipe": None, "properties": {"n": 1},
                                  "property_specs": {"n": ["json", 1]}, "lineage": {}, "seed": None}
    started = declared.started(at=1.0, worker="h:1", environment="e" * 32, prereg=(), seed=7, threads=1,
                               deterministic=False)
    failed = started.failed(error="Traceback", wall_s=0.5).to_dict()
    assert set(failed) - set(declared.to_dict()) == {"started", "worker", "environment", "threads", "deterministic",
                                                     "status", "error", "wall_s", "blobs", "pickled"}
    assert failed["seed"] == 7 and failed["status"] == "failed" and failed["blobs"] == []
    done = started.in_force({"threads": 2}).done(wall_s=1.5, blobs=["b" * 32], size=8, pickled=False,
                                                 devices=["cpu"]).to_dict()
    assert done["threads"] == 2 and done["status"] == "done" and done["error"] is None
    assert {"bytes", "devices"} <= set(done) and "prereg" not in done
    with_prereg = declared.started(at=1.0, worker="h:1", environment=None, prereg=("d" * 64,), seed=7, threads=1,
                                   deterministic=True)
    assert with_prereg.to_dict()["prereg"] == ["d" * 64]


def test_a_record_that_names_no_root_is_refused_with_what_to_do():
    record = StateRecord.from_dict({"id": "c" * 32, "parent_id": "a" * 32, "status": "failed"})
    with pytest.raises(pl.CorruptStateError, match="names no root_id"):
        _ = record.root


def test_result_records_and_run_manifests_write_their_stored_fields():
    result = ResultRecord("evaluate", 1, "a" * 32, 3, "f" * 16, "m", "q", ["json", 1.0], [], {"started": 1.0})
    assert result.to_dict() == {"name": "evaluate", "version": 1, "node_id": "a" * 32, "seed": 3,
                                "fingerprint": "f" * 16, "module": "m", "qualname": "q", "value": ["json", 1.0],
                                "blobs": [], "started": 1.0}
    blinded = ResultRecord("evaluate", 1, "a" * 32, 3, None, None, None, ["json", 0], [], {}, ["acc"])
    assert blinded.withheld(["json", 0.9], ["b" * 32]).to_dict()["blinded"] == ["acc"]
    manifest = RunManifest(["a" * 32], 1.0, "local", None, 1, False, 9, None, 1, 0, 1).to_dict()
    assert set(manifest) == {"format", "declared", "started", "executor", "environment", "threads",
                             "deterministic", "pid", "targets", "planned", "cached"}


def test_statuses_are_strings_on_disk_and_an_enum_in_memory(exp_dir):
    exp = pl.Experiment(exp_dir, MLPState)
    node = Train(steps=1, lr=0.1)(exp.spawn_new_tree(width=4, replicate=0))
    assert node.status is Status.DECLARED and node.status == "declared"
    exp.run(quiet=True)
    assert node.status is Status.DONE and f"{node.status}" == "done" and json.dumps(node.status) == '"done"'
    meta = next(exp_dir.glob(f"states/*/{node.id}/meta.json"))
    assert '"status":"done"' in meta.read_text()


class Explode(pl.Recipe):
    """Fails every time."""

    PROPERTIES = ["why"]

    def run(self, state):
        raise RuntimeError(self.why)


def test_a_failure_recorded_for_the_dask_path_has_the_fields_of_one_recorded_in_process(exp_dir):
    """Both go through StateRecord.started(...).failed(...): the same fields, seed and environment included."""
    exp = pl.Experiment(exp_dir, MLPState)
    root = exp.spawn_new_tree(width=4, replicate=0)
    in_process = Explode(why="here")(root)
    exp.run(quiet=True, raise_on_failure=False)
    recorded = exp.store.states.read_record(in_process.id)
    killer = Explode(why="its worker died")(root)
    task, = make_plan([killer], exp.graph, exp.storage, retry_failed=True).tasks
    exp.engine.record_failure(task, "KilledWorker: the task kept killing its worker")
    driver = exp.store.states.read_record(killer.id)
    assert set(driver) == set(recorded)
    assert driver["status"] == recorded["status"] == "failed"
    assert driver["seed"] == killer.seed and recorded["seed"] == in_process.seed
    assert driver["environment"] == recorded["environment"] is not None and driver["wall_s"] == 0.0
