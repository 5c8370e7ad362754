"""Errors and warnings of ``prunelab.prune``."""

from ..errors import PrunelabError, PrunelabWarning

__all__ = ["PruningError", "PruningWarning"]


class PruningError(PrunelabError, ValueError):
    """A pruning call was given something it cannot do; the model is left unchanged."""


class PruningWarning(PrunelabWarning):
    """Something was skipped or adjusted while pruning (e.g. a tensor N:M does not fit)."""
