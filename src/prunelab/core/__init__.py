"""The model of an experiment: identity, states, recipes, nodes, the graph, records and seeding.

The model holds no files and no executors (``prunelab.storage`` and
``prunelab.execution`` sit above it), and never imports torch at module level:
torch support (identity of tensors, seeding) loads when torch is imported.
``Experiment`` and ``Plan`` are named here too, as before the layers; they load
from the facade (``prunelab.experiment``) on first use.
"""

from typing import Any

from .errors import (
    CorruptStateError,
    ExperimentFormatError,
    Preempted,
    PrunelabError,
    PrunelabWarning,
    PublishError,
    ReadOnlyError,
    RunError,
    StateDefinitionError,
    UnhashableValueError,
    UnknownNameError,
)
from .function import Function, function
from .identity import encode
from .nodes import Node
from .nodeset import NodeSet
from .recipe import Recipe
from .runtime import log
from .state import REQUIRED, ExperimentState, added

__all__ = [
    "REQUIRED",
    "added",
    "CorruptStateError",
    "Experiment",
    "ExperimentFormatError",
    "ExperimentState",
    "Function",
    "Node",
    "NodeSet",
    "Plan",
    "Preempted",
    "PrunelabError",
    "PrunelabWarning",
    "PublishError",
    "ReadOnlyError",
    "Recipe",
    "RunError",
    "StateDefinitionError",
    "UnhashableValueError",
    "UnknownNameError",
    "encode",
    "function",
    "log",
]


def __getattr__(name: str) -> Any:
    """Load ``Experiment`` and ``Plan`` from the layers above on first use (the model imports neither)."""
    if name in ("Experiment", "Plan"):
        from .. import experiment

        return getattr(experiment, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
