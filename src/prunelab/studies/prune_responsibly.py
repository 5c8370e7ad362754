"""The Prune Responsibly study: which classes pay for pruning, across techniques, treatments and seeds.

For every dataset × model × seed: train a dense model, then for every
technique and treatment prune iteratively (``rate`` of what remains per
round); after each round the treatment is applied and the result evaluated
per class. Treatments: ``finetune`` (a short training run from the pruned
weights) and ``rewind`` (surviving weights back to initialisation, then the
full training run: the lottery-ticket procedure). One more arm trains on a
class-imbalanced copy of the training set. Every outcome state is tagged
``outcome`` and has ``outcome=True`` in its lineage (with technique, amount,
round and treatment); the states between (pruned, rewound) have ``outcome=False``.

``build(exp, config)`` only declares the graph; ``run(directory, config)``
builds, runs and summarises it.

References
----------
Paganini, "Prune Responsibly", arXiv:2009.09936.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import prunelab as pl
from prunelab.core.prereg import BLINDED

from ..recipes import ModelState, Prune, Rewind, Train, class_shares, evaluate, sparsity

__all__ = ["StudyConfig", "build", "run", "summary", "TECHNIQUES"]

#: The seven techniques of the study.
TECHNIQUES = ("l1_unstructured", "global_magnitude", "random_unstructured", "l1_structured", "l2_structured",
              "linf_structured", "random_structured")


@dataclass(frozen=True)
class StudyConfig:
    """Every dimension of the study (defaults: the demo, about two minutes on 2 cores on digits)."""

    datasets: tuple[str, ...] = ("digits",)
    models: tuple[str, ...] = ("lenet5",)
    seeds: tuple[int, ...] = (0, 1, 2)
    techniques: tuple[str, ...] = TECHNIQUES
    treatments: tuple[str, ...] = ("finetune", "rewind")
    rounds: int = 5
    rate: float = 0.2
    train: dict[str, Any] = field(default_factory=lambda: {"epochs": 15, "lr": 0.01, "batch_size": 32,
                                                           "optimizer": "adam", "weight_decay": 0.0,
                                                           "schedule": "cosine"})
    finetune: dict[str, Any] = field(default_factory=lambda: {"epochs": 2, "lr": 0.001, "batch_size": 32,
                                                              "optimizer": "adam", "weight_decay": 0.0})
    imbalance: tuple[float, ...] | None = (0.2, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0)

    @classmethod
    def quick(cls) -> StudyConfig:
        """A study small enough for tests and a first look (well under a minute)."""
        return cls(seeds=(0,), techniques=("global_magnitude", "l1_structured"), rounds=1,
                   train={"epochs": 3, "lr": 0.01, "batch_size": 64, "optimizer": "adam", "weight_decay": 0.0},
                   finetune={"epochs": 1, "lr": 0.001, "batch_size": 64, "optimizer": "adam", "weight_decay": 0.0})


def _evaluate(node: pl.Node) -> pl.Node:
    evaluate(node)
    sparsity(node)
    return node


def build(exp: pl.Experiment, config: StudyConfig | None = None) -> list[pl.Node]:
    """Declare the study's graph in ``exp`` (nothing runs); return the outcome nodes."""
    config = config or StudyConfig()
    outcomes: list[pl.Node] = []
    arms: list[tuple[str, tuple[float, ...] | None]] = [("balanced", None)]
    if config.imbalance is not None:
        arms.append(("imbalanced", tuple(config.imbalance)))
    for dataset in config.datasets:
        for model in config.models:
            for seed in config.seeds:
                for arm, fractions in arms:
                    with exp.tag(f"arm:{arm}"):
                        root = exp.spawn_new_tree(dataset_name=dataset, model_name=model, replicate=seed,
                                                  split_seed=0, val_fraction=0.1, imbalance=fractions)
                        class_shares(root)
                        with exp.tag("dense"), exp.tag("outcome"):
                            dense = _evaluate(Train(**config.train, outcome=True)(root))
                        outcomes.append(dense)
                        techniques = config.techniques if arm == "balanced" else config.techniques[:1]
                        for technique in techniques:
                            for treatment in config.treatments:
                                outcomes += _chain(exp, dense, technique, treatment, config)
    return outcomes


def _chain(exp: pl.Experiment, dense: pl.Node, technique: str, treatment: str, config: StudyConfig) -> list[pl.Node]:
    node, out = dense, []
    for round_ in range(1, config.rounds + 1):
        with exp.tag(f"technique:{technique}"), exp.tag(f"treatment:{treatment}"):
            pruned = Prune(technique=technique, amount=config.rate, round=round_)(node)
            start = pruned if treatment == "finetune" else Rewind(to="init")(pruned)
            with exp.tag("outcome"):
                if treatment == "finetune":
                    node = _evaluate(Train(**config.finetune, treatment="finetune", outcome=True)(start))
                else:
                    node = _evaluate(Train(**config.train, outcome=True)(start))
            out.append(node)
    return out


def summary(exp: pl.Experiment, outcomes: list[pl.Node]) -> list[dict[str, Any]]:
    """Rows of mean ± std test accuracy over seeds per (arm, technique, treatment, round), with the worst-hit class.

    The worst-hit class is the one whose test accuracy dropped most from the
    dense model of the same seed, on average. ``seeds`` counts the training
    runs of a row; ``std`` is None when there is one (no spread to show).
    While test figures are blinded (:func:`prunelab.analysis.blind`), a
    group's row has ``blinded=True`` and ``None`` for every figure computed
    from them.

    Parameters
    ----------
    exp : Experiment
        The study's experiment, run.
    outcomes : list of Node
        The outcome nodes :func:`build` returned.
    """
    dense: dict[tuple[str, int, str], dict[str, Any]] = {}
    groups: dict[tuple[str, str, str, int], list[pl.Node]] = {}
    for node in outcomes:
        arm = next(t for t in node.tags if t.startswith("arm:"))[4:]
        lineage = node.lineage
        key = (arm, node.properties["replicate"], node.properties["dataset_name"])
        if "technique" not in lineage:
            dense[key] = node.results["evaluate"]
            groups.setdefault((arm, "dense", "-", 0), []).append(node)
            continue
        treatment = lineage["treatment"]
        groups.setdefault((arm, lineage["technique"], treatment, int(lineage["round"])), []).append(node)
    rows = []
    for (arm, technique, treatment, round_), nodes in sorted(groups.items()):
        sparsities = [_get(n.results["sparsity"], "sparsity") for n in nodes]
        sparsity_ = statistics.mean(sparsities) if not _blinded(sparsities) else None
        figures = [n.results["evaluate"] for n in nodes] + [dense[(arm, n.properties["replicate"],
                                                                   n.properties["dataset_name"])] for n in nodes]
        if _blinded([*figures, *(_get(f, k) for f in figures for k in ("test_accuracy", "test"))]):
            rows.append({"arm": arm, "technique": technique, "treatment": treatment, "round": round_,
                         "sparsity": sparsity_, "accuracy": None, "std": None, "seeds": len(nodes),
                         "worst_class": None, "worst_drop": None, "blinded": True})
            continue
        accuracies = [n.results["evaluate"]["test_accuracy"] for n in nodes]
        drops: dict[int, list[float]] = {}
        for n in nodes:
            reference = dense[(arm, n.properties["replicate"], n.properties["dataset_name"])]["test"]
            for c, (a, b) in enumerate(zip(reference["per_class_accuracy"],
                                           n.results["evaluate"]["test"]["per_class_accuracy"])):
                drops.setdefault(c, []).append(a - b)
        worst = max(drops, key=lambda c: statistics.mean(drops[c]))
        rows.append({"arm": arm, "technique": technique, "treatment": treatment, "round": round_,
                     "sparsity": sparsity_, "accuracy": statistics.mean(accuracies),
                     "std": statistics.stdev(accuracies) if len(accuracies) > 1 else None,
                     "seeds": len(nodes), "worst_class": worst,
                     "worst_drop": statistics.mean(drops[worst]), "blinded": False})
    return rows


def _get(figures: Any, key: str) -> Any:
    return figures.get(key) if isinstance(figures, dict) else figures


def _blinded(values: list[Any]) -> bool:
    return any(isinstance(v, str) and v == BLINDED for v in values)


def run(directory: str | Path, config: StudyConfig | None = None, *, executor: Any = None,
        quiet: bool = False) -> tuple[pl.Experiment, list[dict[str, Any]]]:
    """Build, run and summarise the study in ``directory``; a second call is immediate."""
    exp = pl.Experiment(directory, ModelState)
    outcomes = build(exp, config)
    exp.run(executor=executor, quiet=quiet)
    return exp, summary(exp, outcomes)


def with_dataset(config: StudyConfig, dataset: str) -> StudyConfig:
    """The same study on another dataset (the imbalanced arm needs 10 classes)."""
    return replace(config, datasets=(dataset,))
