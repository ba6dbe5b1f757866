"""Fixtures of the notebook tests: one small simulated dataset folder shared by every notebook."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def notebook_ds(small_ds):
    """The suite's small simulated dataset (Guangxi and Shanxi, 2021-2022, scale 0.003)."""
    return small_ds


@pytest.fixture(scope="session")
def sample_dir(notebook_ds, tmp_path_factory):
    """``notebook_ds`` saved as a dataset folder (what notebooks and reports read)."""
    from promo_analysis.dataset import save_dataset

    folder = tmp_path_factory.mktemp("notebook-data") / "small"
    save_dataset(notebook_ds, folder)
    return folder
