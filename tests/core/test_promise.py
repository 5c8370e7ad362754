"""What recipe and function code sees, provenance that cannot lie, queries and operators (issue "Keep the promise")."""

from __future__ import annotations

import operator
import os
import re
import warnings

import pytest
import torch

import prunelab as pl
from helpers import MLPState, Train


# ------------------------------------------------------- state.tags and state.id
SEEN: list[tuple[str, str, list[str]]] = []


class Look(pl.Recipe):
    """Records what ``state.id`` and ``state.tags`` say inside ``run()``."""

    PROPERTIES = ["k"]

    def run(self, state):
        SEEN.append(("recipe", state.id, state.tags))
        return state


@pl.function
def look(state):
    SEEN.append(("function", state.id, state.tags))


@pytest.fixture(autouse=True)
def _clear_seen():
    SEEN.clear()


def test_recipes_and_functions_see_their_nodes_id_and_sorted_tags(exp_dir):
    exp = pl.Experiment(exp_dir, MLPState)
    root = exp.spawn_new_tree(width=4, replicate=0)
    with exp.tag("lr:0.1"), exp.tag("b-first"):
        child = Look(k=1)(root)
        look(child)
    with warnings.catch_warnings():
        warnings.simplefilter("error", pl.PrunelabWarning)  # no undeclared-attribute warning for id or tags
        exp.run(quiet=True)
    assert SEEN == [("recipe", child.id, ["b-first", "lr:0.1"]), ("function", child.id, ["b-first", "lr:0.1"])]
    assert re.fullmatch(r"[0-9a-f]{32}", SEEN[0][1])
    assert child.results["look"] is None


def test_state_id_and_tags_are_read_only_and_name_themselves(exp_dir):
    class Assign(pl.Recipe):
        PROPERTIES = ["what"]

        def run(self, state):
            setattr(state, self.what, ["x"])
            return state

    exp = pl.Experiment(exp_dir, MLPState)
    root = exp.spawn_new_tree(width=4, replicate=0)
    nodes = [Assign(what="tags")(root), Assign(what="id")(root)]
    report = exp.run(quiet=True, raise_on_failure=False)
    assert "state.tags is read-only" in report.failed[nodes[0].id]
    assert "state.id is read-only" in report.failed[nodes[1].id]


def test_id_and_tags_are_never_stored_nor_carried_to_children(exp_dir):
    exp = pl.Experiment(exp_dir, MLPState)
    root = exp.spawn_new_tree(width=4, replicate=0)
    with exp.tag("parent-only"):
        parent = Look(k=1)(root)
    child = Look(k=2)(parent)
    exp.run(quiet=True)
    assert SEEN[1] == ("recipe", child.id, [])  # the child sees its own (empty) tags and id, not its parent's
    assert set(parent.record["blobs"]) and "tags" not in exp.store.states.read_values(parent.id, parent.record)
    restored = pl.Experiment.restore(exp_dir, MLPState).graph.node(parent.id).restore()
    assert restored.id == parent.id and restored.tags == ["parent-only"]


def test_a_state_of_no_node_says_where_id_and_tags_are_known():
    with pytest.raises(AttributeError, match="inside a recipe's run"):
        _ = MLPState().tags


def test_a_state_class_declaring_id_or_tags_is_refused(exp_dir):
    class Clash(pl.ExperimentState):
        PROPERTIES = ["tags"]

    with pytest.raises(pl.StateDefinitionError, match="'tags', which prunelab reserves"):
        pl.Experiment(exp_dir, Clash)


# --------------------------------------------------- what is hashed is what runs
RAN: list[dict] = []


class Step(pl.Recipe):
    PROPERTIES = {"lr": 0.1, "seed": None}
    OPTIONS = {"device": "cpu"}

    def run(self, state):
        RAN.append({"lr": self.lr, "seed": self.seed, "device": self.device, "properties": self.properties})
        return state


@pytest.fixture(autouse=True)
def _clear_ran():
    RAN.clear()


def test_properties_are_read_when_the_recipe_is_applied(exp_dir):
    exp = pl.Experiment(exp_dir, MLPState)
    root = exp.spawn_new_tree(width=4, replicate=0)
    recipe = Step()
    recipe.seed = 123
    recipe.device = "meta-is-not-used"
    node = recipe(root)
    recipe.seed, recipe.lr, recipe.device = 7, 0.5, "changed later"  # after application: changes nothing
    exp.run(quiet=True)
    assert node.recipe["properties"] == {"lr": 0.1, "seed": 123}
    assert node.recipe["options"] == {"device": "meta-is-not-used"}
    assert RAN == [{"lr": 0.1, "seed": 123, "device": "meta-is-not-used", "properties": {"lr": 0.1, "seed": 123}}]
    assert node.id == Step(seed=123)(exp.spawn_new_tree(width=4, replicate=0)).id


def test_a_property_changed_in_place_after_application_changes_nothing_that_runs(exp_dir):
    class Widths(pl.Recipe):
        PROPERTIES = ["widths"]

        def run(self, state):
            RAN.append({"widths": self.widths})
            return state

    exp = pl.Experiment(exp_dir, MLPState)
    recipe = Widths(widths=[1, 2])
    node = recipe(exp.spawn_new_tree(width=4, replicate=0))
    recipe.widths.append(3)
    exp.run(quiet=True)
    assert RAN == [{"widths": [1, 2]}] and node.recipe["properties"] == {"widths": [1, 2]}


def test_a_functions_version_is_read_when_it_is_applied(exp_dir):
    @pl.function
    def score(state):
        return 1.0

    exp = pl.Experiment(exp_dir, MLPState)
    node = exp.spawn_new_tree(width=4, replicate=0)
    score(node)
    score.version = 2
    exp.run(quiet=True)
    assert exp.index.result_keys()[node.id] == {"score@v1"}


class OpRecipe(pl.Recipe):
    """dagger's idiom: its own ``__init__``, which never calls ``Recipe.__init__``."""

    PROPERTIES = ["op", "value"]

    def __init__(self, op, value):
        self.op, self.value = op, value

    def run(self, state):
        RAN.append({"op": self.op, "value": self.value})
        return state


def test_a_recipe_with_its_own_init_works_with_the_same_identity(exp_dir):
    exp = pl.Experiment(exp_dir, MLPState)
    root = exp.spawn_new_tree(width=4, replicate=0)
    node = OpRecipe("add", 2)(root)
    exp.run(quiet=True)
    assert RAN == [{"op": "add", "value": 2}]
    assert node.recipe["properties"] == {"op": "add", "value": 2}
    assert node.id == pl.core.identity.child_id(root.id, "OpRecipe", 1, {"op": "add", "value": 2})


def test_a_property_attribute_missing_at_application_is_named(exp_dir):
    class Half(pl.Recipe):
        PROPERTIES = ["op", "value"]

        def __init__(self, op):
            self.op = op

    exp = pl.Experiment(exp_dir, MLPState)
    with pytest.raises(pl.StateDefinitionError, match=r"Half has no attribute 'value'.*set self.value in \S*Half.__init__"):
        Half("add")(exp.spawn_new_tree(width=4, replicate=0))


def test_an_unhashable_property_set_by_a_users_init_is_refused_at_application(exp_dir):
    exp = pl.Experiment(exp_dir, MLPState)
    with pytest.raises(pl.UnhashableValueError, match="OpRecipe property 'value' is a object"):
        OpRecipe("add", object())(exp.spawn_new_tree(width=4, replicate=0))


# --------------------------------------------------------- initialize_state
class SeedState(pl.ExperimentState):
    """dagger's pattern: initialize_state reads the spawn arguments from kwargs."""

    PROPERTIES = ["seed"]
    NONHASHED_ATTRIBUTES = ["got"]

    def initialize_state(self, **kwargs):
        self.got = kwargs.get("seed", 0)


def test_initialize_state_receives_the_roots_properties_as_keywords(exp_dir):
    exp = pl.Experiment(exp_dir, SeedState)
    root = exp.spawn_new_tree(seed=123)
    exp.run(quiet=True)
    assert root.restore().got == 123


def test_initialize_state_without_kwargs_gets_the_properties_it_names(exp_dir):
    class Named(pl.ExperimentState):
        PROPERTIES = ["a", "b"]
        NONHASHED_ATTRIBUTES = ["got"]

        def initialize_state(self, a):
            self.got = a

    exp = pl.Experiment(exp_dir, Named)
    root = exp.spawn_new_tree(a=1, b=2)
    exp.run(quiet=True)
    assert root.restore().got == 1


def test_initialize_state_assigning_a_property_is_refused_at_the_root(exp_dir):
    class Reassign(pl.ExperimentState):
        PROPERTIES = ["seed"]

        def initialize_state(self, **kwargs):
            self.seed = 0

    exp = pl.Experiment(exp_dir, Reassign)
    root = exp.spawn_new_tree(seed=123)
    report = exp.run(quiet=True, raise_on_failure=False)
    assert list(report.failed) == [root.id]
    assert "Reassign.initialize_state changed state property 'seed'" in report.failed[root.id]


# ------------------------------------------------------------- thread count
class Threads(pl.Recipe):
    PROPERTIES = []

    def run(self, state):
        torch.set_num_threads(2)
        return state


def test_a_recipe_changing_the_thread_count_is_recorded_as_it_ran_and_warned(exp_dir):
    exp = pl.Experiment(exp_dir, MLPState)
    node = Threads()(exp.spawn_new_tree(width=4, replicate=0))
    before = torch.get_num_threads()
    with pytest.warns(pl.PrunelabWarning, match=r"recipe Threads .* changed torch's threads to 2"):
        exp.run(quiet=True)
    assert node.record["threads"] == 2
    assert torch.get_num_threads() == before  # the caller's setting is restored afterwards


def test_a_recipe_keeping_the_thread_count_records_the_experiments(exp_dir):
    exp = pl.Experiment(exp_dir, MLPState)
    node = Train(steps=1, lr=0.1)(exp.spawn_new_tree(width=4, replicate=0))
    with warnings.catch_warnings():
        warnings.simplefilter("error", pl.PrunelabWarning)
        exp.run(quiet=True)
    assert node.record["threads"] == 1


# ----------------------------------------------------------- state defaults
def test_state_properties_may_be_a_dict_of_defaults_that_hash_as_if_passed(exp_dir):
    class Defaults(pl.ExperimentState):
        PROPERTIES = {"name": pl.REQUIRED, "width": 8}

    exp = pl.Experiment(exp_dir, Defaults)
    assert exp.spawn_new_tree(name="a").id == exp.spawn_new_tree(name="a", width=8).id
    assert exp.spawn_new_tree(name="a").properties == {"name": "a", "width": 8}
    with pytest.raises(pl.StateDefinitionError, match="missing property 'name'"):
        exp.spawn_new_tree(width=3)


def test_model_state_defaults_keep_the_ids_made_before_them(exp_dir):
    from prunelab.recipes import ModelState

    exp = pl.Experiment(exp_dir, ModelState)
    # ids computed by prunelab before ModelState had defaults, with every property passed
    assert exp.spawn_new_tree(dataset_name="digits", model_name="lenet5", replicate=0).id == \
        "7c929b2a7a3ff86021056c1bcce4688a"
    assert exp.spawn_new_tree(dataset_name="digits", model_name="mlp", replicate=3).id == \
        "dcd8668ecf9c380deec8ec1e3f2458c1"


# ------------------------------------------------------------------ queries
def _lineage_tree(exp_dir):
    exp = pl.Experiment(exp_dir, MLPState)
    roots = [exp.spawn_new_tree(width=4, replicate=r) for r in (0, 1)]
    trained = [Train(steps=1, lr=0.1)(r) for r in roots]
    return exp, roots, trained


def test_filter_on_lineage_fields(exp_dir):
    exp, roots, trained = _lineage_tree(exp_dir)
    nodes = exp.graph.nodes
    assert set(nodes.filter(depth=1).ids) == {t.id for t in trained}
    assert set(nodes.filter(depth=0).ids) == {r.id for r in roots}
    assert set(nodes.filter(root_id=roots[1].id).ids) == {roots[1].id, trained[1].id}
    exp.run(quiet=True)
    restored = pl.Experiment.restore(exp_dir).graph.nodes  # the same from stored records
    assert set(restored.filter(depth=1, lr=0.1).ids) == {t.id for t in trained}


def test_filter_on_an_unknown_field_lists_the_known_ones(exp_dir):
    exp, _, _ = _lineage_tree(exp_dir)
    with pytest.raises(pl.UnknownNameError, match=r"'dept'.*'depth'.*'root_id'.*'width'"):
        exp.graph.nodes.filter(dept=1)


@pytest.mark.parametrize("op", [operator.or_, operator.and_, operator.sub], ids=["or", "and", "sub"])
def test_set_operations_with_a_str_are_type_errors(exp_dir, op):
    exp, _, _ = _lineage_tree(exp_dir)
    with pytest.raises(TypeError, match="unsupported operand"):
        op(exp.graph.nodes, "x")


def test_set_operations_with_lists_of_nodes(exp_dir):
    exp, roots, trained = _lineage_tree(exp_dir)
    nodes = exp.graph.nodes
    assert (nodes - [roots[0]]).ids == [n.id for n in nodes if n.id != roots[0].id]
    assert (nodes & [roots[0]]).ids == [roots[0].id]


def test_tag_takes_a_list_of_tags(exp_dir):
    exp = pl.Experiment(exp_dir, MLPState)
    with exp.tag(["a", "b"]):
        node = exp.spawn_new_tree(width=4, replicate=0)
    with exp.tag("c"):
        other = exp.spawn_new_tree(width=4, replicate=1)
    assert node.tags == {"a", "b"} and other.tags == {"c"}
    with pytest.raises(pl.StateDefinitionError, match="a tag must be a non-empty str"):
        with exp.tag(["a", ""]):
            pass
    with pytest.raises(pl.StateDefinitionError, match="a tag must be a non-empty str"):
        with exp.tag(3):
            pass


def test_run_inside_declaring_only_computes_and_writes_nothing(exp_dir):
    from prunelab.experiment import declaring_only

    exp = pl.Experiment(exp_dir, MLPState)
    node = Look(k=1)(exp.spawn_new_tree(width=4, replicate=0))
    with declaring_only("importing the script to find its classes"):
        with pytest.warns(pl.PrunelabWarning, match="computed nothing: importing the script to find its classes"):
            report = exp.run(quiet=True)
    assert report.done == [] and SEEN == [] and node.status == "declared"
    assert exp.graph.runs == [] and not list((exp_dir / "states").rglob("meta.json"))
    exp.run(quiet=True)  # outside the block, run() computes again
    assert node.status == "done" and len(list((exp_dir / "states").rglob("meta.json"))) == 2


def test_a_recipe_whose_properties_are_not_set_yet_has_a_repr():
    class Later(pl.Recipe):
        PROPERTIES = ["op"]

        def __init__(self):
            pass

    assert repr(Later()) == "<test_a_recipe_whose_properties_are_not_set_yet_has_a_repr.<locals>.Later with properties " \
        "not set>"
    assert repr(OpRecipe("add", 1)) == "OpRecipe(op='add', value=1)"


# ------------------------------------------------------------ from review
class Deterministic(pl.Recipe):
    PROPERTIES = ["on"]

    def run(self, state):
        if self.on:
            torch.use_deterministic_algorithms(True)
        return state


def test_a_recipe_turning_on_deterministic_mode_leaks_into_no_other_task(exp_dir):
    exp = pl.Experiment(exp_dir, MLPState)
    root = exp.spawn_new_tree(width=4, replicate=0)
    first = Deterministic(on=True)(root)
    second = Deterministic(on=False)(first)
    with pytest.warns(pl.PrunelabWarning) as caught:
        exp.run(quiet=True)
    assert [str(w.message).split(" (node")[0] for w in caught] == ["recipe Deterministic"]
    assert first.record["deterministic"] is True and second.record["deterministic"] is False
    assert not torch.are_deterministic_algorithms_enabled()


def test_deterministic_mode_set_by_the_caller_is_not_blamed_on_recipes(exp_dir):
    exp = pl.Experiment(exp_dir, MLPState)
    node = Train(steps=1, lr=0.1)(exp.spawn_new_tree(width=4, replicate=0))
    torch.use_deterministic_algorithms(True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pl.PrunelabWarning)
            exp.run(quiet=True)
        assert torch.are_deterministic_algorithms_enabled()  # the caller's setting is back after the run
    finally:
        torch.use_deterministic_algorithms(False)
    assert node.record["deterministic"] is False  # what the experiment set is what ran


class FailOnce(pl.Recipe):
    """Changes ``self`` and fails the first time (a side-effect file remembers)."""

    PROPERTIES = ["k", "flag"]

    def run(self, state):
        self.k *= 10
        state.history = [*state.history, self.k]
        if not os.path.exists(self.flag):
            open(self.flag, "w").close()
            raise RuntimeError("first attempt")
        return state


def test_a_retry_in_the_same_session_runs_the_recipe_as_declared(exp_dir, tmp_path):
    exp = pl.Experiment(exp_dir, MLPState)
    node = FailOnce(k=1, flag=str(tmp_path / "flag"))(exp.spawn_new_tree(width=4, replicate=0))
    assert exp.run(quiet=True, raise_on_failure=False).failed
    exp.run(quiet=True)
    assert node.restore().history == [10] and node.recipe["properties"]["k"] == 1


def test_a_tensor_property_with_autograd_history_is_copied_detached(exp_dir):
    class Weights(pl.Recipe):
        PROPERTIES = ["w"]

        def run(self, state):
            RAN.append({"w": self.w.tolist(), "grad": self.w.requires_grad})
            return state

    exp = pl.Experiment(exp_dir, MLPState)
    w = torch.ones(3, requires_grad=True) * 2
    Weights(w=w)(exp.spawn_new_tree(width=4, replicate=0))
    exp.run(quiet=True)
    assert RAN == [{"w": [2.0, 2.0, 2.0], "grad": False}]


def test_a_read_only_property_attribute_is_read_and_kept(exp_dir):
    class Doubled(pl.Recipe):
        PROPERTIES = ["k"]

        def __init__(self, half):
            self.half = half

        @property
        def k(self):
            return 2 * self.half

        def run(self, state):
            RAN.append({"k": self.k})
            return state

    exp = pl.Experiment(exp_dir, MLPState)
    recipe = Doubled(3)
    node = recipe(exp.spawn_new_tree(width=4, replicate=0))
    recipe.half = 100
    exp.run(quiet=True)
    assert RAN == [{"k": 6}] and node.recipe["properties"] == {"k": 6}
