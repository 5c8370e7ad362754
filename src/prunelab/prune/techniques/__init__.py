"""Pruning techniques: each computes scores; :mod:`prunelab.prune.selection` does the rest.

A technique is a :class:`Technique` subclass with one method, :meth:`~Technique.scores`,
registered under a name with :func:`register_technique`. Its class attributes
say how its scores are used: ``structured`` (one score per output channel
instead of per weight), ``scope`` (``"layer"``: each tensor on its own;
``"global"``: ranked across tensors), ``remove`` (``"lowest"`` or
``"highest"`` scores go first) and ``needs_data``.
"""

from .base import Context, Technique, available_techniques, get_technique, register_technique
from .data import SNIP, GraSP, SynFlow, Taylor
from .magnitude import LAMP, GlobalMagnitude, GlobalRandom, L1Unstructured, RandomUnstructured
from .structured import NM, GlobalStructured, L1Structured, L2Structured, LinfStructured, RandomStructured

__all__ = ["Technique", "Context", "register_technique", "available_techniques", "get_technique",
           # the techniques, each registered under its name when its module is imported
           "GlobalMagnitude", "GlobalRandom", "GlobalStructured", "GraSP", "L1Structured", "L1Unstructured",
           "L2Structured", "LAMP", "LinfStructured", "NM", "RandomStructured", "RandomUnstructured", "SNIP",
           "SynFlow", "Taylor"]
