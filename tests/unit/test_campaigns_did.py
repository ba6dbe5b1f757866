"""did / event_study / placebo_did against a hand 2x2 and statsmodels OLS with dummies."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf

from promo_analysis.campaigns import did, event_study, placebo_did


def _panel(seed=0, n_units=12, n_periods=8, effect=2.0, start=5, unbalanced=False):
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_units):
        treated_unit = u < n_units // 2
        a = rng.normal(0, 2)
        for t in range(n_periods):
            d = int(treated_unit and t >= start)
            y = 10 + a + 0.5 * t + effect * d + rng.normal(0, 1)
            rows.append({"unit": f"u{u}", "t": t, "y": y, "d": d, "grp": int(treated_unit),
                         "first": start if treated_unit else np.nan, "x": rng.normal()})  # fmt: skip
    df = pd.DataFrame(rows)
    if unbalanced:
        df = df.drop(index=rng.choice(len(df), size=len(df) // 10, replace=False))
    return df


def test_two_by_two_by_hand():
    df = pd.DataFrame(
        {
            "unit": ["a", "a", "b", "b", "c", "c", "d", "d"],
            "t": [0, 1] * 4,
            "y": [1.0, 4.0, 2.0, 6.0, 3.0, 3.5, 5.0, 6.0],
            "d": [0, 1, 0, 1, 0, 0, 0, 0],
        }
    )
    # (mean treated post - pre) - (mean control post - pre) = (5 - 1.5) - (4.75 - 4)
    res = did(df, outcome="y", unit="unit", time="t", treated="d")
    assert res.estimate == pytest.approx(3.5 - 0.75, abs=1e-12)
    assert res.extra["K"] == 2 and res.extra["n_clusters"] == 4


@pytest.mark.parametrize("unbalanced", [False, True])
def test_equals_ols_with_dummies_and_documented_se(unbalanced):
    df = _panel(unbalanced=unbalanced)
    res = did(df, outcome="y", unit="unit", time="t", treated="d", covariates=["x"])
    ols = smf.ols("y ~ d + x + C(unit) + C(t)", data=df).fit(
        cov_type="cluster", cov_kwds={"groups": pd.factorize(df.unit)[0]}
    )
    assert res.estimate == pytest.approx(ols.params["d"], abs=1e-9)
    # statsmodels counts every dummy in K; ours counts only effects not nested in clusters
    N, K_sm = len(df), int(ols.df_model) + 1
    K = res.extra["K"]
    assert K == 2 + df.t.nunique() - 1
    se_expected = ols.bse["d"] * np.sqrt((N - K_sm) / (N - K))
    assert res.se == pytest.approx(se_expected, rel=1e-9)
    assert res.extra["df"] == df.unit.nunique() - 1
    assert res.ci_low < 2.0 < res.ci_high


def test_event_study_and_placebo():
    df = _panel(n_units=30, n_periods=10, start=6, seed=3)
    es = event_study(df, outcome="y", unit="unit", time="t", first_treated="first",
                     window=(-3, 3))  # fmt: skip
    t = es.table
    assert t.loc[-1, "estimate"] == 0 and np.isnan(t.loc[-1, "se"])
    assert (t.loc[[0, 1, 2, 3], "ci_low"] < 2).all() and (t.loc[[0, 1, 2, 3], "ci_high"] > 2).all()
    assert t.loc[[-3, -2], "estimate"].abs().max() < 1.0
    assert es.diagnostics["pretrend_wald"][1] > 0.01
    # OLS with dummies gives the same coefficients
    d = df.copy()
    rel = (d.t - d["first"]).clip(-3, 3)
    for k in [-3, -2, 0, 1, 2, 3]:
        d[f"r{k + 3}"] = (rel == k).astype(float)
    ols = smf.ols("y ~ r0 + r1 + r3 + r4 + r5 + r6 + C(unit) + C(t)", data=d).fit()
    assert t.loc[2, "estimate"] == pytest.approx(ols.params["r5"], abs=1e-9)
    pl = placebo_did(df, outcome="y", unit="unit", time="t", group="grp", treatment_start=6,
                     placebo_start=3)  # fmt: skip
    assert pl.ci_low < 0 < pl.ci_high
    assert pl.n == (df.t < 6).sum()


def test_did_coverage():
    hits = [did(_panel(n_units=20, seed=s), "y", "unit", "t", "d").covers(2.0) for s in range(100)]
    assert 0.89 <= np.mean(hits) <= 0.99


def test_bad_input():
    df = _panel()
    with pytest.raises(ValueError, match="lacks the columns \\['dd'\\]"):
        did(df, outcome="y", unit="unit", time="t", treated="dd")
    with pytest.raises(ValueError, match="missing values"):
        did(df.assign(y=np.where(df.index == 3, np.nan, df.y)), "y", "unit", "t", "d")
    with pytest.raises(ValueError, match="collinear"):
        did(df.assign(d=df.grp), "y", "unit", "t", "d")
    with pytest.raises(ValueError, match="placebo_start"):
        placebo_did(df, "y", "unit", "t", "grp", treatment_start=5, placebo_start=0)
