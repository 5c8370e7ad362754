"""prunelab: reproducible science of deep learning, with pruning as its case study.

``import prunelab as pl`` gives the experiment graph (``pl.ExperimentState``,
``pl.Recipe``, ``pl.function``, ``pl.Experiment``, ``pl.Node``, ``pl.NodeSet``),
the executors and the errors. It imports neither torch nor pandas; the
``prunelab.prune`` package is the torch side.
"""

__version__ = "0.1.0"

from .core import (  # noqa: E402 - __version__ first: the store records it
    CorruptStateError,
    ExperimentFormatError,
    ExperimentState,
    Node,
    NodeSet,
    Preempted,
    PrunelabError,
    PrunelabWarning,
    REQUIRED,
    PublishError,
    ReadOnlyError,
    Recipe,
    RunError,
    StateDefinitionError,
    UnhashableValueError,
    UnknownNameError,
    added,
    function,
    log,
)
from .execution import DaskExecutor, LocalExecutor  # noqa: E402
from .experiment import Experiment  # noqa: E402

__all__ = [
    "CorruptStateError",
    "DaskExecutor",
    "Experiment",
    "ExperimentFormatError",
    "ExperimentState",
    "LocalExecutor",
    "Node",
    "NodeSet",
    "Preempted",
    "PrunelabError",
    "PrunelabWarning",
    "PublishError",
    "REQUIRED",
    "ReadOnlyError",
    "Recipe",
    "RunError",
    "StateDefinitionError",
    "UnhashableValueError",
    "UnknownNameError",
    "__version__",
    "added",
    "function",
    "log",
]
