"""Training batches through a ``torch.utils.data.DataLoader``: seeded, resumable, the same with any worker count.

An epoch's order is a permutation drawn from torch's generator when the epoch
begins (seeded per state by the engine); batch ``b`` holds the samples
``order[b·B : (b+1)·B]``. The loader's sampler hands out batch numbers, from
the batch a resumed run stopped at, and the dataset makes batch ``b`` from
the tensors, augmenting it with a generator seeded from ``(seed, epoch, b)``
alone. So which process makes a batch, how many workers there are and where
a run was interrupted change nothing: the batches, and what training does
with them, are the same bits. Workers are forked with the data when an epoch
begins (shared with the parent, not copied) and exit at its end.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import torch
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset

from ..zoo.augmentation import Augment

__all__ = ["EpochBatches", "batch_generator"]


def batch_generator(seed: int, epoch: int, batch: int) -> torch.Generator:
    """The generator that augments batch ``batch`` of epoch ``epoch``: seeded from SHA-256 of the three numbers.

    Parameters
    ----------
    seed : int
        The run's seed (the node's).
    epoch, batch : int
        Which batch.

    Returns
    -------
    torch.Generator
        A CPU generator; the same numbers give the same draws in any process.
    """
    digest = hashlib.sha256(f"{seed}:{epoch}:{batch}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "big") >> 1)


class EpochBatches(TorchDataset[tuple[torch.Tensor, torch.Tensor]]):
    """The batches of one epoch of ``(x, y)``, by batch number (a map-style dataset of whole batches).

    Parameters
    ----------
    x, y : Tensor
        The training inputs and labels (indexed, never copied whole).
    batch_size : int
        Samples per batch (the last batch of an epoch may be smaller).
    augment : Augment
        The random augmentation of training batches (empty: none).
    seed : int
        Seeds each batch's augmentation (:func:`batch_generator`).
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, augment: Augment, seed: int):
        self.x, self.y, self.batch_size, self.augment, self.seed = x, y, batch_size, augment, seed
        self.epoch = 0
        self.order = torch.arange(len(y))

    def __len__(self) -> int:
        return math.ceil(len(self.y) / self.batch_size)

    def __getitem__(self, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        index = self.order[batch * self.batch_size:(batch + 1) * self.batch_size]
        x = self.x[index]
        if self.augment:
            x = self.augment(x, batch_generator(self.seed, self.epoch, batch))
        return x, self.y[index]

    def loader(self, epoch: int, order: torch.Tensor, first: int, num_workers: int,
               pin_memory: bool) -> DataLoader[Any]:
        """A loader of this epoch's batches from batch ``first`` on.

        Parameters
        ----------
        epoch : int
            The epoch (seeds its augmentation).
        order : Tensor
            The epoch's permutation of the samples.
        first : int
            The first batch handed out (a resumed run's place).
        num_workers : int
            Loader worker processes (0: batches are made in this process).
        pin_memory : bool
            Pin batches for fast copies to a GPU.

        Returns
        -------
        DataLoader
            Iterating it gives ``(x, y)`` batches in order.
        """
        self.epoch, self.order = epoch, order
        return DataLoader(self, batch_size=None, sampler=range(first, len(self)), num_workers=num_workers,
                          collate_fn=_as_is, pin_memory=pin_memory,
                          # its own generator: iterating a loader draws a seed, and must not draw from torch's
                          generator=torch.Generator().manual_seed(self.seed))


def _as_is(batch: Any) -> Any:  # a whole batch already: nothing to collate
    return batch
