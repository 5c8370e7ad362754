"""Pruning schedules: when to prune, and to what sparsity."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from .errors import PruningError

__all__ = ["Schedule", "iterative", "cubic"]


@dataclass(frozen=True)
class Schedule:
    """Pruning events: ``(step, target sparsity)`` pairs, sparsity non-decreasing.

    ``amounts`` gives, for each event, the fraction of the still-unpruned
    weights to prune then (what ``prune_model(amount=...)`` takes).

    Parameters
    ----------
    steps : tuple of (int, float)
        The events in order: the step (e.g. training step or round) and the
        target sparsity in [0, 1] after it. They are not checked here;
        :func:`iterative` and :func:`cubic` make valid ones.
    """

    steps: tuple[tuple[int, float], ...]

    def __iter__(self) -> Iterator[tuple[int, float]]:
        return iter(self.steps)

    def __len__(self) -> int:
        return len(self.steps)

    @property
    def sparsities(self) -> list[float]:
        """The target sparsity after each event."""
        return [s for _, s in self.steps]

    @property
    def amounts(self) -> list[float]:
        """Per event, the fraction of the remaining weights to prune: ``1 - (1 - s_k) / (1 - s_{k-1})``."""
        out, previous = [], 0.0
        for _, target in self.steps:
            out.append(0.0 if previous >= 1 else 1 - (1 - target) / (1 - previous))
            previous = target
        return out


def _fraction(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise PruningError(f"{name} must be a fraction in [0, 1], got {value!r}.")
    return float(value)


def iterative(rate: float, rounds: int) -> Schedule:
    """Prune ``rate`` of the remaining weights in each of ``rounds`` rounds (Han et al.; Frankle & Carbin).

    Parameters
    ----------
    rate : float
        The fraction of the still-unpruned weights pruned in each round, in [0, 1].
    rounds : int
        The number of rounds, at least 1.

    Returns
    -------
    Schedule
        One event per round, at steps ``1 .. rounds``.

    Raises
    ------
    PruningError
        If ``rate`` is not a number in [0, 1] or ``rounds`` is not a positive int.

    Notes
    -----
    After round :math:`k` the sparsity is :math:`1 - (1 - r)^k`.

    Examples
    --------
    >>> [round(s, 3) for s in iterative(0.2, 3).sparsities]
    [0.2, 0.36, 0.488]
    """
    rate = _fraction("rate", rate)
    if not isinstance(rounds, int) or isinstance(rounds, bool) or rounds < 1:
        raise PruningError(f"rounds must be a positive int, got {rounds!r}.")
    return Schedule(tuple((k, 1 - (1 - rate) ** k) for k in range(1, rounds + 1)))


def cubic(initial: float, final: float, start: int, end: int, every: int) -> Schedule:
    """Zhu & Gupta's gradual schedule: sparsity rises from ``initial`` to ``final`` between two steps.

    Parameters
    ----------
    initial : float
        The sparsity at ``start``, in [0, 1].
    final : float
        The sparsity at ``end``, in [``initial``, 1].
    start : int
        The step of the first event.
    end : int
        The step of the last event, after ``start``.
    every : int
        Steps between events, at least 1; ``end - start`` must be a multiple of it.

    Returns
    -------
    Schedule
        Events at ``start``, ``start + every``, ..., ``end``.

    Raises
    ------
    PruningError
        If ``initial`` or ``final`` is not a number in [0, 1], ``final`` is below ``initial``, or the steps are not
        integers with ``start < end`` and ``end - start`` a multiple of ``every`` (at least 1).

    Notes
    -----
    At step :math:`t \\in \\{t_0, t_0 + \\Delta t, \\dots, t_0 + n\\Delta t\\}`,

    .. math:: s_t = s_f + (s_i - s_f)\\left(1 - \\frac{t - t_0}{n \\Delta t}\\right)^3

    with :math:`t_0` = ``start``, :math:`t_0 + n\\Delta t` = ``end`` and :math:`\\Delta t` = ``every``.

    References
    ----------
    Zhu & Gupta, "To prune, or not to prune", arXiv:1710.01878.

    Examples
    --------
    >>> cubic(0.0, 0.9, 0, 100, 50).sparsities
    [0.0, 0.7875, 0.9]
    """
    initial, final = _fraction("initial", initial), _fraction("final", final)
    if final < initial:
        raise PruningError(f"final ({final}) must be at least initial ({initial}): masks only shrink.")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (start, end, every)) or every < 1 \
            or end <= start or (end - start) % every:
        raise PruningError(f"cubic needs integer steps with start < end and (end - start) a multiple of every; "
                           f"got start={start!r}, end={end!r}, every={every!r}.")
    span = end - start
    return Schedule(tuple((t, final + (initial - final) * (1 - (t - start) / span) ** 3)
                          for t in range(start, end + 1, every)))
