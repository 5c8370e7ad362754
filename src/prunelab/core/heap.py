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

    A caller that froze objects already keeps its own: nothing is frozen or unfrozen then.
    """
    freeze = gc.get_freeze_count() == 0
    if freeze:
        gc.freeze()
    try:
        yield
    finally:
        if freeze:
            gc.unfreeze()


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
