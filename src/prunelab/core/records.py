"""Records as the model knows them: the canonical JSON that seals, digests and checksums are taken over."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["canonical_json"]


def canonical_json(obj: Any) -> bytes:
    """Serialise ``obj`` deterministically (sorted keys, no spaces, NaN allowed).

    Parameters
    ----------
    obj : Any
        A JSON-able value.

    Returns
    -------
    bytes
        Its UTF-8 encoding, the same for equal values whatever their key order.
    """
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
