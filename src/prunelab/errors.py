"""The roots of prunelab's exceptions and warnings, shared by every subpackage.

Every exception derives from :class:`PrunelabError` and from the builtin it
refines. ``prunelab.core.errors`` and ``prunelab.prune.errors`` define the
specific ones.
"""

__all__ = ["PrunelabError", "PrunelabWarning"]


class PrunelabError(Exception):
    """Base class of every error prunelab raises."""


class PrunelabWarning(UserWarning):
    """Base class of every warning prunelab emits."""
