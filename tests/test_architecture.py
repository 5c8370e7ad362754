"""The shape of the source tree: the layers contract holds, and no module or class outgrows a reader.

Limits (issue 14): a module of ``src/`` holds at most 400 lines and a class at most 250. The layers
contract lives in ``pyproject.toml`` (``[tool.importlinter]``) and counts every import: at module
level, deferred into functions, and under ``TYPE_CHECKING``.
"""

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src" / "prunelab"
MODULE_LINES = 400
CLASS_LINES = 250


def _sizes() -> tuple[dict[str, int], dict[str, int]]:
    """Lines per module and per class (``module:Class``) of the package."""
    modules, classes = {}, {}
    for path in sorted(SRC.rglob("*.py")):
        name = str(path.relative_to(SRC.parent))
        text = path.read_text()
        modules[name] = len(text.splitlines())
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ClassDef):
                assert node.end_lineno is not None
                classes[f"{name}:{node.name}"] = node.end_lineno - node.lineno + 1
    return modules, classes


def test_no_module_over_400_lines():
    modules, _ = _sizes()
    over = {name: n for name, n in modules.items() if n > MODULE_LINES}
    assert not over, f"modules over {MODULE_LINES} lines (split them by concept): {over}"


def test_no_class_over_250_lines():
    _, classes = _sizes()
    over = {name: n for name, n in classes.items() if n > CLASS_LINES}
    assert not over, f"classes over {CLASS_LINES} lines (give a part of their work to a class of its own): {over}"


def test_the_sizes_are_measured_over_the_whole_tree():
    modules, classes = _sizes()
    assert len(modules) > 80 and {"prunelab/storage/layout.py", "prunelab/cli/main.py"} <= set(modules)
    assert classes["prunelab/experiment/experiment.py:Experiment"] > 100


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` run on the tree at ``root`` (its ``src`` first on the path)."""
    linter = Path(sys.executable).parent / "lint-imports"
    command = str(linter) if linter.exists() else shutil.which("lint-imports")
    assert command, "import-linter is a test extra: pip install -e '.[test]'"
    return subprocess.run([command], cwd=root, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(root / "src")})


def test_the_layers_contract_holds():
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "1 kept, 0 broken" in result.stdout


def test_the_contract_refuses_an_import_against_the_layers(tmp_path):
    """A copy of the tree with one model module importing storage breaks the contract, naming the import."""
    copy = tmp_path / "tree"
    shutil.copytree(SRC, copy / "src" / "prunelab")
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    nodes = copy / "src" / "prunelab" / "core" / "nodes.py"
    nodes.write_text(nodes.read_text() + "\n\ndef _upwards():\n    from ..storage.store import Store\n\n    return Store\n")
    result = _lint(copy)
    assert result.returncode != 0
    assert "prunelab.core.nodes -> prunelab.storage.store" in result.stdout


def test_the_tests_mirror_the_packages():
    """Each folder of tests/ that holds tests is named for a package of src/prunelab (or holds the suite's data)."""
    tests = ROOT / "tests"
    packages = {p.name for p in SRC.iterdir() if (p / "__init__.py").exists()}
    folders = {p.parent.name for p in tests.rglob("test_*.py") if p.parent != tests}
    assert folders and not folders - packages, f"test folders that name no package: {sorted(folders - packages)}"
    assert {"core", "storage", "execution", "experiment", "cli"} <= folders
