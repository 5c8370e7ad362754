"""Where what a run makes goes: to the publishing helper once it is up, else straight into storage.

Either way the same atomic publish (or checkpoint write) stores it (see
:mod:`.publisher`); the helper only moves the disk and SQLite work off the
computing process.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..storage.codecs import Blob
    from ..storage.index import Index
    from ..storage.lease import Lease
    from ..storage.store import Store
    from .materialise import Materialized
    from .publisher import Publisher
    from .task import EngineSpec

__all__ = ["Writer"]


class Writer:
    """Publishes the states and results one engine makes.

    Parameters
    ----------
    store : Store
        The experiment directory.
    index : Index
        Its index, updated under the lock with every write.
    """

    def __init__(self, store: Store, index: Index):
        self.store = store
        self.index = index
        self.publisher: Publisher | None = None  # the helper publishing in a pipelined block, once started
        self._spec: EngineSpec | None = None

    @contextlib.contextmanager
    def pipelined(self, spec: EngineSpec, enabled: bool = True) -> Iterator[list[str]]:
        """Publish from a helper process for the duration of the block.

        The helper starts with the first state or result to publish (a run
        with nothing to compute starts none). Yields a list that, after the
        block, holds the states another writer turned out to have published
        first. Until the helper is up, and where it cannot run, states are
        published in this process, as outside the block.

        Parameters
        ----------
        spec : EngineSpec
            What the helper needs to open the experiment.
        enabled : bool, default=True
            False: publish in this process throughout.
        """
        from .publisher import available

        late: list[str] = []
        if not enabled or self._spec is not None or not available():
            yield late
            return
        self._spec = spec
        try:
            yield late
        finally:
            self._spec = None
            publisher, self.publisher = self.publisher, None
            if publisher is not None:
                try:
                    publisher.close()
                finally:
                    late.extend(publisher.elsewhere)
                    self.store.counters.update(publisher.counters)

    def helper(self) -> Publisher | None:
        """The helper of the current :meth:`pipelined` block, started on first use; None outside one."""
        if self._spec is not None and self.publisher is None:
            from .publisher import Publisher

            self.publisher = Publisher(self._spec)
        return self.publisher

    def _ready(self) -> Publisher | None:
        """The publishing helper if it is up; None while it starts, where it cannot, and outside a pipelined block."""
        helper = self.helper()
        return helper if helper is not None and helper.ready() else None

    def publish(self, record: dict[str, Any], materialized: Materialized | None, lease: Lease,
                extra: dict[str, Blob] | None = None) -> bool:
        """Publish a state (or a failure record) made under ``lease``; False when another writer came first.

        ``extra`` holds blobs the record lists beyond the state's values (its series).
        """
        values, blobs = (None, {}) if materialized is None else (materialized.values, materialized.blobs)
        if extra:
            blobs = {**blobs, **extra}
        helper = self._ready()
        if helper is not None:
            helper.publish_state(record, values, blobs, lease)
            return True
        return self.store.publish_state(record, values, blobs, self.index.record_published, lease.owned)

    def publish_unleased(self, record: dict[str, Any]) -> None:
        """Publish a failure record in this process, under no lease (a task that could not run at all)."""
        self.store.publish_state(record, None, {}, self.index.record_published)

    def store_result(self, node_id: str, record: dict[str, Any], blobs: dict[str, Blob],
                     withheld: tuple[dict[str, Any], dict[str, Blob]] | None, lease: Lease) -> None:
        """Store a function result (and its withheld part, when blinded) made under ``lease``."""
        helper = self._ready()
        if helper is not None:
            helper.write_result(node_id, record, blobs, withheld, lease)
            return
        if withheld is not None:
            self.store.results.write_withheld(node_id, *withheld)
        self.store.results.write(node_id, record, blobs, lambda r: self.index.result_written(node_id, r))

    def write_partial(self, record: dict[str, Any], blobs: dict[str, Blob], lease: Lease) -> None:
        """Store a checkpoint of the state computed under ``lease`` (see :meth:`Partials.write`)."""
        helper = self._ready()
        if helper is not None:
            helper.write_partial(record, blobs, lease)
        else:
            self.store.partials.write(record, blobs)

    def let_go(self, lease: Lease) -> None:
        """Release a lease once what was made under it is published."""
        if self.publisher is not None:
            self.publisher.let_go(lease)
        else:
            lease.release()
