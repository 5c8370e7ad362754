"""The prunelab command against hostile strings and bad input (issue 12, items 6 and 21).

Terminal output escapes control characters, so tags, names and error texts read from an experiment can neither
forge ``ls`` lines nor reach the terminal as escape sequences, while ``--json`` keeps the exact strings. Unwritable
output paths and nonsense numbers give one ``error:`` line and exit code 2; a closed pipe ends quietly.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import prunelab as pl
from helpers import MLPState, Train
from prunelab.cli import main

TESTS = Path(__file__).resolve().parents[1]
# the child imports the same prunelab as this process (also from a worktree run with PYTHONPATH=src)
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(pl.__file__).resolve().parents[1]), str(TESTS)])}

FAKE_ID = "f" * 32
FORGED = f"x\n{FAKE_ID}  done     d1   Train            trusted"  # a tag that would print as a second ls line
RED = "\x1b[31mred\x1b[0m"
BIDI = "\u202egnp.exe\u2066\x85\x7f\x07"  # a bidi override and isolate, a C1 control, DEL, BEL
OVERWRITE = "\x1b[2K\rboom"  # erase the line, back to its start, print over it
# everything a terminal would act on: C0 but newline, DEL, C1, line separators, bidi overrides and isolates
CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


class Explode(pl.Recipe):
    """Fails with ``text`` as its error message."""

    PROPERTIES = ["text"]

    def run(self, state):
        raise ValueError(self.text)


def cli(*args):
    """Run ``prunelab ARGS`` in a fresh interpreter; return (exit code, stdout, stderr)."""
    proc = subprocess.run([sys.executable, "-m", "prunelab.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=TESTS, env=ENV)
    return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """(experiment, root, trained, failed): tags with escapes and a forged line, and an error text with escapes."""
    exp = pl.Experiment(tmp_path_factory.mktemp("hostile") / "exp", MLPState)
    root = exp.spawn_new_tree(width=4, replicate=0)
    trained = Train(steps=1, lr=0.1)(root)
    failed = Explode(text=OVERWRITE + RED)(trained)
    exp.run(quiet=True, raise_on_failure=False)
    exp.add_tag(trained, FORGED)
    exp.add_tag(trained, RED)
    exp.add_tag(root, BIDI)
    return exp, root, trained, failed


def test_ls_prints_one_line_per_state_and_no_control_character(hostile):
    exp, root, trained, failed = hostile
    code, out, _ = cli("ls", exp.directory)
    lines = out.splitlines()
    assert code == 0 and len(lines) == 3 and [line.split()[0] for line in lines] == [root.id, trained.id, failed.id]
    assert not CONTROL.search(out) and not any(line.startswith(FAKE_ID) for line in lines)
    assert f"x\\n{FAKE_ID}" in lines[1] and "\\x1b[31mred\\x1b[0m" in lines[1]
    assert "\\u202egnp.exe\\u2066\\x85\\x7f\\x07" in lines[0]


def test_ls_json_keeps_the_exact_strings(hostile):
    exp, root, trained, _ = hostile
    rows = {row["id"]: row for row in json.loads(cli("ls", exp.directory, "--json")[1])}
    assert rows[trained.id]["tags"] == sorted([FORGED, RED]) and rows[root.id]["tags"] == [BIDI]


@pytest.mark.parametrize("command", ["tree", "status", "show-trained", "show-failed", "show-root"])
def test_tree_status_and_show_send_no_control_character_to_the_terminal(hostile, command):
    exp, root, trained, failed = hostile
    name, _, which = command.partition("-")
    node_id = {"root": root.id, "trained": trained.id, "failed": failed.id}.get(which)
    code, out, _ = cli(name, exp.directory, *([node_id] if node_id else []))
    assert code == 0 and out.strip() and not CONTROL.search(out)


def test_show_keeps_the_lines_of_a_traceback_and_escapes_the_rest(hostile):
    exp, _, trained, failed = hostile
    out = cli("show", exp.directory, failed.id)[1]
    error = out[out.index("\nerror:\n"):out.index("\nresults:")].splitlines()
    assert error[2] == "Traceback (most recent call last):" and len(error) > 4
    assert error[-1] == "ValueError: \\x1b[2K\\rboom\\x1b[31mred\\x1b[0m"
    assert "tags: \\x1b[31mred\\x1b[0m, x\\nffff" in cli("show", exp.directory, trained.id)[1]


def test_status_shows_the_failure_escaped_and_its_json_exact(hostile):
    exp, _, _, failed = hostile
    assert "    ValueError: \\x1b[2K\\rboom\\x1b[31mred\\x1b[0m" in cli("status", exp.directory)[1].splitlines()
    status = json.loads(cli("status", exp.directory, "--json")[1])
    assert [f["id"] for f in status["failed"]] == [failed.id]
    assert status["failed"][0]["error"].endswith(f"ValueError: {OVERWRITE}{RED}")


def test_an_error_line_escapes_what_it_quotes(tmp_path):
    code, _, err = cli("tree", tmp_path / f"missing{RED}")
    assert code == 2 and err.startswith("error: ") and len(err.splitlines()) == 1 and not CONTROL.search(err)
    assert "missing\\x1b[31mred" in err


@pytest.fixture
def full(tmp_path):
    """A directory whose ``full.*`` files are links to /dev/full, where every write fails with ENOSPC."""
    if not os.path.exists("/dev/full"):
        pytest.skip("needs /dev/full")
    for suffix in ("svg", "csv", "html"):
        (tmp_path / f"full.{suffix}").symlink_to("/dev/full")
    return tmp_path


UNWRITABLE = [
    ("/nonexistent/dir/out", "no such directory: /nonexistent/dir; create the directory or pick another -o path"),
    ("{tmp}/file/out", "not a directory: {tmp}/file"),
    ("{tmp}/folder", "it is a directory; give a file name with -o"),
]
FULL = ("{tmp}/full", "No space left on device; free space or pick another -o path")


# Graphviz's dot ignores a failing final flush (a small SVG "written" to /dev/full exits 0), so ENOSPC is
# checked where prunelab writes the file itself
@pytest.mark.parametrize("command, where, reason", [(c, *case) for c in ("draw", "export", "report") for case in
                                                    UNWRITABLE + ([FULL] if c != "draw" else [])])
def test_an_unwritable_output_is_one_error_line(hostile, full, command, where, reason):
    exp = hostile[0]
    suffix = {"draw": ".svg", "export": ".csv", "report": ".html"}[command]
    (full / "file").write_text("")
    (full / f"folder{suffix}").mkdir()
    target = where.format(tmp=full) + suffix
    code, out, err = cli(command, exp.directory, "-o", target)
    assert code == 2 and out == "" and len(err.splitlines()) == 1, err
    assert err.startswith(f"error: cannot write {target}: ") and reason.format(tmp=full) in err


@pytest.mark.parametrize("command, option, value", [
    ("verify", "--sample", "-1"),
    ("verify", "--sample", "many"),
    ("verify", "--atol", "-1"),
    ("verify", "--atol", "nan"),
    ("gc", "--min-age", "-1"),
    ("gc", "--min-age", "nan"),
    ("gc", "--min-age", "inf"),
    ("gc", "--min-age", "-inf"),
    ("demo", "--seeds", "0"),
    ("demo", "--seeds", "-2"),
    ("demo", "--rounds", "-1"),
    ("demo", "--workers", "0"),
    ("run", "--workers", "0"),
])
def test_a_nonsense_number_is_a_usage_error_naming_the_option(hostile, tmp_path, command, option, value):
    copy = tmp_path / "exp"
    shutil.copytree(hostile[0].directory, copy)
    before = sorted(p.relative_to(copy) for p in copy.rglob("*") if not p.name.startswith("index."))
    first = {"verify": [copy], "gc": [copy], "demo": ["--quick", "--out", tmp_path / "demo"],
             "run": [TESTS / "scripts" / "chain.py", tmp_path / "run"]}[command]
    code, out, err = cli(command, *first, f"{option}={value}")
    lines = err.splitlines()
    assert code == 2 and out == "" and "Traceback" not in err and lines[0].startswith(f"usage: prunelab {command}")
    assert [line for line in lines if "error:" in line] == [lines[-1]]
    assert lines[-1].startswith(f"prunelab {command}: error: argument {option}: give a ") and repr(value) in lines[-1]
    assert not (tmp_path / "demo").exists() and not (tmp_path / "run").exists()  # nothing ran
    assert sorted(p.relative_to(copy) for p in copy.rglob("*") if not p.name.startswith("index.")) == before


@pytest.fixture(scope="module")
def crowded(tmp_path_factory):
    """An experiment of two states with 300 tags of 1000 characters each: ``ls`` prints 600 kB, far over a pipe's
    buffer (64 kB)."""
    exp = pl.Experiment(tmp_path_factory.mktemp("crowded") / "exp", MLPState)
    trained = Train(steps=1, lr=0.1)(exp.spawn_new_tree(width=4, replicate=0))
    exp.run(quiet=True)
    for i in range(300):
        exp.add_tag(exp.graph.nodes, f"tag-{i:03d}-" + "y" * 992)
    return exp, trained


@pytest.mark.parametrize("json_flag", [[], ["--json"]])
def test_a_closed_pipe_ends_quietly_with_exit_code_0(crowded, json_flag):
    exp, _ = crowded
    proc = subprocess.Popen([sys.executable, "-m", "prunelab.cli", "ls", str(exp.directory), *json_flag],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=TESTS, env=ENV, text=True)
    assert proc.stdout.readline()  # like `| head -1`: read one line, then close the pipe
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 0 and err == ""


def test_draw_says_what_it_wrote_and_lists_its_notes(hostile, tmp_path):
    exp = hostile[0]
    code, out, _ = cli("draw", exp.directory, "-o", tmp_path / "g.svg")
    assert code == 0 and out.splitlines()[0] == f"wrote {tmp_path / 'g.svg'}"
    data = json.loads(cli("draw", exp.directory, "-o", tmp_path / "h.svg", "--json")[1])
    assert data["path"] == str(tmp_path / "h.svg") and isinstance(data["notes"], list)
    assert all(isinstance(note, str) for note in data["notes"])


def test_a_summarised_drawing_is_said_after_wrote(hostile, tmp_path, capsys):
    directory = str(hostile[0].directory)
    assert main(["draw", directory, "-o", str(tmp_path / "g.svg"), "--max-nodes", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"wrote {tmp_path / 'g.svg'}" and len(lines) == 2
    assert "states are more than max_nodes=2, so they were drawn as" in lines[1]
    assert main(["draw", directory, "-o", str(tmp_path / "g.svg"), "--max-nodes", "2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["notes"] == [lines[1]]
    assert main(["draw", directory, "-o", str(tmp_path / "g.svg"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["notes"] == []
