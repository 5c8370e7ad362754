"""The ``prunelab`` command: look into, export, report on and maintain experiment directories.

Thin by design: a dict (:data:`.main.COMMANDS`) maps each subcommand to a handler
that calls library functions and returns an :class:`~.output.Output` — the data ``--json`` prints, and the
text a person reads. Exit codes: 0 when the command did its job; 1 when
``verify`` found a difference or a damaged file; 2 for a usage error or a user
error (one ``error:`` line saying what to do; ``--debug`` shows the
traceback); ``run`` exits with its script's code (1 when it raised). State
ids are accepted by unique prefix.

Terminal output shows every control character escaped (``\\n``, ``\\x1b``,
``\\u202e``), so that a tag, name or error text read from an experiment can
neither send escape sequences to the terminal nor forge lines: one state is one
``ls`` line, and only multi-line texts (a stored traceback) keep their newlines.
``--json`` prints the exact strings. A closed pipe (``prunelab ls DIR | head``)
ends the command quietly with exit code 0.
"""

from .main import main
from .output import Output

__all__ = ["main", "Output"]
