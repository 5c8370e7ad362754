"""A real experiment run as a separate process by the store tests.

Usage: python chain.py DIR [--upto K]

Declares a root MLP state, a chain of Train/Noise/Prune recipes and a small
fan-out, each with an evaluate result; with --upto K only the first K chain
edges (and their ancestors) are run, so a test can run one edge per process.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import prunelab as pl  # noqa: E402
from helpers import MLPState, Noise, Prune, Train, evaluate  # noqa: E402


def declare(exp):
    node = exp.spawn_new_tree(width=16, replicate=0)
    chain = [node]
    for i in range(6):
        recipe = [Train(steps=2, lr=0.05), Noise(scale=0.01 * (i + 1)), Prune(amount=0.3)][i % 3]
        with exp.tag(f"step:{i}"):
            node = recipe(node)
            evaluate(node)
        chain.append(node)
    for k in range(3):
        with exp.tag("fan"):
            evaluate(Noise(scale=0.5 + k)(chain[2]))
    return chain


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("directory")
    parser.add_argument("--upto", type=int, default=None)
    args = parser.parse_args()
    exp = pl.Experiment(args.directory, MLPState)
    chain = declare(exp)
    targets = None if args.upto is None else [chain[args.upto]]
    exp.run(targets=targets, quiet=True)


if __name__ == "__main__":
    main()
