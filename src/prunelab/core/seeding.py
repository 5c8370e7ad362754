"""Seeds derived from identity, and the context that applies them.

A node's seed is the first 4 bytes of ``SHA-256(id + ":" + role)`` read as an
unsigned 32-bit big-endian integer, where ``role`` is ``recipe`` or
``function:<name>``. Before a recipe or function runs, :func:`seeded` seeds
``random``, NumPy and torch (CPU and CUDA) with it, pins torch's thread count
and restores the caller's generators and settings afterwards. So a result
depends only on the node, never on execution order, executor or worker.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import os
import random
import sys
import types
from collections.abc import Iterator

__all__ = ["derive_seed", "seeded", "preserved", "reseed", "UNSEEDED_ENV"]

#: Test-only switch: when this environment variable is "1", :func:`seeded` does not seed.
UNSEEDED_ENV = "PRUNELAB_TESTING_UNSEEDED"


def derive_seed(node_id: str, role: str) -> int:
    """Return the seed of ``node_id`` for ``role`` (``"recipe"`` or ``"function:<name>"``)."""
    return int.from_bytes(hashlib.sha256(f"{node_id}:{role}".encode()).digest()[:4], "big")


def _module(name: str) -> types.ModuleType | None:
    """Return the module, importing it if installed; None when it is not installed."""
    if name in sys.modules:
        return sys.modules[name]
    if importlib.util.find_spec(name) is None:
        return None
    return importlib.import_module(name)


def _numpy_random() -> types.ModuleType | None:
    # the submodule itself: attribute access on numpy goes through its module __getattr__ each time
    return _module("numpy.random") if _module("numpy") is not None else None


@contextlib.contextmanager
def preserved() -> Iterator[None]:
    """Restore the caller's generator states, torch thread count and deterministic flag on exit.

    Saving NumPy's and Python's generator states is most of what seeding a
    block costs; a loop of seeded blocks (an executor running many tasks) can
    save them once around the loop and seed each block with :func:`reseed`.
    """
    np_random = _numpy_random()
    torch = _module("torch")
    saved_random = random.getstate()
    saved_numpy = np_random.get_state() if np_random is not None else None
    saved_torch = saved_cuda = None
    saved_threads, saved_deterministic = 0, False
    if torch is not None:
        saved_torch = torch.default_generator.get_state()
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            saved_cuda = torch.cuda.get_rng_state_all()
        saved_threads = torch.get_num_threads()
        saved_deterministic = torch.are_deterministic_algorithms_enabled()
    try:
        yield
    finally:
        random.setstate(saved_random)
        if np_random is not None:
            np_random.set_state(saved_numpy)
        if torch is not None:
            torch.default_generator.set_state(saved_torch)
            if saved_cuda is not None:
                torch.cuda.set_rng_state_all(saved_cuda)
            if torch.get_num_threads() != saved_threads:
                torch.set_num_threads(saved_threads)
            if torch.are_deterministic_algorithms_enabled() != saved_deterministic:
                torch.use_deterministic_algorithms(saved_deterministic)


def reseed(seed: int, *, threads: int | None = 1, deterministic: bool = False) -> None:
    """Seed every generator with ``seed`` and apply the thread and deterministic settings (nothing restored).

    The body of :func:`seeded`, for callers that restore the previous state
    themselves (see :func:`preserved`).
    """
    np_random = _numpy_random()
    torch = _module("torch")
    if os.environ.get(UNSEEDED_ENV) != "1":
        random.seed(seed)
        if np_random is not None:
            np_random.seed(seed)
        if torch is not None:
            torch.default_generator.manual_seed(seed)
            if torch.cuda.is_available():
                torch.cuda.manual_seed_all(seed)  # queued until CUDA starts
    if torch is not None:
        if threads is not None and threads != torch.get_num_threads():
            torch.set_num_threads(threads)
        if deterministic != torch.are_deterministic_algorithms_enabled():  # either way: no task inherits another's
            if deterministic and not torch.cuda.is_initialized():
                os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(deterministic)


@contextlib.contextmanager
def seeded(seed: int, *, threads: int | None = 1, deterministic: bool = False) -> Iterator[None]:
    """Seed every generator with ``seed`` for the duration of the block.

    Parameters
    ----------
    seed : int
        An unsigned 32-bit seed, normally from :func:`derive_seed`.
    threads : int or None, default=1
        Value for ``torch.set_num_threads`` inside the block; ``None`` leaves it.
    deterministic : bool, default=False
        ``torch.use_deterministic_algorithms`` inside the block, on or off (on,
        it also sets ``CUBLAS_WORKSPACE_CONFIG`` if CUDA has not started yet).

    Notes
    -----
    torch and NumPy are imported if installed, so a recipe that imports them
    only inside ``run()`` is still seeded. The caller's generator states,
    thread count and deterministic flag are restored on exit, even on error.
    """
    with preserved():
        reseed(seed, threads=threads, deterministic=deterministic)
        yield
