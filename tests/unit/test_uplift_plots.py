"""Uplift figures draw what the result objects hold."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from promo_analysis.plots.uplift import qini_plot, uplift_by_decile_plot
from promo_analysis.uplift import qini_curve, uplift_by_decile


@pytest.fixture
def ev():
    rng = np.random.default_rng(0)
    n = 2000
    s = rng.normal(size=n)
    t = rng.integers(0, 2, n)
    y = (rng.random(n) < 0.2 + t * 0.1 * (s > 0)).astype(int)
    return pd.DataFrame({"s": s, "t": t, "y": y})


def test_qini_plot_draws_curve_band_and_random_line(ev):
    curve = qini_curve(ev, "s", "t", "y", points=11, n_boot=50)
    ax = qini_plot(curve)
    lines = ax.get_lines()
    np.testing.assert_allclose(lines[0].get_ydata(), curve.estimate.to_numpy() * 100)
    np.testing.assert_allclose(lines[1].get_ydata(), curve.table["random"].to_numpy() * 100)
    assert len(ax.collections) >= 1  # the CI band
    assert "AUC" in ax.get_title()
    plt.close(ax.figure)
    with pytest.raises(TypeError, match="TableResult"):
        qini_plot(ev)


def test_uplift_by_decile_plot(ev):
    res = uplift_by_decile(ev, "s", "t", "y", bins=5)
    fig, ax = plt.subplots()
    assert uplift_by_decile_plot(res, ax=ax) is ax
    heights = [p.get_height() for p in ax.patches]
    np.testing.assert_allclose(heights, res.estimate.to_numpy() * 100)
    plt.close(fig)
