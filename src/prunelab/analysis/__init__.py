"""The science of pruning studies: frames, per-class metrics, population statistics, the regression.

``state_frame`` and ``class_frame`` turn an experiment's outcome states into
pandas tables; :mod:`.metrics` measures how unevenly pruning hits classes;
:mod:`.stats` compares populations of training runs; and
``prune_responsibly_model`` fits Paganini's regression with clustered errors;
``preregister``, ``blind`` and ``unblind`` keep confirmatory analyses honest;
:mod:`.plots` draws the study and ``report`` writes it all to one HTML file.
"""

from .frames import AnalysisError, class_frame, outcome_nodes, state_frame
from .metrics import class_change, disparity, gini, mask_similarity, pareto_front
from .plots import (accuracy_vs_sparsity, class_change_heatmap, coefficient_plot, learning_curves, pareto_plot,
                    population_labels)
from .prereg import blind, preregister, registrations, unblind
from .regression import DEFAULT_FORMULA, RegressionResult, prune_responsibly_model
from .report import report
from .stats import (mcnemar, noether_sample_size, paired_test, prob_better, pruning_identified_exemplars, tost,
                    welch_per_class)

__all__ = ["state_frame", "class_frame", "outcome_nodes", "AnalysisError", "class_change", "disparity", "gini",
           "mask_similarity", "pareto_front", "prune_responsibly_model", "RegressionResult", "DEFAULT_FORMULA",
           "welch_per_class", "paired_test", "prob_better", "noether_sample_size", "tost", "mcnemar",
           "pruning_identified_exemplars", "preregister", "blind", "unblind", "registrations", "report",
           "accuracy_vs_sparsity", "class_change_heatmap", "coefficient_plot", "learning_curves", "pareto_plot",
           "population_labels"]
