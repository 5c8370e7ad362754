"""Recipe and function bodies as they run: which are running in this process, and what they changed of torch."""

from __future__ import annotations

import contextlib
import itertools
import sys
import warnings
from collections.abc import Iterator
from typing import Any

from ..core.errors import PrunelabWarning, StateDefinitionError

__all__ = ["in_body", "refuse_inside_body", "settings_changed"]

# The recipe and function bodies running in this process, one entry each (a Dask worker may run several at once).
_BODIES: dict[int, str] = {}
_ENTRIES = itertools.count()


@contextlib.contextmanager
def in_body(what: str) -> Iterator[None]:
    """Mark ``what`` (a recipe or function, and its node) as running in this process for the block."""
    entry = next(_ENTRIES)
    _BODIES[entry] = what
    try:
        yield
    finally:
        del _BODIES[entry]


def refuse_inside_body(call: str) -> None:
    """Raise if a recipe or function body is running in this process, where ``call`` would wait forever.

    A run started from inside a body waits for the lease of the state that
    body is computing, which is held until the body returns.
    """
    if _BODIES:
        raise StateDefinitionError(
            f"{call} was called from inside {list(_BODIES.values())[-1]}, which cannot return before that run "
            "ends (the run would wait forever for the state being computed); declare the nodes in the script "
            "and call run() once."
        )


def settings_changed(what: str, threads: int, deterministic: bool) -> dict[str, Any]:
    """The thread count and deterministic flag in force now, where a body changed them (with a warning)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return {}
    now = {"threads": torch.get_num_threads(), "deterministic": torch.are_deterministic_algorithms_enabled()}
    expected = {"threads": threads, "deterministic": deterministic}
    changed = {k: v for k, v in now.items() if v != expected[k]}
    if changed:
        warnings.warn(
            f"{what} changed torch's {' and '.join(f'{k} to {v}' for k, v in changed.items())} (the experiment "
            f"sets threads={threads}, deterministic={deterministic}); they change the bits, so the "
            "record says what was in force when it returned. Set them on the Experiment instead.",
            PrunelabWarning, stacklevel=2,
        )
    return changed
