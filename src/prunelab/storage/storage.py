"""One experiment directory as the layers above read it: its files (:class:`Store`) and its index (:class:`Index`)."""

from __future__ import annotations

import os
from typing import Any

from ..core.prereg import Prereg
from .codecs import decode_value
from .index import Index
from .sources import StoreSource
from .store import Store

__all__ = ["Storage"]


class Storage:
    """The stored side of an experiment: what its graph and nodes read (see :class:`prunelab.core.host.Catalogue`).

    Parameters
    ----------
    store : Store
        The experiment directory's files.
    index : Index
        Its SQLite index (a cache of the records, rebuilt from the files when stale).
    """

    def __init__(self, store: Store, index: Index):
        self.store = store
        self.index = index

    def node_rows(self) -> list[tuple[str, str | None, str]]:
        """Every stored state as (id, parent id, status)."""
        return self.index.node_rows()

    def record(self, node_id: str) -> dict[str, Any] | None:
        """The stored record of one state, or None."""
        return self.index.record(node_id)

    def records(self, node_ids: list[str]) -> dict[str, dict[str, Any]]:
        """The stored records of several states, by id."""
        return self.index.records(node_ids)

    def tags(self) -> dict[str, set[str]]:
        """The stored tags of every state, by id."""
        return self.index.tags()

    def results(self, node_id: str) -> dict[str, dict[str, Any]]:
        """The stored result records of one state, by ``name@vN``."""
        return self.index.results(node_id)

    def result_keys(self) -> dict[str, set[str]]:
        """The stored result keys (``name@vN``) of every state, by id."""
        return self.index.result_keys()

    def withheld(self, node_id: str, name: str, version: int) -> dict[str, Any]:
        """The withheld (blinded) part of one result record."""
        return self.store.results.read_withheld(node_id, name, version)

    def decode(self, spec: Any, owner: str) -> Any:
        """Decode a stored value spec, reading its tensors from the blobs.

        Parameters
        ----------
        spec : Any
            A value spec, as in a value file or a record's ``property_specs``.
        owner : str
            What the value is, for errors (``"property 'lr'"``).

        Returns
        -------
        Any
            The value, exactly as it was encoded.
        """
        return decode_value(spec, StoreSource(self.store), owner=owner)

    def runs(self) -> list[dict[str, Any]]:
        """Every run manifest, oldest first."""
        return [entry for _, entry in self.store.logs.read("runs")]

    def prereg(self) -> Prereg:
        """The experiment's registrations and active blinds, read from its log (seals verified)."""
        entries = self.store.logs.read("prereg")
        folder = str(self.store.layout.log_folder("prereg"))
        damaged = any(os.path.dirname(path) == folder for path in self.store.logs.damaged)
        return Prereg.from_log(entries, damaged)
