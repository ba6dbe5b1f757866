"""Campaign charts: drawn on the given axes, bilingual labels, intervals present."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from promo_analysis.campaigns import compare_designs, event_study, threshold_bunching  # noqa: E402
from promo_analysis.plots import campaigns as P  # noqa: E402
from promo_analysis.results import TableResult  # noqa: E402


def _effects():
    idx = pd.MultiIndex.from_tuples([("a", "guangxi"), ("b", "guangxi"), ("c", "shanxi")],
                                    names=["campaign_id", "region_id"])  # fmt: skip
    t = pd.DataFrame(
        {"estimate": [100.0, -20.0, 50.0], "se": [10.0, 30.0, 20.0], "ci_low": [80.0, -80, 10],
         "ci_high": [120.0, 40, 90], "pvalue": [0.0, 0.5, 0.01], "n": 700,
         "lift": [0.3, -0.05, 0.1], "baseline": [300.0, 400, 500],
         "coupon_threshold": [12, 21, 21], "theme": ["qixi", "qixi", "weekend"]},
        index=idx,
    )  # fmt: skip
    return TableResult(table=t, method="its")


def test_calendar_heatmap_counts_campaigns():
    camps = pd.DataFrame({"region_id": [None, "guangxi"], "start_date": ["2022-01-03", "2022-01-05"],
                          "end_date": ["2022-01-06", "2022-01-08"]})  # fmt: skip
    fig, ax = plt.subplots()
    out = P.campaign_calendar_heatmap(camps, ["guangxi", "shanxi"], "2022-01-01", "2022-01-31",
                                      ax=ax)  # fmt: skip
    assert out is ax
    grid = ax.images[0].get_array()
    assert grid[0].max() == 2 and grid[1].max() == 1 and grid[1].sum() == 4
    assert "广西" in ax.get_yticklabels()[0].get_text()
    plt.close(fig)


def test_forests_and_event_study_and_bunching():
    res = _effects()
    ax = P.effects_forest(res, truth=pd.Series([90.0, 0.0, 60.0], index=res.table.index))
    assert "元" in ax.get_xlabel() and len(ax.collections) >= 3
    plt.close(ax.figure)
    d = compare_designs(pd.concat([res.table.reset_index()] * 3, ignore_index=True),
                        by=["coupon_threshold"])  # fmt: skip
    ax = P.design_forest(d)
    assert "P(best)" in ax.get_yticklabels()[0].get_text()
    plt.close(ax.figure)
    rng = np.random.default_rng(0)
    panel = pd.DataFrame({"u": np.repeat(np.arange(20), 6), "t": np.tile(np.arange(6), 20)})
    panel["first"] = np.where(panel.u < 10, 3, np.nan)
    panel["y"] = rng.normal(size=len(panel)) + 2 * (panel.t >= panel["first"])
    ax = P.event_study_plot(event_study(panel, "y", "u", "t", "first", window=(-2, 2)))
    assert "Event study" in ax.get_title()
    plt.close(ax.figure)
    prices = np.round(np.exp(rng.normal(np.log(15), 0.3, 5000)), 1)
    b = threshold_bunching(pd.DataFrame({"list_price": prices}), thresholds=(12,), n_boot=20)
    ax = P.bunching_plot(b, 12)
    assert "12" in ax.get_title() and len(ax.patches) == len(b.diagnostics["bins"][12.0])
    plt.close(ax.figure)
