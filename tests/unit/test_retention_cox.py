"""Cox regression cross-checked against lifelines' CoxPHFitter (a second implementation)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from promo_analysis.retention import concordance_index, cox


def _data(n=600, seed=0, ties=False):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"x": rng.normal(size=n), "seg": rng.choice(["a", "b", "c"], n),
                       "wechat": rng.random(n) < 0.4})
    lp = 0.5 * df.x + 0.4 * (df.seg == "b") - 0.3 * df.wechat
    t = rng.exponential(1 / np.exp(lp))
    c = rng.exponential(2.0, n)
    df["t"] = np.minimum(t, c)
    if ties:
        df["t"] = np.ceil(df["t"] * 8)
    df["e"] = (t <= c).astype(int)
    return df


def _lifelines(df):
    from lifelines import CoxPHFitter

    X = pd.get_dummies(df[["t", "e", "x", "seg"]], columns=["seg"], drop_first=True, dtype=float)
    X["wechat"] = df["wechat"].astype(float)
    return CoxPHFitter().fit(X, "t", "e"), X


@pytest.mark.parametrize("ties", [False, True])
def test_cox_efron_matches_lifelines(ties):
    df = _data(ties=ties)
    mine = cox(df, "t", "e", ["x", "seg", "wechat"])
    ref, _ = _lifelines(df)
    names = {"x": "x", "seg[b]": "seg_b", "seg[c]": "seg_c", "wechat": "wechat"}
    tab = mine.coefficients.table
    for m, r in names.items():
        assert tab.loc[m, "estimate"] == pytest.approx(ref.params_[r], abs=1e-5)
        assert tab.loc[m, "se"] == pytest.approx(ref.standard_errors_[r], rel=1e-4)
        assert tab.loc[m, "pvalue"] == pytest.approx(ref.summary.loc[r, "p"], rel=1e-3, abs=1e-12)
        assert tab.loc[m, "hr_ci_low"] == pytest.approx(
            ref.summary.loc[r, "exp(coef) lower 95%"], rel=1e-4)
    assert mine.loglik == pytest.approx(ref.log_likelihood_, rel=1e-8)
    assert mine.concordance == pytest.approx(ref.concordance_index_, abs=1e-10)
    assert mine.n_events == df.e.sum()


def test_ph_test_matches_lifelines():
    from lifelines.statistics import proportional_hazard_test

    df = _data(seed=4)
    mine = cox(df, "t", "e", ["x", "seg", "wechat"])
    ref, X = _lifelines(df)
    for tt in ("rank", "identity", "log"):
        res = proportional_hazard_test(ref, X, time_transform=tt).summary
        ours = mine.ph_test(tt)
        for m, r in {"x": "x", "seg[b]": "seg_b", "wechat": "wechat"}.items():
            assert ours.loc[m, "statistic"] == pytest.approx(res.loc[r, "test_statistic"],
                                                             rel=1e-3)
    assert ours.loc["GLOBAL", "df"] == 4


def test_ph_test_detects_time_varying_effect():
    rng = np.random.default_rng(5)
    n = 1200
    x = rng.integers(0, 2, n)
    # x = 1 has a high hazard early and a low one later: piecewise exponential
    t1 = rng.exponential(1 / np.where(x == 1, 3.0, 1.0))
    late = t1 > 0.3
    t = np.where(late, 0.3 + rng.exponential(1 / np.where(x == 1, 0.3, 1.0)), t1)
    df = pd.DataFrame({"t": t, "e": 1, "x": x})
    res = cox(df, "t", "e", ["x"])
    assert res.ph_test().loc["x", "pvalue"] < 1e-6
    ok = cox(_data(seed=6), "t", "e", ["x"])
    assert ok.ph_test().loc["x", "pvalue"] > 0.001


def test_concordance_against_lifelines_and_brute_force():
    from lifelines.utils import concordance_index as ll_ci

    rng = np.random.default_rng(2)
    t = rng.integers(1, 20, 300).astype(float)
    e = rng.random(300) < 0.7
    risk = rng.integers(0, 10, 300).astype(float)  # ties in risk and time
    # lifelines scores "higher prediction = longer survival"
    assert concordance_index(t, risk, e) == pytest.approx(ll_ci(t, -risk, e), abs=1e-12)
    # brute force over pairs with the documented rule
    num = den = 0.0
    for i in range(300):
        if not e[i]:
            continue
        later = (t > t[i]) | ((t == t[i]) & ~e)
        den += later.sum()
        num += (risk[i] > risk[later]).sum() + 0.5 * (risk[i] == risk[later]).sum()
    assert concordance_index(t, risk, e) == pytest.approx(num / den, abs=1e-12)


def _brute_force_concordance(t, risk, e):
    """Harrell's C over all pairs, O(n^2), with the documented tie rules."""
    later = (t[None, :] > t[:, None]) | ((t[None, :] == t[:, None]) & ~e[None, :])
    later &= e[:, None]
    den = later.sum()
    higher = risk[:, None] > risk[None, :]
    same = risk[:, None] == risk[None, :]
    return ((later & higher).sum() + 0.5 * (later & same).sum()) / den if den else np.nan


@pytest.mark.parametrize("seed", range(8))
def test_concordance_sort_based_count_equals_brute_force(seed):
    """Random sizes, heavy ties in time and risk (or none), any censoring share: the
    vectorised count gives the O(n^2) pair count exactly, and lifelines' value."""
    from lifelines.utils import concordance_index as ll_ci

    rng = np.random.default_rng(100 + seed)
    n = int(rng.integers(2, 700))
    if seed % 2:
        t = rng.integers(0, rng.integers(1, 40), n).astype(float)
        risk = rng.integers(0, rng.integers(1, 8), n).astype(float)
    else:  # continuous: keys up to n, many bit levels
        t, risk = rng.exponential(size=n), rng.normal(size=n)
    e = rng.random(n) < rng.uniform(0.05, 1.0)
    e[0] = True
    mine = concordance_index(t, risk, e)
    assert mine == pytest.approx(_brute_force_concordance(t, risk, e), abs=1e-12)
    assert mine == pytest.approx(ll_ci(t, -risk, e), abs=1e-12)


def test_concordance_without_comparable_pairs_is_nan():
    t = np.array([1.0, 2.0, 3.0])
    assert np.isnan(concordance_index(t, np.array([0.1, 0.2, 0.3]), np.zeros(3, bool)))
    # two events at the same time, nothing later: no comparable pair
    assert np.isnan(concordance_index(np.array([5.0, 5.0]), np.array([1.0, 2.0]),
                                      np.array([True, True])))


def test_hazard_ratio_estimate_and_recovery():
    """Simulated true log-HR 0.5 for x: the 95% CI covers exp(0.5)."""
    df = _data(n=1500, seed=9)
    hr = cox(df, "t", "e", ["x", "seg", "wechat"]).hazard_ratio("x")
    assert hr.ci_low < np.exp(0.5) < hr.ci_high
    assert hr.null == 1.0 and hr.estimand == "hazard ratio"


def test_cox_bad_input():
    df = _data(n=50)
    with pytest.raises(ValueError, match=r"data\.t: durations must be >= 0"):
        cox(df.assign(t=-df.t), "t", "e", ["x"])
    with pytest.raises(ValueError, match=r"data\.e: events must be 0/1"):
        cox(df.assign(e=2), "t", "e", ["x"])
    with pytest.raises(ValueError, match=r"all 50 rows are censored"):
        cox(df.assign(e=0), "t", "e", ["x"])
    with pytest.raises(ValueError, match=r"constant"):
        cox(df.assign(k=1.0), "t", "e", ["x", "k"])
    with pytest.raises(ValueError, match=r"data\.x: missing values"):
        cox(df.assign(x=np.where(df.index == 3, np.nan, df.x)), "t", "e", ["x"])


@pytest.mark.parametrize("ties", ["breslow", "efron"])
def test_ties_and_strata_match_statsmodels_phreg(ties):
    from statsmodels.duration.hazard_regression import PHReg

    df = _data(n=400, seed=8, ties=True)
    df["region"] = np.where(np.arange(len(df)) % 3 == 0, "r1", "r2")
    mine = cox(df, "t", "e", ["x", "wechat"], ties=ties, strata="region")
    X = np.column_stack([df.x, df.wechat.astype(float)])
    ref = PHReg(df.t.to_numpy(), X, status=df.e.to_numpy(), ties=ties,
                strata=df.region.to_numpy()).fit()
    np.testing.assert_allclose(mine.params.to_numpy(), ref.params, rtol=1e-6)
    np.testing.assert_allclose(mine.coefficients.se.to_numpy(), ref.bse, rtol=1e-5)
    assert mine.loglik == pytest.approx(ref.llf, rel=1e-9)


def test_collinear_covariates_warn_instead_of_crashing():
    df = _data(n=200, seed=12)
    df["x2"] = 2 * df["x"]
    res = cox(df, "t", "e", ["x", "x2"])
    assert any("singular" in w for w in res.warnings)
    assert res.coefficients.se.isna().all()
