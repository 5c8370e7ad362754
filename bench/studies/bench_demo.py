"""The engine's share of the demo: wall time outside recipe, function and initialize_state bodies.

Runs the default ``prunelab demo`` study in a fresh interpreter, as the
command does (each round's trainings as cohorts), with every recipe ``run``
and ``run_cohort``, function body and ``initialize_state`` timed; the rest of the
wall time of ``exp.run`` is the engine's (copies, seeding, encoding, hashing,
writing, indexing, leases, progress). The checkpoints and resumes the
standard ``Train`` makes from inside its ``run`` (one a completed epoch) are
the engine's too: their time is taken out of the bodies'. (The publishing
helper writes the checkpoints, on the other core: what is timed is what the
recipe waits for, encoding each and copying its changed tensors into shared
memory.) Its per-step
``pl.log`` calls stay in the bodies (timing each would cost more than the
call; ``bench/execution/bench_checkpoints.py`` measures them).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import save  # noqa: E402

SCRIPT = """
import sys, time
import prunelab.recipes as R
from prunelab.studies import prune_responsibly as study
inside, engine = [0.0], [0.0]
def timed(fn, total):
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            total[0] += time.perf_counter() - start
    return wrapper
for cls in (R.Train, R.Prune, R.Rewind, R.Reinit, R.LRRewind):
    cls.run = timed(cls.run, inside)
R.Train.run_cohort = timed(R.Train.run_cohort, inside)  # LRRewind inherits it
for function in (R.evaluate, R.sparsity, R.class_shares):
    function.fn = timed(function.fn, inside)
R.ModelState.initialize_state = timed(R.ModelState.initialize_state, inside)
from prunelab.execution.checkpoints import BodyRuntime
BodyRuntime.checkpoint = timed(BodyRuntime.checkpoint, engine)
BodyRuntime.resume = timed(BodyRuntime.resume, engine)
import prunelab as pl
exp = pl.Experiment(sys.argv[1], R.ModelState)
study.build(exp)
start = time.perf_counter()
exp.run(executor=pl.LocalExecutor(max_cohort=64), quiet=True)  # as `prunelab demo` runs it
total = time.perf_counter() - start
print(total, inside[0] - engine[0], engine[0])
"""


def main() -> dict:
    """Measure and print the engine's share of the demo's wall time."""
    import os
    import subprocess

    from common import PINNED

    directory = tempfile.mkdtemp(prefix="prunelab-bench-") + "/demo"
    out = subprocess.run([sys.executable, "-c", SCRIPT, directory], capture_output=True, text=True, check=True,
                         env={**os.environ, **PINNED}).stdout.split()
    total, inside, checkpoints = float(out[0]), float(out[1]), float(out[2])
    figures = {"wall_s": total, "inside_user_code_s": inside, "checkpoints_s": checkpoints,
               "engine_share": (total - inside) / total}
    print("studies (the default demo, one process, LocalExecutor(max_cohort=64))")
    print(f"  demo wall {total:.1f} s, of which recipes/functions/initialize_state {inside:.1f} s: engine share "
          f"{figures['engine_share']:.1%} (target <= 2%), checkpoints {checkpoints:.2f} s of it")
    print(f"  saved to {save('studies_demo', figures)}")
    return figures


if __name__ == "__main__":
    main()
