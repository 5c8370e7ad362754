"""The prunelab command, run as a subprocess on real experiments: every subcommand, --json, prefixes, errors."""

import json
import subprocess
import sys

import pandas as pd
import pytest

import prunelab as pl
from helpers import MLPState, Prune, Train, evaluate
from prunelab.cli import main


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    exp = pl.Experiment(tmp_path_factory.mktemp("cli") / "exp", MLPState)
    with exp.tag("trained"):
        node = Train(steps=1, lr=0.1)(exp.spawn_new_tree(width=8, replicate=0))
    with exp.tag("pruned"):
        evaluate(Prune(amount=0.5)(node))
    exp.run(quiet=True)
    return exp


def cli(*args, check=True):
    """Run ``prunelab ARGS`` in a fresh interpreter; return (exit code, stdout, stderr)."""
    proc = subprocess.run([sys.executable, "-m", "prunelab.cli", *map(str, args)], capture_output=True, text=True,
                          cwd="tests")
    if check and proc.returncode != 0:
        raise AssertionError(proc.stderr)
    return proc.returncode, proc.stdout, proc.stderr


def test_tree_ls_and_status(finished):
    directory = finished.directory
    tree = cli("tree", directory)[1].splitlines()
    assert len(tree) == 3 and "d2 Prune(amount=0.5) [pruned] done" in tree[2]
    listed = cli("ls", directory, "--tag", "pruned")[1].splitlines()
    assert len(listed) == 1 and listed[0].split()[1:4] == ["done", "d2", "Prune"]
    assert cli("ls", directory, "--where", "amount=0.5")[1].splitlines() == listed
    assert cli("ls", directory, "--where", "amount=0.25")[1].strip() == ""
    rows = json.loads(cli("ls", directory, "--run", "-1", "--json")[1])
    assert len(rows) == 3 and {r["recipe"] for r in rows} == {"root", "Train", "Prune"}
    assert "3 states of class MLPState (3 done); 1 run(s)" in cli("status", directory)[1]
    assert json.loads(cli("status", directory, "--json")[1])["counts"] == {"done": 3}


def test_show_by_unique_prefix_with_results_and_environment(finished):
    node = finished.graph.nodes.filter("pruned")[0]
    code, out, _ = cli("show", finished.directory, node.id[:6])
    assert out.startswith(f"state {node.id}") and "evaluate:" in out and "environment" in out and "Python 3." in out
    data = json.loads(cli("show", finished.directory, node.id[:6], "--json")[1])
    assert data["lineage"]["technique"] == "l1_unstructured" and data["environment"]["python"].startswith("3.")
    assert data["results"]["evaluate"]["sparsity"] == 0.5 and data["record"]["seed"] == node.seed
    assert f"seed {node.seed}, threads 1" in out


def test_an_ambiguous_prefix_lists_the_candidates_and_an_unknown_one_says_so(quick_study):
    exp, _ = quick_study
    ids = sorted(n.id for n in exp.graph.nodes)
    prefix = next(p for p in "0123456789abcdef" if sum(i.startswith(p) for i in ids) >= 2)
    matching = [i for i in ids if i.startswith(prefix)]
    code, _, err = cli("show", exp.directory, prefix, check=False)
    assert code == 2 and f"the prefix {prefix!r} matches {len(matching)} states" in err
    assert all(i[:12] in err for i in matching[:5])
    unknown = next(p for p in (a + b for a in "0123456789abcdef" for b in "0123456789abcdef")
                   if not any(i.startswith(p) for i in ids))
    code, _, err = cli("show", exp.directory, unknown, check=False)
    assert code == 2 and f"no state with id or prefix {unknown!r}" in err
    code, _, err = cli("show", exp.directory, "", check=False)
    assert code == 2 and err.startswith("error: ")


def test_draw_export_report_reindex_and_gc(finished, tmp_path):
    directory = finished.directory
    assert cli("draw", directory, "-o", tmp_path / "g.png")[1].strip() == f"wrote {tmp_path / 'g.png'}"
    assert (tmp_path / "g.png").read_bytes().startswith(b"\x89PNG")
    out = cli("export", directory, "-o", tmp_path / "nodes.csv")[1]
    assert "3 rows (every node)" in out and len(pd.read_csv(tmp_path / "nodes.csv")) == 3
    cli("export", directory, "-o", tmp_path / "nodes.parquet")
    assert list(pd.read_parquet(tmp_path / "nodes.parquet")["id"]) == list(pd.read_csv(tmp_path / "nodes.csv")["id"])
    assert json.loads(cli("report", directory, "-o", tmp_path / "r.html", "--json")[1]) == {
        "path": str(tmp_path / "r.html")}
    assert cli("reindex", directory)[1].startswith("rebuilt") and "3 states" in cli("reindex", directory)[1]
    assert json.loads(cli("gc", directory, "--dry-run", "--json")[1])["dry_run"] is True


def test_export_of_a_study_writes_the_state_and_class_frames(quick_study, tmp_path):
    exp, outcomes = quick_study
    out = cli("export", exp.directory, "--outcomes", "-o", tmp_path / "states.parquet")[1]
    assert f"{len(outcomes)} rows (the state frame: outcome states)" in out
    cli("export", exp.directory, "--classes", "-o", tmp_path / "classes.csv")
    assert len(pd.read_parquet(tmp_path / "states.parquet")) == len(outcomes)
    assert len(pd.read_csv(tmp_path / "classes.csv")) == 10 * len(outcomes)
    cli("export", exp.directory, "-o", tmp_path / "nodes.csv")
    assert len(pd.read_csv(tmp_path / "nodes.csv")) == len(exp.graph.nodes) > len(outcomes)


def test_export_writes_every_node_of_an_experiment_that_is_not_a_study(finished, tmp_path):
    code, out, _ = cli("export", finished.directory, "-o", tmp_path / "nodes.csv")
    frame = pd.read_csv(tmp_path / "nodes.csv")
    assert code == 0 and len(frame) == 3 and set(frame["id"]) == {n.id for n in finished.graph.nodes}
    assert out.strip() == f"wrote {tmp_path / 'nodes.csv'}: 3 rows (every node)"
    for option in ("--outcomes", "--classes"):
        out = cli("export", finished.directory, option, "-o", tmp_path / "none.csv")[1]
        assert "0 rows" in out and "there are no outcome states" in out and "without --outcomes or --classes" in out
    code, _, err = cli("export", finished.directory, "--outcomes", "--classes", "-o", tmp_path / "x.csv", check=False)
    assert code == 2 and "not allowed with argument" in err


@pytest.mark.parametrize("args, message", [
    (["tree"], "the following arguments are required: directory"),
    (["ls", "{dir}", "--run", "x"], "invalid int value"),
    (["draw", "{dir}"], "the following arguments are required: -o/--output"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_arguments_are_usage_errors(finished, args, message):
    code, _, err = cli(*[a.format(dir=finished.directory) for a in args], check=False)
    assert code == 2 and message in err and "usage: prunelab" in err


@pytest.mark.parametrize("args, message", [
    (["ls", "{dir}", "--where", "amount"], "--where takes prop=value"),
    (["export", "{dir}", "-o", "x.xlsx"], "export writes .csv or .parquet"),
    (["tree", "{missing}"], "does not exist"),
])
def test_user_errors_are_one_line_and_exit_code_2(finished, tmp_path, args, message):
    code, _, err = cli(*[a.format(dir=finished.directory, missing=tmp_path / "missing") for a in args], check=False)
    assert code == 2 and err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1


def test_debug_shows_the_traceback(tmp_path):
    with pytest.raises(pl.ExperimentFormatError):
        main(["--debug", "tree", str(tmp_path / "missing")])


def test_help_ends_with_an_example(capsys):
    with pytest.raises(SystemExit):
        main(["ls", "--help"])
    assert capsys.readouterr().out.strip().endswith("example: prunelab ls runs/lr-sweep --where lr=0.1")


def test_verify_all_on_the_quick_demo_then_a_flipped_blob_byte(quick_study, tmp_path):
    import shutil

    exp, _ = quick_study
    copy = tmp_path / "exp"
    shutil.copytree(exp.directory, copy)
    code, out, _ = cli("verify", copy, "--all")
    states = len(exp.graph.nodes)
    assert code == 0 and out.strip().endswith(f"verify: 0 damaged file(s); {states} identical")
    restored = pl.Experiment.restore(copy)
    digest = restored.graph.nodes.filter("outcome")[3].record["blobs"][0]
    users = {n.id for n in restored.graph.nodes if digest in n.record.get("blobs", [])
             or any(digest in r.get("blobs", []) for r in restored.index.results(n.id).values())}
    path = restored.store.layout.blob_path(digest)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    code, out, _ = cli("verify", copy, "--all", "--json", check=False)
    report = json.loads(out)
    assert code == 1 and not report["ok"]
    assert {r["id"] for r in report["rows"] if r["outcome"] == "corrupt"} == users
    assert [d["file"] for d in report["damaged"]] == [str(path)] and set(report["damaged"][0]["states"]) == users


SCRIPT = '''
import sys
import torch
import prunelab as pl


class Tiny(pl.ExperimentState):
    PROPERTIES = ["width"]
    NONHASHED_ATTRIBUTES = ["model"]

    def initialize_state(self):
        self.model = torch.nn.Linear(4, self.width)


class Shake(pl.Recipe):
    PROPERTIES = ["scale"]

    def run(self, state):
        with torch.no_grad():
            state.model.weight.add_(torch.randn_like(state.model.weight) * self.scale)
        return state


if __name__ == "__main__":
    exp = pl.Experiment(sys.argv[1], Tiny)
    Shake(scale=0.5)(Shake(scale=0.1)(exp.spawn_new_tree(width=3)))
    exp.run(quiet=True)
'''


def test_verify_imports_the_users_script_to_find_its_classes(tmp_path):
    script = tmp_path / "tiny.py"
    script.write_text(SCRIPT)
    subprocess.run([sys.executable, str(script), str(tmp_path / "exp")], check=True)
    code, out, _ = cli("verify", tmp_path / "exp", "--all", "--script", script)
    assert code == 0 and out.strip().endswith("3 identical")
    code, out, _ = cli("verify", tmp_path / "exp", "--all")
    assert code == 0 and out.strip().endswith("3 unverifiable") and "state class" in out
    code, _, err = cli("verify", tmp_path / "exp", "--script", tmp_path / "missing.py", check=False)
    assert code == 2 and "no such Python file" in err


def test_status_shows_stale_states_held_leases_and_differing_settings(tmp_path):
    import json as json_module
    import socket

    script = tmp_path / "tiny.py"
    script.write_text(SCRIPT)
    subprocess.run([sys.executable, str(script), str(tmp_path / "exp")], check=True)
    code, out, _ = cli("status", tmp_path / "exp", "--script", script)
    assert "  stale " not in out and "  lease " not in out
    script.write_text(SCRIPT.replace("torch.randn_like(state.model.weight) * self.scale",
                                     "self.scale * torch.randn_like(state.model.weight)"))
    exp = pl.Experiment.restore(tmp_path / "exp")
    shaken = {n.id for n in exp.graph.nodes if n.parent_id is not None}
    (tmp_path / "exp" / "leases" / "f00.lease").write_text(json_module.dumps(
        {"host": socket.gethostname(), "pid": 2 ** 22 + 12345, "token": "x", "counter": 3}))
    status = json.loads(cli("status", tmp_path / "exp", "--script", script, "--json")[1])
    assert {s["id"] for s in status["stale"]} == shaken and {s["name"] for s in status["stale"]} == {"Shake"}
    assert [(lease["key"], lease["alive"]) for lease in status["leases"]] == [("f00", False)]
    text = cli("status", tmp_path / "exp", "--script", script)[1]
    assert text.count("  stale ") == 2 and "lease f00 held by" in text and "(dead)" in text
    code, _, _ = cli("status", tmp_path / "exp")  # without the script nothing is compared
    assert code == 0


def test_status_lists_states_made_with_other_thread_counts(tmp_path):
    script = tmp_path / "tiny.py"
    script.write_text(SCRIPT + '''
    other = pl.Experiment(sys.argv[1], Tiny, threads=2)
    Shake(scale=0.3)(other.spawn_new_tree(width=3))
    other.run(quiet=True)
''')
    subprocess.run([sys.executable, str(script), str(tmp_path / "exp")], check=True)
    status = json.loads(cli("status", tmp_path / "exp", "--json")[1])
    assert sorted((g["threads"], g["states"]) for g in status["environments"]) == [(1, 3), (2, 1)]
    assert "2 environments or thread settings" in cli("status", tmp_path / "exp")[1]


def _files(root):
    """Every file of an experiment but SQLite's own (the index is a cache whose journal SQLite manages)."""
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and not p.name.startswith("index.")}


def test_gc_after_a_killed_run_removes_its_leftovers_and_nothing_else(tmp_path):
    import os
    from pathlib import Path

    chain = Path(__file__).resolve().parents[1] / "scripts" / "chain.py"
    exp_dir = tmp_path / "exp"
    killed = subprocess.run([sys.executable, str(chain), str(exp_dir)], capture_output=True, text=True,
                            env={**os.environ, "PRUNELAB_CRASH_AT": "record-written:3"})
    assert killed.returncode == -9  # SIGKILL at the third state's record, before its rename
    before = _files(exp_dir)
    referenced = set()
    for meta in exp_dir.glob("states/*/*/meta.json"):
        referenced |= set(json.loads(meta.read_text()).get("blobs", []))
    for result in exp_dir.glob("states/*/*/results/*.json"):
        referenced |= set(json.loads(result.read_text()).get("blobs", []))
    expected = {f for f in before if f.startswith(("tmp/", "leases/"))}
    expected |= {f for f in before if f.startswith("blobs/") and Path(f).name not in referenced}
    assert any(f.startswith("tmp/") for f in expected) and any(f.startswith("leases/run.") for f in expected)
    assert any(f.startswith("blobs/") for f in expected)
    report = json.loads(cli("gc", exp_dir, "--min-age", "0", "--json")[1])
    assert report["live_runs"] == 0
    assert before - _files(exp_dir) == expected  # exactly the leftovers
    subprocess.run([sys.executable, str(chain), str(exp_dir)], check=True, capture_output=True)
    assert cli("verify", exp_dir, "--all", "--script", chain)[0] == 0


SLOW = SCRIPT.replace('''if __name__ == "__main__":
    exp = pl.Experiment(sys.argv[1], Tiny)
    Shake(scale=0.5)(Shake(scale=0.1)(exp.spawn_new_tree(width=3)))
    exp.run(quiet=True)''', '''class Slow(Shake):
    def run(self, state):
        import time

        time.sleep(0.4)
        return super().run(state)


if __name__ == "__main__":
    exp = pl.Experiment(sys.argv[1], Tiny)
    node = exp.spawn_new_tree(width=64)
    for i in range(12):
        node = Slow(scale=0.01 * (i + 1))(node)
    exp.run(quiet=True)''')


def test_gc_beside_a_live_run_removes_nothing_the_run_needs(tmp_path):
    import time

    script = tmp_path / "slow.py"
    script.write_text(SLOW)
    exp_dir = tmp_path / "exp"
    run = subprocess.Popen([sys.executable, str(script), str(exp_dir)], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    reports = []
    while run.poll() is None:
        if (exp_dir / "experiment.json").exists():
            reports.append(json.loads(cli("gc", exp_dir, "--min-age", "0", "--json")[1]))
        time.sleep(0.2)
    assert run.returncode == 0, run.stderr.read()
    assert any(r["live_runs"] == 1 for r in reports) and all(not r["unreferenced_blobs"] for r in reports)
    code, out, _ = cli("verify", exp_dir, "--all", "--script", script)
    assert code == 0 and out.strip().endswith("13 identical")


def test_run_executes_a_script_with_the_chosen_executor(tmp_path):
    script = tmp_path / "tiny.py"
    script.write_text(SCRIPT.replace("    exp.run(quiet=True)", "    print(type(pl.execution.resolve_executor(None)).__name__)\n"
                                     "    exp.run(quiet=True)"))
    code, out, _ = cli("run", script, tmp_path / "a")
    assert code == 0 and out.strip() == "LocalExecutor" and len(pl.Experiment.restore(tmp_path / "a").graph.nodes) == 3
    code, out, _ = cli("run", script, tmp_path / "b", "--executor", "dask", "--workers", "1", "--json")
    assert code == 0 and out.startswith("DaskExecutor")
    assert json.loads(out[out.index("{"):]) == {"script": str(script), "executor": "dask", "exit_code": 0}
    assert cli("verify", tmp_path / "b", "--all", "--script", script)[1].strip().endswith("3 identical")
    failing = tmp_path / "fails.py"
    failing.write_text("raise ValueError('boom')\n")
    code, _, err = cli("run", failing, check=False)
    assert code == 1 and "ValueError: boom" in err
    code, _, err = cli("run", script, "--address", "127.0.0.1:1", "--executor", "local", check=False)
    assert code == 2 and "--address names a Dask scheduler" in err
    code, _, err = cli("run", tmp_path / "missing.py", check=False)
    assert code == 2 and "no such script" in err


def test_the_demo_command_through_a_subprocess(tmp_path):
    code, out, _ = cli("demo", "--quick", "--out", tmp_path / "demo", "--json")
    data = json.loads(out)
    assert code == 0 and data["states"] == len(pl.Experiment.restore(tmp_path / "demo").graph.nodes) > 0
    assert {row["technique"] for row in data["rows"]} == {"dense", "global_magnitude", "l1_structured"}
    assert data["report"] == str(tmp_path / "demo" / "report.html") and (tmp_path / "demo" / "report.html").exists()


CLASHING = '''
import sys
import torch
import prunelab as pl


class Tiny(pl.ExperimentState):
    PROPERTIES = ["width"]
    NONHASHED_ATTRIBUTES = ["model"]

    def initialize_state(self):
        self.model = torch.nn.Linear(4, self.width)


class Train(pl.Recipe):  # the names of prunelab's own recipes, on the user's own classes
    PROPERTIES = ["scale"]

    def run(self, state):
        with torch.no_grad():
            state.model.weight.mul_(self.scale)
        return state


class Prune(pl.Recipe):
    PROPERTIES = ["amount"]

    def run(self, state):
        torch.nn.utils.prune.l1_unstructured(state.model, "weight", amount=self.amount)
        return state


@pl.function
def norm(state):
    return {"norm": float(state.model.weight.norm())}


if __name__ == "__main__":
    exp = pl.Experiment(sys.argv[1], Tiny)
    norm(Prune(amount=0.5)(Train(scale=2.0)(exp.spawn_new_tree(width=3))))
    exp.run(quiet=True)
'''


def test_status_judges_a_state_only_against_the_class_that_made_it(tmp_path):
    """A user's recipes named Train and Prune are not prunelab's: without their script they are not checked."""
    script = tmp_path / "clash.py"
    script.write_text(CLASHING)
    subprocess.run([sys.executable, str(script), str(tmp_path / "exp")], check=True)
    status = json.loads(cli("status", tmp_path / "exp", "--json")[1])
    assert status["stale"] == [] and status["not_checked"] == {"states": 2, "results": 1}
    text = cli("status", tmp_path / "exp")[1]
    assert "  stale " not in text
    assert ("  not checked for staleness: 2 state(s) and 1 result(s) whose recipe or function is not imported here; "
            "--script FILE imports the script that defines them") in text
    status = json.loads(cli("status", tmp_path / "exp", "--script", script, "--json")[1])
    assert status["stale"] == [] and status["not_checked"] == {"states": 0, "results": 0}
    assert "not checked" not in cli("status", tmp_path / "exp", "--script", script)[1]
    script.write_text(CLASHING.replace("mul_(self.scale)", "mul_(float(self.scale))").replace(
        '"norm": float(', '"norm": 1.0 * float('))
    status = json.loads(cli("status", tmp_path / "exp", "--script", script, "--json")[1])
    assert sorted((s["kind"], s["name"]) for s in status["stale"]) == [("function", "norm@v1"), ("recipe", "Train")]
    assert json.loads(cli("status", tmp_path / "exp", "--json")[1])["stale"] == []  # prunelab's Train is not it


def test_status_finds_recipes_of_a_module_the_driver_imported_in_the_script_of_that_name(tmp_path):
    """The common layout: run.py imports the classes from mystudy.py; `--script mystudy.py` checks them."""
    study = tmp_path / "mystudy.py"
    study.write_text(CLASHING.split('if __name__ == "__main__":')[0])
    (tmp_path / "run.py").write_text("import sys\nimport prunelab as pl\nfrom mystudy import Prune, Tiny, Train, norm\n"
                                     "exp = pl.Experiment(sys.argv[1], Tiny)\n"
                                     "norm(Prune(amount=0.5)(Train(scale=2.0)(exp.spawn_new_tree(width=3))))\n"
                                     "exp.run(quiet=True)\n")
    subprocess.run([sys.executable, str(tmp_path / "run.py"), str(tmp_path / "exp")], check=True, cwd=tmp_path)
    status = json.loads(cli("status", tmp_path / "exp", "--script", study, "--json")[1])
    assert status["stale"] == [] and status["not_checked"] == {"states": 0, "results": 0}
    study.write_text(study.read_text().replace("mul_(self.scale)", "mul_(float(self.scale))"))
    status = json.loads(cli("status", tmp_path / "exp", "--script", study, "--json")[1])
    assert [(s["kind"], s["name"]) for s in status["stale"]] == [("recipe", "Train")]


def test_status_checks_prunelabs_own_recipes_against_prunelabs_classes(tmp_path):
    from prunelab.recipes import ModelState, Train, evaluate

    exp = pl.Experiment(tmp_path / "exp", ModelState)
    evaluate(Train(epochs=0)(exp.spawn_new_tree(dataset_name="digits", model_name="mlp", replicate=0)))
    exp.run(quiet=True)
    status = json.loads(cli("status", tmp_path / "exp", "--json")[1])
    assert status["stale"] == [] and status["not_checked"] == {"states": 0, "results": 0}


def _forget_where_the_code_was(exp_dir):
    """Make the records look like those of an older prunelab, which kept no module or qualname (resealed)."""
    from prunelab.experiment import reindex
    from prunelab.storage.seal import seal

    for path in [*exp_dir.glob("states/*/*/meta.json"), *exp_dir.glob("states/*/*/results/*.json")]:
        record = json.loads(path.read_text())
        for part in (record, record.get("recipe") or {}):
            part.pop("module", None)
            part.pop("qualname", None)
        record.pop("digest")
        path.write_bytes(seal(record))
    reindex(exp_dir)


def test_status_on_older_records_compares_by_name(tmp_path):
    script = tmp_path / "tiny.py"
    script.write_text(SCRIPT)
    subprocess.run([sys.executable, str(script), str(tmp_path / "exp")], check=True)
    _forget_where_the_code_was(tmp_path / "exp")
    assert "module" not in pl.Experiment.restore(tmp_path / "exp").graph.nodes[1].record["recipe"]
    status = json.loads(cli("status", tmp_path / "exp", "--json")[1])
    assert status["stale"] == [] and status["not_checked"] == {"states": 2, "results": 0}
    script.write_text(SCRIPT.replace("* self.scale", "* float(self.scale)"))
    status = json.loads(cli("status", tmp_path / "exp", "--script", script, "--json")[1])
    assert {s["name"] for s in status["stale"]} == {"Shake"} and len(status["stale"]) == 2


STUDY = '''
import sys
import torch
import prunelab as pl

ARGV = list(sys.argv)


class Quiet(pl.ExperimentState):
    PROPERTIES = ["width"]
    NONHASHED_ATTRIBUTES = ["model"]

    def initialize_state(self):
        self.model = torch.nn.Linear(4, self.width)


class Wobble(pl.Recipe):
    PROPERTIES = ["scale"]

    def run(self, state):
        with torch.no_grad():
            state.model.weight.add_(torch.randn_like(state.model.weight) * self.scale)
        return state


exp = pl.Experiment(EXPERIMENT, Quiet)  # no main guard: importing the script declares, runs and reads
node = Wobble(scale=0.5)(Wobble(scale=0.1)(exp.spawn_new_tree(width=WIDTH)))
exp.run(quiet=True)
print(node.restore().model.weight.sum())


class Later(pl.Recipe):
    pass
'''


def test_a_script_given_to_status_or_verify_computes_nothing(tmp_path, capsys):
    directory = tmp_path / "exp"
    script = tmp_path / "study.py"
    script.write_text(STUDY.replace("EXPERIMENT", repr(str(directory))).replace("WIDTH", "3"))
    subprocess.run([sys.executable, str(script)], check=True, capture_output=True)  # run directly: 3 states
    script.write_text(STUDY.replace("EXPERIMENT", repr(str(directory))).replace("WIDTH", "5"))  # 2 states more
    with pytest.warns(pl.PrunelabWarning) as caught:
        assert main(["status", str(directory), "--script", str(script), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["states"] == 3 and status["counts"] == {"done": 3} and status["stale"] == []
    messages = [str(w.message) for w in caught]
    assert messages[0] == (f"run() on {directory} computed nothing: prunelab status --script imports study.py only to "
                           "learn its classes; run the script itself to compute.")
    line = STUDY.splitlines().index("print(node.restore().model.weight.sum())") + 1
    assert messages[1].startswith(f"--script {script}: its module-level code failed at line {line} "
                                  "(UnknownNameError: state ")
    assert "any defined after it are not checked" in messages[1] and caught[1].filename == str(script)
    module = sys.modules["prunelab_script_study"]
    assert module.ARGV == [str(script)] and hasattr(module, "Wobble") and not hasattr(module, "Later")
    with pytest.warns(pl.PrunelabWarning) as caught:
        assert main(["verify", str(directory), "--script", str(script), "--sample", "0"]) == 0
    assert "prunelab verify --script imports study.py" in str(caught[0].message) and len(caught) == 2
    assert len(pl.Experiment.restore(directory).graph.nodes) == 3


def test_a_script_that_cannot_be_imported_is_an_error(tmp_path):
    script = tmp_path / "broken.py"
    script.write_text("import prunelab as pl\n\nclass Half(pl.Recipe:\n    pass\n")
    code, _, err = cli("status", tmp_path, "--script", script, check=False)
    assert code == 2 and err.startswith(f"error: --script {script} cannot be imported: ")
    assert "(line 3); fix the script or give the one that defines the classes" in err
