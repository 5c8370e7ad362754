"""Shared benchmark plumbing: fresh-process timing, paired ratios, environment, results.

Method (see shared/BENCHMARKS.md): baseline and prunelab are timed in the same
run, alternating A B A B in fresh interpreters with glibc's allocator pinned and
one torch thread; the figure reported is the median of the per-pair ratios.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
PINNED = {"MALLOC_MMAP_THRESHOLD_": "1073741824", "MALLOC_TRIM_THRESHOLD_": "1073741824", "OMP_NUM_THREADS": "1"}


def settle() -> None:
    """Flush dirty pages first, so one phase's writeback does not throttle the next one's writes."""
    os.sync()


def timed_script(code: str, *args: str) -> float:
    """Run ``code`` in a fresh interpreter; it must print the seconds of its timed phase last."""
    settle()
    proc = subprocess.run([sys.executable, "-c", code, *args], env={**os.environ, **PINNED}, capture_output=True,
                          text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark script failed:\n{proc.stderr}")
    return float(proc.stdout.strip().splitlines()[-1])


def paired(baseline, candidate, pairs: int) -> dict[str, Any]:
    """Alternate baseline and candidate ``pairs`` times; return times and the median ratio.

    The order within a pair alternates too (A B, B A, …), so neither side always
    runs in the other's wake (page-cache writeback, allocator state).
    """
    base, cand = [], []
    for i in range(pairs):
        if i % 2:
            cand.append(candidate(i))
            base.append(baseline(i))
        else:
            base.append(baseline(i))
            cand.append(candidate(i))
    ratios = [c / b for b, c in zip(base, cand)]
    return {"baseline_s": base, "prunelab_s": cand, "median_baseline_s": statistics.median(base),
            "median_prunelab_s": statistics.median(cand), "median_ratio": statistics.median(ratios)}


def environment() -> dict[str, Any]:
    """The core.environment capture, plus the thread settings used."""
    from prunelab.core.environment import capture

    return {**capture(), "torch_threads": 1, "allocator": "pinned (MALLOC_*_THRESHOLD_=1 GiB)"}


def save(name: str, figures: dict[str, Any]) -> Path:
    """Write a benchmark's figures and environment to bench/results/<name>.json."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"benchmark": name, "figures": figures, "environment": environment()}, indent=2))
    return path
