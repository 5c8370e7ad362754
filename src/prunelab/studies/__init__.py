"""Complete studies: ``build`` declares a graph, ``run`` builds, runs and summarises it."""

from . import prune_responsibly

__all__ = ["prune_responsibly"]
