"""The quick Prune Responsibly study with two seeds, run once for the analysis tests."""

import dataclasses

import pytest

from prunelab.studies import prune_responsibly as study


@pytest.fixture(scope="session")
def quick_study(tmp_path_factory):
    """(experiment, outcome nodes) of the quick study, seeds 0 and 1: 4 training runs, 2 arms."""
    config = dataclasses.replace(study.StudyConfig.quick(), seeds=(0, 1))
    exp, _ = study.run(tmp_path_factory.mktemp("analysis") / "exp", config, quiet=True)
    return exp, study.build(exp, config)
