"""Shared fixtures: small real states, recipes and functions used across the suite.

The classes live in ``tests/helpers.py`` so that subprocess scripts can import
the same definitions (identity depends on class names, not on modules).
"""

import pytest

from helpers import load_experiment_module  # noqa: F401  (re-exported for tests)


@pytest.fixture
def exp_dir(tmp_path):
    """A fresh experiment directory path (not created)."""
    return tmp_path / "exp"
