"""Materialising states: building them from templates, loading stored values into them, encoding them.

``initialize_state`` runs once per root and process, under the root's seed;
every later state of that root is a copy of that *template* (much cheaper than
re-initialising a model), with its derived attributes shared. A computed
state reaches its children as a :class:`Materialized` value (the spec and
blobs of a store round trip), in memory or read from the store through a
bounded per-process cache.
"""

from __future__ import annotations

import contextlib
import copy
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..core.errors import CorruptStateError, StateDefinitionError
from ..core.seeding import derive_seed
from ..core.state import NODE_KEY, ExperimentState, build_state, derived_fingerprint
from ..storage.codecs import Blob, BlobSource, Encoded, decode_value, encode_value
from ..storage.copies import copy_values, loads_into_current, seed_copy
from ..storage.sources import MemorySource, StoreSource

if TYPE_CHECKING:
    from ..storage.store import Store

__all__ = ["Materialized", "Materialiser"]


@dataclass
class Materialized:
    """A computed state's stored form, kept in memory for its children."""

    values: dict[str, Any]
    blobs: dict[str, Blob]
    _replaced: frozenset[str] | None = field(default=None, repr=False)
    _layout: tuple[tuple[str, tuple[Any, ...]], ...] | None = field(default=None, repr=False)

    @property
    def replaced(self) -> frozenset[str]:
        """Attributes decoded without the object ``initialize_state`` built (not loaded into it)."""
        if self._replaced is None:
            self._replaced = frozenset(n for n, spec in self.values.items() if not loads_into_current(spec))
        return self._replaced

    @property
    def layout(self) -> tuple[tuple[str, tuple[Any, ...]], ...]:
        """The structure of the attributes loaded into built objects: (name, state-dict keys) each.

        Two states with one layout load into objects of the same structure
        (e.g. the same parameters pruned, in the same order). Empty when an
        attribute's structure cannot be read from its spec (nothing is shared then).
        """
        if self._layout is None:
            layout: list[tuple[str, tuple[Any, ...]]] = []
            for name in sorted(set(self.values) - self.replaced):
                keys = _state_dict_keys(self.values[name])
                if keys is None:
                    layout = []
                    break
                layout.append((name, keys))
            self._layout = tuple(layout)
        return self._layout


def _state_dict_keys(spec: Any) -> tuple[Any, ...] | None:
    """The keys of a ``stateful`` spec's state dict, in order (None for any other spec)."""
    if spec[0] != "stateful" or spec[2][0] != "dict" or any(key[0] != "json" for key, _ in spec[2][1]):
        return None
    return tuple(key[1] for key, _ in spec[2][1])


@dataclass
class _Template:
    """A root's state as ``initialize_state`` built it, and the fingerprint of its derived attributes then."""

    state: ExperimentState
    derived: dict[str, Any]
    nbytes: int  # of the tensors in its copied (not derived) attributes


class Materialiser:
    """Builds, loads and encodes the states of one experiment in this process.

    Parameters
    ----------
    state_class : type of ExperimentState or None
        The experiment's state class (None: restored without it; nothing can be built).
    state_class_name : str
        Its recorded name, for the error that says so.
    allow_pickle : bool
        Whether values without a codec are pickled (and pickles loaded).
    store : Store
        Where stored states are read from.
    seeded : callable
        ``seeded(seed)`` is the context ``initialize_state`` runs in.
    """

    def __init__(self, state_class: type[ExperimentState] | None, state_class_name: str, allow_pickle: bool,
                 store: Store, seeded: Callable[[int], contextlib.AbstractContextManager[None]]):
        self.state_class = state_class
        self.state_class_name = state_class_name
        self.allow_pickle = allow_pickle
        self.store = store
        self.seeded = seeded
        self._templates: dict[str, _Template] = {}
        self._layouts: dict[tuple[str, Any], ExperimentState] = {}  # made from the root's template in _templates
        self._spoiled: dict[str, dict[str, Any]] = {}  # root id -> derived fingerprint before a body changed it
        self._stored: dict[str, Materialized] = {}
        self._plans: dict[Any, Any] = {}  # seed_copy's checks, per template object and stored structure

    def require_class(self) -> type[ExperimentState]:
        """Return the state class, or say how to provide it."""
        if self.state_class is None:
            raise StateDefinitionError(
                f"this experiment was restored without its state class {self.state_class_name!r}, so states "
                "cannot be declared or loaded; pass state_class= to Experiment.restore (or import the module "
                "that defines it first)."
            )
        return self.state_class

    # --------------------------------------------------------- materialise
    def new_state(self, properties: dict[str, Any], root_id: str, stored: Materialized | None = None
                  ) -> ExperimentState:
        """Return a fresh state: properties set, as ``initialize_state`` builds it under the root's seed.

        ``initialize_state`` is seeded with the root's seed, so it builds the
        same thing every time; it runs once per root and process, and later
        states are copies of that template (much cheaper than re-initialising
        a model). Derived attributes are shared with the template, not copied:
        like anything ``initialize_state`` rebuilds from the properties, they
        are read-only, and a recipe or function that changes one in place fails
        (see :meth:`prunelab.execution.engine.Engine.make`).

        With ``stored`` (the values the caller is about to decode into the
        state), the attributes decoded from scratch are left out of the copy,
        and the copy is taken from a template whose built objects already have
        the stored structure (see :meth:`_shaped`).
        """
        return self._new(properties, root_id, stored)[0]

    def _new(self, properties: dict[str, Any], root_id: str, stored: Materialized | None
             ) -> tuple[ExperimentState, frozenset[str]]:
        """:meth:`new_state`, and the attributes of ``stored`` already loaded into the copy (not to decode)."""
        cls = self.require_class()
        template = self._templates.pop(root_id, None)
        if template is None:
            template = self._initialise(cls, properties, root_id)
        try:
            source = template.state
            if stored is not None and stored.layout:
                source = self._shaped(source, root_id, stored)
            state, seeded = _copy_template(source, cls.DERIVED_ATTRIBUTES, stored, self._plans)
            while len(self._plans) > 4 * max(_TEMPLATES, len(self._templates)):
                self._plans.pop(next(iter(self._plans)))
        except (TypeError, copy.Error, RuntimeError):  # something initialize_state built cannot be copied
            self._forget(root_id)
            return template.state, frozenset()  # the template itself; the next state initialises again
        self._templates[root_id] = template  # most recently used last
        while (len(self._templates) > _TEMPLATES
               and sum(t.nbytes for t in self._templates.values()) > _cache_limit() // 4):
            self._forget(next(iter(self._templates)))
        return state, seeded

    def _initialise(self, cls: type[ExperimentState], properties: dict[str, Any], root_id: str) -> _Template:
        """Build a root's template with ``initialize_state`` under the root's seed, and fingerprint what it derived."""
        with self.seeded(derive_seed(root_id, "recipe")):
            state = build_state(cls, properties)
        template = _Template(state, derived_fingerprint(state),
                             _tensor_bytes(v for k, v in state.__dict__.items() if k not in cls.DERIVED_ATTRIBUTES))
        before = self._spoiled.get(root_id)
        if before is not None:
            rebuilt = [name for name, value in before.items() if template.derived.get(name) != value]
            if rebuilt:
                raise StateDefinitionError(
                    f"initialize_state of root {root_id[:12]} rebuilt derived attribute(s) "
                    f"{', '.join(map(repr, rebuilt))} with the values a recipe or function changed in place (see "
                    "its failure), not the ones it first built: it hands out a cached object (e.g. data loaded "
                    "once per process). Make initialize_state return a fresh object or a copy."
                )
            del self._spoiled[root_id]
        return template

    def _shaped(self, template: ExperimentState, root_id: str, stored: Materialized) -> ExperimentState:
        """The root's template with a stored state loaded into its built objects, once per layout.

        Loading gives a built object the stored structure (re-applying a pruning
        reparametrisation is most of the cost of loading a pruned model); later
        loads of states with that layout into a copy of this template change
        values only. The values it holds are never used: every attribute that
        is loaded is loaded again from the state being decoded.
        """
        key = (root_id, stored.layout)
        shaped = self._layouts.pop(key, None)
        if shaped is None:
            shaped = _copy_template(template, type(template).DERIVED_ATTRIBUTES, None)[0]
            self._decode_into(shaped, stored, set(stored.values) - stored.replaced)
        self._layouts[key] = shaped  # most recently used last
        while len(self._layouts) > 2 * max(_TEMPLATES, len(self._templates)):
            self._layouts.pop(next(iter(self._layouts)))
        return shaped

    def load_state(self, node_id: str, properties: dict[str, Any], root_id: str,
                   parent: Materialized | None = None) -> ExperimentState:
        """Return a private copy of a computed state (from memory when given, else the store)."""
        cls = self.require_class()
        if parent is None:
            parent = self.read_stored(node_id)
        for name in parent.values:
            if name not in cls.NONHASHED_ATTRIBUTES:
                raise CorruptStateError(
                    f"state {node_id[:12]}: stored attribute {name!r} is not declared in "
                    f"{cls.__qualname__}.NONHASHED_ATTRIBUTES; is this the right state class?"
                )
        state, seeded = self._new(properties, root_id, parent)
        self._decode_into(state, parent, [name for name in parent.values if name not in seeded])
        return state

    def _decode_into(self, state: ExperimentState, stored: Materialized, names: Iterable[str]) -> None:
        source = MemorySource(stored.blobs)
        for name in names:
            current = getattr(state, name, None)
            setattr(state, name, decode_value(stored.values[name], source, current=current,
                                              owner=f"attribute {name!r}", allow_pickle=self.allow_pickle))

    def read_stored(self, node_id: str) -> Materialized:
        """Read a stored state's values and blobs (verified), through a bounded per-process cache.

        Stored states never change, so parents shared by several children (on a
        worker, or when resuming) are read from disk once. The cache holds at most
        ``PRUNELAB_STATE_CACHE_MB`` (default 512) of blobs; a larger state is not kept.
        """
        cached = self._stored.pop(node_id, None)
        if cached is None:
            record = self.store.states.read_record(node_id)
            values = self.store.states.read_values(node_id, record)
            cached = Materialized(values, read_blobs(values, StoreSource(self.store)))
        size = sum(len(b.data) for b in cached.blobs.values())
        if size <= _cache_limit():
            self._stored[node_id] = cached  # most recently used last
            total = sum(sum(len(b.data) for b in m.blobs.values()) for m in self._stored.values())
            while total > _cache_limit():
                evicted = self._stored.pop(next(iter(self._stored)))
                total -= sum(len(b.data) for b in evicted.blobs.values())
        return cached

    def encode_state(self, state: ExperimentState) -> tuple[Materialized, bool]:
        """Encode a state's stored attributes; return them and whether anything was pickled."""
        values: dict[str, Any] = {}
        blobs: dict[str, Blob] = {}
        pickled = False
        for name in type(state).NONHASHED_ATTRIBUTES:
            if not hasattr(state, name):
                continue
            encoded: Encoded = encode_value(getattr(state, name), owner=f"attribute {name!r}",
                                            allow_pickle=self.allow_pickle)
            values[name] = encoded.spec
            blobs.update(encoded.blobs)
            pickled |= encoded.pickled
        return Materialized(values, blobs), pickled

    def changed_derived(self, root_id: str) -> list[str]:
        """The derived attributes of the root's template changed since it was built (the template dropped if any)."""
        template = self._templates.get(root_id)
        if template is None:  # the body's state was the template itself: it is shared with nothing
            return []
        now = derived_fingerprint(template.state)
        changed = [name for name, before in template.derived.items() if now.get(name) != before]
        if changed:
            self._spoiled.setdefault(root_id, template.derived)
            self._forget(root_id)
        return changed

    def _forget(self, root_id: str) -> None:
        """Drop a root's template and the copies shaped from it."""
        self._templates.pop(root_id, None)
        for key in [key for key in self._layouts if key[0] == root_id]:
            del self._layouts[key]


def _cache_limit() -> int:
    try:
        return int(float(os.environ.get("PRUNELAB_STATE_CACHE_MB", "512")) * 2**20)
    except ValueError:
        return 512 * 2**20


def read_blobs(values: dict[str, Any], source: BlobSource) -> dict[str, Blob]:
    """Read every blob a value spec references from ``source``: tensors as tensors, the rest as bytes."""
    blobs: dict[str, Blob] = {}
    stack: list[Any] = list(values.values())
    while stack:
        item = stack.pop()
        if not (isinstance(item, list) and item):
            continue
        tag = item[0]
        if tag == "tensor" and item[1] not in blobs:
            import torch

            tensor = source.tensor(item[1], item[2], item[3])
            data = tensor.reshape(-1).view(torch.uint8).numpy().data if tensor.numel() else memoryview(b"")
            blobs[item[1]] = Blob(item[1], data, tensor)
        elif tag in ("ndarray", "bytes", "pickle") and item[1] not in blobs:
            raw = source.raw(item[1])
            blobs[item[1]] = Blob(item[1], memoryview(raw), raw)
        else:
            stack.extend(x for x in item if isinstance(x, list))
    return blobs


_TEMPLATES = 4  # initialised states kept per process (one per root) at least; more while within a quarter of the cache


def _tensor_bytes(values: Iterable[Any]) -> int:
    """The bytes of the tensors in ``values``: modules' state dicts, and tensors in dicts, lists and tuples."""
    import torch

    total, stack = 0, list(values)
    while stack:
        value = stack.pop()
        if isinstance(value, torch.Tensor):
            total += value.nelement() * value.element_size()
        elif isinstance(value, torch.nn.Module):
            stack.extend(value.state_dict().values())
        elif isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, (list, tuple)):
            stack.extend(value)
    return total


def _copy_template(template: ExperimentState, derived: list[str], stored: Materialized | None,
                   plans: dict[Any, Any] | None = None) -> tuple[ExperimentState, frozenset[str]]:
    """Copy a freshly initialised state: derived attributes shared, the rest deep-copied.

    With ``stored`` (values about to be decoded into the copy), its replaced
    attributes are left out, and the ones loaded into are copied for loading:
    with the stored values taken in directly where loading would only copy
    them in (:func:`~prunelab.storage.copies.seed_copy`, its checks kept in
    ``plans`` for templates, which never change). Returns the copy and
    the attributes of ``stored`` it holds already.
    """
    shared = {name: template.__dict__[name] for name in derived if name in template.__dict__}
    memo = {id(value): value for value in shared.values()}
    state = type(template).__new__(type(template))
    replaced = frozenset() if stored is None else stored.replaced
    rest = {k: v for k, v in template.__dict__.items() if k not in shared and k not in replaced and k != NODE_KEY}
    seeded: frozenset[str] = frozenset()
    if stored is not None:
        source = MemorySource(stored.blobs)
        seeded = frozenset(name for name in set(stored.values) - replaced
                           if name in rest and seed_copy(rest[name], stored.values[name], source, memo, plans))
    loaded = frozenset() if stored is None else frozenset(stored.values) - replaced - seeded
    state.__dict__.update(copy_values(rest, memo, loaded))
    state.__dict__.update(shared)
    return state, seeded
