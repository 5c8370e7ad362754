"""The analysis at the seed's scale: restore, class frame and regression of a 100,000-state population.

A synthetic population (:mod:`population`: the study's graph and result
records, with recipes that do no training) of about ``PRUNELAB_BENCH_OUTCOMES``
(default 100,000) outcome states × 10 classes is stored once per run of this
benchmark; then, in a fresh interpreter, ``Experiment.restore`` +
``class_frame`` + ``prune_responsibly_model`` are timed phase by phase, with
the interpreter's peak resident memory. Targets: ≤ 20 s and ≤ 4 GiB in all.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import PINNED, save  # noqa: E402

ANALYSE = """
import resource, sys, time, warnings
sys.path.insert(0, sys.argv[2])
import population  # noqa: F401 - the state class
import prunelab as pl
from prunelab.analysis import class_frame, prune_responsibly_model
start = time.perf_counter()
exp = pl.Experiment.restore(sys.argv[1], population.Synthetic)
restored = time.perf_counter()
frame = class_frame(exp)
framed = time.perf_counter()
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    fit = prune_responsibly_model(frame)
fitted = time.perf_counter()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(len(frame), fit.n, restored - start, framed - restored, fitted - framed, peak)
"""


def main() -> dict:
    """Build the population, time the analysis in a fresh interpreter, print and save the figures."""
    import subprocess

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import population

    import prunelab as pl

    outcomes = int(os.environ.get("PRUNELAB_BENCH_OUTCOMES", "100000"))
    directory = Path(tempfile.mkdtemp(prefix="prunelab-bench-")) / "population"
    exp = pl.Experiment(directory, population.Synthetic)
    runs = population.build(exp, outcomes)
    start = time.perf_counter()
    exp.run(quiet=True)
    stored_s = time.perf_counter() - start
    out = subprocess.run([sys.executable, "-c", ANALYSE, str(directory), str(Path(__file__).resolve().parent)],
                         capture_output=True, text=True, check=True, env={**os.environ, **PINNED}).stdout.split()
    rows, fitted, restore_s, frame_s, model_s, peak = (int(out[0]), int(out[1]), float(out[2]), float(out[3]),
                                                       float(out[4]), int(out[5]))
    figures = {"outcome_states": runs * population.PER_ROOT, "runs": runs, "class_rows": rows, "rows_fitted": fitted,
               "store_s": stored_s, "restore_s": restore_s, "class_frame_s": frame_s, "regression_s": model_s,
               "analysis_s": restore_s + frame_s + model_s, "peak_rss_bytes": peak}
    print(f"analysis ({figures['outcome_states']:,} outcome states of {runs:,} runs, {rows:,} class rows; "
          f"stored in {stored_s:.0f} s)")
    print(f"  restore {restore_s:.1f} s, class_frame {frame_s:.1f} s, prune_responsibly_model {model_s:.1f} s: "
          f"{figures['analysis_s']:.1f} s in all (target <= 20 s), peak memory {peak / 2**30:.2f} GiB "
          "(target <= 4 GiB)")
    print(f"  saved to {save('analysis', figures)}")
    return figures


if __name__ == "__main__":
    main()
