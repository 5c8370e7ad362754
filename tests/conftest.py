"""Shared fixtures. The real states, recipes and functions used across the suite live in
``tests/helpers.py``, so that subprocess scripts can import the same definitions.
"""

import dataclasses

import pytest


@pytest.fixture
def exp_dir(tmp_path):
    """A fresh experiment directory path (not created)."""
    return tmp_path / "exp"


@pytest.fixture(scope="session")
def quick_study(tmp_path_factory):
    """(experiment, outcome nodes) of the quick Prune Responsibly study with seeds 0 and 1: 4 training runs."""
    from prunelab.studies import prune_responsibly as study

    config = dataclasses.replace(study.StudyConfig.quick(), seeds=(0, 1))
    exp, _ = study.run(tmp_path_factory.mktemp("analysis") / "exp", config, quiet=True)
    return exp, study.build(exp, config)
