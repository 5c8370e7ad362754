"""``prunelab.compat.dagger``: dagger's spellings, and dagger's own tests (tests/test_dag.py) ported to it.

The ported tests keep dagger's names and structure; where prunelab differs from dagger on purpose (README,
"Coming from dagger") a comment says what was adapted and why. dagger's tests of its internals (pickling,
``__getstate__``, ``sha()``, save hooks, ``new_state``, ``exp.leaves``, ``exp.tags``) have no counterpart here.
"""

from __future__ import annotations

import copy
import operator
import pickle
import random
import shutil

import pytest

import prunelab
import prunelab.compat.dagger as dg
import prunelab.core


class EmptyState(dg.ExperimentState):
    PROPERTIES = ["a", "B"]
    NONHASHED_ATTRIBUTES = ["c"]

    def initialize_state(self, **kwargs):
        self.c = None  # dagger set every declared attribute to None itself; here initialize_state builds them


class OpRecipe(dg.Recipe):
    # dagger passed the operator itself (``mul``); a function has no identity encoding, so the recipe takes its
    # name and looks it up in run(), as prunelab's error message for such a property advises.
    PROPERTIES = ["op", "x", "stochastic"]

    def __init__(self, op, x, stochastic=False):
        self.op = op
        self.x = x
        self.stochastic = stochastic

    def run(self, s):
        s.c = getattr(operator, self.op)(s.a, self.x)
        if self.stochastic:
            s.c *= random.gauss(0, 1)
        return s


# ------------------------------------------------------------------ ported from dagger's tests/test_dag.py
class TestExperimentState:

    def test_state_lazy_load(self, exp_dir):
        exp = dg.Experiment(exp_dir, EmptyState)
        OpRecipe("mul", 2.0)(exp.spawn_new_tree(a=1.0, B="b"))
        exp.run(quiet=True)

        # By default, slim=True: nothing is loaded until lazy_load restores it, and it is deflated after
        exp = dg.Experiment.restore(exp_dir, EmptyState)
        for node in exp.graph.nodes:
            with pytest.raises(AttributeError, match="not loaded"):
                node.a
            with node.lazy_load():  # as in dagger, the block reads the state's attributes through the node
                assert node.a == 1.0
            with pytest.raises(AttributeError, match="not loaded"):  # deflated
                node.a

        # With slim=False every state is loaded already, and lazy_load still deflates it
        exp = dg.Experiment.restore(exp_dir, EmptyState, slim=False)
        for node in exp.graph.nodes:
            assert node.a == 1.0
            with node.lazy_load():
                assert node.a == 1.0
            with pytest.raises(AttributeError, match="not loaded"):
                node.a


class TestExperiment:

    def test_experiment_init(self, exp_dir):
        # dagger's exp.root is None before spawn_new_tree; prunelab's root says there is none
        exp = dg.Experiment(exp_dir, dg.ExperimentState)
        assert exp_dir.is_dir()
        with pytest.raises(dg.UnknownNameError, match="has no root yet; declare one with exp.spawn_new_tree"):
            exp.root

    def test_spawn_new_tree_error(self, exp_dir):
        # dagger raised KeyError for a missing property; prunelab's error names them (a ValueError)
        exp = dg.Experiment(exp_dir, EmptyState)
        with pytest.raises(dg.StateDefinitionError, match="missing properties 'a', 'B'"):
            exp.spawn_new_tree()

    def test_spawn_new_tree(self, exp_dir):
        exp = dg.Experiment(exp_dir, EmptyState)
        # dagger ignored an undeclared argument (c); prunelab refuses it, so it is not passed
        root = exp.spawn_new_tree(a="first", B="second")
        assert type(root) is dg.ExperimentStatePromise

        root_state = root.get()
        assert exp.root is root  # dagger's exp.root is the state; here it is the node, whose get() is the state
        assert exp.root.get() is root_state
        assert isinstance(root_state, EmptyState)
        assert root_state.a == "first"
        assert root_state.B == "second"
        assert root_state.c is None


class TestRecipe:

    def test_bad_recipe(self, exp_dir):
        # This should fail because run does not return a state! (dagger raised RuntimeError; RunError is one)
        class Bad(dg.Recipe):

            def run(self, s):
                return None

        exp = dg.Experiment(exp_dir, EmptyState)
        root = exp.spawn_new_tree(a=10.0, B="notused")
        with pytest.raises(RuntimeError, match="Bad.run returned NoneType"):
            Bad()(root).get()

    def test_spawn_new_tree_recipe(self, exp_dir):
        exp = dg.Experiment(exp_dir, EmptyState)
        root = exp.spawn_new_tree(a=10.0, B="notused")

        # This recipe sets the non-hashed attribute `c`, so we check that we do state.c = 10 * 1.5
        op = OpRecipe("mul", 1.5)
        result = op(root)
        out = result.get()  # dagger's get() gave a slim state to restore; here it is restored already

        assert out.c == 15.0

    def test_cache_works(self, exp_dir):
        exp = dg.Experiment(exp_dir, EmptyState)
        root = exp.spawn_new_tree(a=10.0, B="notused")

        # In the stochastic version of this, the output of the Op would change if `run` were called again. To
        # make sure we're using the cached nodes, we check that multiple runs yield the same output.
        op = OpRecipe("mul", 0.4, stochastic=True)
        value = op(root).get().c

        again = dg.Experiment(exp_dir, EmptyState)
        assert op(again.spawn_new_tree(a=10.0, B="notused")).get().c == value

        # Remove all cached states and rebuild the experiment. dagger asserted that the value changes; prunelab
        # seeds each state from its id, so a wiped directory recomputes the same value.
        shutil.rmtree(exp_dir)
        exp = dg.Experiment(exp_dir, EmptyState)
        result = op(exp.spawn_new_tree(a=10.0, B="notused"))
        assert result.status == "declared"
        assert result.get().c == value

    def test_same_recipe(self, exp_dir):
        exp = dg.Experiment(exp_dir, EmptyState)
        root = exp.spawn_new_tree(a=10.0, B="notused")
        op = OpRecipe("mul", 0.4, stochastic=False)

        # Since this is the same op on the root, these three ops result in 3 identical states: one node
        # (dagger made three delayed leaves and stored one state; prunelab declares one node)
        new_state_a = op(root)
        new_state_b = op(root)
        new_state_c = op(root)
        assert new_state_a is new_state_b is new_state_c
        exp.run(quiet=True)
        exp = dg.Experiment.restore(exp_dir, EmptyState)
        assert len(exp.graph.nodes) == 2  # root + new state

        # A new experiment object on the same directory finds both stored: get() computes nothing
        exp1 = dg.Experiment(exp_dir, EmptyState)
        root1 = exp1.spawn_new_tree(a=10.0, B="notused")
        new_state1 = op(root1)
        assert not exp1.plan(targets=[new_state1]).tasks
        assert new_state1.get().c == pytest.approx(4.0)


class TestFunction:

    def test_function(self, exp_dir):
        exp = dg.Experiment(exp_dir, EmptyState)
        root = exp.spawn_new_tree(a=1, B=2)
        state1 = OpRecipe("mul", 0.4)(root)

        # dagger named results by nothing; a prunelab function needs an identifier for a name, which a lambda's
        # "<lambda>" is not, so it is passed
        function = dg.Function(lambda s: print("c = {}".format(s.c)), name="show_c")
        state2 = function(state1)

        # The state should not be modified by the function because functions are non state mutating operations
        assert state2 == state1
        assert state2 is state1

    def test_function_exception(self, exp_dir):
        """When the function fails, its error is raised upon running the graph (not at graph definition time).

        dagger let the AttributeError itself propagate; prunelab's RunError holds it (its traceback per failed
        node) after every other branch has run.
        """
        exp = dg.Experiment(exp_dir, EmptyState)
        root = exp.spawn_new_tree(a=1, B=2)

        function = dg.Function(lambda s: print("d = {}".format(s.d)), name="show_d")

        function(root)
        with pytest.raises(dg.RunError, match="AttributeError") as info:
            exp.run(quiet=True)
        assert "'EmptyState' object has no attribute 'd'" in info.value.failed[f"{root.id} function show_d"]

    def test_function_safe_op(self, exp_dir):
        """Whether the function fails or succeeds, the state it acts on is left as it was.

        dagger restored and deflated the root around the op; a prunelab function gets a private copy, so the
        stored root (and the node's loaded state) never change.
        """
        exp = dg.Experiment(exp_dir, EmptyState)
        exp.spawn_new_tree(a=1, B=2)
        exp.run(quiet=True)
        exp = dg.Experiment.restore(exp_dir, EmptyState)

        def bad(s):
            s.c = "changed"
            raise AttributeError("bad")

        def good(s):
            s.c = "changed"
            return s.a

        dg.Function(bad)(exp.root)
        with pytest.raises(dg.RunError, match="AttributeError: bad"):
            exp.run(quiet=True)
        assert exp.root.restore().c is None

        dg.Function(good)(exp.root)
        exp.run(quiet=True, raise_on_failure=False)
        assert exp.root.results["good"] == 1
        assert exp.root.deflate().restore().c is None


class TestStaticExperimentTree:

    def test_tag_filtering(self, exp_dir):
        exp = dg.Experiment(exp_dir, EmptyState)
        # dagger ignored the undeclared argument c; prunelab refuses it, so it is not passed
        root = exp.spawn_new_tree(a=1.0, B=2.0)
        op_add = OpRecipe("add", 1.2)
        with exp.tag("ops"):
            with exp.tag("phase:mul"):
                x1 = OpRecipe("mul", 0.4)(root)
                x2 = OpRecipe("mul", 0.5)(root)
            with exp.tag("phase:add"):
                op_add(x1)
                op_add(x2)
        exp.run(quiet=True)
        exp = dg.Experiment.restore(exp_dir, EmptyState)
        assert len(exp.graph.nodes.filter("op*")) == 4
        assert len(exp.graph.nodes.filter("phase:mul") | exp.graph.nodes.filter("phase:add")) == 4
        assert len(exp.graph.nodes.filter("!phase:mul")) == 3
        assert len(exp.graph.nodes.filter("ops") & exp.graph.nodes.filter("!phase:add")) == 2

        # Cannot compose other objects with a nodeset
        with pytest.raises(TypeError):
            exp.graph.nodes.filter("phase:mul") | "hi"
        with pytest.raises(TypeError):
            exp.graph.nodes.filter("phase:*") & "!hi"


# ----------------------------------------------------------------------------------- the spellings themselves
def _two_level(exp_dir):
    """An experiment with one root, two children and a grandchild, run; returns (exp, root, x1, x2, y1)."""
    exp = dg.Experiment(exp_dir, EmptyState)
    root = exp.spawn_new_tree(a=2.0, B="b")
    x1, x2 = OpRecipe("mul", 3.0)(root), OpRecipe("add", 1.0)(root)
    y1 = OpRecipe("mul", 5.0)(x1)
    return exp, root, x1, x2, y1


def test_the_module_is_prunelab_with_dagger_names():
    for name in prunelab.__all__:
        assert name in dg.__all__, name
        if name not in ("Experiment", "Node"):
            assert getattr(dg, name) is getattr(prunelab, name), name
    assert issubclass(dg.Experiment, prunelab.Experiment) and issubclass(dg.Node, prunelab.Node)
    assert dg.ExperimentStatePromise is dg.Node
    assert dg.Function is prunelab.core.Function
    assert sorted(set(dg.__all__) - set(prunelab.__all__)) == ["ExperimentStatePromise", "Function"]
    for name in dg.__all__:
        assert getattr(dg, name) is not None


def test_every_node_and_a_restored_experiment_have_the_spellings(exp_dir):
    exp, root, x1, x2, y1 = _two_level(exp_dir)
    assert all(isinstance(n, dg.Node) for n in (root, x1, x2, y1))
    assert isinstance(exp.graph, dg.Graph)
    exp.run(quiet=True)
    restored = dg.Experiment.restore(exp_dir, EmptyState)
    assert type(restored) is dg.Experiment and isinstance(restored.graph, dg.Graph)
    assert all(isinstance(n, dg.Node) for n in restored.graph.nodes)
    assert restored.root.id == root.id and isinstance(restored.root, dg.Node)


def test_root_with_several_roots_names_them(exp_dir):
    exp = dg.Experiment(exp_dir, EmptyState)
    first = exp.spawn_new_tree(a=1, B="one")
    second = exp.spawn_new_tree(a=2, B="two")
    with pytest.raises(dg.UnknownNameError, match="has 2 roots, so exp.root is ambiguous") as info:
        exp.root
    message = str(info.value)
    assert first.id[:12] in message and second.id[:12] in message
    assert "a=1, B='one'" in message and "a=2, B='two'" in message
    assert "exp.graph.nodes_at_distance(0)" in message
    assert isinstance(info.value, LookupError)
    exp.run(quiet=True)
    with pytest.raises(dg.UnknownNameError, match="has 2 roots"):  # stored roots count the same
        dg.Experiment.restore(exp_dir, EmptyState).root


def test_root_of_many_names_the_first_five(exp_dir):
    exp = dg.Experiment(exp_dir, EmptyState)
    roots = [exp.spawn_new_tree(a=i, B="b") for i in range(7)]
    with pytest.raises(dg.UnknownNameError, match="has 7 roots") as info:
        exp.root
    message = str(info.value)
    assert all(r.id[:12] in message for r in roots[:5]) and roots[5].id[:12] not in message and ", …" in message


def test_get_computes_only_what_the_node_needs(exp_dir, capsys):
    exp, root, x1, x2, y1 = _two_level(exp_dir)
    state = x1.get()
    assert state.c == 6.0 and state.id == x1.id
    assert root.status == x1.status == "done"
    assert x2.status == y1.status == "declared"
    assert "prunelab: 2 computed" in capsys.readouterr().err
    assert x1.get() is state  # loaded once and kept
    assert y1.get(executor=dg.LocalExecutor()).c == 10.0  # OpRecipe reads a, as in dagger
    assert x2.status == "declared"


def test_get_runs_nothing_when_all_is_stored(exp_dir, capsys):
    exp, root, x1, x2, y1 = _two_level(exp_dir)
    exp.run(quiet=True)
    runs = len(exp.graph.runs)
    again = dg.Experiment(exp_dir, EmptyState)
    node = OpRecipe("mul", 3.0)(again.spawn_new_tree(a=2.0, B="b"))
    assert node.get().c == 6.0
    assert capsys.readouterr().err == ""  # no run, so no summary line
    assert len(again.graph.runs) == runs


def test_get_computes_the_functions_declared_on_the_node(exp_dir):
    exp, root, x1, x2, y1 = _two_level(exp_dir)
    exp.run(quiet=True)
    dg.function(lambda s: s.c, name="value")(x1)
    assert x1.get().c == 6.0
    assert x1.results["value"] == 6.0


def test_get_on_a_failing_recipe_raises_run_error(exp_dir):
    exp = dg.Experiment(exp_dir, EmptyState)
    root = exp.spawn_new_tree(a=1.0, B="b")
    broken = OpRecipe("truediv", 0.0)(root)
    below = OpRecipe("mul", 2.0)(broken)
    with pytest.raises(dg.RunError, match="ZeroDivisionError") as info:
        below.get()
    assert list(info.value.failed) == [broken.id] and info.value.skipped == [below.id]
    assert "ZeroDivisionError" in info.value.failed[broken.id]
    assert broken.status == "failed" and root.status == "done"


def test_lazy_load_restores_then_deflates(exp_dir):
    exp, root, x1, x2, y1 = _two_level(exp_dir)
    exp.run(quiet=True)
    node = dg.Experiment.restore(exp_dir, EmptyState).graph.node(y1.id)
    with node.lazy_load() as state:
        assert state.c == 10.0 and state.id == y1.id
        assert node.restore() is state  # loaded while the block runs
    assert node.restore() is not state


def test_lazy_load_deflates_when_the_block_raises(exp_dir):
    exp, root, x1, x2, y1 = _two_level(exp_dir)
    exp.run(quiet=True)
    with pytest.raises(KeyError, match="inside"):
        with x1.lazy_load() as state:
            raise KeyError("inside")
    assert x1.restore() is not state


def test_lazy_load_binds_the_state_too(exp_dir):
    exp, root, x1, x2, y1 = _two_level(exp_dir)
    exp.run(quiet=True)
    with x1.lazy_load() as state:
        assert state is x1.restore() and state.c == x1.c == 6.0
    with pytest.raises(AttributeError, match="not loaded"):
        x1.c


def test_lazy_load_of_a_node_not_computed_says_so(exp_dir):
    exp, root, x1, x2, y1 = _two_level(exp_dir)
    with pytest.raises(dg.UnknownNameError, match="is declared, so it has no stored values; run the experiment"):
        with x1.lazy_load():
            pass


class ShadowState(dg.ExperimentState):
    """A state whose attributes share names with the node's own."""

    PROPERTIES = ["a"]
    NONHASHED_ATTRIBUTES = ["c", "status", "results", "restore"]

    def initialize_state(self, **kwargs):
        self.c = self.a * 10
        self.status, self.results, self.restore = "the state's status", "the state's results", "the state's restore"


def test_a_loaded_node_reads_its_states_attributes(exp_dir):
    exp, root, x1, x2, y1 = _two_level(exp_dir)
    exp.run(quiet=True)
    node = dg.Experiment.restore(exp_dir, EmptyState).graph.node(y1.id)
    with node.lazy_load():
        assert node.c == 10.0 and node.a == 2.0 and node.B == "b"
    assert node.get().c == 10.0 and node.c == 10.0  # get() keeps the state loaded, so the node reads it
    node.deflate()
    assert node.restore().c == 10.0 and node.c == 10.0  # as does restore()
    with node.lazy_load():
        with pytest.raises(AttributeError, match="'EmptyState' object has no attribute 'd'"):
            node.d  # the state has no such attribute either


def test_a_node_not_loaded_says_how_to_load_it(exp_dir):
    exp, root, x1, x2, y1 = _two_level(exp_dir)
    with pytest.raises(AttributeError, match="not loaded") as declared:  # declared: nothing to load yet
        x1.c
    exp.run(quiet=True)
    node = dg.Experiment.restore(exp_dir, EmptyState).graph.node(x1.id)
    with node.lazy_load():
        node.c
    with pytest.raises(AttributeError) as info:
        node.c
    message = str(info.value)
    assert "'Node' object has no attribute 'c'" in message and f"state {x1.id[:12]} is not loaded" in message
    assert "node.get().c" in message and "with node.lazy_load(): node.c" in message
    assert "node.restore().c" in message
    assert info.value.name == "c" and info.value.obj is node
    assert str(declared.value) == message  # a declared node, never loaded, says the same
    assert getattr(node, "c", None) is None and not hasattr(node, "c")


def test_the_nodes_own_attributes_win_over_the_states(exp_dir):
    exp = dg.Experiment(exp_dir, ShadowState)
    node = exp.spawn_new_tree(a=1)
    dg.function(lambda s: s.c, name="value")(node)
    exp.run(quiet=True)
    with node.lazy_load() as state:
        assert node.c == 10 and state.status == "the state's status"
        assert node.status == "done" and node.results == {"value": 10}
        assert node.restore() is state  # the node's method, not the state's string
        assert node.id == state.id and node.tags == frozenset() and isinstance(node.properties, dict)


def test_a_failing_attribute_of_the_node_is_not_read_from_the_state(exp_dir, monkeypatch):
    exp, root, x1, x2, y1 = _two_level(exp_dir)
    exp.run(quiet=True)
    state = x1.restore()
    assert state.tags == []  # the state has tags too, which the failing node property must not fall back to
    monkeypatch.setattr(x1, "experiment", object())  # so the node's tags property fails with an AttributeError
    with pytest.raises(AttributeError, match="'object' object has no attribute 'graph'"):
        x1.tags
    bare = object.__new__(dg.Node)  # no slot set: its own AttributeError, no recursion
    with pytest.raises(AttributeError, match="'Node' object has no attribute 'id'"):
        bare.id
    with pytest.raises(AttributeError, match="'Node' object has no attribute 'c'"):
        bare.c


def test_private_names_are_not_read_from_the_state(exp_dir):
    exp, root, x1, x2, y1 = _two_level(exp_dir)
    exp.run(quiet=True)
    state = x1.restore()
    state._private = 1
    state.__dict__["__custom__"] = 2
    assert x1.c == 6.0  # loaded, and public names are read through
    for name in ("_private", "__custom__", "__setstate__", "__getnewargs_ex__", "_ipython_display_"):
        with pytest.raises(AttributeError, match=f"'Node' object has no attribute '{name}'"):
            getattr(x1, name)
    assert x1._state is state  # the node's own private slots still read as usual


def test_copy_and_pickle_of_a_node_behave_as_a_core_nodes(exp_dir):
    exp, root, x1, x2, y1 = _two_level(exp_dir)
    exp.run(quiet=True)
    core = prunelab.Experiment.restore(exp_dir, EmptyState).graph.node(x1.id)
    for loaded in (False, True):
        if loaded:
            x1.restore()
            core.restore()
        else:
            x1.deflate()
            core.deflate()
        for node in (x1, core):
            twin = copy.copy(node)  # shallow, as before: the same experiment and the same loaded state
            assert type(twin) is type(node) and twin == node and twin.experiment is node.experiment
            assert twin._state is node._state
            for clone in (copy.deepcopy, lambda n: pickle.loads(pickle.dumps(n))):
                with pytest.raises(TypeError, match=r"cannot pickle '(sqlite3\.Connection|_thread\.RLock)' object"):
                    clone(node)  # the experiment holds what is this process's: its index's connection, its lock
        if loaded:
            assert copy.copy(x1).c == 6.0
        else:
            with pytest.raises(AttributeError, match="not loaded"):
                copy.copy(x1).c

    bare = dg.Node(None, "0" * 32, None, None)  # a node with nothing unpicklable: it round-trips
    for clone in (copy.copy, copy.deepcopy, lambda n: pickle.loads(pickle.dumps(n))):
        twin = clone(bare)
        assert type(twin) is dg.Node and twin.id == bare.id and twin.parent_id is None and twin.functions == {}
        with pytest.raises(AttributeError, match="is not loaded"):
            twin.c


def test_nodes_at_distance(exp_dir):
    exp, root, x1, x2, y1 = _two_level(exp_dir)
    other = exp.spawn_new_tree(a=9.0, B="b")
    graph = exp.graph
    assert set(graph.nodes_at_distance(0).ids) == {root.id, other.id}  # declared nodes count, as in exp.graph.nodes
    assert set(graph.nodes_at_distance(1).ids) == {x1.id, x2.id}
    assert graph.nodes_at_distance(2).ids == [y1.id]
    assert isinstance(graph.nodes_at_distance(2), dg.NodeSet)
    assert len(graph.nodes_at_distance(3)) == 0 and len(graph.nodes_at_distance(10**9)) == 0  # as dagger: empty
    exp.run(quiet=True)
    restored = dg.Experiment.restore(exp_dir, EmptyState).graph
    assert set(restored.nodes_at_distance(1).ids) == {x1.id, x2.id}
    assert all(n.depth == 1 for n in restored.nodes_at_distance(1))


@pytest.mark.parametrize("distance", [-1, 1.0, "1", True, None])
def test_nodes_at_distance_refuses_what_is_not_a_distance(exp_dir, distance):
    exp, *_ = _two_level(exp_dir)
    with pytest.raises(dg.StateDefinitionError, match=f"needs an int of at least 0, got {distance!r}"):
        exp.graph.nodes_at_distance(distance)


@pytest.mark.parametrize("fmt, magic", [("svg", b"<svg"), ("png", b"\x89PNG"), ("pdf", b"%PDF")])
def test_draw_with_filename_and_format_writes_filename_dot_format(exp_dir, tmp_path, fmt, magic):
    exp, *_ = _two_level(exp_dir)
    exp.run(quiet=True)
    graph = dg.Experiment.restore(exp_dir, EmptyState).graph
    written = graph.draw(filename=tmp_path / "graph", format=fmt)
    assert written == str(tmp_path / f"graph.{fmt}")
    assert magic in (tmp_path / f"graph.{fmt}").read_bytes()[:1000]


def test_draw_defaults_are_daggers(exp_dir, tmp_path, monkeypatch):
    exp, *_ = _two_level(exp_dir)
    monkeypatch.chdir(tmp_path)
    assert exp.graph.draw(format="svg") == "graph.svg"  # filename defaults to "graph"
    assert exp.graph.draw(filename="tree") == "tree.pdf"  # format defaults to "pdf"
    assert (tmp_path / "graph.svg").read_text().lstrip().startswith("<?xml")
    assert (tmp_path / "tree.pdf").read_bytes().startswith(b"%PDF")


def test_draw_keeps_prunelabs_forms(exp_dir, tmp_path):
    exp, root, *_ = _two_level(exp_dir)
    svg = exp.graph.draw()
    assert "<svg" in svg and root.id[:8] in svg
    assert exp.graph.draw(tmp_path / "g.png", nodes=exp.graph.nodes_at_distance(1)) is None
    assert (tmp_path / "g.png").read_bytes().startswith(b"\x89PNG")


def test_draw_refuses_an_unknown_format_and_mixed_forms(exp_dir, tmp_path):
    exp, *_ = _two_level(exp_dir)
    with pytest.raises(dg.StateDefinitionError, match="draw\\(\\) writes svg, png, pdf; got a path ending in 'jpg'"):
        exp.graph.draw(filename=tmp_path / "graph", format="jpg")
    assert not (tmp_path / "graph.jpg").exists()
    with pytest.raises(dg.StateDefinitionError, match="or dagger's filename=/format=, not both"):
        exp.graph.draw(tmp_path / "g.svg", format="svg")
    with pytest.raises(dg.StateDefinitionError, match="not both"):
        exp.graph.draw(tmp_path / "g.svg", filename=tmp_path / "g")


# ------------------------------------------------------------- the README's "Coming from dagger" holds
def test_a_data_loader_left_among_stored_attributes_is_named_when_saved(exp_dir):
    torch = pytest.importorskip("torch")

    class LoaderState(dg.ExperimentState):
        PROPERTIES = ["n"]
        NONHASHED_ATTRIBUTES = ["loader"]  # dagger pickled it; prunelab has no codec for a DataLoader

        def initialize_state(self, **kwargs):
            self.loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.zeros(self.n, 2)))

    exp = dg.Experiment(exp_dir, LoaderState)
    root = exp.spawn_new_tree(n=4)
    with pytest.raises(dg.RunError, match="loader") as info:
        root.get()
    assert "DERIVED_ATTRIBUTES" in info.value.failed[root.id] and "allow_pickle=True" in info.value.failed[root.id]


class Counter:
    """An object of the user's own, stored through state_dict() and loaded back by load_state_dict()."""

    def __init__(self):
        self.count = 0
        self.loaded = False

    def state_dict(self):
        return {"count": self.count}

    def load_state_dict(self, state):
        self.count = state["count"]
        self.loaded = True  # what a dagger load_post_hook did


class CounterState(dg.ExperimentState):
    PROPERTIES = ["start"]
    NONHASHED_ATTRIBUTES = ["counter"]

    def initialize_state(self, **kwargs):
        self.counter = Counter()
        self.counter.count = self.start


class Step(dg.Recipe):
    PROPERTIES = ["by"]

    def __init__(self, by):
        self.by = by

    def run(self, state):
        state.counter.count += self.by
        return state


def test_an_own_object_round_trips_through_its_state_dict(exp_dir):
    exp = dg.Experiment(exp_dir, CounterState)
    node = Step(by=2)(exp.spawn_new_tree(start=1))
    exp.run(quiet=True)
    counter = dg.Experiment.restore(exp_dir, CounterState).graph.node(node.id).restore().counter
    assert isinstance(counter, Counter) and counter.count == 3 and counter.loaded


def test_a_printing_function_prints_on_the_run_that_computes_it(exp_dir, capsys):
    @dg.Function
    def show(state):
        print(f"a = {state.a}")

    for _ in range(2):
        exp = dg.Experiment(exp_dir, EmptyState)
        show(exp.spawn_new_tree(a=1, B=2))
        exp.run(quiet=True)
    assert capsys.readouterr().out == "a = 1\n"


def test_a_lambda_function_needs_a_name_and_spawn_refuses_undeclared_arguments(exp_dir):
    with pytest.raises(dg.StateDefinitionError, match="function name must be an identifier.*pass name="):
        dg.Function(lambda s: None)
    exp = dg.Experiment(exp_dir, EmptyState)
    with pytest.raises(dg.UnknownNameError, match="EmptyState has no property 'c'"):
        exp.spawn_new_tree(a=1, B=2, c=3)


def test_get_indexes_a_stored_result_the_index_lost(exp_dir):
    """A result on disk that the index lacks (a crash between the two) is shown after get(), not lost for good."""
    import sqlite3

    exp, root, x1, x2, y1 = _two_level(exp_dir)
    dg.function(lambda s: s.c, name="value")(x1)
    exp.run(quiet=True)
    with sqlite3.connect(exp.index.path) as db:
        db.execute("DELETE FROM results")
    again, _, x1, _, _ = _two_level(exp_dir)
    dg.function(lambda s: s.c, name="value")(x1)
    assert x1.get().c == 6.0
    assert x1.results == {"value": 6.0}
