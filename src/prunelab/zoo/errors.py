"""Errors of ``prunelab.zoo``."""

from ..errors import PrunelabError

__all__ = ["ZooError"]


class ZooError(PrunelabError, ValueError):
    """A dataset or model the zoo cannot provide, with where it looked and what to do."""
