"""Docstrings: every example runs (numpydoc ``Examples`` are doctests), every public name is documented, and the
numpydoc sections of the public API agree with the signatures (as scikit-learn's docstring test checks).

The public API is what ``tests/test_public_api.py`` lists: each function, each class that defines its own
constructor (its parameters in the class docstring; an error class taking a message does not) and each
public method of a public class (its own, and those of its prunelab base classes). Recipes and functions
that prunelab ships are left out: their source is their fingerprint, so editing a docstring of theirs would
make every state they made show as stale (``tests/recipes/test_recipes.py`` pins those fingerprints).
"""

import builtins
import doctest
import importlib
import inspect
import pkgutil
import warnings

import pytest
from numpydoc.docscrape import ClassDoc, FunctionDoc

import prunelab
from test_public_api import SURFACE

MODULES = sorted(m.name for m in pkgutil.walk_packages(prunelab.__path__, "prunelab."))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0


@pytest.mark.parametrize("name", MODULES)
def test_public_names_have_docstrings(name):
    module = importlib.import_module(name)
    assert module.__doc__, f"{name} has no module docstring"
    for attr in getattr(module, "__all__", []):
        value = getattr(module, attr)
        if callable(value):
            assert value.__doc__, f"{name}.{attr} has no docstring"


def _fingerprinted(obj: object) -> bool:
    """Whether ``obj`` is a recipe class or a function whose source identifies the states and results it makes."""
    if isinstance(obj, prunelab.core.Function):
        return True
    return inspect.isclass(obj) and issubclass(obj, prunelab.Recipe) and obj is not prunelab.Recipe


def _public_api() -> dict[str, object]:
    """Every public function, class and method, by the dotted name it is exported under (each object once)."""
    found: dict[str, object] = {}
    seen: set[int] = set()
    for module_name, names in SURFACE.items():
        module = importlib.import_module(module_name)
        for name in names:
            obj = getattr(module, name)
            if id(obj) in seen or not callable(obj) or _fingerprinted(obj):
                continue
            seen.add(id(obj))
            if not inspect.isclass(obj) or "__init__" in vars(obj):
                found[f"{module_name}.{name}"] = obj
            if inspect.isclass(obj):
                for attr in dir(obj):
                    member = inspect.getattr_static(obj, attr)
                    function = member.__func__ if isinstance(member, (classmethod, staticmethod)) else member
                    if (not attr.startswith("_") and inspect.isfunction(function)
                            and function.__module__.startswith("prunelab")):  # its own and its prunelab bases'
                        found[f"{module_name}.{name}.{attr}"] = function
    return found


API = _public_api()


def _signature_names(obj: object) -> list[str]:
    """The parameters a docstring must list: the signature's, as ``*args``/``**kwargs`` spell them."""
    marks = {inspect.Parameter.VAR_POSITIONAL: "*", inspect.Parameter.VAR_KEYWORD: "**"}
    parameters = inspect.signature(obj).parameters.values()  # type: ignore[arg-type]
    return [marks.get(p.kind, "") + p.name for p in parameters if p.name not in ("self", "cls")]


def _documented(doc: FunctionDoc | ClassDoc) -> list[str]:
    """The names of a docstring's ``Parameters`` section (``a, b : int`` documents two)."""
    return [name.strip() for entry in doc["Parameters"] for name in entry.name.split(",")]


def _doc(obj: object) -> FunctionDoc | ClassDoc:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an unknown section or a malformed one is a defect of the docstring
        return ClassDoc(obj, config={"show_class_members": False}) if inspect.isclass(obj) else FunctionDoc(obj)


def test_the_public_api_is_found():
    assert {"prunelab.Experiment", "prunelab.Experiment.run", "prunelab.prune.prune_model",
            "prunelab.analysis.class_frame", "prunelab.NodeSet.filter"} <= set(API)
    assert len(API) > 100 and "prunelab.Experiment.gc" in API  # a method of a base class (Upkeep) counts


@pytest.mark.parametrize("name", sorted(API))
def test_parameters_sections_match_the_signatures(name):
    obj = API[name]
    want = _signature_names(obj)
    got = _documented(_doc(obj))
    where = "the class docstring (its constructor)" if inspect.isclass(obj) else "its docstring"
    assert got == want, (f"{name}: {where} documents the parameters {got}, its signature has {want}; list each "
                         "parameter of the signature, in order, in a numpydoc Parameters section")


@pytest.mark.parametrize("name", sorted(n for n, obj in API.items() if not inspect.isclass(obj)))
def test_a_function_that_returns_something_has_a_returns_section(name):
    obj = API[name]
    annotation = inspect.signature(obj).return_annotation  # type: ignore[arg-type]
    if annotation in (None, "None", inspect.Signature.empty) or name.endswith(".run") and "Recipe" in name:
        return  # nothing returned, or Recipe.run overridden everywhere (it returns the state it is given)
    doc = _doc(obj)
    assert doc["Returns"] or doc["Yields"], f"{name} returns {annotation} but has no Returns section"


@pytest.mark.parametrize("name", sorted(API))
def test_raises_sections_name_real_exceptions(name):
    for entry in _doc(API[name])["Raises"]:
        for label in (part.strip() for part in (entry.type or entry.name).split(",")):
            error = getattr(prunelab, label, None) or getattr(prunelab.prune, label, None) or \
                getattr(prunelab.zoo, label, None) or getattr(prunelab.analysis, label, None) or \
                getattr(builtins, label, None)
            assert isinstance(error, type) and issubclass(error, BaseException), (
                f"{name}: its Raises section names {label!r}, which is not an exception prunelab or Python defines")
