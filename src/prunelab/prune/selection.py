"""Selection, shared by every technique: which units to remove, given scores.

A technique only computes scores; this module turns them into masks. Scores
are made into *keys* where smaller means "remove first" (negated for
techniques that remove the highest scores), and ties are broken by the lowest
flat index first (tensor by tensor, in module order, for global selection).

Global selection never concatenates the scores: it bisects on the order-
preserving integer image of the float keys, counting per tensor, which keeps
peak memory to one boolean temporary per tensor.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from .errors import PruningError

__all__ = ["ordered_keys", "lowest_k", "global_lowest", "units_for_sparsity"]

_INT_MAX = {torch.int32: 2**31 - 1, torch.int64: 2**63 - 1}


def ordered_keys(scores: torch.Tensor, eligible: torch.Tensor, *, negate: bool = False) -> torch.Tensor:
    """Turn float scores into integer keys with the same order, *in place*; return the integer view.

    Smaller key = removed first (``negate`` reverses the order, for techniques
    that remove the highest scores); ineligible entries get the maximum key.
    For IEEE-754 floats, the bit pattern read as a signed integer orders
    non-negative values correctly and negative ones in reverse; mapping a
    negative pattern ``i`` to ``i XOR INT_MAX`` (= ``INT_MIN - 1 - i``) makes the whole map monotonic.
    ``scores`` (float32 or float64, contiguous) is consumed.
    """
    if negate:
        scores.neg_()
    kind = torch.int64 if scores.dtype == torch.float64 else torch.int32
    bits = scores.view(kind)
    negative = bits < 0
    if bool(negative.any()):
        bits[negative] = bits[negative] ^ _INT_MAX[kind]  # = INT_MIN - 1 - i for negative i
    return bits.masked_fill_(~eligible, _INT_MAX[kind])


def lowest_k(keys: torch.Tensor, eligible: torch.Tensor, k: int, what: str) -> torch.Tensor:
    """Return a boolean tensor marking the ``k`` eligible entries with the smallest keys.

    Ties at the threshold are broken by the lowest flat index first.
    """
    flat_keys, flat_ok = keys.reshape(-1), eligible.reshape(-1)
    out = torch.zeros_like(flat_ok)
    if k <= 0:
        return out.view_as(eligible)
    available = int(flat_ok.sum())
    if k > available:
        raise PruningError(f"cannot remove {k} units of {what}: only {available} remain.")
    threshold = torch.kthvalue(flat_keys[flat_ok], k).values
    below = (flat_keys < threshold) & flat_ok
    out |= below
    need = k - int(below.sum())
    if need > 0:
        tied = ((flat_keys == threshold) & flat_ok).nonzero().squeeze(1)[:need]
        out[tied] = True
    return out.view_as(eligible)


def _count_at_most(keys: Sequence[torch.Tensor], bound: int) -> int:
    return sum(int((k <= bound).sum()) for k in keys)


def _kth_key(keys: Sequence[torch.Tensor], k: int) -> int:
    """The smallest key value t with at least k keys <= t (bisection, no concatenation)."""
    lo = min(int(k.min()) for k in keys if k.numel())
    hi = max(int(k.max()) for k in keys if k.numel())
    while lo < hi:
        mid = (lo + hi) // 2
        if _count_at_most(keys, mid) >= k:
            hi = mid
        else:
            lo = mid + 1
    return lo


def global_lowest(keys: Sequence[torch.Tensor], eligible: Sequence[torch.Tensor], k: int,
                  caps: Sequence[int] | None = None) -> list[torch.Tensor]:
    """Mark the ``k`` eligible entries with the smallest keys across tensors.

    ``keys`` come from :func:`ordered_keys`. ``caps`` bounds how many entries
    each tensor may lose (``min_density``); tensors that reach their cap lose
    exactly that many of their lowest, and the rest of ``k`` is found among
    the others. Ties go to the lowest flat index, tensors in order.
    """
    n = len(keys)
    caps = list(caps) if caps is not None else [int(e.sum()) for e in eligible]
    if k > sum(caps):
        raise PruningError(f"cannot remove {k} units: at most {sum(caps)} can go without breaking min_density; "
                           "lower the target or min_density.")
    result: list[torch.Tensor | None] = [None] * n
    active = list(range(n))
    remaining = k
    while remaining > 0 and active:
        total = sum(int(eligible[i].sum()) for i in active)
        if remaining >= total:
            for i in active:
                result[i] = eligible[i].clone()
            break
        bound = _kth_key([keys[i] for i in active], remaining)
        counts = {i: int((keys[i] < bound).sum()) for i in active}  # one boolean temporary at a time
        spare = remaining - sum(counts.values())
        ties = {}
        for i in active:
            ties[i] = min(spare, int((keys[i] == bound).sum()))
            spare -= ties[i]
        over = [i for i in active if counts[i] + ties[i] > caps[i]]
        if not over:
            for i in active:
                chosen = keys[i] < bound
                if ties[i]:
                    tied = (keys[i].reshape(-1) == bound).nonzero().squeeze(1)[:ties[i]]
                    chosen.view(-1)[tied] = True
                result[i] = chosen
            break
        for i in over:
            result[i] = lowest_k(keys[i], eligible[i], caps[i], f"tensor {i}")
            remaining -= caps[i]
            active.remove(i)
    return [r if r is not None else torch.zeros_like(e) for r, e in zip(result, eligible)]


def units_for_sparsity(order_zeros: torch.Tensor, current_zeros: int, target_zeros: float, what: str) -> int:
    """Number of units to remove, in key order, to bring the zero count closest to ``target_zeros``.

    ``order_zeros[j]`` is how many weights the j-th unit in removal order would
    newly zero. The result is within one unit of the target.
    """
    if target_zeros < current_zeros - 0.5:
        raise PruningError(f"{what} is already sparser than the target ({current_zeros} zeros, target "
                           f"{math.floor(target_zeros + 0.5)}); masks only shrink: give a higher sparsity.")
    cumulative = torch.cat([torch.zeros(1, dtype=torch.int64), order_zeros.to(torch.int64).cumsum(0)]) + current_zeros
    return int((cumulative.double() - target_zeros).abs().argmin())
