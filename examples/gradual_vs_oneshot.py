"""Gradual magnitude pruning vs one-shot pruning plus finetuning, at equal final sparsity and equal training budget.

Claim stated before running (Zhu & Gupta 2017, "To prune, or not to prune"):
pruning gradually while training, with their cubic schedule, to 90% sparsity
matches or beats one-shot magnitude pruning to 90% followed by finetuning,
when both get the same total number of epochs. On LeNet-300-100 and
Fashion-MNIST, 3 seeds, "matches" means a mean test accuracy no more than
0.5 points below one-shot's; the claim holds if that is so.

* one-shot: train 4 epochs, prune 90% of the weights (global magnitude), finetune 2 epochs;
* gradual: train 6 epochs, pruning every 100 steps from the end of epoch 1 to the end of
  epoch 4 along the cubic schedule 0 → 90% (``Train(prune_schedule=prune.cubic(...))``),
  then 2 epochs at 90%.

Run: ``python examples/gradual_vs_oneshot.py [DIRECTORY] [--workers N]`` (about two
minutes on 2 cores; needs Fashion-MNIST: ``apt-get install dataset-fashion-mnist``).
Prints a table and whether the claim holds (exit code 1 if not).
"""

# prunelab: long-running example (not run by make test)
import argparse
import statistics
import sys

import prunelab as pl
from prunelab.prune import cubic
from prunelab.recipes import ModelState, Prune, Train, evaluate, sparsity

SEEDS = (0, 1, 2)
SETTINGS = {"lr": 1.2e-3, "batch_size": 60, "optimizer": "adam", "weight_decay": 0.0}
STEPS_PER_EPOCH = 900  # 54,000 training images (after the 10% validation split) in batches of 60
SCHEDULE = cubic(0.0, 0.9, STEPS_PER_EPOCH, 4 * STEPS_PER_EPOCH, 100)


def declare(exp):
    """Per seed, from one initialisation: the one-shot chain and the gradual run, each evaluated."""
    rows = {}
    for seed in SEEDS:
        root = exp.spawn_new_tree(dataset_name="fashion-mnist", model_name="lenet300100", replicate=seed)
        dense = Train(epochs=4, **SETTINGS)(root)
        pruned = Prune(technique="global_magnitude", amount=0.9)(dense)
        rows[(seed, "one-shot")] = sparsity(evaluate(Train(epochs=2, **SETTINGS, treatment="finetune",
                                                           outcome=True)(pruned)))
        rows[(seed, "gradual")] = sparsity(evaluate(Train(epochs=6, **SETTINGS, prune_schedule=SCHEDULE,
                                                          outcome=True)(root)))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", nargs="?", default="runs/gradual-vs-oneshot")
    parser.add_argument("--workers", type=int, default=0, help="run on a local Dask cluster of this many workers")
    args = parser.parse_args()
    exp = pl.Experiment(args.directory, ModelState)
    rows = declare(exp)
    exp.run(executor=pl.DaskExecutor(n_workers=args.workers) if args.workers else None)

    def figures(method):
        return ([rows[(s, method)].results["evaluate"]["test_accuracy"] for s in SEEDS],
                [rows[(s, method)].results["sparsity"]["sparsity"] for s in SEEDS])

    print(f"{'method':>10s} {'sparsity':>9s} {'test accuracy (3 seeds)':>24s}  per seed")
    means = {}
    for method in ("one-shot", "gradual"):
        accuracy, sparse = figures(method)
        means[method] = statistics.mean(accuracy)
        print(f"{method:>10s} {statistics.mean(sparse):9.1%} {means[method]:14.4f} ± {statistics.stdev(accuracy):.4f}"
              f"  {' '.join(f'{a:.4f}' for a in accuracy)}")
    gap = means["gradual"] - means["one-shot"]
    holds = gap >= -0.005
    print(f"gradual - one-shot: {gap:+.4f}; claim (gradual matches or beats one-shot, within 0.5 points): "
          f"{'holds' if holds else 'FAILS'}")
    return 0 if holds else 1


if __name__ == "__main__":
    sys.exit(main())
