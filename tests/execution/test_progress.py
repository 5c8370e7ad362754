"""Progress: log lines when not on a terminal, a live line on one, silence when quiet."""

import io

import prunelab as pl
from helpers import MLPState, Train
from prunelab.execution.progress import Progress


class Terminal(io.StringIO):
    """A text stream that says it is a terminal (what rich checks before drawing live)."""

    def isatty(self):
        return True


def test_counts_eta_and_failures_as_log_lines():
    out = io.StringIO()
    progress = Progress(4, stream=out)
    progress.running()
    progress.finished("done", "a" * 32)
    progress.running()
    progress.finished("failed", "b" * 32)
    line = progress.line()
    assert line.startswith("prunelab: 2/4 (1 done, 0 cached, 0 running, 1 failed, 0 skipped), ETA ")
    assert out.getvalue() == f"prunelab: {'b' * 12} failed\n"
    progress.close()


def test_live_display_on_a_terminal():
    out = Terminal()
    progress = Progress(2, stream=out)
    assert progress.live is not None
    progress.running()
    progress.finished("done", "a" * 32)
    progress.close()
    assert progress.live is None and "\x1b[" in out.getvalue()  # rich drew and cleared a live line


def test_quiet_runs_print_nothing(exp_dir, capsys):
    exp = pl.Experiment(exp_dir, MLPState)
    Train(steps=1, lr=0.1)(exp.spawn_new_tree(width=8, replicate=0))
    exp.run(quiet=True)
    assert capsys.readouterr().err == ""
