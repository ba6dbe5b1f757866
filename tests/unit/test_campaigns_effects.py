"""ITS campaign effects on hand-made daily series with known injected effects."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from promo_analysis.calendar import calendar_features
from promo_analysis.campaigns import estimate_campaign_effects, fit_its, placebo_campaigns

DATES = pd.date_range("2021-01-01", "2022-12-31")


def _series(seed: int, *, rho: float = 0.5, sd: float = 0.08, effect: float = 0.3):
    """Multiplicative weekday x season x holiday x trend demand, AR(1) log noise, campaigns
    lifting demand by ``effect`` and giving back 10% in the 7 days after."""
    rng = np.random.default_rng(seed)
    cal = calendar_features(DATES, region="guangxi")
    wk = np.array([1.0, 1.05, 1.0, 0.98, 1.1, 0.8, 0.7])[cal.weekday]
    season = 1 + 0.2 * np.sin(2 * np.pi * DATES.dayofyear.to_numpy() / 365.25)
    hol = np.where(cal.is_holiday == 1, 0.6, 1.0) * np.where(cal.is_slowdown == 1, 0.5, 1.0)
    trend = np.exp(0.2 * np.arange(len(DATES)) / 365)
    e = np.zeros(len(DATES))
    for t in range(1, len(DATES)):
        e[t] = rho * e[t - 1] + rng.normal(0, sd)
    base = np.asarray(10000 * wk * season * hol * trend * np.exp(e), dtype=float)
    y = base.copy()
    starts = pd.to_datetime(
        ["2021-03-05", "2021-05-20", "2021-08-01", "2021-11-05", "2022-03-01",
         "2022-04-28", "2022-06-10", "2022-08-20", "2022-10-10", "2022-11-20"]
    )  # fmt: skip
    rows, truth = [], {}
    for i, s in enumerate(starts):
        length = int(rng.integers(5, 15))
        end = s + pd.Timedelta(days=length - 1)
        inside = (DATES >= s) & (DATES <= end)
        after = (DATES > end) & (DATES <= end + pd.Timedelta(days=7))
        y[inside] += effect * base[inside]
        y[after] -= 0.1 * base[after]
        truth[f"c{i}"] = effect * base[inside].sum() - 0.1 * base[after].sum()
        rows.append(
            {"campaign_id": f"c{i}", "region_id": "guangxi", "start_date": s, "end_date": end,
             "theme": "other", "fixed_cost": 1000.0}
        )  # fmt: skip
    daily = pd.DataFrame({"date": DATES, "region_id": "guangxi", "revenue": y})
    return daily, pd.DataFrame(rows), truth


def _linear_series():
    """A noise-free series exactly linear in the level-scale regressors, +50 a campaign day."""
    cal = calendar_features(DATES)
    t = np.arange(len(DATES)) / 365.25
    wd, hol = cal.weekday.to_numpy(float), cal.is_holiday.to_numpy(float)
    y = 200 + 10 * wd - 30 * hol + 40 * t
    camps = pd.DataFrame(
        {
            "campaign_id": ["a", "b"],
            "region_id": ["r1", "r1"],
            "start_date": ["2021-06-01", "2022-09-01"],
            "end_date": ["2021-06-10", "2022-09-05"],
        }
    )
    y = y.astype(float)
    for s, e in zip(camps.start_date, camps.end_date, strict=True):
        y[(DATES >= s) & (DATES <= e)] += 50
    return pd.DataFrame({"date": DATES, "region_id": "r1", "revenue": y}), camps


def test_noise_free_series_recovers_injected_effect_exactly():
    daily, camps = _linear_series()
    res = estimate_campaign_effects(
        daily, camps, scale="level", fourier=0, new_customers=None, min_pre_days=10
    )
    # the linear model holds exactly, so each lift term is the injected +50 a day
    est = res.estimate
    assert est.loc[("a", "r1")] == pytest.approx(500, abs=1e-6)
    assert est.loc[("b", "r1")] == pytest.approx(250, abs=1e-6)
    assert (res.table["pull_forward"].abs() < 1e-6).all()
    assert (res.se < 1e-4).all()
    assert res.table.loc[("a", "r1"), "duration"] == 10


def test_fit_equals_statsmodels_ols_and_hac():
    daily, camps, _ = _series(0)
    y = daily.revenue.to_numpy()
    camp = (DATES >= "2022-03-01") & (DATES <= "2022-03-10")
    post = (DATES > "2022-03-10") & (DATES <= "2022-03-17")
    fit = fit_its(DATES, y, {"c": (camp, post)}, region="guangxi", vcov_type="hac", hac_lags=10)
    ols = sm.OLS(np.log(y), fit.X).fit(
        cov_type="HAC", cov_kwds={"maxlags": 10, "use_correction": True}
    )
    np.testing.assert_allclose(fit.beta, ols.params, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(fit.vcov, ols.cov_params(), rtol=1e-6, atol=1e-12)
    lift, dip = fit.effects["c"]
    assert fit.columns[lift] == "lift:c" and fit.columns[dip] == "dip:c"
    eff = fit.effect("c")
    # with minus without the campaign's multiplicative terms, by hand
    by_hand = y[camp].sum() * (1 - np.exp(-ols.params[lift])) + y[post].sum() * (
        1 - np.exp(-ols.params[dip])
    )
    assert eff["estimate"] == pytest.approx(by_hand, rel=1e-9)
    # delta-method SE, by hand from statsmodels' covariance
    g = np.zeros(len(ols.params))
    g[lift] = y[camp].sum() * np.exp(-ols.params[lift])
    g[dip] = y[post].sum() * np.exp(-ols.params[dip])
    assert eff["se"] == pytest.approx(np.sqrt(g @ ols.cov_params() @ g), rel=1e-6)


def test_ar_residual_model_recovers_ar1():
    rng = np.random.default_rng(5)
    n = 1500
    e = np.zeros(n)
    for t in range(1, n):
        e[t] = 0.6 * e[t - 1] + rng.normal()
    dates = pd.date_range("2015-01-01", periods=n)
    fit = fit_its(dates, 100 + e, {}, scale="level", fourier=0, trend="none")
    # implied autocorrelations close to 0.6^k and the variance to 1 / (1 - 0.36)
    assert fit.gamma[0] == pytest.approx(1 / (1 - 0.36), rel=0.1)
    np.testing.assert_allclose(fit.gamma[1:4] / fit.gamma[0], 0.6 ** np.arange(1, 4), atol=0.05)
    # with AR(1) errors the coefficient covariance is the GLS-type sandwich, not OLS's
    X = fit.X
    T = fit.gamma[np.abs(np.subtract.outer(np.arange(n), np.arange(n)))]
    bread = np.linalg.inv(X.T @ X)
    full = bread @ X.T @ T @ X @ bread
    np.testing.assert_allclose(fit.vcov, full, rtol=1e-3, atol=1e-3 * np.abs(full).max())


def test_coverage_on_autocorrelated_series():
    z = []
    for seed in range(10):
        daily, camps, truth = _series(seed)
        tab = estimate_campaign_effects(daily, camps, new_customers=None).table.reset_index()
        z += list((tab.estimate - tab.campaign_id.map(truth)) / tab.se)
    z = np.asarray(z)
    cover = np.mean(np.abs(z) < 1.96)
    assert 0.87 <= cover <= 0.99, cover
    assert abs(z.mean()) < 0.25


def test_costs_roi_and_new_customers():
    daily, camps, truth = _series(1)
    rng = np.random.default_rng(1)
    daily["new_customers"] = rng.poisson(30, len(daily))
    disc = pd.DataFrame(
        {"campaign_id": ["c0", "c1"], "region_id": "guangxi", "discount_cost": [5000.0, 0.0]}
    )
    res = estimate_campaign_effects(daily, camps, discount_cost=disc)
    t = res.table.xs("guangxi", level="region_id")
    assert t.loc["c0", "cost"] == 6000 and t.loc["c2", "cost"] == 1000
    assert t.loc["c0", "net_gain"] == pytest.approx(t.loc["c0", "estimate"] - 1000)
    assert t.loc["c0", "roi"] == pytest.approx((t.loc["c0", "estimate"] - 1000) / 6000)
    assert t.loc["c0", "roi_ci_low"] == pytest.approx((t.loc["c0", "ci_low"] - 1000) / 6000)
    # no campaign effect on new customers: the estimates are noise around 0
    zs = t.incremental_new_customers / t.new_customers_se
    assert (zs.abs() < 4).all()
    pos = t[t.new_customers_ci_low > 0]
    for _, r in pos.iterrows():
        assert r.cost_per_new_customer_ci_high == pytest.approx(r.cost / r.new_customers_ci_low)
    assert (t.campaign_part + t.pull_forward - t.estimate).abs().max() < 1e-6


def test_national_campaign_and_overlapping_multiplicative_lifts():
    daily, camps, truth = _series(2)
    rng = np.random.default_rng(9)
    other = daily.assign(
        region_id="shanxi", revenue=daily.revenue * np.exp(rng.normal(0, 0.05, len(daily)))
    )
    nat = pd.DataFrame(
        {
            "campaign_id": ["nat", "ov"],
            "region_id": [None, "shanxi"],
            "start_date": pd.to_datetime(["2021-07-01", "2021-07-05"]),
            "end_date": pd.to_datetime(["2021-07-07", "2021-07-12"]),
            "theme": ["qixi", "other"],
            "fixed_cost": [2000.0, 100.0],
        }
    )
    # inject the two campaigns multiplicatively in shanxi: x1.4 and x1.25 (x1.75 when both)
    f_nat = np.where((DATES >= "2021-07-01") & (DATES <= "2021-07-07"), 1.4, 1.0)
    f_ov = np.where((DATES >= "2021-07-05") & (DATES <= "2021-07-12"), 1.25, 1.0)
    y = other.revenue.to_numpy() * f_nat * f_ov
    other["revenue"] = y
    true_nat = float(np.sum(y * (1 - 1 / f_nat)))  # with minus without that one campaign
    true_ov = float(np.sum(y * (1 - 1 / f_ov)))
    both = pd.concat([daily, other])
    res = estimate_campaign_effects(both, pd.concat([camps, nat]), new_customers=None)
    t = res.table
    assert ("nat", "guangxi") in t.index and ("nat", "shanxi") in t.index
    assert t.loc[("nat", "shanxi"), "fixed_cost"] == 1000  # split over two regions
    assert t.loc[("nat", "shanxi"), "overlap"] and not t.loc[("nat", "guangxi"), "overlap"]
    assert any("overlap" in w for w in res.warnings)
    for cid, true in (("nat", true_nat), ("ov", true_ov)):
        row = t.loc[(cid, "shanxi")]
        assert row.ci_low <= true <= row.ci_high, (cid, true, row.ci_low, row.ci_high)
    # identical windows cannot be told apart: one joint term, with a warning
    twin = pd.concat([camps, camps.iloc[[0]].assign(campaign_id="twin")])
    res2 = estimate_campaign_effects(daily, twin, new_customers=None)
    assert res2.estimate.loc[("twin", "guangxi")] == res2.estimate.loc[("c0", "guangxi")]
    assert any("same days" in w for w in res2.warnings)


def test_bad_input():
    daily, camps, _ = _series(3)
    late = camps.assign(end_date=camps.end_date.where(camps.index != 9, "2023-02-01"))
    with pytest.raises(ValueError, match="outside the data range.*'c9'"):
        estimate_campaign_effects(daily, late, new_customers=None)
    early = pd.concat(
        [camps, pd.DataFrame([{"campaign_id": "jan", "region_id": "guangxi",
                               "start_date": "2021-01-10", "end_date": "2021-01-15"}])]
    )  # fmt: skip
    with pytest.raises(ValueError, match="'jan'.*pre-period is too short"):
        estimate_campaign_effects(daily, early, new_customers=None)
    res = estimate_campaign_effects(daily, early, new_customers=None, short_pre="skip")
    assert "jan" not in res.table.index.get_level_values(0)
    assert any("left out" in w for w in res.warnings)
    with pytest.raises(ValueError, match="unknown theme.*'xmas'"):
        estimate_campaign_effects(daily, camps.assign(theme="xmas"), new_customers=None)
    with pytest.raises(ValueError, match="missing days"):
        estimate_campaign_effects(daily.drop(index=[100, 101]), camps, new_customers=None)
    with pytest.raises(ValueError, match="duplicate"):
        estimate_campaign_effects(pd.concat([daily, daily.iloc[:1]]), camps)
    with pytest.raises(ValueError, match="lacks the columns \\['revenue'\\]"):
        estimate_campaign_effects(daily.drop(columns="revenue"), camps)


def test_national_fixed_cost_split_over_all_regions():
    daily, camps, _ = _series(4)
    nat = pd.DataFrame(
        [{"campaign_id": "nat", "region_id": None, "start_date": "2021-07-01",
          "end_date": "2021-07-07", "fixed_cost": 3000.0}]
    )  # fmt: skip
    res = estimate_campaign_effects(
        daily, pd.concat([camps, nat]), new_customers=None,
        national_units=["guangxi", "shanxi", "beijing"],
    )  # fmt: skip
    assert res.table.loc[("nat", "guangxi"), "fixed_cost"] == 1000
    assert ("nat", "shanxi") not in res.table.index


def test_placebo_campaigns_are_calibrated():
    rates, zs = [], []
    for seed in range(4):
        daily, camps, _ = _series(seed)
        res = placebo_campaigns(daily, camps, length=5, n_per_unit=8, seed=seed,
                                new_customers=None)  # fmt: skip
        t = res.table
        assert len(t) >= 4 and t.index.get_level_values(0).str.startswith("placebo").all()
        # fake windows never touch a real campaign's window
        for _, c in camps.iterrows():
            far = (t.start_date > c.end_date + pd.Timedelta(days=7)) | (
                t.end_date + pd.Timedelta(days=7) < c.start_date
            )
            assert far.all()
        rates.append(res.diagnostics["rejection_rate"])
        zs += list(t.estimate / t.se)
    assert np.mean(rates) <= 0.15
    assert 0.6 < np.std(zs) < 1.5


def test_spline_trend_recovers_a_bending_level_exactly():
    """A noise-free level series whose slope changes at the second quarterly knot and a +50
    campaign lift on days of the bend: the default trend (piecewise linear, a knot every 91
    days) recovers the lift exactly; a single line cannot."""
    from promo_analysis.campaigns.effects import TREND_KNOT_DAYS

    cal = calendar_features(DATES)
    days = np.arange(len(DATES))
    knot = 2 * TREND_KNOT_DAYS
    level = 300 + 20 * days / 365.25 - 60 * np.maximum(days - knot, 0) / 365.25
    y = level + 8 * cal.weekday.to_numpy(float)
    camp = (days >= knot + 20) & (days < knot + 30)
    y = y + 50 * camp
    iv = {"c": (camp, np.zeros(len(DATES), bool))}
    fit = fit_its(DATES, y, iv, scale="level", fourier=0)
    assert [c for c in fit.columns if c.startswith("trend_knot")] == [
        f"trend_knot{k}" for k in range(TREND_KNOT_DAYS, len(DATES) - 45, TREND_KNOT_DAYS)
    ]
    assert fit.effect("c")["estimate"] == pytest.approx(500, abs=1e-6)
    line = fit_its(DATES, y, iv, scale="level", fourier=0, trend="linear")
    assert abs(line.effect("c")["estimate"] - 500) > 5
    with pytest.raises(ValueError, match="trend must be one of"):
        fit_its(DATES, y, iv, scale="level", trend="cubic")
