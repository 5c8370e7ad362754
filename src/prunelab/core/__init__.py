"""The experiment graph engine: states, recipes, nodes, storage and identity.

Never imports torch at module level: the engine is framework-agnostic, and torch
support (identity of tensors, codecs, seeding) loads when torch is imported.
"""

from .errors import (
    CorruptStateError,
    ExperimentFormatError,
    PrunelabError,
    PrunelabWarning,
    PublishError,
    ReadOnlyError,
    RunError,
    StateDefinitionError,
    UnhashableValueError,
    UnknownNameError,
)
from .experiment import Experiment, Plan
from .identity import encode
from .nodes import Node, NodeSet
from .recipe import Function, Recipe, function
from .state import REQUIRED, ExperimentState

__all__ = [
    "REQUIRED",
    "CorruptStateError",
    "Experiment",
    "ExperimentFormatError",
    "ExperimentState",
    "Function",
    "Node",
    "NodeSet",
    "Plan",
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
]
