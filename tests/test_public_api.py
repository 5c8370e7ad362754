"""The public surface: what each package exports, and that ``import prunelab`` stays light."""

import subprocess
import sys

import prunelab
import prunelab.analysis
import prunelab.core
import prunelab.execution
import prunelab.prune
import prunelab.recipes
import prunelab.zoo

SURFACE = {
    "prunelab": [
        "CorruptStateError", "DaskExecutor", "Experiment", "ExperimentFormatError", "ExperimentState",
        "LocalExecutor", "Node",
        "NodeSet", "Preempted", "PrunelabError", "PrunelabWarning", "PublishError", "REQUIRED", "ReadOnlyError", "Recipe", "RunError",
        "StateDefinitionError", "UnhashableValueError", "UnknownNameError", "__version__", "added", "function", "log",
    ],
    "prunelab.core": [
        "CorruptStateError", "Experiment", "ExperimentFormatError", "ExperimentState", "Function", "Node", "NodeSet",
        "Plan", "Preempted", "PrunelabError", "PrunelabWarning", "PublishError", "REQUIRED", "ReadOnlyError", "Recipe", "RunError",
        "StateDefinitionError", "UnhashableValueError", "UnknownNameError", "added", "encode", "function", "log",
    ],
    "prunelab.analysis": [
        "AnalysisError", "DEFAULT_FORMULA", "RegressionResult", "accuracy_vs_sparsity", "blind", "class_change",
        "class_change_heatmap", "class_frame", "coefficient_plot", "disparity", "gini", "learning_curves", "mask_similarity",
        "mcnemar", "noether_sample_size", "outcome_nodes", "paired_test", "pareto_front", "pareto_plot",
        "population_labels", "preregister", "prob_better", "prune_responsibly_model",
        "pruning_identified_exemplars", "registrations", "report", "state_frame", "tost", "unblind",
        "welch_per_class",
    ],
    "prunelab.execution": ["DaskExecutor", "Executor", "LocalExecutor", "RunReport", "resolve_executor"],
    "prunelab.zoo": ["Dataset", "ZooError", "available_datasets", "available_models", "build_model", "imbalance",
                     "load_dataset", "load_weights", "weights_file"],
    "prunelab.recipes": ["LRRewind", "ModelState", "Prune", "Reinit", "ResumableSampler", "Rewind", "Train", "class_shares",
                         "dataset_for", "evaluate", "evaluate_split", "sparsity", "train_model"],
    "prunelab.prune": [
        "Context", "JaccardResult", "PruningError", "PruningWarning", "RigL", "Schedule", "SparsityReport", "Technique",
        "apply_masks", "available_techniques", "compact", "copy_model", "cubic", "flops", "get_masks", "iterative",
        "jaccard", "load_masks", "load_pruned_state_dict", "make_permanent", "masked_training", "prune_model",
        "pruned_parameters", "register_technique", "reinit", "rewind", "save_masks", "snapshot", "sparsity_report",
    ],
}


def test_each_all_is_the_documented_surface():
    for name, expected in SURFACE.items():
        module = sys.modules[name]
        assert sorted(module.__all__) == sorted(expected), name
        for attr in module.__all__:
            assert getattr(module, attr) is not None
            if not attr.startswith("__"):
                assert getattr(module, attr).__doc__, f"{name}.{attr} has no docstring"


def test_import_prunelab_imports_no_torch_pandas_or_dask():
    code = "import sys, prunelab; print(sorted(m for m in ('torch', 'pandas', 'dask', 'numpy', 'matplotlib') " \
           "if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_every_error_is_also_a_builtin():
    assert issubclass(prunelab.UnhashableValueError, TypeError)
    assert issubclass(prunelab.UnknownNameError, LookupError)
    assert issubclass(prunelab.CorruptStateError, OSError)
    assert issubclass(prunelab.RunError, RuntimeError)
    assert issubclass(prunelab.PublishError, OSError)
    assert issubclass(prunelab.StateDefinitionError, ValueError)
    assert issubclass(prunelab.ExperimentFormatError, ValueError)
    for name in ("UnhashableValueError", "UnknownNameError", "CorruptStateError", "RunError",
                 "StateDefinitionError", "ExperimentFormatError"):
        assert issubclass(getattr(prunelab, name), prunelab.PrunelabError)
