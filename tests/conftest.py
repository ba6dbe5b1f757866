"""Shared fixtures.

Simulated datasets are session-scoped: built once per test process, at a scale small enough
for the suite to stay fast. Tests that need the simulator's ground truth read ``ds.truth``.
"""

from __future__ import annotations

import os

import matplotlib
import pytest

matplotlib.use("Agg")
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")

SMALL_SCALE = 0.003
SMALL_REGIONS = ("guangxi", "shanxi")


@pytest.fixture(scope="session")
def small_ds():
    """A small simulated dataset (Guangxi and Shanxi, 2021-2022) with ground truth."""
    from promo_analysis.simulate import simulate

    return simulate("china-post-2022", scale=SMALL_SCALE, regions=list(SMALL_REGIONS), seed=1)


@pytest.fixture(scope="session")
def null_ds():
    """The null scenario: coupons and campaigns with zero true effect."""
    from promo_analysis.simulate import simulate

    return simulate(
        "china-post-2022-null", scale=SMALL_SCALE, regions=list(SMALL_REGIONS), seed=2
    )
