"""The prunelab command, called in-process through main(argv)."""

import pytest

import prunelab as pl
from helpers import MLPState, Prune, Train
from prunelab.cli import main


@pytest.fixture
def finished(exp_dir):
    exp = pl.Experiment(exp_dir, MLPState)
    with exp.tag("trained"):
        node = Train(steps=1, lr=0.1)(exp.spawn_new_tree(width=8, replicate=0))
    with exp.tag("pruned"):
        Prune(amount=0.5)(node)
    exp.run(quiet=True)
    return exp


def test_tree_ls_and_status(finished, capsys):
    directory = str(finished.directory)
    assert main(["tree", directory]) == 0
    tree = capsys.readouterr().out.splitlines()
    assert len(tree) == 3 and "d2 Prune(amount=0.5) [pruned] done" in tree[2]
    assert main(["ls", directory, "pruned"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert len(listed) == 1 and listed[0].split()[:4][1:] == ["done", "d2", "Prune"]
    assert main(["status", directory]) == 0
    assert "3 states of class MLPState (3 done); 1 run(s)" in capsys.readouterr().out


def test_draw(finished, tmp_path, capsys):
    out = tmp_path / "g.png"
    assert main(["draw", str(finished.directory), str(out)]) == 0
    assert out.read_bytes().startswith(b"\x89PNG")


def test_a_user_error_is_one_line_and_exit_code_2(tmp_path, capsys):
    assert main(["tree", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "does not exist" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(pl.ExperimentFormatError):
        main(["--debug", "tree", str(tmp_path / "missing")])


def test_help_ends_with_an_example(capsys):
    with pytest.raises(SystemExit):
        main(["ls", "--help"])
    assert capsys.readouterr().out.strip().endswith("example: prunelab ls runs/lr-sweep pruned")


def test_report_of_an_experiment_without_outcomes_says_so(finished, tmp_path, capsys):
    assert main(["report", str(finished.directory)]) == 0
    path = finished.directory / "report.html"
    assert capsys.readouterr().out.strip() == f"report: {path}"
    page = path.read_text()
    assert "No outcome states" in page and "No pre-registration" in page and "experiment graph" in page
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert capsys.readouterr().err.startswith("error: ")
