"""A synthetic Prune Responsibly population: the study's graph and results, with recipes that do no training.

Every root is a training run (``replicate``) of one of two populations (a
balanced and an imbalanced arm); its dense state and, per technique,
treatment and round, a pruned outcome state are stored through the engine
like any study's, and each is evaluated by functions named as the study's
(``evaluate``, ``sparsity``; ``class_shares`` on the root) whose figures are
drawn from the node's seed instead of measured. So the analysis reads what
it reads from a real study, at any size, and what it costs is its own.
"""

from __future__ import annotations

import numpy as np

import prunelab as pl

TECHNIQUES = ("l1_unstructured", "global_magnitude", "random_unstructured", "l1_structured", "l2_structured",
              "linf_structured", "random_structured")
TREATMENTS = ("finetune", "rewind")
ROUNDS = 5
CLASSES = 10
PER_ROOT = 1 + len(TECHNIQUES) * len(TREATMENTS) * ROUNDS  # outcome states per training run


class Synthetic(pl.ExperimentState):
    """A training run's identity; its state is the sparsity reached (nothing is trained)."""

    PROPERTIES = {"dataset_name": "digits", "model_name": "lenet5", "replicate": pl.REQUIRED, "imbalance": None}
    NONHASHED_ATTRIBUTES = ["sparsity"]

    def initialize_state(self, **kwargs):
        self.sparsity = 0.0


class Dense(pl.Recipe):
    """The dense model: an outcome, unpruned."""

    LINEAGE = {"outcome": True}

    def run(self, state):
        return state


class PruneTreat(pl.Recipe):
    """One round of pruning and its treatment: an outcome state."""

    PROPERTIES = ["technique", "treatment", "round"]
    LINEAGE = {"technique": "technique", "treatment": "treatment", "round": "round", "outcome": True}

    def run(self, state):
        state.sparsity = 1.0 - 0.8 ** self.round
        return state


def _figures(rng: np.random.Generator, level: float, count: np.ndarray) -> dict:
    accuracy = np.clip(rng.normal(level, 0.05, CLASSES), 0.0, 1.0)
    correct = np.round(accuracy * count).astype(int)
    return {"accuracy": float(correct.sum() / count.sum()), "loss": float(rng.gamma(2.0, 0.2)),
            "per_class_accuracy": (correct / count).tolist(), "per_class_correct": correct.tolist(),
            "per_class_count": count.tolist(), "per_class_entropy": rng.gamma(2.0, 0.1, CLASSES).tolist(),
            "per_class_loss": rng.gamma(2.0, 0.2, CLASSES).tolist(),
            "confusion": rng.integers(0, 5, (CLASSES, CLASSES)).tolist()}


@pl.function(name="evaluate")
def evaluate(state):
    """Figures shaped as prunelab.recipes.evaluate's, drawn from the node's seed (lower as sparsity grows)."""
    rng = np.random.default_rng(np.random.randint(2**31))
    level = 0.97 - 0.3 * state.sparsity ** 3
    val, test = _figures(rng, level, np.full(CLASSES, 18)), _figures(rng, level, np.full(CLASSES, 36))
    return {"val": val, "test": test, "val_accuracy": val["accuracy"], "test_accuracy": test["accuracy"],
            "val_loss": val["loss"], "test_loss": test["loss"],
            "predictions": rng.integers(0, CLASSES, 360).astype(np.int16)}


@pl.function(name="sparsity")
def sparsity(state):
    """The sparsity the state reached."""
    return {"sparsity": state.sparsity, "effective_sparsity": state.sparsity}


@pl.function(name="class_shares")
def class_shares(state):
    """The training set's class shares of the run's population (one class rarer in the imbalanced arm)."""
    shares = np.ones(CLASSES) if state.imbalance is None else np.asarray(state.imbalance)
    return {"class_shares": (shares / shares.sum()).tolist()}


def build(exp: pl.Experiment, outcomes: int) -> int:
    """Declare a population of about ``outcomes`` outcome states in ``exp``; return how many runs it has."""
    runs = max(2, round(outcomes / PER_ROOT))
    for replicate in range(runs):
        imbalance = None if replicate % 2 == 0 else (0.2,) + (1.0,) * (CLASSES - 1)
        root = exp.spawn_new_tree(replicate=replicate, imbalance=imbalance)
        class_shares(root)
        dense = Dense()(root)
        evaluate(dense)
        sparsity(dense)
        for technique in TECHNIQUES:
            for treatment in TREATMENTS:
                node = dense
                for round_ in range(1, ROUNDS + 1):
                    node = PruneTreat(technique=technique, treatment=treatment, round=round_)(node)
                    evaluate(node)
                    sparsity(node)
    return runs
