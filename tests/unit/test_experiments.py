"""Randomized-test analysis: hand-computed and library-checked answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from scipy import stats
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_effectsize

from promo_analysis import experiments as ex


def two_by_two(x1: int, n1: int, x0: int, n0: int, arm: str = "12-3") -> pd.DataFrame:
    arms = [arm] * n1 + ["control"] * n0
    y = [1] * x1 + [0] * (n1 - x1) + [1] * x0 + [0] * (n0 - x0)
    return pd.DataFrame({"arm": arms, "sent": y})


def test_newcombe_matches_published_example_and_statsmodels():
    # Newcombe (1998), Table II, example (a): 56/70 vs 48/80, method 10: 0.0524 to 0.3339
    lo, hi = ex.newcombe_interval(56, 70, 48, 80)
    assert lo == pytest.approx(0.0524, abs=5e-5)
    assert hi == pytest.approx(0.3339, abs=5e-5)
    sm_lo, sm_hi = confint_proportions_2indep(56, 70, 48, 80, method="newcomb")
    assert (lo, hi) == pytest.approx((sm_lo, sm_hi), abs=1e-12)


def test_compare_arms_two_by_two_by_hand():
    res = ex.compare_arms(two_by_two(56, 70, 48, 80), arm="arm", outcome="sent",
                          expected=False)
    row = res.table.loc["12-3"]
    assert row["mean_arm"] == pytest.approx(0.8)
    assert row["mean_control"] == pytest.approx(0.6)
    assert row["estimate"] == pytest.approx(0.2)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((0.0524, 0.3339), abs=5e-5)
    # pooled two-proportion z test by hand: p = 104/150
    pp = 104 / 150
    z = 0.2 / np.sqrt(pp * (1 - pp) * (1 / 70 + 1 / 80))
    assert row["pvalue"] == pytest.approx(2 * stats.norm.sf(z))
    assert row["n"] == 150
    # relative lift 0.8/0.6 - 1 with delta method on the log ratio
    se_log = np.sqrt(0.2 / (70 * 0.8) + 0.4 / (80 * 0.6))
    assert row["lift"] == pytest.approx(1 / 3)
    assert row["lift_ci_low"] == pytest.approx(np.exp(np.log(4 / 3) - 1.959964 * se_log) - 1,
                                               abs=1e-6)


def test_wald_interval_by_hand():
    res = ex.compare_arms(two_by_two(56, 70, 48, 80), arm="arm", outcome="sent", ci="wald",
                          expected=False)
    se = np.sqrt(0.8 * 0.2 / 70 + 0.6 * 0.4 / 80)
    row = res.table.loc["12-3"]
    assert row["se"] == pytest.approx(se)
    assert row["ci_low"] == pytest.approx(0.2 - stats.norm.ppf(0.975) * se)
    assert row["pvalue"] == pytest.approx(2 * stats.norm.sf(0.2 / se))


def test_welch_for_revenue_matches_scipy():
    rng = np.random.default_rng(3)
    df = pd.DataFrame({"arm": ["control"] * 40 + ["21-5"] * 55})
    df["revenue"] = np.r_[rng.gamma(2, 6, 40), rng.gamma(2, 7, 55)]
    res = ex.compare_arms(df, arm="arm", outcome="revenue", expected=False)
    row = res.table.loc["21-5"]
    t = stats.ttest_ind(df.revenue[df.arm == "21-5"], df.revenue[df.arm == "control"],
                        equal_var=False)
    ci = t.confidence_interval(0.95)
    assert row["pvalue"] == pytest.approx(t.pvalue, rel=1e-10)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((ci.low, ci.high), rel=1e-10)
    assert res.method == "welch"


def test_lin_adjustment_matches_statsmodels_formula_and_reduces_se():
    rng = np.random.default_rng(4)
    n = 3000
    df = pd.DataFrame({"arm": rng.choice(["control", "12-3"], n), "x": rng.normal(size=n),
                       "seg": rng.choice(["office", "campus", "mall"], n)})
    d = (df.arm == "12-3").astype(float)
    df["y"] = 10 + 2 * d + 3 * df.x + 1.5 * d * df.x + (df.seg == "campus") + rng.normal(size=n)
    res = ex.compare_arms(df, arm="arm", outcome="y", covariates=["x", "seg"], expected=False)
    row = res.table.loc["12-3"]
    g = df.assign(d=d, xc=df.x - df.x.mean(),
                  c=(df.seg == "campus") - (df.seg == "campus").mean(),
                  m=(df.seg == "mall") - (df.seg == "mall").mean())
    fit = smf.ols("y ~ d * (xc + c + m)", data=g).fit(cov_type="HC2")
    assert row["estimate"] == pytest.approx(fit.params["d"], rel=1e-10)
    assert row["se"] == pytest.approx(fit.bse["d"], rel=1e-10)
    plain = ex.compare_arms(df, arm="arm", outcome="y", expected=False).table.loc["12-3"]
    assert row["se"] < 0.6 * plain["se"]
    assert row["ci_low"] < 2 < row["ci_high"]


def test_holm_across_arms_by_hand():
    rng = np.random.default_rng(5)
    n = 600
    df = pd.DataFrame({"arm": np.repeat(["control", "12-3", "21-5"], n)})
    df["sent"] = rng.binomial(1, np.repeat([0.2, 0.26, 0.22], n))
    res = ex.compare_arms(df, arm="arm", outcome="sent", expected=False)
    p = res.table["pvalue"].sort_values()
    holm = np.maximum.accumulate(np.minimum(1, p.to_numpy() * np.array([2, 1])))
    assert res.table.loc[p.index, "pvalue_holm"].to_numpy() == pytest.approx(holm)


def test_srm_by_hand_and_warning():
    df = pd.DataFrame({"arm": ["control"] * 1000 + ["12-3"] * 1200, "sent": 0})
    df.loc[::3, "sent"] = 1
    srm = ex.srm_test(df, arm="arm")
    assert srm["statistic"] == pytest.approx((100**2 / 1100) * 2)
    assert srm["pvalue"] == pytest.approx(stats.chi2.sf(2 * 100**2 / 1100, 1))
    res = ex.compare_arms(df, arm="arm", outcome="sent")
    assert any("sample ratio mismatch" in w for w in res.warnings)
    ok = ex.compare_arms(df, arm="arm", outcome="sent", expected={"control": 5, "12-3": 6})
    assert not ok.warnings
    assert ok.diagnostics["srm"]["pvalue"] == pytest.approx(1.0)


def test_by_segment_bh_and_heterogeneity():
    rng = np.random.default_rng(6)
    n = 4000
    df = pd.DataFrame({"arm": rng.choice(["control", "12-3"], n),
                       "segment": rng.choice(["office", "campus", "mall"], n)})
    eff = df.segment.map({"office": 0.15, "campus": 0.0, "mall": 0.05})
    df["sent"] = rng.binomial(1, 0.2 + eff * (df.arm == "12-3"))
    res = ex.by_segment(df, arm="arm", outcome="sent", segment="segment")
    p = res.table["pvalue"].to_numpy()
    order = np.argsort(p)
    m = len(p)
    q = p[order] * m / np.arange(1, m + 1)
    q = np.minimum.accumulate(q[::-1])[::-1]
    expected = np.empty(m)
    expected[order] = np.minimum(q, 1)
    assert res.table["qvalue_bh"].to_numpy() == pytest.approx(expected)
    one = ex.compare_arms(df[df.segment == "office"], arm="arm", outcome="sent",
                          expected=False).table.loc["12-3"]
    assert res.table.loc[("office", "12-3"), "estimate"] == pytest.approx(one["estimate"])
    het = res.diagnostics["heterogeneity"]["12-3"]
    assert het["df"] == 2 and het["pvalue"] < 0.01


def test_power_matches_statsmodels():
    for base, eff, n, ratio in [(0.1, 0.03, 1000, 1.0), (0.3, -0.05, 700, 2.5)]:
        es = proportion_effectsize(base + eff, base)
        want = NormalIndPower().power(es, nobs1=n, alpha=0.05, ratio=ratio)
        assert ex.power(n, base, eff, ratio=ratio) == pytest.approx(want, rel=1e-10)
    want_n = NormalIndPower().solve_power(proportion_effectsize(0.13, 0.1), power=0.8,
                                          alpha=0.05, ratio=1)
    assert ex.sample_size(0.1, 0.03) == int(np.ceil(want_n))


def test_minimum_detectable_effect_inverts_power():
    mde = ex.minimum_detectable_effect(2000, 0.15, power=0.9)
    assert ex.power(2000, 0.15, mde) == pytest.approx(0.9, abs=1e-8)
    # means: (z_{0.975} + z_{0.8}) * sd * sqrt(2 / n), up to the far tail's tiny contribution
    by_hand = (stats.norm.ppf(0.975) + stats.norm.ppf(0.8)) * 12 * np.sqrt(2 / 500)
    assert ex.minimum_detectable_effect(500, 0, sd=12) == pytest.approx(by_hand, rel=1e-5)


def test_bad_input_messages():
    df = two_by_two(5, 10, 3, 10)
    with pytest.raises(ValueError, match="control label 'ctrl'"):
        ex.compare_arms(df, arm="arm", outcome="sent", control="ctrl")
    bad = df.astype({"sent": float})
    bad.loc[2, "sent"] = np.nan
    with pytest.raises(ValueError, match="'sent' has 1 missing"):
        ex.compare_arms(bad, arm="arm", outcome="sent")
    with pytest.raises(KeyError, match="revenue"):
        ex.compare_arms(df, arm="arm", outcome="revenue")
    with pytest.raises(ValueError, match="only the control arm"):
        ex.compare_arms(df[df.arm == "control"], arm="arm", outcome="sent")
    with pytest.raises(ValueError, match="between 0 and 1"):
        ex.power(100, 0.95, 0.1)


def test_multiplicity_adjustments_match_statsmodels():
    from statsmodels.stats.multitest import multipletests

    p = np.array([0.01, 0.04, 0.03, 0.2, 0.005, 0.04, np.nan])
    ok = ~np.isnan(p)
    for mine, method in ((ex._holm, "holm"), (ex._bh, "fdr_bh")):
        got = mine(p)
        assert np.isnan(got[~ok]).all()
        assert got[ok] == pytest.approx(multipletests(p[ok], method=method)[1], abs=1e-15)
