"""Lazily imported adapters: ``torchvision.models`` and ``timm`` architectures and ``torchvision.datasets`` by name.

``build_model("torchvision:resnet18", ...)``, ``build_model("timm:resnet18", ...)``
and ``load_dataset("torchvision:CIFAR10")`` go through here. The libraries are
optional extras (``pip install 'prunelab[vision]'``), imported only when an
adapter is used, so ``import prunelab`` and the zoo never depend on them. A
dataset is read from local files only (``download=False``), into the zoo's
tensors: images ``(N, C, H, W)`` in [0, 1], int64 labels.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from torch import nn

from .errors import ZooError

__all__ = ["torchvision_model", "timm_model", "torchvision_dataset", "vision_library"]


def vision_library(name: str) -> ModuleType:
    """Import ``torchvision`` or ``timm``, or say why it cannot be used here.

    Parameters
    ----------
    name : {"torchvision", "timm"}
        The library.

    Returns
    -------
    module
        The imported library.

    Raises
    ------
    ZooError
        If it is not installed, or does not import with this torch (e.g. a CUDA build of torchvision
        beside the CPU build of torch: "operator torchvision::nms does not exist").
    """
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError:
        raise ZooError(f"{name} is not installed: pip install 'prunelab[vision]' (a build matching torch's).") \
            from None
    except (ImportError, RuntimeError) as err:
        raise ZooError(f"{name} is installed but does not import with this torch ({err}); install the {name} build "
                       "made for this torch version and device.") from None


def torchvision_model(name: str, input_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    """``torchvision.models.get_model(name, weights=None, num_classes=...)``: fresh, from torch's generator.

    Parameters
    ----------
    name : str
        A torchvision model name (``torchvision.models.list_models()``).
    input_shape : (int, int, int)
        ``(channels, height, width)``; torchvision's models take 3 channels.
    num_classes : int
        The outputs.

    Returns
    -------
    nn.Module
        The model.

    Raises
    ------
    ZooError
        If torchvision cannot be used, the name is unknown, or the inputs are not 3-channel.
    """
    models = vision_library("torchvision").models
    if name not in models.list_models():
        raise ZooError(f"torchvision has no model {name!r}; see torchvision.models.list_models().")
    if input_shape[0] != 3:
        raise ZooError(f"torchvision:{name} takes 3-channel images; the data has {input_shape[0]}.")
    return models.get_model(name, weights=None, num_classes=num_classes)  # type: ignore[no-any-return]


def timm_model(name: str, input_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    """``timm.create_model(name, pretrained=False, num_classes=..., in_chans=...)``.

    Parameters
    ----------
    name : str
        A timm model name (``timm.list_models()``).
    input_shape : (int, int, int)
        ``(channels, height, width)`` (the channels become ``in_chans``).
    num_classes : int
        The outputs.

    Returns
    -------
    nn.Module
        The model.

    Raises
    ------
    ZooError
        If timm cannot be used or the name is unknown.
    """
    timm = vision_library("timm")
    if not timm.is_model(name):
        raise ZooError(f"timm has no model {name!r}; see timm.list_models().")
    return timm.create_model(name, pretrained=False, num_classes=num_classes,  # type: ignore[no-any-return]
                             in_chans=input_shape[0])


def torchvision_dataset(name: str, root: str | Path | None) -> tuple[tuple[Any, Any], tuple[Any, Any], list[str]]:
    """Read a ``torchvision.datasets`` class's train and test splits from local files, as arrays.

    Parameters
    ----------
    name : str
        The class, e.g. ``"CIFAR10"``, ``"SVHN"``; constructed with ``root``, ``download=False`` and
        ``train=True/False`` (or ``split="train"/"test"``).
    root : path, optional
        Where its files are (default ``$PRUNELAB_DATA/torchvision``).

    Returns
    -------
    ((ndarray, ndarray), (ndarray, ndarray), list of str)
        Train and test images ``(N, C, H, W)`` uint8 with labels, and the class names.

    Raises
    ------
    ZooError
        If torchvision cannot be used, it has no such dataset, or its files are not in ``root``.
    """
    import inspect
    import os

    datasets = vision_library("torchvision").datasets
    cls = getattr(datasets, name, None)
    if not isinstance(cls, type):
        raise ZooError(f"torchvision.datasets has no dataset {name!r}.")
    where = Path(root) if root is not None else Path(os.environ.get("PRUNELAB_DATA", "~/.cache/prunelab")) \
        .expanduser() / "torchvision"
    takes = inspect.signature(cls).parameters
    splits = []
    for train in (True, False):
        how = {"train": train} if "train" in takes else {"split": "train" if train else "test"}
        try:
            data = cls(root=str(where), download=False, **how)
        except (RuntimeError, OSError) as err:
            raise ZooError(f"torchvision:{name} is not in {where} ({err}); put its files there (torchvision's "
                           "layout) or pass root=.") from None
        images = np.stack([np.asarray(image) for image, _ in data])
        images = images[:, None] if images.ndim == 3 else images.transpose(0, 3, 1, 2)
        splits.append((images, np.asarray([label for _, label in data], dtype=np.int64)))
    classes = [str(c) for c in getattr(data, "classes", range(int(splits[0][1].max()) + 1))]
    return splits[0], splits[1], classes
