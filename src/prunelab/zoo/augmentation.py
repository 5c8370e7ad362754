"""Data augmentation as data: small seeded tensor transforms of image batches.

An augmentation is a list of steps, each a dict naming a transform and its
settings, stored as a state property (so it is part of the state's id):

* ``{"name": "random_crop", "padding": p}``: zero-pad every side by ``p`` and
  crop back to the original size at a uniformly drawn offset, per image;
* ``{"name": "hflip", "p": q}``: mirror each image left-right with probability ``q``;
* ``{"name": "normalize", "mean": [...], "std": [...]}``: ``(x - mean) / std``
  per channel. Being deterministic, it is applied once to every split of the
  data (train, val and test), not per batch.

``"standard"`` is the CIFAR recipe of the pruning literature (He et al. 2016):
pad 4, random crop, horizontal flip. The random steps transform training
batches only, drawing from a generator given per batch, so that a batch is
augmented the same way wherever and whenever it is made (a loader worker or
the main process, a first run or a resumed one).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import torch
from torch.nn import functional

from .datasets import Dataset
from .errors import ZooError

__all__ = ["STANDARD", "Augment", "augmentation_steps", "normalized"]

#: What ``augmentation="standard"`` means: the CIFAR recipe (pad 4, random crop, horizontal flip).
STANDARD: tuple[dict[str, Any], ...] = ({"name": "random_crop", "padding": 4}, {"name": "hflip", "p": 0.5})

_SETTINGS = {"random_crop": {"padding"}, "hflip": {"p"}, "normalize": {"mean", "std"}}


def augmentation_steps(spec: Any) -> list[dict[str, Any]]:
    """Check an augmentation property and return its steps (``"standard"`` spelled out).

    Parameters
    ----------
    spec : None, "standard" or list of dict
        The property's value (see the module's docstring for the steps).

    Returns
    -------
    list of dict
        The steps in order; empty for None.

    Raises
    ------
    ZooError
        Naming the step at fault: an unknown transform, a missing or unknown
        setting, or a setting out of range.
    """
    if spec is None:
        return []
    if spec == "standard":
        return [dict(step) for step in STANDARD]
    if isinstance(spec, str) or not isinstance(spec, Sequence):
        raise ZooError(f"augmentation must be None, 'standard' or a list of steps, got {spec!r}.")
    steps = []
    for i, step in enumerate(spec):
        name = step.get("name") if isinstance(step, dict) else None
        if name not in _SETTINGS:
            raise ZooError(f"augmentation step {i} ({step!r}) must be a dict whose 'name' is one of "
                           f"{sorted(_SETTINGS)}.")
        given = set(step) - {"name"}
        if given != _SETTINGS[name]:
            raise ZooError(f"augmentation step {i} ({name}) takes the settings {sorted(_SETTINGS[name])}, "
                           f"got {sorted(given)}.")
        _check_step(i, step)
        steps.append(dict(step))
    return steps


def _check_step(i: int, step: dict[str, Any]) -> None:
    name = step["name"]
    if name == "random_crop":
        p = step["padding"]
        if isinstance(p, bool) or not isinstance(p, int) or p < 0:
            raise ZooError(f"augmentation step {i} (random_crop): padding must be a non-negative int, got {p!r}.")
    elif name == "hflip":
        p = step["p"]
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1:
            raise ZooError(f"augmentation step {i} (hflip): p must be a probability in [0, 1], got {p!r}.")
    else:
        mean, std = step["mean"], step["std"]
        if not _numbers(mean) or not _numbers(std) or len(mean) != len(std) or min(std) <= 0:
            raise ZooError(f"augmentation step {i} (normalize): mean and std must be lists of numbers of one length "
                           f"(one per channel), std positive; got mean={mean!r}, std={std!r}.")


def _numbers(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and len(value) > 0 and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)


class Augment:
    """The random steps of an augmentation, applied to one training batch with a given generator.

    Parameters
    ----------
    steps : list of dict
        What :func:`augmentation_steps` returned; ``normalize`` steps are left to :func:`normalized`.
    """

    def __init__(self, steps: Sequence[dict[str, Any]]):
        self.steps = [step for step in steps if step["name"] != "normalize"]

    def __bool__(self) -> bool:
        return bool(self.steps)

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Augment a batch ``(N, C, H, W)``; the input is not modified.

        Parameters
        ----------
        x : Tensor
            The images.
        generator : torch.Generator
            Where every random draw comes from, in step order.

        Returns
        -------
        Tensor
            The augmented images, the shape of ``x``.
        """
        for step in self.steps:
            if step["name"] == "random_crop":
                x = random_crop(x, step["padding"], generator)
            else:
                x = hflip(x, float(step["p"]), generator)
        return x


def random_crop(x: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Zero-pad each image by ``padding`` and crop it back at an offset uniform in ``0 .. 2·padding`` per axis.

    Parameters
    ----------
    x : Tensor
        Images ``(N, C, H, W)``.
    padding : int
        Pixels added on every side.
    generator : torch.Generator
        Draws the offsets: rows first, then columns, ``N`` each.

    Returns
    -------
    Tensor
        The crops, the shape of ``x``.
    """
    if padding == 0:
        return x
    n, _, h, w = x.shape
    padded = functional.pad(x, (padding, padding, padding, padding))
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    rows = (dy[:, None] + torch.arange(h))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w))[:, None, None, :]
    images = torch.arange(n)[:, None, None, None]
    channels = torch.arange(x.shape[1])[None, :, None, None]
    return padded[images, channels, rows, cols]


def hflip(x: torch.Tensor, p: float, generator: torch.Generator) -> torch.Tensor:
    """Mirror each image left-right with probability ``p`` (one uniform draw per image).

    Parameters
    ----------
    x : Tensor
        Images ``(N, C, H, W)``.
    p : float
        The probability of a flip.
    generator : torch.Generator
        Draws ``N`` uniforms; image i is flipped when its draw is below ``p``.

    Returns
    -------
    Tensor
        The images, some mirrored.
    """
    flip = torch.rand(x.shape[0], generator=generator) < p
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def normalized(data: Dataset, steps: Sequence[dict[str, Any]]) -> Dataset:
    """Apply an augmentation's ``normalize`` steps to every split of ``data`` (a copy; none: ``data`` itself).

    Parameters
    ----------
    data : Dataset
        The splits.
    steps : list of dict
        What :func:`augmentation_steps` returned.

    Returns
    -------
    Dataset
        The splits with ``(x - mean) / std`` per channel, for each normalize step in order.

    Raises
    ------
    ZooError
        If a step's mean and std do not have one value per channel of the data.
    """
    steps = [step for step in steps if step["name"] == "normalize"]
    if not steps:
        return data
    channels = data.input_shape[0]
    splits = []
    for x, y in (data.train, data.val, data.test):
        for step in steps:
            if len(step["mean"]) != channels:
                raise ZooError(f"augmentation normalize has {len(step['mean'])} means and stds, but {data.name} has "
                               f"{channels} channels: give one per channel.")
            mean = torch.tensor(step["mean"], dtype=x.dtype)[None, :, None, None]
            std = torch.tensor(step["std"], dtype=x.dtype)[None, :, None, None]
            x = (x - mean) / std
        splits.append((x, y))
    return replace(data, train=splits[0], val=splits[1], test=splits[2])
