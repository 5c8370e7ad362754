"""Declaring states: what a script declared, and the id and record known in advance of each new state."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterable, Iterator
from typing import Any

from ..core.display import to_display
from ..core.errors import StateDefinitionError, UnhashableValueError
from ..core.identity import child_id, class_name, encode_property, root_id
from ..core.nodes import Node
from ..core.function import Function
from ..core.recipe import Recipe, fingerprint
from ..core.records import StateRecord
from ..core.state import ExperimentState, check_properties, check_tag, identity_properties, property_defaults
from ..storage.codecs import encode_value

__all__ = ["Declarations", "declare_child", "declare_root", "property_specs"]


class Declarations:
    """What a script declared in this process: its nodes, the tags in force, and its recipes and functions by name.

    Attributes
    ----------
    nodes : dict of str to Node
        Every node declared (by recipe, root or function), in order.
    """

    def __init__(self) -> None:
        self.nodes: dict[str, Node] = {}
        self._tags: list[str] = []
        self._recipe_classes: dict[str, type] = {}
        self._functions: dict[str, Function] = {}

    @contextlib.contextmanager
    def tagged(self, name: str | Iterable[str]) -> Iterator[None]:
        """Put one tag, or several, in force for the block (see :meth:`prunelab.Experiment.tag`)."""
        names = [check_tag(name)] if isinstance(name, str) else [check_tag(n) for n in _tag_list(name)]
        self._tags.extend(names)
        try:
            yield
        finally:
            del self._tags[len(self._tags) - len(names):]

    def add(self, node: Node) -> Node:
        """Count ``node`` as declared, with the tags in force; return it."""
        for tag in self._tags:
            node.add_tag_in_memory(tag)
        self.nodes.setdefault(node.id, node)
        return node

    def register_recipe(self, cls: type[Recipe], name: str) -> None:
        """Note the recipe class named ``name`` (its :func:`class_name`), refusing a second class of that name."""
        known = self._recipe_classes.setdefault(name, cls)
        if known is not cls:
            raise StateDefinitionError(
                f"two different recipe classes are named {name!r} ({known.__module__}.{known.__qualname__} and "
                f"{cls.__module__}.{cls.__qualname__}); set NAME on one of them so their ids differ."
            )

    def function(self, function: Function, node: Node) -> Node:
        """Declare ``function`` on ``node`` (a copy: its name and version now are what runs); return the node."""
        known = self._functions.setdefault(function.name, function)
        if known is not function and getattr(known.fn, "__code__", None) is not getattr(function.fn, "__code__", 0):
            raise StateDefinitionError(
                f"two different functions are named {function.name!r} ({known.fn.__module__}."
                f"{known.fn.__qualname__} and {function.fn.__module__}.{function.fn.__qualname__}); "
                "give one another name with @pl.function(name=...)."
            )
        node.functions[function.name] = copy.copy(function)
        return self.add(node)

    def untagged(self, stored: dict[str, set[str]]) -> list[list[str]]:
        """The tag assignments of declared nodes not yet stored (given the stored tags), as tag log entries."""
        return [["+", node.id, tag] for node in self.nodes.values() for tag in sorted(node._tags or ())
                if tag not in stored.get(node.id, set())]


def _tag_list(names: Any) -> list[Any]:
    """The tags of an iterable given to :meth:`Experiment.tag`, or an error saying what a tag is."""
    try:
        return list(names)
    except TypeError:
        raise StateDefinitionError(f"a tag must be a non-empty str (or a list of them), got {names!r}.") from None


def declare_root(state_class: type[ExperimentState], properties: dict[str, Any]
                 ) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """The id, property values and pending record of a root state.

    Parameters
    ----------
    state_class : type of ExperimentState
        The experiment's state class.
    properties : dict
        The properties given (defaults are filled in; each is checked to be hashable).

    Returns
    -------
    tuple of (str, dict, dict)
        The root's id, its property values, and its record as known before it runs.
    """
    owner = class_name(state_class)
    values = check_properties(owner, list(state_class.PROPERTIES), properties, property_defaults(state_class.PROPERTIES))
    for name, value in values.items():
        encode_property(owner, name, value)
    values = identity_properties(state_class.PROPERTIES, values)  # added ones at their defaults: not there at all
    node_id = root_id(owner, values)
    shown = {k: to_display(v) for k, v in values.items()}
    return node_id, values, StateRecord.declared_root(node_id, owner, shown, property_specs(values))


def declare_child(recipe: Recipe, name: str, parent: Node) -> tuple[str, dict[str, Any]]:
    """The id and pending record of the state ``recipe`` makes from ``parent``.

    Parameters
    ----------
    recipe : Recipe
        The recipe as applied (its properties and options read, see :meth:`Recipe.applied`).
    name : str
        Its class's name (:func:`~prunelab.core.identity.class_name`).
    parent : Node
        The node it is applied to.

    Returns
    -------
    tuple of (str, dict)
        The child's id, and its record as known before it runs (lineage inherited and extended).
    """
    cls = type(recipe)
    every = recipe.properties
    properties = identity_properties(cls.PROPERTIES, every)  # added ones at their defaults: not recorded either
    node_id = child_id(parent.id, name, cls.VERSION, properties)
    parent_record = parent.record
    shown = {k: to_display(v) for k, v in properties.items()}
    lineage = dict(parent_record.get("lineage") or {})
    for key, source in cls.LINEAGE.items():
        if isinstance(source, str) and source in every:
            if every[source] is not None:  # a property left at None keeps the inherited value
                lineage[key] = to_display(every[source])
        else:
            lineage[key] = to_display(source)
    entry = {"name": name, "version": cls.VERSION, "properties": shown, "property_specs": property_specs(properties),
             "options": {k: to_display(v) for k, v in recipe.options.items()}, "fingerprint": fingerprint(cls),
             "module": cls.__module__, "qualname": cls.__qualname__}
    return node_id, StateRecord.declared_child(node_id, parent.id, parent_record, entry, lineage)


def property_specs(values: dict[str, Any]) -> dict[str, Any]:
    """Value specs that decode to the properties exactly (None where only the readable form is kept)."""
    specs: dict[str, Any] = {}
    for name, value in values.items():
        try:
            encoded = encode_value(value, owner=f"property {name!r}", allow_stateful=False)
        except (StateDefinitionError, UnhashableValueError):
            encoded = None  # Enum, dataclass: identity-encoded, shown in readable form only
        specs[name] = encoded.spec if encoded is not None and not encoded.blobs else None  # no blobs for properties
    return specs
