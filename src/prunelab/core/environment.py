"""Capture the environment a run happened in (stored once per run under ``envs/``)."""

from __future__ import annotations

import functools
import importlib.metadata
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["capture"]

_ENV_VARS = ("PYTHONHASHSEED", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "CUBLAS_WORKSPACE_CONFIG",
             "CUDA_VISIBLE_DEVICES", "PRUNELAB_EXECUTOR")


def _git(script: Path) -> dict[str, Any] | None:
    folder = script.parent if script.is_file() else Path.cwd()
    try:
        head = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=5, check=False)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(folder), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": head.stdout.strip(), "dirty": bool(dirty.stdout.strip())}


def _torch() -> dict[str, Any] | None:
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    info: dict[str, Any] = {"version": torch.__version__, "cuda": torch.version.cuda,
                            "cuda_available": torch.cuda.is_available()}
    if info["cuda_available"]:
        info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        info["cudnn"] = torch.backends.cudnn.version()
    return info


_PACKAGES = ("prunelab", "torch", "numpy", "scipy", "pandas", "statsmodels", "scikit-learn", "matplotlib",
             "dask", "distributed", "safetensors", "xxhash", "torch-pruning", "rich")


@functools.lru_cache(maxsize=1)
def _packages() -> dict[str, str]:
    """Versions of the packages that change results (reading every installed one costs ~60 ms)."""
    out = {}
    for name in _PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def capture() -> dict[str, Any]:
    """Return a description of this process's environment.

    Covers Python, the OS and CPU, torch and its GPUs (when torch is imported),
    the versions of the packages that change results, environment variables that change results,
    and the git commit of the running script (with a dirty flag). Absolute
    paths are left out so the record stays relocatable.
    """
    script = Path(sys.argv[0]).resolve() if sys.argv and sys.argv[0] else Path.cwd()
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "os": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": _torch(),
        "packages": _packages(),
        "env": {k: os.environ[k] for k in _ENV_VARS if k in os.environ},
        "script": script.name,
        "git": _git(script),
    }
