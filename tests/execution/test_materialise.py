"""Materialising states: templates kept per root across runs, and the run's heap frozen out of full collections."""

from __future__ import annotations

import gc

import torch
from torch import nn

import prunelab as pl

BUILT: list[int] = []  # the replicate of every initialize_state call
FROZEN: list[int] = []  # gc.get_freeze_count() inside each Count.run


class Counted(pl.ExperimentState):
    """A tiny model per replicate; counts its initialize_state calls."""

    PROPERTIES = ["replicate"]
    NONHASHED_ATTRIBUTES = ["model"]

    def initialize_state(self):
        BUILT.append(self.replicate)
        self.model = nn.Linear(3, 2)


class Count(pl.Recipe):
    """Scale the weights (so every state differs) and note whether the heap is frozen."""

    PROPERTIES = ["factor"]

    def run(self, state):
        FROZEN.append(gc.get_freeze_count())
        with torch.no_grad():
            state.model.weight.mul_(self.factor)
        return state


def test_initialize_state_runs_once_per_root_and_process_for_more_roots_than_the_minimum_kept(tmp_path):
    BUILT.clear()
    exp = pl.Experiment(tmp_path / "exp", Counted)
    roots = [exp.spawn_new_tree(replicate=r) for r in range(7)]  # more than the four templates always kept
    trained = [Count(factor=2.0)(root) for root in roots]
    exp.run(quiet=True)
    assert sorted(BUILT) == list(range(7))
    for node in trained:  # every root's template is used again, oldest first
        Count(factor=3.0)(node)
    exp.run(quiet=True)
    assert sorted(BUILT) == list(range(7))
    again = pl.Experiment.restore(tmp_path / "exp", Counted)  # a new process's view: built afresh once each
    BUILT.clear()
    for node in again.graph.nodes:
        if node.depth == 2:
            Count(factor=5.0)(node)
    again.run(quiet=True)
    assert sorted(BUILT) == list(range(7))


def test_a_run_freezes_the_heap_it_starts_with_and_unfreezes_it_after(tmp_path):
    FROZEN.clear()
    exp = pl.Experiment(tmp_path / "exp", Counted)
    Count(factor=2.0)(exp.spawn_new_tree(replicate=0))
    assert gc.get_freeze_count() == 0
    exp.run(quiet=True)
    assert FROZEN and FROZEN[0] > 0 and gc.get_freeze_count() == 0


def test_a_caller_that_froze_its_heap_keeps_it_frozen(tmp_path):
    FROZEN.clear()
    exp = pl.Experiment(tmp_path / "exp", Counted)
    Count(factor=2.0)(exp.spawn_new_tree(replicate=0))
    gc.freeze()
    try:
        before = gc.get_freeze_count()
        exp.run(quiet=True)
        assert len(FROZEN) == 1 and 0 < FROZEN[0] <= before  # nothing more frozen (some frozen objects were freed)
        assert 0 < gc.get_freeze_count() <= before  # and nothing unfrozen
    finally:
        gc.unfreeze()


def test_what_survives_a_full_collection_inside_a_frozen_heap_is_frozen_and_cycles_made_inside_are_collected():
    from prunelab.core.heap import frozen

    class Cycle:
        pass

    with frozen():
        entered = gc.get_freeze_count()
        kept = [[i] for i in range(10_000)]  # allocated inside, alive through the full pass
        cycle = Cycle()
        cycle.me = cycle
        del cycle
        assert gc.collect(2) >= 1  # the cycle made inside is garbage to the full pass
        assert gc.get_freeze_count() >= entered + len(kept)  # the survivors are frozen after it
    assert gc.get_freeze_count() == 0  # all unfrozen on exit, and the collector's callback removed
    assert not [cb for cb in gc.callbacks if getattr(cb, "__module__", "") == "prunelab.core.heap"]
