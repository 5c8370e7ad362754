"""Pruning on top of :mod:`torch.nn.utils.prune`.

The stored representation is PyTorch's own reparametrisation
(``weight_orig * weight_mask`` with a forward pre-hook), so models pruned by
either library interoperate both ways. This package knows nothing of
experiments: it takes and returns ``nn.Module`` objects and masks.

``prune_model(model, technique, amount=/n_prune=/sparsity=, ...)`` is the one
entry point; a technique only computes scores (:class:`Technique`, one
method), and selection is shared. Treatments (:func:`snapshot`,
:func:`rewind`, :func:`reinit`), schedules (:func:`iterative`, :func:`cubic`),
dynamic sparsity (:class:`RigL`), masks as data (:func:`get_masks`, :func:`apply_masks`,
:func:`sparsity_report`, :func:`jaccard`, :func:`save_masks`,
:func:`load_masks`, :func:`make_permanent`, :func:`copy_model`,
:func:`load_pruned_state_dict`, :func:`flops`, :func:`compact`) and fast
masked training (:func:`masked_training`) complete it.

Definitions (one meaning each)
------------------------------
unit
    A weight for unstructured techniques; an output channel (slice along
    ``dim``, default 0) for structured ones.
amount
    A float in [0, 1]: the fraction of the still-unpruned units of each tensor
    (layer-wise techniques) or of the whole set (global ones) to prune now;
    compounds over calls (0.5 twice = 75%); rounded half-to-even like PyTorch.
    Integers are refused (use ``n_prune``).
n_prune
    A count of units to prune now.
sparsity
    A target fraction of zero *weights* over the selected parameters: per
    tensor for layer-wise techniques (each tensor within one unit of it), over
    the whole set for global ones (within one unit).
selected parameters
    The ``weight`` of every ``Conv1d/2d/3d`` and ``Linear`` unless
    ``parameters=`` says otherwise; biases and normalisation layers are never
    selected, but structured techniques also mask the bias of each pruned
    output channel (so a pruned channel outputs exactly zero).
min_density
    A floor per tensor for global techniques; the global target is met by
    pruning more elsewhere, or an error says it cannot be.
ties
    Broken by the lowest flat index first; agreement with PyTorch is exact
    except among values tied at the threshold.
random techniques
    Draw from ``generator`` (default: torch's global generator, seeded per
    state by the engine) over the still-unpruned units, tensor by tensor in
    module order, as PyTorch does.
nm
    N:M along the input dimension: at most N non-zeros in every block of M
    consecutive weights; takes no ``amount``/``sparsity``; a tensor whose
    dimension M does not divide is skipped with a warning.
Jaccard
    Of the sets of *kept* weights, pooled over tensors (and per tensor); its
    chance level for independent masks of densities d1, d2 is
    d1*d2 / (d1 + d2 - d1*d2).
effective sparsity
    Counts also the weights that cannot affect the output: those of units
    with no surviving input or no surviving output (biases counted).
"""

from .apply import prune_model
from .compaction import compact
from .errors import PruningError, PruningWarning
from .copying import copy_model, load_pruned_state_dict
from .masks import apply_masks, get_masks, load_masks, make_permanent, pruned_parameters, save_masks
from .report import JaccardResult, SparsityReport, flops, jaccard, sparsity_report
from .rigl import RigL
from .schedules import Schedule, cubic, iterative
from .techniques import Context, Technique, available_techniques, register_technique
from .training import masked_training
from .treatments import reinit, rewind, snapshot

__all__ = [
    "Context",
    "JaccardResult",
    "PruningError",
    "PruningWarning",
    "RigL",
    "Schedule",
    "SparsityReport",
    "Technique",
    "apply_masks",
    "available_techniques",
    "compact",
    "copy_model",
    "cubic",
    "flops",
    "get_masks",
    "iterative",
    "jaccard",
    "load_masks",
    "load_pruned_state_dict",
    "make_permanent",
    "masked_training",
    "prune_model",
    "pruned_parameters",
    "register_technique",
    "reinit",
    "rewind",
    "save_masks",
    "snapshot",
    "sparsity_report",
]
