"""Kaplan-Meier and log-rank: a hand-computed example and lifelines as second implementation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from promo_analysis.retention import kaplan_meier, logrank

# 10 units, ties at 2 (event + censoring) and 4 (two events), censoring at 2, 5 and 7.
HAND = pd.DataFrame(
    {
        "t": [1, 2, 2, 3, 4, 4, 5, 6, 7, 8],
        "e": [1, 1, 0, 1, 1, 1, 0, 1, 0, 1],
    }
)


def test_kaplan_meier_by_hand():
    km = kaplan_meier(HAND, "t", "e")
    c = km.curve().set_index("time")
    # S(t) = prod (1 - d/n): n = 10, 9, 7, 6, (4 censored), 3, (2 censored), 1
    s1 = 9 / 10
    s2 = s1 * 8 / 9
    s3 = s2 * 6 / 7
    s4 = s3 * 4 / 6
    s6 = s4 * 2 / 3
    expected = {0: 1.0, 1: s1, 2: s2, 3: s3, 4: s4, 5: s4, 6: s6, 7: s6, 8: 0.0}
    for t, s in expected.items():
        assert c.loc[t, "survival"] == pytest.approx(s, abs=1e-12), t
    assert c.loc[2, "at_risk"] == 9 and c.loc[2, "censored"] == 1 and c.loc[4, "events"] == 2
    # Greenwood at t = 4: S^2 * (1/(10*9) + 1/(9*8) + 1/(7*6) + 2/(6*4))
    gw = 1 / 90 + 1 / 72 + 1 / 42 + 2 / 24
    assert c.loc[4, "se"] == pytest.approx(s4 * np.sqrt(gw), rel=1e-12)
    # log-log interval at t = 4
    z = 1.959963984540054
    half = z * np.sqrt(gw) / abs(np.log(s4))
    assert c.loc[4, "ci_low"] == pytest.approx(s4 ** np.exp(half), rel=1e-10)
    assert c.loc[4, "ci_high"] == pytest.approx(s4 ** np.exp(-half), rel=1e-10)
    # median: first time with S <= 0.5
    assert km.median.estimate["all"] == 4
    # at(): step function and numbers at risk (duration >= t)
    a = km.at([0.5, 2, 4.5, 9]).set_index("time")
    assert a.loc[0.5, "survival"] == 1.0 and a.loc[0.5, "at_risk"] == 10
    assert a.loc[2, "survival"] == pytest.approx(s2) and a.loc[2, "at_risk"] == 9
    assert a.loc[4.5, "survival"] == pytest.approx(s4) and a.loc[4.5, "at_risk"] == 4
    assert a.loc[9, "survival"] == 0.0 and a.loc[9, "at_risk"] == 0


def _data(n=400, seed=0, k=3):
    rng = np.random.default_rng(seed)
    g = rng.choice([f"g{i}" for i in range(k)], n)
    rate = np.where(g == "g0", 1.0, np.where(g == "g1", 1.4, 0.8))
    t = rng.exponential(1 / rate)
    c = rng.exponential(1.5, n)
    return pd.DataFrame({"t": np.ceil(np.minimum(t, c) * 6), "e": (t <= c).astype(int),
                         "g": g})


def test_kaplan_meier_matches_lifelines_with_ties():
    from lifelines import KaplanMeierFitter
    from lifelines.utils import median_survival_times

    df = _data()
    km = kaplan_meier(df, "t", "e", group="g", alpha=0.1)
    for g in km.groups:
        sub = df[df.g == g]
        ref = KaplanMeierFitter(alpha=0.1).fit(sub.t, sub.e)
        mine = km.curve(g).set_index("time")
        sf = ref.survival_function_.iloc[:, 0].reindex(mine.index)
        ci = ref.confidence_interval_.reindex(mine.index)
        np.testing.assert_allclose(mine["survival"], sf, atol=1e-12)
        np.testing.assert_allclose(mine["ci_low"], ci.iloc[:, 0], atol=1e-10)
        np.testing.assert_allclose(mine["ci_high"], ci.iloc[:, 1], atol=1e-10)
        med = km.median.table.loc[g]
        assert med["estimate"] == ref.median_survival_time_
        lo, hi = median_survival_times(ref.confidence_interval_).iloc[0]
        assert (med["ci_low"], med["ci_high"]) == (lo, hi)


def test_frequency_weights_equal_expanded_data():
    df = _data(seed=3)
    agg = df.groupby(["g", "t", "e"]).size().rename("count").reset_index()
    a = kaplan_meier(df, "t", "e", group="g")
    b = kaplan_meier(agg, "t", "e", group="g", weights="count")
    pd.testing.assert_frame_equal(a.table, b.table)
    la, lb = logrank(df, "t", "e", "g"), logrank(agg, "t", "e", "g", weights="count")
    assert la.estimate == pytest.approx(lb.estimate, rel=1e-12)


@pytest.mark.parametrize("k", [2, 3])
def test_logrank_matches_lifelines(k):
    from lifelines.statistics import multivariate_logrank_test

    df = _data(n=600, seed=k, k=k)
    mine = logrank(df, "t", "e", "g")
    ref = multivariate_logrank_test(df.t, df.g, df.e)
    assert mine.estimate == pytest.approx(ref.test_statistic, rel=1e-10)
    assert mine.pvalue == pytest.approx(ref.p_value, rel=1e-8)
    assert mine.extra["df"] == k - 1
    tab = mine.diagnostics["table"]
    assert tab["observed"].sum() == pytest.approx(tab["expected"].sum())


def test_logrank_null_calibration():
    """Under equal curves the p-value is uniform: about 5% below 0.05 over 300 data sets."""
    rng = np.random.default_rng(11)
    ps = []
    for _ in range(300):
        n = 80
        t = rng.exponential(1, n)
        c = rng.exponential(2, n)
        df = pd.DataFrame({"t": np.minimum(t, c), "e": (t <= c).astype(int),
                           "g": rng.choice(["a", "b"], n)})
        ps.append(logrank(df, "t", "e", "g").pvalue)
    rate = np.mean(np.array(ps) < 0.05)
    assert 0.02 <= rate <= 0.09


def test_plot_draws_curves_and_at_risk_table():
    import matplotlib.pyplot as plt

    km = kaplan_meier(_data(), "t", "e", group="g")
    ax = km.plot()
    assert len(ax.get_lines()) >= 3
    assert ax.get_xlabel() and ax.get_title()
    plt.close("all")


@pytest.mark.parametrize(
    "frame, match",
    [
        (pd.DataFrame({"t": [1, -2, 3], "e": [1, 0, 1]}), r"data\.t: durations must be >= 0 \(1 of 3 rows are negative, e\.g\. -2\)"),
        (pd.DataFrame({"t": [1, 2, 3], "e": [1, 2, 1]}), r"data\.e: events must be 0/1 \(1 of 3 rows"),
        (pd.DataFrame({"t": [1, 2, 3], "e": [0, 0, 0]}), r"all 3 rows are censored"),
        (pd.DataFrame({"t": [1, None, 3], "e": [1, 0, 1]}), r"data\.t: missing values"),
        (pd.DataFrame({"t": [1, 2, 3]}), r"lacks the column"),
    ],
)
def test_kaplan_meier_bad_input(frame, match):
    with pytest.raises(ValueError, match=match):
        kaplan_meier(frame, "t", "e")


def test_logrank_single_group_is_an_error():
    df = HAND.assign(g="only")
    with pytest.raises(ValueError, match=r"single group 'only'"):
        logrank(df, "t", "e", "g")
