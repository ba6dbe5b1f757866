"""Fixtures of the notebook tests: one small simulated dataset folder shared by every notebook."""

from __future__ import annotations

import pytest

SCALE = 0.003
REGIONS = ("guangxi", "shanxi")


@pytest.fixture(scope="session")
def notebook_ds():
    """A small simulated dataset (Guangxi and Shanxi, 2021-2022, scale 0.003)."""
    # the function, not the package attribute: ``promo_analysis.simulate`` is also a subpackage
    from promo_analysis.simulate import simulate

    return simulate("china-post-2022", scale=SCALE, regions=list(REGIONS), seed=1)


@pytest.fixture(scope="session")
def sample_dir(notebook_ds, tmp_path_factory):
    """``notebook_ds`` saved as a dataset folder (what notebooks and reports read)."""
    from promo_analysis.dataset import save_dataset

    folder = tmp_path_factory.mktemp("notebook-data") / "small"
    save_dataset(notebook_ds, folder)
    return folder
