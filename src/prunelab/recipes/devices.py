"""The ``device`` and ``amp`` options of the recipes: where a model runs, and in which precision."""

from __future__ import annotations

from typing import Any

import torch

import prunelab as pl

__all__ = ["amp_dtype", "check_amp", "check_device", "resolve_device"]

_AMP = (False, True, "bf16", "fp16")


def resolve_device(owner: str, value: Any) -> torch.device:
    """The device a ``device`` option names: ``"auto"`` is CUDA when available, else the CPU.

    Parameters
    ----------
    owner : str
        The recipe whose option it is (named in errors).
    value : str
        ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ... (anything ``torch.device`` takes).

    Returns
    -------
    torch.device
        The device.

    Raises
    ------
    StateDefinitionError
        If it names no device, or a CUDA device this machine does not have.
    """
    if value == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = check_device(owner, value)
    if device.type == "cuda" and not (torch.cuda.is_available()
                                      and (device.index or 0) < torch.cuda.device_count()):
        raise pl.StateDefinitionError(f"{owner} option device={value!r}, but this machine has no such CUDA device "
                                      f"({torch.cuda.device_count()} visible); use device='auto' or 'cpu'.")
    return device


def check_device(owner: str, value: Any) -> torch.device:
    """Refuse a ``device`` option that names no device (whether this machine has it is checked at run time).

    Parameters
    ----------
    owner : str
        The recipe whose option it is.
    value : Any
        The option's value.

    Returns
    -------
    torch.device
        The device it names (the CPU for ``"auto"``, which is resolved where the recipe runs).

    Raises
    ------
    StateDefinitionError
        Naming the option and the values it takes.
    """
    if value == "auto":
        return torch.device("cpu")
    try:
        return torch.device(value)
    except (RuntimeError, TypeError):
        raise pl.StateDefinitionError(f"{owner} option 'device' must be 'auto', 'cpu', 'cuda' or 'cuda:<n>', "
                                      f"got {value!r}.") from None


def check_amp(owner: str, value: Any) -> None:
    """Refuse an ``amp`` option that is not False, True, ``"bf16"`` or ``"fp16"``.

    Parameters
    ----------
    owner : str
        The recipe whose option it is.
    value : Any
        The option's value.

    Raises
    ------
    StateDefinitionError
        Naming the option and its values.
    """
    if not any(value is ok or (isinstance(ok, str) and value == ok) for ok in _AMP):
        raise pl.StateDefinitionError(f"{owner} option 'amp' must be False, True, 'bf16' or 'fp16', got {value!r}.")


def amp_dtype(amp: Any, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of an ``amp`` option on ``device``; None: full precision.

    ``True`` picks bfloat16 where the device supports it (the CPU, recent
    GPUs), else float16 (which trains with a gradient scaler).

    Parameters
    ----------
    amp : False, True, "bf16" or "fp16"
        The option.
    device : torch.device
        Where the model runs.

    Returns
    -------
    torch.dtype or None
        ``torch.bfloat16``, ``torch.float16`` or None.
    """
    if amp is False:
        return None
    if amp == "fp16" or (amp is True and device.type == "cuda" and not torch.cuda.is_bf16_supported()):
        return torch.float16
    return torch.bfloat16
