"""The lottery ticket on Fashion-MNIST: rewinding to initialisation vs random reinitialisation.

Claim stated before running (Frankle & Carbin, ICLR 2019, on LeNet-300-100):
with iterative global magnitude pruning (20% of what remains per round) and
the surviving weights rewound to their initial values before retraining,
(a) at 10% of the weights or fewer, rewinding beats random reinitialisation of
the same masks by at least 1 point of mean test accuracy, and in every seed;
(b) at about 41% of the weights (4 rounds) it is within 1 point of the dense network.

Run: ``python examples/lottery_ticket.py [DIRECTORY] [--workers N]`` (about 10-15
minutes on 2 cores; needs Fashion-MNIST: ``apt-get install dataset-fashion-mnist``).
Prints a table and whether each part of the claim holds (exit code 1 if not).
"""

# prunelab: long-running example (not run by make test)
import argparse
import statistics
import sys

import prunelab as pl
from prunelab.recipes import ModelState, Prune, Reinit, Rewind, Train, evaluate, sparsity

SEEDS = (0, 1, 2)
ROUNDS = 11  # 0.8**11 = 8.6% of the weights remain
TRAIN = {"epochs": 3, "lr": 1.2e-3, "batch_size": 60, "optimizer": "adam", "weight_decay": 0.0}


def declare(exp):
    """Per seed: the IMP chain (prune 20%, rewind to init, retrain) and, per round, the reinit control."""
    rows = {}
    for seed in SEEDS:
        root = exp.spawn_new_tree(dataset_name="fashion-mnist", model_name="lenet300100", replicate=seed,
                                  split_seed=0, val_fraction=0.1, imbalance=None)
        node = evaluate(Train(**TRAIN, outcome=True)(root))
        rows[(seed, 0, "dense")] = node
        for round_ in range(1, ROUNDS + 1):
            pruned = Prune(technique="global_magnitude", amount=0.2, round=round_)(node)
            ticket = Train(**TRAIN, outcome=True)(Rewind(to="init")(pruned))
            control = Train(**TRAIN, outcome=True)(Reinit()(pruned))
            for name, outcome in (("rewind", ticket), ("reinit", control)):
                rows[(seed, round_, name)] = sparsity(evaluate(outcome))
            node = ticket
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", nargs="?", default="runs/lottery-ticket")
    parser.add_argument("--workers", type=int, default=0, help="run on a local Dask cluster of this many workers")
    args = parser.parse_args()
    exp = pl.Experiment(args.directory, ModelState)
    rows = declare(exp)
    exp.run(executor=pl.DaskExecutor(n_workers=args.workers) if args.workers else None)

    def accuracy(seed, round_, name):
        return rows[(seed, round_, name)].results["evaluate"]["test_accuracy"]

    dense = [accuracy(s, 0, "dense") for s in SEEDS]
    print(f"{'weights left':>12s} {'rewind to init':>16s} {'random reinit':>16s} {'difference':>11s}")
    print(f"{1.0:12.1%} {statistics.mean(dense):10.4f} ± {statistics.stdev(dense):.4f} {'(dense)':>16s}")
    claims = {"a": True, "b": True}
    for round_ in range(1, ROUNDS + 1):
        left = 1 - rows[(SEEDS[0], round_, "rewind")].results["sparsity"]["sparsity"]
        ticket = [accuracy(s, round_, "rewind") for s in SEEDS]
        control = [accuracy(s, round_, "reinit") for s in SEEDS]
        gap = statistics.mean(ticket) - statistics.mean(control)
        print(f"{left:12.1%} {statistics.mean(ticket):10.4f} ± {statistics.stdev(ticket):.4f} "
              f"{statistics.mean(control):10.4f} ± {statistics.stdev(control):.4f} {gap:+11.4f}")
        if left <= 0.10 + 1e-9:
            claims["a"] &= gap >= 0.01 and all(t - c > 0 for t, c in zip(ticket, control))
        if round_ == 4:
            claims["b"] &= abs(statistics.mean(ticket) - statistics.mean(dense)) <= 0.01
    print(f"claim (a), rewinding beats reinitialisation by >= 1 point at <= 10% of weights, in every seed: "
          f"{'holds' if claims['a'] else 'FAILS'}")
    print(f"claim (b), within 1 point of dense at ~41% of weights: {'holds' if claims['b'] else 'FAILS'}")
    return 0 if all(claims.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
