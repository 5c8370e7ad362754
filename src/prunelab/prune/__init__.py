"""Pruning on top of :mod:`torch.nn.utils.prune`.

The stored representation is PyTorch's own reparametrisation
(``weight_orig * weight_mask`` with a forward pre-hook), so models pruned by
either library interoperate both ways. This package knows nothing of
experiments: it takes and returns ``nn.Module`` objects and masks.
"""

from .masks import load_pruned_state_dict, pruned_parameters

__all__ = ["load_pruned_state_dict", "pruned_parameters"]
