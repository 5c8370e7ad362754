"""An experiment directory under attack or bad luck: links, damage, odd files, crashes, full and read-only disks.

Each test reproduces what an attack on the directory found (issue "Lose nothing, run nothing, hang on
nothing"): it failed before the fix and passes after. Files are real; symlinks, FIFOs, sparse files,
tmpfs mounts and read-only bind mounts are made for real (the last two need root and skip otherwise).
"""

from __future__ import annotations

import gc as pygc
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import prunelab as pl
from prunelab.cli import main
from prunelab.storage.seal import seal

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from helpers import MLPState, declare_tree  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
OLD = time.time() - 7200  # older than gc's default min age


def finished(exp_dir: Path) -> pl.Experiment:
    """A stored experiment of 8 states (5 results), made with the real test recipes."""
    exp = pl.Experiment(exp_dir, MLPState)
    declare_tree(exp)
    exp.run(quiet=True)
    return exp


def state_dirs(exp_dir: Path) -> list[Path]:
    return sorted(p for p in (exp_dir / "states").glob("*/*"))


def leaf(exp: pl.Experiment) -> pl.Node:
    return max(exp.graph.nodes, key=lambda n: (n.depth, n.id))


def own_blobs(node: pl.Node) -> list[str]:
    return sorted(set(node.record["blobs"]) - set(node.parent.record["blobs"]))


def age(path: Path) -> None:
    """Make every file under ``path`` look two hours old (gc collects only old files)."""
    for item in [path, *path.rglob("*")]:
        os.utime(item, (OLD, OLD), follow_symlinks=False)


def run_cli(*args: str) -> tuple[int, str, str]:
    proc = subprocess.run([sys.executable, "-m", "prunelab.cli", *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT / 'tests'}"})
    return proc.returncode, proc.stdout, proc.stderr


def can_mount() -> bool:
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    probe = Path(f"/tmp/prunelab-mount-probe-{os.getpid()}")
    probe.mkdir(exist_ok=True)
    try:
        ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(probe)],
                            capture_output=True).returncode == 0
        if ok:
            subprocess.run(["umount", str(probe)], check=True)
        return ok
    finally:
        probe.rmdir()


needs_mount = pytest.mark.skipif(not can_mount(), reason="needs root and mount (tmpfs, bind mounts)")


# ----------------------------------------------------------------- 1. gc never follows a symlink
@pytest.mark.parametrize("part", ["tmp", "leases", "blobs"])
def test_gc_refuses_a_symlinked_top_level_folder_and_deletes_nothing_through_it(tmp_path, part):
    exp_dir = tmp_path / "exp"
    finished(exp_dir)
    outside = tmp_path / "users-files"
    (outside / "ab").mkdir(parents=True)
    victims = [outside / "notes.txt", outside / "ab" / ("ab" + "0" * 30), outside / "x.lease"]
    for victim in victims:
        victim.write_text("precious")
    age(outside)
    shutil.rmtree(exp_dir / part)
    (exp_dir / part).symlink_to(os.path.relpath(outside, exp_dir))
    code, out, err = run_cli("gc", str(exp_dir), "--min-age", "0")
    assert code == 2 and f"{exp_dir / part} is a symbolic link" in err, err
    assert all(v.read_text() == "precious" for v in victims)


def test_gc_leaves_links_inside_the_directory_alone_and_reports_them(tmp_path):
    exp_dir = tmp_path / "exp"
    finished(exp_dir)
    outside = tmp_path / "users-files"
    outside.mkdir()
    (outside / ("zz" + "1" * 30)).write_text("precious")
    (outside / "doc.txt").write_text("precious")
    age(outside)
    (exp_dir / "blobs" / "zz").symlink_to(outside)
    (exp_dir / "tmp" / "removed.x").symlink_to(outside)
    (exp_dir / "leases" / "abc.lease").symlink_to(outside / "doc.txt")
    report = pl.Experiment.restore(exp_dir).gc(min_age_s=0)
    assert sorted(p.name for p in outside.iterdir()) == ["doc.txt", "zz" + "1" * 30]
    assert all(p.read_text() == "precious" for p in outside.iterdir())
    assert {"blobs/zz", "tmp/removed.x", "leases/abc.lease"} <= set(report.links)
    code, out, _ = run_cli("gc", str(exp_dir), "--min-age", "0")
    assert code == 0 and "left alone" in out and "blobs/zz" in out


# ------------------------------------------------------- 2. damage never widens into deletion
@pytest.mark.parametrize("damaged", ["result", "record"])
def test_plain_gc_keeps_the_blobs_of_a_state_with_a_damaged_file(exp_dir, damaged):
    exp = finished(exp_dir)
    node = leaf(exp)
    blobs = [exp.store.layout.blob_path(b) for b in node.record["blobs"]]
    path = (next((exp.store.layout.state_dir(node.id) / "results").iterdir()) if damaged == "result"
            else exp.store.layout.state_dir(node.id) / "meta.json")
    path.write_bytes(path.read_bytes()[:-7] + b"garbage")
    age(exp_dir)
    report = pl.Experiment.restore(exp_dir).gc(min_age_s=0)
    assert all(b.exists() for b in blobs)
    assert report.unreferenced_blobs == [] and report.states_removed == []
    assert [d["file"] for d in report.damaged] == [str(path)] and report.damaged[0]["states"] == [node.id]
    if damaged == "result":
        assert pl.Experiment.restore(exp_dir, MLPState).graph.node(node.id).restore().model is not None


def test_gc_repair_sets_aside_a_damaged_result_and_the_next_run_computes_it_again(exp_dir):
    exp = finished(exp_dir)
    node = leaf(exp)
    path = exp.store.layout.result_path(node.id, "evaluate", 1)
    expected = json.loads(path.read_bytes())["value"]
    path.write_bytes(b"{not json")
    report = pl.Experiment.restore(exp_dir).gc(repair=True, min_age_s=0)
    assert report.results_removed == [f"{node.id} evaluate@v1.json"] and report.states_removed == []
    code, out, _ = run_cli("gc", str(exp_dir), "--repair")
    assert code == 0
    again = pl.Experiment(exp_dir, MLPState)
    declare_tree(again)
    run = again.run(quiet=True)
    assert run.done == [] and f"{node.id} evaluate@v1" in run.results
    assert json.loads(path.read_bytes())["value"] == expected


# ---------------------------------------------- 3. no cache outlives what it caches (remove, gc, recompute)
def test_remove_gc_and_recompute_in_one_process_stores_every_blob(exp_dir):
    exp = pl.Experiment(exp_dir, MLPState)
    declare_tree(exp)
    exp.run(executor=pl.LocalExecutor(pipelined=False), quiet=True)
    node = leaf(exp)
    gone = own_blobs(node)
    exp.remove(node)
    exp.gc(min_age_s=0)
    assert not any(exp.store.layout.blob_path(b).exists() for b in gone)
    declare_tree(exp)
    exp.run(executor=pl.LocalExecutor(pipelined=False), quiet=True)
    assert all(exp.store.layout.blob_path(b).exists() for b in gone)
    fresh = pl.Experiment.restore(exp_dir, MLPState)
    assert fresh.graph.node(node.id).restore().model is not None
    code, out, _ = run_cli("verify", str(exp_dir), "--sample", "0")
    assert code == 0, out


def test_a_repair_by_another_process_does_not_fool_a_long_lived_driver(exp_dir):
    exp = pl.Experiment(exp_dir, MLPState)
    declare_tree(exp)
    exp.run(executor=pl.LocalExecutor(pipelined=False), quiet=True)
    node = leaf(exp)
    blob = exp.store.layout.blob_path(own_blobs(node)[0])
    blob.write_bytes(b"rot" + blob.read_bytes()[3:])
    assert run_cli("gc", str(exp_dir), "--repair")[0] == 0  # another process: deletes the blob, removes the state
    assert not blob.exists()
    exp.graph.reload()
    declare_tree(exp)
    exp.run(executor=pl.LocalExecutor(pipelined=False), quiet=True)
    assert blob.exists()
    assert run_cli("verify", str(exp_dir), "--sample", "0")[0] == 0


# ---------------------------------------------------- 4. a symlinked index or states folder is not followed
def test_a_symlinked_index_is_never_written_through(exp_dir, tmp_path):
    finished(exp_dir)
    pygc.collect()
    target = tmp_path / "elsewhere" / "planted.sqlite"
    target.parent.mkdir()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{exp_dir}/index.sqlite{suffix}").unlink(missing_ok=True)
    (exp_dir / "index.sqlite").symlink_to(target)
    code, out, err = run_cli("ls", str(exp_dir))
    assert code == 0 and len(out.splitlines()) == 8
    assert "keeps the index in memory" in err
    assert not target.exists() and list(target.parent.iterdir()) == []


def test_a_symlinked_states_folder_lists_nothing_from_outside(exp_dir, tmp_path):
    finished(exp_dir)
    other = tmp_path / "other"
    finished(other)
    shutil.rmtree(exp_dir / "states")
    (exp_dir / "states").symlink_to(other / "states")
    code, out, err = run_cli("ls", str(exp_dir))
    assert code == 2 and out == "" and "states is a symbolic link" in err


# -------------------------------------------------------------- 7. the index is checked by verify
def test_verify_finds_rot_inside_the_index_and_reindex_repairs_it(exp_dir):
    finished(exp_dir)
    pygc.collect()
    path = exp_dir / "index.sqlite"
    assert not Path(f"{path}-wal").exists() or Path(f"{path}-wal").stat().st_size == 0
    data = path.read_bytes()
    assert data.count(b'"width":8') >= 8
    path.write_bytes(data.replace(b'"width":8', b'"width":9'))  # one bit per record: 8 -> 9
    code, out, _ = run_cli("ls", str(exp_dir), "--where", "width=9")
    assert code == 0 and len(out.splitlines()) == 8  # the cache answers wrongly ...
    code, out, _ = run_cli("verify", str(exp_dir), "--sample", "0")
    assert code == 1 and "index" in out and "reindex" in out  # ... and verify says so
    assert run_cli("reindex", str(exp_dir))[0] == 0
    assert run_cli("ls", str(exp_dir), "--where", "width=9")[1] == ""
    assert run_cli("verify", str(exp_dir), "--sample", "0")[0] == 0


# ------------------------------------------------ 8, 9, 13: crafted, odd and missing files, every entry point
READERS = [["ls"], ["tree"], ["status"], ["verify", "--all"], ["export", "-o", "{out}/x.csv"],
           ["reindex"], ["gc", "--repair", "--dry-run"], ["gc", "--repair"]]


def _deep(path: Path) -> None:
    path.write_bytes(b"[" * 200000 + b"]" * 200000)


def _sparse(path: Path) -> None:
    with open(path, "wb") as handle:
        handle.truncate(16 * 2**30)


def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _directory(path: Path) -> None:
    path.mkdir()


def _garbage(path: Path) -> None:
    path.write_bytes(b"\x00\xff garbage")


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _dangling(path: Path) -> None:
    path.symlink_to("/nonexistent/prunelab-target")


def _wrong_types(path: Path) -> None:
    """A record with a valid seal over fields of the wrong types (garbage for files that are not JSON)."""
    try:
        record = json.loads(_original[path])
    except ValueError:
        record = None
    if not isinstance(record, dict):
        return _garbage(path)
    record.pop("digest", None)
    bad = {"depth": "deep", "blobs": {"a": 1}, "status": 5, "entries": [["+", "../x", 3]], "declared": "all",
           "value": 7, "name": ["x"], "kind": "nonsense", "format": "one", "state_class": 3}
    record.update({k: v for k, v in bad.items() if k in record})
    path.write_bytes(seal(record))


_original: dict[Path, bytes] = {}
MUTATIONS = {"deep": _deep, "sparse": _sparse, "fifo": _fifo, "directory": _directory, "garbage": _garbage,
             "empty": _empty, "dangling-link": _dangling, "wrong-types": _wrong_types, "missing": None}
TARGETS = {
    "record": lambda d: sorted(d.glob("states/*/*/meta.json"))[-1],
    "values": lambda d: sorted(d.glob("states/*/*/values.json"))[-1],
    "result": lambda d: sorted(d.glob("states/*/*/results/*.json"))[-1],
    "blob": lambda d: sorted(d.glob("blobs/*/*"))[-1],
    "tags": lambda d: sorted(d.glob("tags/*.json"))[0],
    "runs": lambda d: sorted(d.glob("runs/*.json"))[0],
    "envs": lambda d: sorted(d.glob("envs/*.json"))[0],
    "experiment.json": lambda d: d / "experiment.json",
    "generation": lambda d: d / "generation",
    "lock": lambda d: d / "lock",
    "index": lambda d: d / "index.sqlite",
}


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    directory = tmp_path_factory.mktemp("pristine") / "exp"
    finished(directory)
    pygc.collect()
    return directory


@pytest.mark.timeout(300)
@pytest.mark.parametrize("mutation", MUTATIONS)
@pytest.mark.parametrize("target", TARGETS)
def test_every_entry_point_survives_a_crafted_file(pristine, tmp_path, capsys, target, mutation):
    exp_dir = tmp_path / "exp"
    shutil.copytree(pristine, exp_dir, symlinks=True)
    path = TARGETS[target](exp_dir)
    _original[path] = path.read_bytes()
    os.unlink(path)
    if MUTATIONS[mutation] is not None:
        MUTATIONS[mutation](path)
    for command in READERS:
        args = [command[0], str(exp_dir), *(a.format(out=tmp_path) for a in command[1:])]
        code = main(args)  # an escaping exception (a traceback) or a hang fails the test
        out, err = capsys.readouterr()
        assert code in (0, 1, 2), (args, code)
        if code == 2:
            assert err.startswith("error: ") and "Traceback" not in err, (args, err)
    assert (exp_dir / "states").is_dir()  # nothing was wiped


def test_a_crafted_sealed_record_is_named_with_its_field(exp_dir):
    exp = finished(exp_dir)
    node = leaf(exp)
    path = exp.store.layout.state_dir(node.id) / "meta.json"
    record = json.loads(path.read_bytes())
    del record["digest"]
    path.write_bytes(seal({**record, "depth": "deep"}))
    with pytest.raises(pl.PrunelabError, match="field 'depth'"):
        exp.store.states.read_record(node.id)
    code, out, err = run_cli("reindex", str(exp_dir))
    assert code == 0 and "not restored" in out and node.id in out and "depth" in out


# ------------------------------------------------------------------- 10. read-only experiments
@needs_mount
@pytest.mark.timeout(300)
def test_a_read_only_experiment_can_be_read_by_every_command(tmp_path):
    source = tmp_path / "src"
    finished(source)
    mount = tmp_path / "ro"
    mount.mkdir()
    subprocess.run(["mount", "--bind", str(source), str(mount)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(mount)], check=True)
        before = sorted(str(p.relative_to(source)) for p in source.rglob("*"))
        node_id = sorted(p.name for p in (mount / "states").glob("*/*"))[0]
        for command in (["ls"], ["tree"], ["show", node_id], ["status"], ["verify", "--sample", "3"],
                        ["export", "-o", str(tmp_path / "x.csv")],
                        ["report", "-o", str(tmp_path / "r.html")]):
            code, out, err = run_cli(command[0], str(mount), *command[1:])
            assert code == 0, (command, err)
        exp = pl.Experiment.restore(mount, MLPState)
        assert len(exp.graph.nodes) == 8 and exp.graph.nodes.filter("scale:*")[0].restore().model is not None
        with pytest.raises(pl.PrunelabError, match="read-only"):
            exp.run()
        code, _, err = run_cli("gc", str(mount))
        assert code == 2 and "read-only" in err
        assert sorted(str(p.relative_to(source)) for p in source.rglob("*")) == before
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("chattr"), reason="needs root and chattr")
def test_an_immutable_experiment_can_be_listed(tmp_path):
    exp_dir = tmp_path / "exp"
    finished(exp_dir)
    if subprocess.run(["chattr", "-R", "+i", str(exp_dir)], capture_output=True).returncode != 0:
        pytest.skip("this file system has no immutable flag")
    try:
        code, out, err = run_cli("ls", str(exp_dir))
        assert code == 0 and len(out.splitlines()) == 8, err
        assert run_cli("verify", str(exp_dir), "--sample", "2")[0] == 0
    finally:
        subprocess.run(["chattr", "-R", "-i", str(exp_dir)], check=True)


# ----------------------------------------------------------- 11. gc --repair handles every kind of damage
@pytest.mark.parametrize("damage", ["values", "record", "missing-blob"])
def test_gc_repair_sets_aside_a_damaged_state_and_the_next_run_recomputes_it(exp_dir, damage):
    exp = finished(exp_dir)
    node = leaf(exp)
    folder = exp.store.layout.state_dir(node.id)
    checksum = node.record["values_checksum"]
    if damage == "values":
        (folder / "values.json").write_bytes(b"{}")
    elif damage == "record":
        (folder / "meta.json").write_bytes(b"{broken")
    else:
        exp.store.layout.blob_path(own_blobs(node)[0]).unlink()
    code, out, _ = run_cli("gc", str(exp_dir), "--repair")
    assert code == 0 and f"removed {node.id[:12]}" in out and "1 state(s) removed" in out
    again = pl.Experiment(exp_dir, MLPState)
    declare_tree(again)
    assert again.run(quiet=True).done == [node.id]
    assert again.graph.node(node.id).record["values_checksum"] == checksum
    assert run_cli("verify", str(exp_dir), "--sample", "0")[0] == 0


# ---------------------------------------------------- 12. damaged logs, environments, experiment.json
@pytest.mark.parametrize("kind", ["runs", "tags", "envs", "prereg"])
def test_a_damaged_log_file_is_isolated_named_and_repaired(exp_dir, kind):
    exp = finished(exp_dir)
    if kind == "prereg":
        from prunelab.analysis import preregister

        preregister(exp, "h1", metrics=["evaluate.loss"], nodes=["scale:*"], allow_late=True)
    path = sorted((exp_dir / kind).glob("*.json"))[0]
    path.write_bytes(path.read_bytes().replace(b'"', b"'", 3))
    for command in (["ls"], ["ls", "--run", "-1"] if kind != "runs" else ["ls"], ["status"], ["tree"]):
        code, out, err = run_cli(command[0], str(exp_dir), *command[1:])
        assert code == 0 and len(out.splitlines()) >= 1, (command, err)
    code, out, _ = run_cli("verify", str(exp_dir), "--sample", "0")
    assert code == 1 and f"damaged: {path}" in out
    code, out, err = run_cli("reindex", str(exp_dir))
    assert code == 0 and (kind != "tags" or path.name in out), out
    code, out, _ = run_cli("gc", str(exp_dir), "--repair")
    assert code == 0 and f"set aside {kind}/{path.name}" in out
    assert {"runs": "manifest is lost", "tags": "tag assignments are lost", "envs": "cannot be restored",
            "prereg": "registration digests"}[kind] in out
    assert not path.exists() and run_cli("ls", str(exp_dir))[2] == ""
    if kind == "prereg":
        again = pl.Experiment(exp_dir, MLPState)
        declare_tree(again)
        assert again.run(quiet=True).done == []


def test_run_refuses_to_run_under_a_damaged_registration(exp_dir):
    from prunelab.analysis import blind

    exp = finished(exp_dir)
    blind(exp, metrics=["evaluate.loss"], nodes=["scale:*"])
    path = sorted((exp_dir / "prereg").glob("*.json"))[0]
    path.write_bytes(b"{" + path.read_bytes()[2:])
    again = pl.Experiment(exp_dir, MLPState)
    declare_tree(again, scales=(0.4,))
    before = sorted(exp_dir.glob("states/*/*"))
    with pytest.raises(pl.PrunelabError, match=path.name):
        again.run(quiet=True)
    assert sorted(exp_dir.glob("states/*/*")) == before


def test_reindex_writes_a_damaged_experiment_json_again(exp_dir):
    finished(exp_dir)
    (exp_dir / "experiment.json").write_bytes(b"\x00")
    code, _, err = run_cli("ls", str(exp_dir))
    assert code == 2 and "experiment.json" in err and "prunelab reindex" in err
    code, out, _ = run_cli("reindex", str(exp_dir))
    assert code == 0 and "written again from the state records" in out
    assert run_cli("ls", str(exp_dir))[1].count("\n") == 8
    assert json.loads((exp_dir / "experiment.json").read_bytes())["state_class"] == "MLPState"


# ----------------------------------------------------------------------- 14. a full disk
@needs_mount
@pytest.mark.timeout(240)
def test_a_full_disk_is_a_clear_error_with_everything_stored_intact(tmp_path):
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(mount)], check=True)
    try:
        script = tmp_path / "big.py"
        script.write_text(textwrap.dedent(f"""
            import sys
            sys.path.insert(0, {str(ROOT / 'tests')!r})
            import torch, prunelab as pl
            from helpers import MLPState, Train
            exp = pl.Experiment(sys.argv[1], MLPState)
            root = exp.spawn_new_tree(width=int(sys.argv[2]), replicate=0)
            for k in range(12):
                Train(steps=1, lr=0.1 + k)(root)
            try:
                exp.run(quiet=True)
            except pl.PublishError as err:
                print("PUBLISH-ERROR", err)
                sys.exit(3)
        """))
        env = {**os.environ, "PRUNELAB_LEASE_TIMEOUT": "600", "PYTHONPATH": str(ROOT / "src")}
        proc = subprocess.run([sys.executable, str(script), str(mount / "exp"), "600"], capture_output=True,
                              text=True, env=env, timeout=120)
        assert proc.returncode == 3, proc.stderr
        assert "PUBLISH-ERROR" in proc.stdout and "is full" in proc.stdout and "Traceback" not in proc.stderr
        code, out, err = run_cli("verify", str(mount / "exp"), "--sample", "0")
        assert code == 0 and "0 damaged" in out, (out, err)
        code, out, err = run_cli("ls", str(mount / "exp"))  # reading needs no space
        assert code == 0, err
        with open(mount / "filler", "wb", buffering=0) as handle:  # what the failed state left free
            with pytest.raises(OSError):
                while True:
                    handle.write(b"\0" * 4096)
        with pytest.raises(pl.PublishError, match="disk is full"):
            pl.Experiment(mount / "new", MLPState)
        (mount / "filler").unlink()
        subprocess.run(["mount", "-o", "remount,size=64m", str(mount)], check=True)
        proc = subprocess.run([sys.executable, str(script), str(mount / "exp"), "600"], capture_output=True,
                              text=True, env=env, timeout=120)  # no torn lease stalls it for 600 s
        assert proc.returncode == 0, proc.stderr
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


@needs_mount
def test_ls_works_on_a_full_disk_with_a_stale_index(tmp_path):
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], check=True)
    try:
        finished(mount / "exp")
        pygc.collect()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{mount}/exp/index.sqlite{suffix}").unlink(missing_ok=True)
        with open(mount / "filler", "wb") as handle:
            try:
                while True:
                    handle.write(b"\0" * 65536)
                    handle.flush()
            except OSError:
                pass
        code, out, err = run_cli("ls", str(mount / "exp"))
        assert code == 0 and len(out.splitlines()) == 8, err
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


# ------------------------------------------------------------------ 16, 17: paths and descriptors
class Wander(pl.Recipe):
    """A recipe that changes the working directory (as some data loaders do)."""

    PROPERTIES = ["where"]

    def run(self, state):
        os.chdir(self.where)
        return state


def test_a_recipe_changing_directory_does_not_move_the_experiment(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "elsewhere").mkdir()
    exp = pl.Experiment("rel/exp", MLPState)
    node = Wander(where=str(tmp_path / "elsewhere"))(exp.spawn_new_tree(width=4, replicate=0))
    exp.run(quiet=True)
    assert list((tmp_path / "elsewhere").iterdir()) == []
    assert (tmp_path / "rel" / "exp" / "states" / node.id[:2] / node.id).is_dir()


def test_opening_an_experiment_many_times_leaks_no_descriptor(exp_dir):
    finished(exp_dir)
    pygc.collect()

    def count() -> int:
        return len(os.listdir("/proc/self/fd"))

    pl.Experiment.restore(exp_dir).graph.nodes.to_frame()
    pygc.collect()
    before = count()
    for _ in range(40):
        exp = pl.Experiment.restore(exp_dir)
        len(exp.graph.nodes)
        del exp
        pygc.collect()
    assert count() <= before + 2


@pytest.mark.timeout(120)
def test_a_recipe_closing_prunelabs_descriptors_gets_a_clear_error(tmp_path):
    script = tmp_path / "closer.py"
    script.write_text(textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {str(ROOT / 'tests')!r})
        import prunelab as pl
        from helpers import MLPState

        class Closer(pl.Recipe):
            PROPERTIES = ["k"]
            def run(self, state):
                os.closerange(3, 4096)
                return state

        exp = pl.Experiment(sys.argv[1], MLPState)
        root = exp.spawn_new_tree(width=4, replicate=0)
        for k in range(3):
            Closer(k=k)(root)
        try:
            exp.run(quiet=True, executor=pl.LocalExecutor(pipelined=False))
        except pl.PublishError as err:
            print("PUBLISH-ERROR", err)
            sys.exit(3)
    """))
    proc = subprocess.run([sys.executable, str(script), str(tmp_path / "exp")], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT / "src")}, timeout=100)
    assert proc.returncode == 3, proc.stderr
    assert "closing descriptors" in proc.stdout and "Traceback" not in proc.stderr


# ------------------------------------------------------------- 20. the directory deleted under a run
@pytest.mark.timeout(180)
def test_deleting_the_directory_under_a_run_leaves_no_half_experiment(tmp_path):
    exp_dir = tmp_path / "exp"
    script = tmp_path / "slow.py"
    script.write_text(textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(ROOT / 'tests')!r})
        import prunelab as pl
        from helpers import MLPState

        class Slow(pl.Recipe):
            PROPERTIES = ["k"]
            def run(self, state):
                time.sleep(0.3)
                return state

        exp = pl.Experiment(sys.argv[1], MLPState)
        node = exp.spawn_new_tree(width=4, replicate=0)
        for k in range(40):
            node = Slow(k=k)(node)
        try:
            exp.run(quiet=True)
        except pl.PublishError as err:
            print("PUBLISH-ERROR", err)
            sys.exit(3)
    """))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen([sys.executable, str(script), str(exp_dir)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 60
    while len(list(exp_dir.glob("states/*/*"))) < 3 and time.time() < deadline:
        time.sleep(0.05)
    shutil.rmtree(exp_dir)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 3, err
    assert "deleted or moved" in out and "Traceback" not in err
    assert not exp_dir.exists()
    proc = subprocess.run([sys.executable, str(script), str(exp_dir)], capture_output=True, text=True, env=env,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert len(list(exp_dir.glob("states/*/*"))) == 41


# ------------------------------------------------------------ 22. stray files are not states
def test_stray_files_among_the_states_do_not_make_every_open_rebuild(exp_dir):
    finished(exp_dir)
    (exp_dir / "states" / "README").write_text("notes")
    prefix = next((exp_dir / "states").glob("??"))
    (prefix / "notes.txt").write_text("notes")
    (prefix / "not-a-state").mkdir()
    exp = pl.Experiment.restore(exp_dir)
    exp.index.ensure_valid()
    assert pl.Experiment.restore(exp_dir).index.ensure_valid() is False
    assert len(pl.Experiment.restore(exp_dir).graph.nodes) == 8
