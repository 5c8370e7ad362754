"""Cohorts: what a recipe implements to compute many nodes as one computation.

A recipe whose :meth:`~Cohorts.cohort_key` is not None may be given several
ready nodes at once (its *members*) by an executor with cohorts on
(``LocalExecutor(max_cohort=...)``): :meth:`~Cohorts.run_cohort` receives
their states and returns one state per member. Each member is still its own
node (id, seed, record, stored values, series, lease). Such a recipe always
computes through ``run_cohort`` where cohorts are on, a lone node as a
cohort of one, so that a member's stored values cannot depend on which other
members share its cohort.
"""

from __future__ import annotations

import contextlib
from collections.abc import Hashable, Iterator
from typing import TYPE_CHECKING, Any

from .errors import StateDefinitionError
from .identity import class_name

if TYPE_CHECKING:
    from .recipe import Recipe
    from .state import ExperimentState

__all__ = ["Cohorts"]


class Cohorts:
    """The cohort part of :class:`~prunelab.Recipe` (every recipe has it; by default, nodes compute alone)."""

    def cohort_key(self) -> Hashable | None:
        """What the members of one cohort must share; None (the default): this recipe computes each node alone.

        Members are nodes of the same recipe class whose keys are equal (e.g.
        ``Train``'s: every property but the learning rate and weight decay).
        :meth:`run_cohort` may still split the members it is given, e.g. by
        the structure of their models, which only the states show.

        Returns
        -------
        hashable or None
            The key; None keeps this recipe out of cohorts.
        """
        return None

    def run_cohort(self, states: list[ExperimentState]) -> list[ExperimentState]:
        """Transform several states (private copies of the members' parents) at once; return one state each.

        Called on the first member's recipe; :meth:`member` gives each
        member's own recipe (its properties may differ, e.g. the learning
        rate) and makes :func:`prunelab.log` log to that member. Each
        member's randomness must come from its own seed (``torch.initial_seed()``
        inside ``member``), never from its place in the cohort.
        :meth:`checkpoint` and :meth:`resume` take the member's state.

        Parameters
        ----------
        states : list of ExperimentState
            The members' states, in the order of the returned list.

        Returns
        -------
        list of ExperimentState
            The new states, aligned with ``states``.

        Raises
        ------
        StateDefinitionError
            In the base class, when :meth:`cohort_key` is not None: a recipe that has a key implements it.
        """
        raise StateDefinitionError(f"{class_name(type(self))} has a cohort_key() but does not implement "
                                   "run_cohort(self, states); implement both, or neither.")

    @contextlib.contextmanager
    def member(self, state: ExperimentState) -> Iterator[Recipe]:
        """Inside :meth:`run_cohort`: act for one member for the block.

        The generators the engine seeds (Python, NumPy, torch) are seeded with
        the member's seed (as its recipe alone would find them), and
        :func:`prunelab.log` logs to its series.

        Parameters
        ----------
        state : ExperimentState
            The member's state (one of those ``run_cohort`` was given).

        Yields
        ------
        Recipe
            The recipe applied to that member.

        Raises
        ------
        StateDefinitionError
            Outside ``run_cohort``, or for a state that is not one of its members.
        """
        from .runtime import current

        runtime: Any = current(f"{class_name(type(self))}.member")
        if not hasattr(runtime, "member"):
            raise StateDefinitionError(f"{class_name(type(self))}.member works inside run_cohort only.")
        with runtime.member(state) as recipe:
            yield recipe
