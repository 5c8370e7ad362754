"""The garbage collector around bulk work: what lives through it kept out of full passes, or passes held off.

CPython's cyclic collector runs after every few hundred allocations and, now
and then, walks every tracked object. Work that allocates many containers
while many others are alive (a run over a large graph, reading thousands of
records) pays for those walks again and again, for nothing when what it
allocates is freed by reference counting.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

__all__ = ["frozen", "paused"]


@contextlib.contextmanager
def frozen() -> Iterator[None]:
    """Keep the objects alive on entry out of the collector's passes until exit (:func:`gc.freeze`).

    What survives a full pass inside is frozen too, so each full pass walks
    only what was allocated since the one before (frozen objects are still
    freed by reference counting; only garbage cycles among them wait for the
    exit). A caller that froze objects already keeps its own: nothing is
    frozen or unfrozen then.
    """
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    gc.callbacks.append(_freeze_survivors)
    try:
        yield
    finally:
        gc.callbacks.remove(_freeze_survivors)
        gc.unfreeze()


def _freeze_survivors(phase: str, info: dict[str, int]) -> None:
    if phase == "stop" and info["generation"] == 2:
        gc.freeze()


@contextlib.contextmanager
def paused() -> Iterator[None]:
    """Hold off collections inside (for work whose garbage has no cycles); as before on exit."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
