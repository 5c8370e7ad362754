"""The contract every pruning technique extends: :class:`Technique`, its :class:`Context`, and the registry."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import torch
from torch import nn

from ..errors import PruningError
from ..targets import Target

__all__ = ["Context", "Technique", "alive_channels", "available_techniques", "channel_norm", "get_technique",
           "register_technique"]

_REGISTRY: dict[str, type[Technique]] = {}


@dataclass
class Context:
    """What a technique may use besides the weights.

    Parameters
    ----------
    model : nn.Module
        The model being pruned.
    inputs : torch.Tensor or None, default=None
        A batch, for data-dependent techniques.
    targets : torch.Tensor or None, default=None
        The batch's labels.
    loss_fn : callable or None, default=None
        ``loss_fn(output, targets)``; None means cross-entropy.
    generator : torch.Generator or None, default=None
        Randomness of random techniques (None: torch's global generator).
    options : dict, default={}
        The technique's settings (its options with their defaults filled in).
    """

    model: nn.Module
    inputs: torch.Tensor | None = None
    targets: torch.Tensor | None = None
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None
    generator: torch.Generator | None = None
    options: dict[str, Any] = field(default_factory=dict)


class Technique(ABC):
    """Base class of pruning techniques: implement :meth:`scores`.

    Parameters
    ----------
    **options
        Values of the options the class declares in ``options``; the others keep their defaults. All of them
        are kept in ``settings``.

    Raises
    ------
    PruningError
        If an option is not one the class declares.
    """

    structured: ClassVar[bool] = False
    scope: ClassVar[Literal["layer", "global"]] = "layer"
    remove: ClassVar[Literal["lowest", "highest"]] = "lowest"
    needs_data: ClassVar[bool] = False
    options: ClassVar[dict[str, Any]] = {}
    dim: ClassVar[int] = 0

    def __init__(self, **options: Any):
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            raise PruningError(f"technique {type(self).__name__} takes no option(s) {unknown}; its options are "
                               f"{sorted(self.options) or 'none'}.")
        self.settings = {**self.options, **options}

    @abstractmethod
    def scores(self, targets: Sequence[Target], context: Context) -> list[torch.Tensor]:
        """Return one score tensor per target: the weight's shape, or ``(channels,)`` when structured.

        Scores of already-pruned units are ignored by the selection.

        Parameters
        ----------
        targets : sequence of Target
            The parameters to score.
        context : Context
            The model, and the data and randomness the technique may use.

        Returns
        -------
        list of torch.Tensor
            One tensor per target, in order; units with the lowest scores are removed first (the highest
            when the class sets ``remove = "highest"``).
        """


def register_technique(name: str) -> Callable[[type[Technique]], type[Technique]]:
    """Register a :class:`Technique` subclass under ``name`` (snake_case).

    Parameters
    ----------
    name : str
        The name :func:`~prunelab.prune.prune_model` takes.

    Returns
    -------
    callable
        A class decorator that registers the class and returns it unchanged; it raises
        :class:`~prunelab.prune.PruningError` if the class is not a :class:`Technique` subclass or another
        class is registered under ``name``.
    """

    def decorator(cls: type[Technique]) -> type[Technique]:
        if not (isinstance(cls, type) and issubclass(cls, Technique)):
            raise PruningError(f"register_technique({name!r}) needs a Technique subclass, got {cls!r}.")
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise PruningError(f"a technique named {name!r} is already registered ({_REGISTRY[name].__name__}).")
        _REGISTRY[name] = cls
        return cls

    return decorator


def available_techniques() -> list[str]:
    """Return the registered technique names, sorted.

    Returns
    -------
    list of str
        Each name :func:`~prunelab.prune.prune_model` takes.
    """
    return sorted(_REGISTRY)


def get_technique(name: str, **options: Any) -> Technique:
    """Return an instance of the technique registered as ``name``."""
    if name not in _REGISTRY:
        import difflib

        close = difflib.get_close_matches(str(name), _REGISTRY, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise PruningError(f"unknown pruning technique {name!r}.{hint} Available: {', '.join(available_techniques())}.")
    return _REGISTRY[name](**options)


def channel_norm(weight: torch.Tensor, p: float, dim: int) -> torch.Tensor:
    """The Lp norm of each slice of ``weight`` along ``dim`` (one per output channel for ``dim=0``)."""
    dims = [d for d in range(weight.dim()) if d != dim]
    norm: torch.Tensor = torch.linalg.vector_norm(weight, ord=p, dim=dims)
    return norm


# --------------------------------------------------------------------------- magnitude


def alive_channels(mask: torch.Tensor, dim: int) -> torch.Tensor:
    """Whether each slice of ``mask`` along ``dim`` keeps any weight (a bool per channel)."""
    dims = [d for d in range(mask.dim()) if d != dim]
    return mask.sum(dim=dims) != 0


# --------------------------------------------------------------------------- LAMP
