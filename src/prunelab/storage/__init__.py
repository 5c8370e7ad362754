"""The experiment directory: its layout, files, codecs, blobs, records, logs, index, leases and gc.

Everything that reads or writes under an experiment's directory lives here; the
layers above (``prunelab.execution``, the facade) go through :class:`Store` and
:class:`Index`, and the model (``prunelab.core``) never touches a file.
"""

from .index import Index
from .store import FORMAT_VERSION, LAYOUT, Store

__all__ = ["FORMAT_VERSION", "LAYOUT", "Index", "Store"]
