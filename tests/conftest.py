"""Shared fixtures. The real states, recipes and functions used across the suite live in
``tests/helpers.py``, so that subprocess scripts can import the same definitions.
"""

import pytest


@pytest.fixture
def exp_dir(tmp_path):
    """A fresh experiment directory path (not created)."""
    return tmp_path / "exp"
