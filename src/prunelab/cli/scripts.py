"""Importing a user's script (``--script``) only to learn its classes: its run() calls compute nothing."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

from ..errors import PrunelabWarning

__all__ = ["import_code"]

def _import_script(path: str, command: str) -> None:
    """Import a user's script to learn its classes (as a module :func:`prunelab.experiment.audit.stale_states` finds).

    It is imported as ``prunelab_script_<stem>``, not as ``__main__`` (so its
    main block does not run), with ``sys.argv`` holding only its path, and
    computes nothing: its ``run()`` calls only declare
    (:func:`prunelab.experiment.declaring_only`). When its module-level
    code fails (e.g. it reads a result that was never computed), what it
    defined before the failing line is kept and a warning names the script,
    the line and the error.

    Parameters
    ----------
    path : str
        The script (``--script FILE``).
    command : str
        The subcommand importing it, named in the warning each ``run()`` gives.
    """
    import importlib.util

    from ..core.errors import UnknownNameError
    from ..experiment.audit import SCRIPT_PREFIX
    from ..experiment import declaring_only

    script = Path(path)
    name = f"{SCRIPT_PREFIX}{script.stem}"
    spec = importlib.util.spec_from_file_location(name, script)
    if not script.is_file() or spec is None or spec.loader is None:
        raise UnknownNameError(f"--script {path}: no such Python file; give the script that defines the classes.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    saved_argv, sys.argv = sys.argv, [str(script)]
    try:
        with declaring_only(f"prunelab {command} --script imports {script.name} only to learn its classes; "
                            f"run the script itself to compute"):
            spec.loader.exec_module(module)
    except SyntaxError as err:
        del sys.modules[name]
        raise UnknownNameError(f"--script {path} cannot be imported: {err.msg} (line {err.lineno}); fix the script "
                               "or give the one that defines the classes.") from err
    except (Exception, SystemExit) as err:  # noqa: BLE001 - the script's own error: reported, what it defined kept
        _warn_script_failed(script, err)
    finally:
        sys.argv = saved_argv


def _warn_script_failed(script: Path, err: BaseException) -> None:
    """Warn, at the script's failing line, that its module-level code failed and what that means for the command."""
    import traceback

    frames = [f for f in traceback.extract_tb(err.__traceback__) if Path(f.filename) == script]
    line = frames[-1].lineno if frames and frames[-1].lineno is not None else 1
    warnings.warn_explicit(f"--script {script}: its module-level code failed at line {line} "
                           f"({type(err).__name__}: {err}); the classes and functions it defined before that line "
                           "are used, any defined after it are not checked. Guard the script's work with "
                           "`if __name__ == \"__main__\":` to keep it from running on import.",
                           PrunelabWarning, str(script), line)


def import_code(script: str | None, command: str) -> None:
    """Import prunelab's own recipes and, if given, the user's script (to find classes and their sources).

    Parameters
    ----------
    script : str or None
        The user's script (``--script FILE``), if any.
    command : str
        The subcommand importing it.
    """
    import importlib

    importlib.import_module("prunelab.recipes")
    if script:
        _import_script(script, command)
