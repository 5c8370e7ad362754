"""Run progress: done / cached / running / failed and an ETA, live on a terminal, log lines otherwise."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

__all__ = ["Progress"]

_LOG_EVERY_S = 10.0


class Progress:
    """Count what a run does and show it.

    On a terminal a live line (``rich``) is redrawn; otherwise a plain line is
    written at most every 10 seconds, and one per failure as it happens.
    """

    def __init__(self, total: int, *, quiet: bool = False, stream: TextIO | None = None):
        self.total = total
        self.counts = {"done": 0, "cached": 0, "running": 0, "failed": 0, "skipped": 0}
        self.quiet = quiet or total == 0
        self.stream = stream or sys.stderr
        self.started = time.monotonic()
        self.last_log = self.started
        self.live: Any = None
        if not self.quiet and self.stream.isatty():
            from rich.console import Console
            from rich.live import Live

            self.live = Live(self.line(), console=Console(file=self.stream), refresh_per_second=4, transient=True)
            self.live.start()

    def line(self) -> str:
        """The progress line: counts, and the ETA from the average pace so far."""
        c = self.counts
        finished = c["done"] + c["cached"] + c["failed"] + c["skipped"]
        elapsed = time.monotonic() - self.started
        eta = ""
        if c["done"] and finished < self.total:
            eta = f", ETA {elapsed / finished * (self.total - finished):.0f} s"
        return (f"prunelab: {finished}/{self.total} ({c['done']} done, {c['cached']} cached, {c['running']} running, "
                f"{c['failed']} failed, {c['skipped']} skipped){eta}")

    def running(self, delta: int = 1) -> None:
        """Note tasks starting (or, with a negative delta, stopping)."""
        self.set_running(self.counts["running"] + delta)

    def set_running(self, count: int) -> None:
        """Set how many tasks are running now."""
        self.counts["running"] = max(0, count)
        self._show()

    def finished(self, status: str, node_id: str = "", was_running: bool = True) -> None:
        """Note a finished task: ``done``, ``cached``, ``failed`` or ``skipped``."""
        if was_running:
            self.counts["running"] = max(0, self.counts["running"] - 1)
        self.counts[status] += 1
        if status == "failed" and not self.quiet:
            self._print(f"prunelab: {node_id[:12]} failed")
        self._show()

    def _show(self) -> None:
        if self.quiet:
            return
        if self.live is not None:
            self.live.update(self.line())
        elif time.monotonic() - self.last_log >= _LOG_EVERY_S:
            self.last_log = time.monotonic()
            self._print(self.line())

    def _print(self, text: str) -> None:
        if self.live is not None:
            self.live.console.print(text)
        else:
            print(text, file=self.stream, flush=True)

    def close(self) -> None:
        """Stop the live display."""
        if self.live is not None:
            self.live.stop()
            self.live = None
