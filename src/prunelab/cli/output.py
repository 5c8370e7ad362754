"""The output of a subcommand, and what makes it safe to print: escapes, checked output files, number types."""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import PrunelabError

__all__ = ["Output", "escape", "WriteError", "writing", "whole_number", "finite_nonnegative"]

@dataclass
class Output:
    """What a subcommand produced: ``data`` for ``--json``, ``text`` for people, and the exit code."""

    data: Any
    text: str
    code: int = 0


# C0 and C1 controls, DEL, the line and paragraph separators, and the bidi embeddings, overrides and isolates
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_UNSAFE_BUT_NEWLINE = re.compile("(?!\n)" + _UNSAFE.pattern)


def escape(text: str, *, multiline: bool = False) -> str:
    """``text`` safe for a terminal: every control character shown as its escape (``\\n``, ``\\x1b``, ``\\u202e``).

    With ``multiline=True`` newlines are kept (a traceback stays readable) and
    every other control character is still escaped.
    """
    pattern = _UNSAFE_BUT_NEWLINE if multiline else _UNSAFE
    return pattern.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


class WriteError(PrunelabError, OSError):
    """An output file (``-o``) cannot be written."""


def _check_writable(target: Path) -> None:
    """Fail before any work when ``target`` cannot be written: its folder is missing or read-only, or it is a folder."""
    folder = target.parent
    if not folder.is_dir():
        why = "no such directory" if not folder.exists() else "not a directory"
        raise WriteError(f"cannot write {target}: {why}: {folder}; create the directory or pick another -o path.")
    if target.is_dir():
        raise WriteError(f"cannot write {target}: it is a directory; give a file name with -o.")
    if not os.access(folder, os.W_OK | os.X_OK) or (target.exists() and not os.access(target, os.W_OK)):
        raise WriteError(f"cannot write {target}: permission denied or a read-only file system; "
                          "pick another -o path.")


@contextlib.contextmanager
def writing(target: Path) -> Iterator[None]:
    """Check ``target`` on entry, then turn an ``OSError`` writing it (a full disk …) into one ``error:`` line.

    An ``OSError`` that names another file (one read on the way) passes unchanged, as does a ``PrunelabError``.
    """
    _check_writable(target)
    try:
        yield
    except PrunelabError:
        raise
    except OSError as err:
        if err.filename is not None and os.fspath(err.filename) != os.fspath(target):
            raise  # another file: not an output error
        raise WriteError(f"cannot write {target}: {err.strerror or err}; free space or pick another -o path.") from err


def whole_number(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number of at least ``minimum``."""
    def parse(text: str) -> int:
        value: int | None
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"give a whole number >= {minimum}, not {text!r}")
        return value

    return parse


def finite_nonnegative(text: str) -> float:
    """An argparse type: a finite number >= 0 (no nan, no inf)."""
    value: float | None
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"give a finite number >= 0, not {text!r}")
    return value
