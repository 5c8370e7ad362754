"""The engine's share of the demo: wall time outside recipe, function and initialize_state bodies.

Runs the default ``prunelab demo`` study in a fresh interpreter with every
recipe ``run``, function body and ``initialize_state`` timed; the rest of the
wall time of ``exp.run`` is the engine's (copies, seeding, encoding, hashing,
writing, indexing, leases, progress).
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
inside = [0.0]
def timed(fn):
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            inside[0] += time.perf_counter() - start
    return wrapper
for cls in (R.Train, R.Prune, R.Rewind, R.Reinit, R.LRRewind):
    cls.run = timed(cls.run)
for function in (R.evaluate, R.sparsity, R.class_shares):
    function.fn = timed(function.fn)
R.ModelState.initialize_state = timed(R.ModelState.initialize_state)
import prunelab as pl
exp = pl.Experiment(sys.argv[1], R.ModelState)
study.build(exp)
start = time.perf_counter()
exp.run(quiet=True)
total = time.perf_counter() - start
print(total, inside[0])
"""


def main() -> dict:
    """Measure and print the engine's share of the demo's wall time."""
    import os
    import subprocess

    from common import PINNED

    directory = tempfile.mkdtemp(prefix="prunelab-bench-") + "/demo"
    out = subprocess.run([sys.executable, "-c", SCRIPT, directory], capture_output=True, text=True, check=True,
                         env={**os.environ, **PINNED}).stdout.split()
    total, inside = float(out[0]), float(out[1])
    figures = {"wall_s": total, "inside_user_code_s": inside, "engine_share": (total - inside) / total}
    print("studies (the default demo, one process, LocalExecutor)")
    print(f"  demo wall {total:.1f} s, of which recipes/functions/initialize_state {inside:.1f} s: engine share "
          f"{figures['engine_share']:.1%} (target <= 2%)")
    print(f"  saved to {save('studies_demo', figures)}")
    return figures


if __name__ == "__main__":
    main()
