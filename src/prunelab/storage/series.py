"""The stored form of a node's metric series: one immutable, columnar blob per state (or result).

Layout, all little-endian::

    u32 header length | header (canonical JSON) | steps (int64) | values (float64)

The header is ``{"format": "prunelab-series", "version": 1, "names": [...],
"counts": [...]}``; the columns hold the series one name after another, in
the order of ``names`` (sorted), each in the order it was logged. The blob
is content-addressed like any other, so equal series are stored once and a
changed byte fails its checksum on read.
"""

from __future__ import annotations

import array
import json
import struct
import sys
from typing import TYPE_CHECKING, Any

from ..core.errors import CorruptStateError
from ..core.records import canonical_json
from .codecs import Blob, digest

if TYPE_CHECKING:
    import numpy as np

__all__ = ["decode_series", "encode_series"]

_FORMAT = "prunelab-series"


def encode_series(series: dict[str, tuple[list[int], list[float]]]) -> Blob | None:
    """The blob of a series (names sorted; None when nothing was logged).

    Parameters
    ----------
    series : dict of str to (steps, values)
        Per name, the steps and values in the order logged.

    Returns
    -------
    Blob or None
        The blob, named by its digest.
    """
    names = sorted(name for name, (steps, _) in series.items() if steps)
    if not names:
        return None
    header = canonical_json({"format": _FORMAT, "version": 1, "names": names,
                             "counts": [len(series[n][0]) for n in names]})
    steps = array.array("q", [s for n in names for s in series[n][0]])
    values = array.array("d", [v for n in names for v in series[n][1]])
    if sys.byteorder != "little":
        steps.byteswap()
        values.byteswap()
    data = struct.pack("<I", len(header)) + header + steps.tobytes() + values.tobytes()
    return Blob(digest(data), memoryview(data), data)


def decode_series(data: bytes, where: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Read a series blob back: per name, the steps (int64) and values (float64).

    Parameters
    ----------
    data : bytes
        The blob's bytes (already verified against its digest).
    where : str
        What holds it, for errors (the blob's path).

    Returns
    -------
    dict of str to (ndarray, ndarray)
        Per name, in sorted order.

    Raises
    ------
    CorruptStateError
        If the bytes are not a series prunelab wrote.
    """
    import numpy as np

    try:
        (length,) = struct.unpack_from("<I", data)
        header: Any = json.loads(data[4:4 + length])
        names, counts = header["names"], header["counts"]
        if header.get("format") != _FORMAT or len(names) != len(counts):
            raise ValueError("not a series header")
        total = sum(counts)
        start = 4 + length
        steps = np.frombuffer(data, dtype="<i8", count=total, offset=start)
        values = np.frombuffer(data, dtype="<f8", count=total, offset=start + 8 * total)
        if start + 16 * total != len(data):
            raise ValueError("trailing bytes")
    except (ValueError, KeyError, TypeError, struct.error) as err:
        raise CorruptStateError(f"{where} is not a series prunelab wrote ({err}); the file was altered.",
                                where) from None
    out, at = {}, 0
    for name, count in zip(names, counts):
        out[name] = (steps[at:at + count], values[at:at + count])
        at += count
    return out
