"""Every script in examples/ runs, and running it again computes nothing (long-running ones are marked and
left to be run by hand: their results are in the README)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted(p for p in (Path(__file__).resolve().parents[1] / "examples").glob("*.py")
                  if "# prunelab: long-running example" not in p.read_text())


@pytest.mark.parametrize("script", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs_and_resumes(script, tmp_path):
    directory = tmp_path / "exp"
    first = subprocess.run([sys.executable, str(script), str(directory)], cwd=tmp_path, capture_output=True,
                           text=True, timeout=600)
    assert first.returncode == 0, first.stderr
    assert " 0 failed" in first.stderr and " 0 computed" not in first.stderr
    second = subprocess.run([sys.executable, str(script), str(directory)], cwd=tmp_path, capture_output=True,
                            text=True, timeout=600)
    assert second.returncode == 0, second.stderr
    assert "prunelab: 0 computed" in second.stderr and "0 result(s)" in second.stderr


def test_the_lr_sweep_learns_and_prunes(tmp_path):
    script = next(p for p in EXAMPLES if p.stem == "lr_sweep")
    out = subprocess.run([sys.executable, str(script), str(tmp_path / "exp")], capture_output=True, text=True,
                         timeout=600, check=True).stdout
    assert "80% of the first conv's weights kept" in out
    rows = [line.split() for line in out.splitlines() if re.match(r"[0-9a-f]{32} ", line)]
    accuracy = {row[1]: float(row[-1]) for row in rows if row[2] == "TrainRecipe"}
    assert accuracy["lr:0.1"] > 0.5  # digits is learnable: far above the 10% chance level
