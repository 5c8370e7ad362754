"""``ModelState``: a model and its data, as pruning studies need them."""

from __future__ import annotations

import functools
import json
from typing import Any

import torch
from torch import nn

import prunelab as pl

from ..prune import snapshot
from ..zoo import Dataset, build_model, imbalance, load_dataset
from ..zoo.augmentation import augmentation_steps, normalized
from ..zoo.weights import load_weights

__all__ = ["ModelState", "dataset_for"]


@functools.lru_cache(maxsize=8)
def _load(name: str, split_seed: int, val_fraction: float) -> Dataset:
    return load_dataset(name, split_seed=split_seed, val_fraction=val_fraction)


@functools.lru_cache(maxsize=8)
def _normalized(name: str, split_seed: int, val_fraction: float, steps: str) -> Dataset:
    return normalized(_load(name, split_seed, val_fraction), json.loads(steps))


def dataset_for(dataset_name: str, split_seed: int = 0, val_fraction: float = 0.1,
                imbalance_fractions: tuple[float, ...] | None = None, augmentation: Any = None) -> Dataset:
    """Load a dataset once per process (and subsample its training classes if asked).

    Parameters
    ----------
    dataset_name : str
        One of :func:`prunelab.zoo.available_datasets`.
    split_seed : int, default=0
        Seed of the validation split, and of the subsample when ``imbalance_fractions`` is given.
    val_fraction : float, default=0.1
        Fraction of the training set held out as validation, in (0, 1).
    imbalance_fractions : tuple of float, optional
        One fraction of the training samples kept per class (:func:`prunelab.zoo.imbalance`);
        None or empty: every sample is kept.
    augmentation : None, "standard" or list of dict, optional
        Its ``normalize`` steps are applied to every split (:func:`prunelab.zoo.augmentation.normalized`,
        also once per process); its random steps are ``Train``'s.

    Returns
    -------
    Dataset
        The splits. Without ``imbalance_fractions``, calls with the same arguments in one process
        share one object: treat it as read-only.

    Raises
    ------
    ZooError
        If the dataset cannot be loaded, a fraction is not in (0, 1], or the augmentation is not valid.
    """
    steps = [step for step in augmentation_steps(augmentation) if step["name"] == "normalize"]
    data = _normalized(dataset_name, split_seed, val_fraction, json.dumps(steps)) if steps else _load(
        dataset_name, split_seed, val_fraction)
    if imbalance_fractions:
        data = imbalance(data, list(imbalance_fractions), seed=split_seed)
    return data


class ModelState(pl.ExperimentState):
    """A model of the zoo on a dataset of the zoo, for one replicate.

    Properties (identity): ``dataset_name``, ``model_name``, ``replicate`` (the
    seed is derived from the id, so replicates differ), ``split_seed``,
    ``val_fraction`` and ``imbalance`` (``None`` or one training fraction per
    class); the last three default to ``0``, ``0.1`` and ``None``; and
    ``pretrained``: ``None`` (a fresh initialisation, seeded from the id) or
    :func:`prunelab.zoo.weights_file` of a local checkpoint, whose digest (and
    path) thereby enter the id; its weights are loaded after the model is
    built, checked to be the same bytes, and are what ``init_weights`` holds.
    Carried: ``model``, ``init_weights`` (a snapshot at initialisation, for
    rewinding to init), ``rewind_snapshot`` (taken by ``Train`` at a chosen
    epoch) and ``train_config`` (what training has happened). Derived: ``data``
    (read once per process and shared, treat it as read-only).
    """

    dataset_name: str
    model_name: str
    replicate: int
    split_seed: int
    val_fraction: float
    imbalance: tuple[float, ...] | None
    pretrained: dict[str, str] | None
    augmentation: str | list[dict[str, Any]] | None
    model: nn.Module
    init_weights: dict[str, torch.Tensor]
    rewind_snapshot: dict[str, torch.Tensor] | None
    train_config: list[dict[str, Any]]
    data: Dataset

    NAME = "ModelState"
    PROPERTIES = {"dataset_name": pl.REQUIRED, "model_name": pl.REQUIRED, "replicate": pl.REQUIRED, "split_seed": 0,
                  "val_fraction": 0.1, "imbalance": None, "pretrained": pl.added(None),
                  "augmentation": pl.added(None)}
    NONHASHED_ATTRIBUTES = ["model", "init_weights", "rewind_snapshot", "train_config"]
    DERIVED_ATTRIBUTES = ["data"]

    def initialize_state(self, **kwargs: Any) -> None:
        """Load the data and build the model: freshly initialised (seeded from the root's id), or pretrained.

        Parameters
        ----------
        **kwargs
            The state's properties, passed by the engine; unused here (they are read from the attributes).

        Raises
        ------
        ZooError
            If the dataset cannot be loaded, the model cannot be built for it, the pretrained
            weights are missing, changed or do not fit it, or the augmentation is not valid.
        """
        fractions = tuple(self.imbalance) if self.imbalance else None
        self.data = dataset_for(self.dataset_name, self.split_seed, self.val_fraction, fractions, self.augmentation)
        self.model = build_model(self.model_name, self.data.input_shape, self.data.num_classes)
        if self.pretrained is not None:
            load_weights(self.model, self.pretrained)
        self.init_weights = snapshot(self.model)
        self.rewind_snapshot = None
        self.train_config = []
