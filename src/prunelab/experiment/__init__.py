"""The facade: :class:`Experiment` opens a directory, declares states and delegates to the layers below.

``prunelab.core`` is the model, ``prunelab.storage`` the experiment directory,
``prunelab.execution`` the plan and its computation; :mod:`.audit` and
:mod:`.verify` read an experiment from above them.
"""

from .experiment import Experiment, Plan, reindex
from .running import declaring_only

__all__ = ["Experiment", "Plan", "declaring_only", "reindex"]
