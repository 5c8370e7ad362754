"""The seed talk's dagger program runs with only its import line changed (tests/scripts/talk.py)."""

import re
import subprocess
import sys
from pathlib import Path

TALK = Path(__file__).resolve().parent / "scripts" / "talk.py"


def test_the_talks_program_runs_prints_and_resumes(tmp_path):
    first = subprocess.run([sys.executable, str(TALK), str(tmp_path / "exp")], capture_output=True, text=True,
                           timeout=600)
    assert first.returncode == 0, first.stderr
    print(first.stdout)
    printed = re.findall(r"Experiment: (\[.*?\]), Accuracy: ([0-9.]+)", first.stdout)
    assert sorted(tags for tags, _ in printed) == ["['lr:0.01', 'pruned']", "['lr:0.01']", "['lr:0.1', 'pruned']",
                                                   "['lr:0.1']"]
    assert all(float(accuracy) > 0.5 for _, accuracy in printed)  # digits is learnt: chance is 0.1
    assert "drawn: <?xm" in first.stdout or "drawn: <svg" in first.stdout
    assert "nodes: 5 selected: 1" in first.stdout
    kept = float(re.search(r"restored: ([0-9.]+)", first.stdout).group(1))
    assert abs(kept - 0.8) < 0.01  # l1_unstructured at 0.2 keeps 80% of the first layer
    assert "prunelab: 5 computed, 0 cached, 0 failed, 0 skipped, 4 result(s)" in first.stderr

    second = subprocess.run([sys.executable, str(TALK), str(tmp_path / "exp")], capture_output=True, text=True,
                            timeout=600)
    assert second.returncode == 0, second.stderr
    assert "Experiment:" not in second.stdout  # every result is stored: eval_fn does not run again
    assert "prunelab: 0 computed" in second.stderr and "nodes: 5 selected: 1" in second.stdout
