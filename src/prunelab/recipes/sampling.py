"""A shuffling sampler whose place in the epoch is part of a checkpoint."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import Sampler

import prunelab as pl

__all__ = ["ResumableSampler"]


class ResumableSampler(Sampler[int]):
    """Sample ``0 .. n-1`` in a fresh random order each epoch, and resume mid-epoch from a checkpoint.

    Each epoch's order is drawn from torch's global generator when the epoch
    begins, as ``DataLoader(shuffle=True)`` draws it, so the engine's seeding
    makes it the same on every run. ``state_dict()`` holds the epoch's order
    and how many indices were handed out; pass the sampler to
    :meth:`Recipe.checkpoint <prunelab.Recipe.checkpoint>` and
    :meth:`~prunelab.Recipe.resume`, and the loader built on it continues
    the epoch where the checkpoint left it.

    With ``DataLoader(num_workers=0)`` the count is exactly what the loop has
    consumed. Worker processes fetch ahead, so with ``num_workers > 0``
    checkpoint between epochs (where nothing is ahead). Each time a
    ``DataLoader`` is iterated it draws a seed for its workers from the
    generator it was given, torch's global one by default; a run resumed
    mid-epoch iterates it once more than the uninterrupted run did, so give it
    a generator of its own (``DataLoader(..., generator=torch.Generator())``),
    or the global generator's later draws (dropout, augmentation) differ.

    Parameters
    ----------
    n : int
        The number of samples.
    shuffle : bool, default=True
        False: the order is ``0 .. n-1`` every epoch (still resumable).

    Raises
    ------
    StateDefinitionError
        If ``n`` is not a positive int.
    """

    def __init__(self, n: int, shuffle: bool = True):
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise pl.StateDefinitionError(f"ResumableSampler(n=) takes a positive int, got {n!r}.")
        self.n = n
        self.shuffle = shuffle
        self.order: torch.Tensor | None = None
        self.position = 0

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[int]:
        if self.order is None or self.position >= self.n:  # a new epoch
            self.order = torch.randperm(self.n) if self.shuffle else torch.arange(self.n)
            self.position = 0
        order = self.order.tolist()
        while self.position < self.n:
            self.position += 1
            yield order[self.position - 1]

    def state_dict(self) -> dict[str, Any]:
        """The epoch's order and how many of its indices were handed out.

        Returns
        -------
        dict
            ``order`` (a tensor, or None before the first epoch) and ``position``.
        """
        return {"order": None if self.order is None else self.order.clone(), "position": self.position}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a :meth:`state_dict`.

        Parameters
        ----------
        state : dict
            What :meth:`state_dict` returned.

        Raises
        ------
        StateDefinitionError
            If it holds an order of another length.
        """
        order = state["order"]
        if order is not None and len(order) != self.n:
            raise pl.StateDefinitionError(f"ResumableSampler: the checkpoint holds an order of {len(order)} samples, "
                                          f"not {self.n}; build the sampler over the same data.")
        self.order = order
        self.position = int(state["position"])
