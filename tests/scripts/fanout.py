"""A driver for the lease tests: a fan-out of recipes that log every run to a side-effect file.

Usage: python fanout.py DIR LOG [--go FILE] [--block-at K --started FILE] [--functions]

With --go, the driver says "ready" and waits for FILE to exist before running
(so two drivers start together). With --block-at K, the K-th child announces
itself by creating --started and then blocks, so a test can kill the driver there.
With --functions, every child also gets a function that logs its runs ("f<index>") to LOG.
"""

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

import prunelab as pl  # noqa: E402
from helpers import MLPState  # noqa: E402


class Logged(pl.Recipe):
    PROPERTIES = ["index", "log"]
    OPTIONS = {"block": False, "started": ""}

    def run(self, state):
        with open(self.log, "a") as handle:
            handle.write(f"{self.index} {os.getpid()}\n")
        if self.block:
            Path(self.started).write_text(str(os.getpid()))
            while True:
                time.sleep(0.05)  # killed or interrupted here by the test
        x, y = state.data
        optimizer = torch.optim.SGD(state.model.parameters(), lr=0.01)
        for _ in range(150):  # some real work, so that two drivers overlap
            loss = torch.nn.functional.cross_entropy(state.model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        state.history = [*state.history, self.index]
        return state


@pl.function
def logged(state):
    with open(os.environ["FANOUT_LOG"], "a") as handle:
        handle.write(f"f{state.history[-1]} {os.getpid()}\n")
    return {"index": state.history[-1]}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("directory")
    parser.add_argument("log")
    parser.add_argument("--go")
    parser.add_argument("--block-at", type=int, default=-1)
    parser.add_argument("--started", default="")
    parser.add_argument("--fan", type=int, default=24)
    parser.add_argument("--functions", action="store_true")
    args = parser.parse_args()
    os.environ["FANOUT_LOG"] = args.log
    exp = pl.Experiment(args.directory, MLPState)
    root = exp.spawn_new_tree(width=8, replicate=0)
    for i in range(args.fan):
        child = Logged(index=i, log=args.log, block=(i == args.block_at), started=args.started)(root)
        if args.functions:
            logged(child)
    if args.go:
        print("ready", flush=True)
        while not os.path.exists(args.go):
            time.sleep(0.01)
    exp.run(quiet=True)
    print("finished", flush=True)


if __name__ == "__main__":
    main()
