"""The plan: pure (nothing is written), in dependency order, and a result on disk that the index lost is not
computed again (the run indexes it)."""

import hashlib
import sqlite3

import prunelab as pl
from helpers import MLPState, Train, declare_tree, evaluate


def _files(directory):
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def test_planning_writes_nothing(exp_dir):
    exp = pl.Experiment(exp_dir, MLPState)
    declare_tree(exp)
    exp.run(quiet=True)
    exp = pl.Experiment(exp_dir, MLPState)
    declare_tree(exp, scales=(0.1, 0.9))  # one new branch to plan
    before = _files(exp_dir)
    plan = exp.plan()
    assert len(plan.to_compute) == 2 and plan.functions == [(plan.tasks[-1].node_id, "evaluate@v1")]
    assert _files(exp_dir) == before
    assert [t.node_id for t in plan.tasks] == sorted((t.node_id for t in plan.tasks),
                                                     key=lambda i: exp.graph.node(i).depth)


def test_a_result_stored_but_not_indexed_is_planned_as_stored_and_indexed_by_the_run(exp_dir):
    exp = pl.Experiment(exp_dir, MLPState)
    trained = Train(steps=2, lr=0.1)(exp.spawn_new_tree(width=4, replicate=0))
    evaluate(trained)
    exp.run(quiet=True)
    with sqlite3.connect(exp.index.path) as db:  # as a crash between writing the result and indexing it leaves it
        db.execute("DELETE FROM results")
    exp = pl.Experiment(exp_dir, MLPState)
    trained = Train(steps=2, lr=0.1)(exp.spawn_new_tree(width=4, replicate=0))
    evaluate(trained)
    plan = exp.plan()
    assert plan.tasks == [] and plan.unindexed and plan.unindexed[0][0] == trained.id
    assert exp.index.result_keys() == {}  # planning did not index it
    report = exp.run(quiet=True)
    assert report.done == [] and report.results == []
    assert exp.index.result_keys() == {trained.id: {"evaluate@v1"}}
    assert trained.results["evaluate"]["loss"] > 0
