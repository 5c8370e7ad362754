"""What a recipe or function body can reach while it runs: its node's series, checkpoints and resume.

The engine sets a :class:`Runtime` around each body; :func:`log`,
:meth:`Recipe.checkpoint <prunelab.Recipe.checkpoint>` and
:meth:`Recipe.resume <prunelab.Recipe.resume>` find it here. Outside a body
there is none, and they say so.

A series is a list of ``(step, value)`` per name. Logging appends to Python
lists (a tensor is kept as it is, converted once when the series is stored,
so a GPU loss costs no synchronisation per step); the series is stored with
the state (see :mod:`prunelab.storage.series`).
"""

from __future__ import annotations

import contextlib
import datetime
import numbers
import operator
import re
import sys
from collections.abc import Iterator
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Protocol

from .errors import StateDefinitionError

if TYPE_CHECKING:
    from .recipe import Recipe
    from .state import ExperimentState

__all__ = ["Runtime", "Series", "current", "every_of", "log", "running"]

_CURRENT: ContextVar[Runtime | None] = ContextVar("prunelab_runtime", default=None)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?)\s*(s|sec|m|min|h)\s*$")
_SECONDS = {"s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}


class Series:
    """The metric series one body logs: per name, the steps and the values, in the order logged.

    Values are kept as logged until :meth:`frozen` converts them, once each:
    a checkpoint converts only what was logged since the previous one.
    """

    __slots__ = ("data", "_floats")

    def __init__(self, data: dict[str, tuple[list[int], list[Any]]] | None = None):
        self.data: dict[str, tuple[list[int], list[Any]]] = data or {}
        self._floats = {name: len(steps) for name, (steps, _) in self.data.items()}  # values already floats

    def append(self, name: str, value: Any, step: int | None) -> None:
        """Append one value (see :func:`log`, whose parameters these are)."""
        entry = self.data.get(name)
        if entry is None:
            if not isinstance(name, str) or not name:
                raise StateDefinitionError(f"pl.log needs a non-empty string name, got {name!r}.")
            entry = self.data[name] = ([], [])
        steps, values = entry
        if step is None:
            step = steps[-1] + 1 if steps else 0
        elif type(step) is not int:
            step = _step(name, step)
        cls = type(value)
        if cls not in _REALS and cls not in _TENSORS and not _real(value, cls):  # a tensor's size: see frozen
            raise _not_real(name, cls.__qualname__)
        steps.append(step)
        values.append(value)

    def frozen(self) -> dict[str, tuple[list[int], list[float]]]:
        """The series with every value a Python float, names sorted (what is stored; do not change it).

        Raises
        ------
        StateDefinitionError
            For a tensor logged that is not one real number (checked here, all at once, not at each call).
        """
        for name, (_, values) in self.data.items():
            done = self._floats.get(name, 0)
            if done < len(values):
                values[done:] = _floats(name, values[done:], self.data[name][0][done:])
                self._floats[name] = len(values)
        return dict(sorted(self.data.items()))

    def __len__(self) -> int:
        return sum(len(steps) for steps, _ in self.data.values())


def _step(name: str, step: Any) -> int:
    try:
        if isinstance(step, bool):
            raise TypeError
        return operator.index(step)
    except TypeError:
        raise StateDefinitionError(f"pl.log({name!r}, ..., step=) takes an int, got {step!r}.") from None


# The types of values seen logged, so that the next call checks a set, not the type's ancestry: those whose
# every instance is a real number (Python's, NumPy's scalars) and torch's tensor types (whose values' sizes
# are checked when the series is converted).
_REALS: set[type] = {int, float}
_TENSORS: set[type] = set()


def _real(value: Any, cls: type) -> bool:
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor):
        _TENSORS.add(cls)
        return True
    if isinstance(value, numbers.Real):
        _REALS.add(cls)
        return True
    return False


def _not_real(name: str, got: str) -> StateDefinitionError:
    return StateDefinitionError(
        f"pl.log({name!r}, ...) takes a real number (int, float, a NumPy scalar or a one-element tensor), got "
        f"{got}; log each number under its own name.")


def _floats(name: str, values: list[Any], steps: list[int]) -> list[float]:
    """The values as floats; the tensors among them checked and converted together (one device synchronisation)."""
    torch = sys.modules.get("torch")
    tensors = [] if torch is None else [i for i, v in enumerate(values) if isinstance(v, torch.Tensor)]
    if not tensors:
        return [float(v) for v in values]
    assert torch is not None
    out = list(values)
    with torch.no_grad():
        try:
            stacked = torch.stack([values[i] for i in tensors])
            whole = stacked.numel() == len(tensors) and not stacked.is_complex()
        except RuntimeError:  # of several shapes, devices or dtypes torch will not stack: one by one
            whole = False
        if not whole:
            for i in tensors:
                if values[i].numel() != 1 or values[i].is_complex():
                    raise _not_real(name, f"Tensor of shape {tuple(values[i].shape)} and dtype "
                                          f"{str(values[i].dtype).removeprefix('torch.')} at step {steps[i]}")
            stacked = torch.stack([values[i].reshape(()).to("cpu") for i in tensors])
        floats = stacked.reshape(-1).to("cpu", torch.float64).tolist()
    for i, f in zip(tensors, floats):
        out[i] = f
    return [float(v) for v in out]


class Runtime(Protocol):
    """What the engine provides to the body it is running."""

    series: Series

    def checkpoint(self, recipe: Recipe, state: ExperimentState, step: int, every: tuple[str, float] | None,
                   objects: dict[str, Any]) -> bool: ...

    def resume(self, recipe: Recipe, state: ExperimentState, objects: dict[str, Any]) -> int | None: ...


@contextlib.contextmanager
def running(runtime: Runtime) -> Iterator[Runtime]:
    """Make ``runtime`` the one :func:`log` and checkpoints reach in this thread, for the block."""
    token = _CURRENT.set(runtime)
    try:
        yield runtime
    finally:
        _CURRENT.reset(token)


def current(call: str) -> Runtime:
    """The runtime of the body running in this thread; an error naming ``call`` outside one."""
    runtime = _CURRENT.get()
    if runtime is None:
        raise StateDefinitionError(
            f"{call} was called outside a recipe or function body; it works only while Experiment.run is "
            "running one (inside Recipe.run or a @pl.function).")
    return runtime


def log(name: str, value: Any, step: int | None = None) -> None:
    """Append ``value`` to the running node's series ``name``.

    Inside :meth:`Recipe.run <prunelab.Recipe.run>` the series is stored with
    the state the recipe makes; inside a :func:`~prunelab.function`, with its
    result. Read them with :meth:`Node.series <prunelab.Node.series>`.
    Checkpoints carry the series so far, so a resumed run neither repeats nor
    loses a step.

    Parameters
    ----------
    name : str
        The series' name (e.g. ``"loss"``, ``"val_accuracy"``).
    value : int, float, NumPy scalar or one-element tensor
        The value; a tensor is converted when the series is stored (no device synchronisation here).
    step : int, optional
        The step; by default one more than the series' last step (0 for the first).

    Raises
    ------
    StateDefinitionError
        Outside a recipe or function body, or for a value that is not a real number or a step that is not an int
        (a tensor's size is checked when the series is stored: at the next checkpoint, or when the body returns).
    """
    runtime = _CURRENT.get()
    if runtime is None:
        current("pl.log")
    else:
        runtime.series.append(name, value, step)


def every_of(every: Any) -> tuple[str, float] | None:
    """Read a checkpoint's ``every=``: an int counts steps; a ``timedelta`` or ``"90s"``/``"5min"``/``"1h"`` is time.

    Parameters
    ----------
    every : int, datetime.timedelta, str or None
        How often a checkpoint is due.

    Returns
    -------
    tuple of (str, float) or None
        ``("steps", n)`` or ``("seconds", s)``; None when every call is due.

    Raises
    ------
    StateDefinitionError
        For anything else, or a count or duration that is not positive.
    """
    if every is None:
        return None
    if isinstance(every, int) and not isinstance(every, bool):
        kind, amount = "steps", float(every)
    elif isinstance(every, datetime.timedelta):
        kind, amount = "seconds", every.total_seconds()
    elif isinstance(every, str) and _DURATION.match(every):
        number, unit = _DURATION.match(every).groups()  # type: ignore[union-attr]
        kind, amount = "seconds", float(number) * _SECONDS[unit]
    else:
        raise StateDefinitionError(
            f"checkpoint(every=) takes a number of steps (an int), a datetime.timedelta or a duration such as "
            f"'90s', '5min' or '1h'; got {every!r}.")
    if amount <= 0:
        raise StateDefinitionError(f"checkpoint(every=) must be positive, got {every!r}.")
    return kind, amount
