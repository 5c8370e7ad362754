"""Ready-made states, recipes and functions for pruning studies.

``ModelState`` holds a zoo model on a zoo dataset; ``Train``, ``Prune``,
``Rewind``, ``Reinit`` and ``LRRewind`` are the edges of a pruning study, each
declaring the lineage analysis reads (technique, amount, round, treatment);
``evaluate``, ``sparsity`` and ``class_shares`` are the functions;
``ResumableSampler`` is a data sampler whose place in the epoch a checkpoint keeps.
"""

from .functions import class_shares, evaluate, evaluate_split, sparsity
from .sampling import ResumableSampler
from .standard import LRRewind, Prune, Reinit, Rewind, Train, train_model
from .state import ModelState, dataset_for

__all__ = ["LRRewind", "ModelState", "Prune", "Reinit", "ResumableSampler", "Rewind", "Train", "class_shares", "dataset_for",
           "evaluate", "evaluate_split", "sparsity", "train_model"]
