"""Pretrained weights from a local checkpoint file, named by the digest of its bytes.

``weights_file(path)`` reads a file once and returns ``{"path": ..., "digest":
...}``: given as a state's property (``ModelState(pretrained=...)``), the
digest is part of the state's id, so two files give two states and a file
changed since the study was declared is refused rather than silently used.
``load_weights(model, weights)`` reads the file again, checks the digest and
loads it into ``model``. Two formats, neither of which runs code on load:
safetensors (``.safetensors``), and ``torch.save`` files read with
``torch.load(weights_only=True)``, holding a state dict or a dict with one
under ``"state_dict"`` or ``"model"`` (OpenLTH's and most trainers' layouts).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch
import xxhash
from torch import nn

from .errors import ZooError

__all__ = ["load_weights", "weights_file"]


def weights_file(path: str | Path) -> dict[str, str]:
    """Name a local checkpoint file by its content, for a state's ``pretrained`` property.

    Parameters
    ----------
    path : str or Path
        A safetensors file or a ``torch.save`` file of a state dict.

    Returns
    -------
    dict
        ``{"path": the absolute path, "digest": the xxh3-128 hex digest of the file's bytes}``.

    Raises
    ------
    ZooError
        If the file cannot be read (the message names it).
    """
    where = Path(path).expanduser().resolve()
    return {"path": where.as_posix(), "digest": xxhash.xxh3_128_hexdigest(_read(where))}


def load_weights(model: nn.Module, weights: dict[str, str]) -> None:
    """Load the file that :func:`weights_file` named into ``model``, after checking it is the same file.

    Parameters
    ----------
    model : nn.Module
        Built with the architecture the weights are for; loaded strictly (every key, every shape).
    weights : dict
        ``{"path": ..., "digest": ...}``, as :func:`weights_file` gives.

    Raises
    ------
    ZooError
        If ``weights`` is not such a dict, the file is missing or its bytes
        changed, it is not a state dict of tensors, or it does not fit ``model``.
    """
    if not (isinstance(weights, dict) and set(weights) == {"path", "digest"}
            and all(isinstance(v, str) for v in weights.values())):
        raise ZooError(f"pretrained must be what prunelab.zoo.weights_file(path) returns ({{'path': ..., "
                       f"'digest': ...}}), got {weights!r}.")
    where = Path(weights["path"])
    data = _read(where)
    found = xxhash.xxh3_128_hexdigest(data)
    if found != weights["digest"]:
        raise ZooError(f"the pretrained weights {where} have changed since the state was declared: their digest is "
                       f"{found}, the state's id holds {weights['digest']}. Put the original file back, or declare "
                       "new states with weights_file() of this one.")
    state = _state_dict(where, data)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        detail = " ".join(str(err).split()).rstrip(" .")  # torch's message spans lines
        raise ZooError(f"the pretrained weights {where} do not fit the {type(model).__name__} built for this state: "
                       f"{detail}. Check model_name and the dataset's shape and classes.") from None


def _read(where: Path) -> bytes:
    try:
        return where.read_bytes()
    except OSError as err:
        raise ZooError(f"cannot read the pretrained weights {where}: {err.strerror or err}.") from None


def _state_dict(where: Path, data: bytes) -> dict[str, torch.Tensor]:
    try:
        if where.suffix == ".safetensors":
            from safetensors.torch import load

            loaded: Any = load(data)
        else:
            loaded = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - each reader raises its own kinds on a damaged or foreign file
        raise ZooError(f"the pretrained weights {where} cannot be read as a "
                       f"{'safetensors' if where.suffix == '.safetensors' else 'torch.save'} file: {err}") from None
    if isinstance(loaded, dict):
        for key in ("state_dict", "model"):
            if isinstance(loaded.get(key), dict):
                loaded = loaded[key]
                break
    if not (isinstance(loaded, dict) and loaded and all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in loaded.items())):
        raise ZooError(f"the pretrained weights {where} hold no state dict (a dict of names to tensors, or one under "
                       "'state_dict' or 'model').")
    return loaded
