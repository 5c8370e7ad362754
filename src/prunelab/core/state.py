"""``ExperimentState``: what a node of the graph holds."""

from __future__ import annotations

import inspect
import sys
import warnings
from collections.abc import Iterable
from typing import Any, ClassVar

import xxhash

from .errors import PrunelabWarning, StateDefinitionError, UnknownNameError
from .identity import encode, encode_property, surrogate_at

__all__ = ["ExperimentState", "check_properties", "check_tag", "attribute_names", "derived_fingerprint", "bind_node",
           "build_state", "check_kept", "property_defaults", "NODE_KEY", "REQUIRED"]

#: How many levels of containers and objects inside a derived attribute :func:`derived_fingerprint` follows.
FINGERPRINT_DEPTH = 8
#: Where a state holds the id and tags of its node (set by the engine, never stored).
NODE_KEY = "_prunelab_node"


class _NodeField:
    """``state.id`` and ``state.tags``: the id and tags of the state's node, read-only and never stored."""

    def __init__(self, index: int, what: str):
        self.index = index
        self.what = what

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, state: ExperimentState | None, owner: type | None = None) -> Any:
        if state is None:
            return self
        node = state.__dict__.get(NODE_KEY)
        if node is None:
            raise AttributeError(
                f"state.{self.name} is {self.what}, known for a state of a node: inside a recipe's run() or a "
                f"function, or from node.restore(); this {type(state).__qualname__} belongs to no node."
            )
        value = node[self.index]
        return list(value) if isinstance(value, tuple) else value

    def __set__(self, state: ExperimentState, value: Any) -> None:
        raise AttributeError(
            f"state.{self.name} is read-only: it is {self.what}, set by prunelab and never stored. Tag nodes with "
            "`with exp.tag(...)` or exp.add_tag(); keep your own values in a declared attribute."
        )


def bind_node(state: ExperimentState, node_id: str, tags: Iterable[str]) -> ExperimentState:
    """Give ``state`` the id and (sorted) tags of its node, as ``state.id`` and ``state.tags``; return it."""
    state.__dict__[NODE_KEY] = (node_id, tuple(sorted(tags)))
    return state


class ExperimentState:
    """Base class of experiment states (model + data + metadata).

    Subclasses declare three kinds of attribute:

    ``PROPERTIES``
        Identity: hashed into the root's id and inherited by every child. A
        list of names, or a dict of names to defaults (a default enters the id
        exactly as if it were passed; :data:`REQUIRED` marks one without).
    ``NONHASHED_ATTRIBUTES``
        Stored and carried to children (the model, an optimizer, snapshots…).
    ``DERIVED_ATTRIBUTES``
        Rebuilt by :meth:`initialize_state` from the properties, never stored
        (datasets, data loaders).

    A child receives exactly what a store round trip of its parent gives: a new
    object whose properties are set, whose :meth:`initialize_state` rebuilds the
    structure, and into which the stored values are loaded. Any other attribute
    is dropped with a warning. Set ``NAME`` to keep ids when renaming the class.

    Inside a recipe's ``run()`` and a function, and on what
    ``node.restore()`` returns, ``state.id`` is the node's id and
    ``state.tags`` its tags (a sorted list); both are read-only and never
    stored or carried to children.

    Examples
    --------
    >>> import prunelab as pl
    >>> class State(pl.ExperimentState):
    ...     PROPERTIES = ["width"]
    ...     NONHASHED_ATTRIBUTES = ["weights"]
    ...     def initialize_state(self):
    ...         self.weights = [0.0] * self.width
    """

    PROPERTIES: ClassVar[list[str] | dict[str, Any]] = []
    NONHASHED_ATTRIBUTES: ClassVar[list[str]] = []
    DERIVED_ATTRIBUTES: ClassVar[list[str]] = []
    NAME: ClassVar[str | None] = None

    id = _NodeField(0, "the 32-hex id of the state's node")
    tags = _NodeField(1, "the sorted tags of the state's node")

    def initialize_state(self, **kwargs: Any) -> None:
        """Build the structure (models, data) from the properties; override in subclasses.

        It runs for a new root and again whenever a state is loaded or handed
        to a child, always seeded with the root's seed, before stored values
        are loaded into what it built. The properties are set on the state
        before it runs, and passed as keyword arguments too (those the
        signature accepts: all of them with ``**kwargs``); it must not change
        them.

        Parameters
        ----------
        **kwargs
            The state's properties, by name (the base class ignores them).
        """

    def __repr__(self) -> str:
        props = ", ".join(f"{p}={getattr(self, p, '?')!r}" for p in self.PROPERTIES)
        return f"{type(self).__qualname__}({props})"


def attribute_names(state_class: type[ExperimentState]) -> set[str]:
    """Return every declared attribute name of a state class."""
    return set(state_class.PROPERTIES) | set(state_class.NONHASHED_ATTRIBUTES) | set(state_class.DERIVED_ATTRIBUTES)


def validate_state_class(state_class: Any) -> type[ExperimentState]:
    """Return ``state_class`` if it is a well-formed ExperimentState subclass."""
    if not (isinstance(state_class, type) and issubclass(state_class, ExperimentState)):
        raise StateDefinitionError(
            f"state_class must be a subclass of pl.ExperimentState, got {state_class!r}."
        )
    kinds = {
        "PROPERTIES": state_class.PROPERTIES,
        "NONHASHED_ATTRIBUTES": state_class.NONHASHED_ATTRIBUTES,
        "DERIVED_ATTRIBUTES": state_class.DERIVED_ATTRIBUTES,
    }
    seen: dict[str, str] = {}
    for kind, names in kinds.items():
        if isinstance(names, str) or not all(isinstance(n, str) and n.isidentifier() for n in names):
            also = " (or, for PROPERTIES, a dict of names to defaults)" if kind == "PROPERTIES" else ""
            raise StateDefinitionError(f"{state_class.__qualname__}.{kind} must be a list of attribute names{also}.")
        for name in names:
            if name in ("id", "tags"):
                raise StateDefinitionError(
                    f"{state_class.__qualname__}.{kind} declares {name!r}, which prunelab reserves: state.{name} "
                    f"is the {name} of the state's node. Rename the attribute."
                )
            if name in seen:
                raise StateDefinitionError(
                    f"{state_class.__qualname__} declares {name!r} in both {seen[name]} and {kind}; "
                    "each attribute has one kind."
                )
            seen[name] = kind
    return state_class


class _Required:
    """The default of a property that has none: ``PROPERTIES = {"name": pl.REQUIRED, "lr": 0.1}`` must be given a name."""

    def __repr__(self) -> str:
        return "REQUIRED"

    def __reduce__(self) -> str:
        return "REQUIRED"  # unpickles as this module's one instance


#: The default of a property that must be given (in a ``PROPERTIES`` dict of names to defaults).
REQUIRED = _Required()


class Added:
    """The default of a property added to a class after states of it were stored; see :func:`added`."""

    def __init__(self, default: Any):
        self.default = default

    def __repr__(self) -> str:
        return f"added({self.default!r})"


def added(default: Any) -> Added:
    """Declare a property added to a class whose states may already be stored, so that they keep their ids.

    ``PROPERTIES = {"lr": 0.1, "warmup": pl.added(0)}``: a state whose
    ``warmup`` is left at ``0`` is as if the property did not exist: it has
    the id (and the record, and ``node.properties``) it had before ``warmup``
    was added, so an experiment stored before the change is still found, not
    recomputed, and its states group with new ones; the state's attribute
    holds the default. Any other value enters the id as every property does. The default's identity encoding is what is
    compared, so ``0`` and ``0.0`` differ as they do in ids.

    Parameters
    ----------
    default : Any
        The property's default, hashable as any property is.

    Returns
    -------
    Added
        The marker, to put as the property's default in ``PROPERTIES``.
    """
    return Added(default)


def property_defaults(declared: list[str] | dict[str, Any]) -> dict[str, Any]:
    """The defaults of a ``PROPERTIES`` declaration (a dict of names to defaults but :data:`REQUIRED`; a list has none)."""
    if not isinstance(declared, dict):
        return {}
    return {k: v.default if isinstance(v, Added) else v for k, v in declared.items() if v is not REQUIRED}


def identity_properties(declared: list[str] | dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """The properties that enter an id: all of ``values`` but the :func:`added` ones left at their defaults."""
    if not isinstance(declared, dict):
        return values
    left = {k for k, v in added_defaults(declared).items() if k in values and encode(values[k]) == encode(v)}
    return {k: v for k, v in values.items() if k not in left} if left else values


def added_defaults(declared: list[str] | dict[str, Any]) -> dict[str, Any]:
    """The defaults of the properties a ``PROPERTIES`` declaration marks :func:`added`."""
    return {k: v.default for k, v in declared.items() if isinstance(v, Added)} if isinstance(declared, dict) else {}


def check_properties(owner: str, declared: list[str], given: dict[str, Any],
                     defaults: dict[str, Any] | None = None) -> dict[str, Any]:
    """Return the complete property map, refusing missing and unknown names."""
    defaults = defaults or {}
    unknown = sorted(set(given) - set(declared))
    if unknown:
        import difflib

        hints = [difflib.get_close_matches(u, declared, n=1) for u in unknown]
        hint = "; ".join(f"did you mean {h[0]!r} for {u!r}?" for u, h in zip(unknown, hints) if h)
        raise UnknownNameError(
            f"{owner} has no propert{'y' if len(unknown) == 1 else 'ies'} {', '.join(map(repr, unknown))}. "
            f"Its properties are {declared}. {hint}".rstrip()
        )
    missing = [p for p in declared if p not in given and p not in defaults]
    if missing:
        raise StateDefinitionError(
            f"{owner} is missing propert{'y' if len(missing) == 1 else 'ies'} {', '.join(map(repr, missing))}; "
            f"pass every one of {declared}."
        )
    return {p: given[p] if p in given else defaults[p] for p in declared}


def _accepted(method: Any, properties: dict[str, Any]) -> dict[str, Any]:
    """The properties ``method`` (an ``initialize_state``) accepts as keyword arguments: all with ``**kwargs``."""
    try:
        parameters = inspect.signature(method).parameters.values()
    except (TypeError, ValueError):  # no signature to read (a builtin): pass nothing, as before
        return {}
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        return dict(properties)
    names = {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return {k: v for k, v in properties.items() if k in names}


_GONE = object()


def check_kept(state: ExperimentState, properties: dict[str, Any], who: str, advice: str) -> None:
    """Raise, naming ``who`` (and ending with ``advice``), if ``state`` no longer holds the ``properties`` it was given."""
    owner = type(state).__qualname__
    for prop, value in properties.items():
        before = encode_property(owner, prop, value)
        after = getattr(state, prop, _GONE)
        if after is _GONE or encode_property(owner, prop, after) != before:
            raise StateDefinitionError(
                f"{who} changed state property {prop!r} (from {value!r} to "
                f"{'<deleted>' if after is _GONE else repr(after)}); properties are the state's identity.{advice}"
            )



def build_state(cls: type[ExperimentState], properties: dict[str, Any]) -> ExperimentState:
    """Return a new ``cls`` state: properties set, then built by ``initialize_state`` (seed the call).

    ``initialize_state`` receives the properties it accepts as keyword
    arguments (all of them with ``**kwargs``, as dagger passed them), and must
    not change them: that is refused here, naming it. A property :func:`added`
    after a state was stored (so its record lacks it) is given its default.
    """
    properties = {**added_defaults(cls.PROPERTIES), **properties}
    state = cls.__new__(cls)
    for name, value in properties.items():
        setattr(state, name, value)
    state.initialize_state(**_accepted(state.initialize_state, properties))
    check_kept(state, properties, f"{cls.__qualname__}.initialize_state", " It builds from them: read them, never "
               "assign them (they are passed to it as keyword arguments too).")
    return state


def check_tag(tag: Any) -> str:
    """Return ``tag`` if it is a non-empty str of UTF-8 text (it is stored and printed), else raise naming it."""
    if not isinstance(tag, str) or not tag:
        raise StateDefinitionError(f"a tag must be a non-empty str, got {tag!r}.")
    index = surrogate_at(tag)
    if index is not None:
        raise StateDefinitionError(
            f"tag {tag!a} holds a lone surrogate ({tag[index]!a} at index {index}), which is not UTF-8 text and "
            "cannot be stored; use a str without surrogates."
        )
    return tag


def warn_undeclared(state: ExperimentState, where: str) -> list[str]:
    """Warn about (and return) attributes a state holds but does not declare."""
    extra = sorted(set(vars(state)) - attribute_names(type(state)) - {NODE_KEY})
    if extra:
        warnings.warn(
            f"{where} left undeclared attribute(s) {', '.join(map(repr, extra))} on the state; they are "
            f"dropped (children receive what a store round trip gives). Declare them in "
            f"{type(state).__qualname__}.NONHASHED_ATTRIBUTES to keep them, or DERIVED_ATTRIBUTES if "
            "initialize_state rebuilds them.",
            PrunelabWarning,
            stacklevel=2,
        )
    return extra


def derived_fingerprint(state: ExperimentState) -> dict[str, Any]:
    """Return a cheap fingerprint of each derived attribute, to tell whether one was changed in place.

    Tensors, arrays and bytearrays count by dtype, shape and an xxh3 checksum
    of their bytes; a ``torch.Generator`` by its state; numbers, str and bytes
    by value; lists, tuples, dicts and sets item by item; an object with
    ``state_dict()``/``load_state_dict()`` by its state dict; any other object
    by its public attributes (private ones, often caches, are left out). It
    follows :data:`FINGERPRINT_DEPTH` levels, each object once; what lies
    deeper, and anything else, is not covered.
    """
    values = vars(state)
    return {name: _fingerprint(values[name], FINGERPRINT_DEPTH, {})
            for name in type(state).DERIVED_ATTRIBUTES if name in values}


def _fingerprint(value: Any, depth: int, seen: dict[int, Any]) -> Any:
    """Fingerprint ``value``; ``seen`` holds what was visited (alive, so that no id is reused meanwhile)."""
    if value is None or isinstance(value, (bool, int, str, bytes)):
        return value
    if isinstance(value, (float, complex)):
        return repr(value)  # exact, and NaN equals itself
    if depth == 0 or id(value) in seen:
        return "..."
    seen[id(value)] = value
    deeper = depth - 1
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, *[_fingerprint(v, deeper, seen) for v in value])
    if isinstance(value, dict):
        return ("dict", *[(_fingerprint(k, deeper, seen), _fingerprint(v, deeper, seen)) for k, v in value.items()])
    if isinstance(value, (set, frozenset)):
        return ("set", *sorted(repr(_fingerprint(v, deeper, seen)) for v in value))
    array = _array_fingerprint(value)
    if array is not None:
        return array
    if callable(getattr(value, "state_dict", None)) and callable(getattr(value, "load_state_dict", None)):
        return (type(value).__qualname__, _fingerprint(value.state_dict(), deeper, seen))
    attributes = getattr(value, "__dict__", None)
    if not isinstance(attributes, dict):
        return type(value).__qualname__
    public = [(k, _fingerprint(v, deeper, seen)) for k, v in attributes.items() if not k.startswith("_")]
    return (type(value).__qualname__, *public)


def _array_fingerprint(value: Any) -> tuple[Any, ...] | None:
    """Dtype, shape and checksum of a tensor, array or bytearray; a generator's state; None for anything else."""
    if isinstance(value, bytearray):
        return ("bytearray", xxhash.xxh3_64_intdigest(value))
    torch = sys.modules.get("torch")  # a tensor exists only once torch is imported; never import it here
    if torch is not None:
        if isinstance(value, torch.Generator):
            return ("generator", _array_fingerprint(value.get_state()))
        if isinstance(value, torch.Tensor):
            data = value.detach()
            if data.layout != torch.strided or data.is_meta:
                return ("tensor", str(data.dtype), tuple(data.shape))
            flat = data.cpu().resolve_conj().resolve_neg().contiguous().reshape(-1).view(torch.uint8)
            return ("tensor", str(data.dtype), tuple(data.shape), xxhash.xxh3_64_intdigest(flat.numpy()))
    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(value, numpy.ndarray) and not value.dtype.hasobject:
        flat = numpy.ascontiguousarray(value).reshape(-1).view(numpy.uint8)
        return ("ndarray", value.dtype.str, value.shape, xxhash.xxh3_64_intdigest(flat))
    return None
