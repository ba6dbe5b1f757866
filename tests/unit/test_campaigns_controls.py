"""Other regions as controls (``controls="regions"``) on hand-made panels with known effects."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from promo_analysis.calendar import calendar_features
from promo_analysis.campaigns import estimate_campaign_effects

DATES = pd.date_range("2021-01-01", "2022-12-31")
REGIONS = ("r1", "r2", "r3", "r4")
# provincial campaigns of r1; on their days a shock hits every region (unmodelled by the
# calendar), so only other regions can tell it apart from the campaign
STARTS = ["2021-03-10", "2021-05-20", "2021-08-02", "2021-10-20", "2022-03-01",
          "2022-05-12", "2022-07-04", "2022-08-22", "2022-10-17", "2022-11-28"]  # fmt: skip
LENGTH, LIFT, SHOCK = 8, 0.2, 0.25


def _panel(seed: int, *, noise: bool = True):
    """Daily revenue of four regions: common calendar x common AR(1) factor x own AR(1) noise;
    r1 runs ten campaigns lifting its revenue by ``LIFT`` while a common ``SHOCK`` hits all
    regions on those days; r2 runs one campaign of its own; one national campaign."""
    rng = np.random.default_rng(seed)
    cal = calendar_features(DATES)
    wk = np.array([1.0, 1.05, 1.0, 0.98, 1.1, 0.8, 0.7])[cal.weekday]
    trend = np.exp(0.15 * np.arange(len(DATES)) / 365.25)
    n = len(DATES)

    def ar1(sd: float) -> np.ndarray:
        e = np.zeros(n)
        for t in range(1, n):
            e[t] = 0.6 * e[t - 1] + rng.normal(0, sd)
        return e

    common = np.exp(ar1(0.06) if noise else 0.3 * np.sin(np.arange(n) / 3.7) ** 3)
    shock = np.ones(n)
    camps, in_r1 = [], np.zeros(n)
    for i, s in enumerate(pd.to_datetime(STARTS)):
        e = s + pd.Timedelta(days=LENGTH - 1)
        on = (DATES >= s) & (DATES <= e)
        shock[on] = 1 + SHOCK
        in_r1[on] = 1
        camps.append({"campaign_id": f"c{i}", "region_id": "r1", "start_date": s, "end_date": e})
    camps.append(
        {
            "campaign_id": "own-r2",
            "region_id": "r2",
            "start_date": pd.Timestamp("2021-06-20"),
            "end_date": pd.Timestamp("2021-06-29"),
        }
    )
    camps.append(
        {
            "campaign_id": "nat",
            "region_id": None,
            "start_date": pd.Timestamp("2022-01-10"),
            "end_date": pd.Timestamp("2022-01-16"),
        }
    )
    frames, truth = [], {}
    for k, r in enumerate(REGIONS):
        own = np.exp(ar1(0.03)) if noise else np.ones(n)
        y = (1000 + 400 * k) * wk * trend * common * shock * own
        if r == "r1":
            y = y * (1 + LIFT * in_r1)
            for i, s in enumerate(pd.to_datetime(STARTS)):
                on = (DATES >= s) & (DATES <= s + pd.Timedelta(days=LENGTH - 1))
                truth[f"c{i}"] = float((y[on] * LIFT / (1 + LIFT)).sum())
        if r == "r2":  # its own campaign: +30% that must not leak into r1's covariate
            y = y * np.where((DATES >= "2021-06-20") & (DATES <= "2021-06-29"), 1.3, 1.0)
        frames.append(pd.DataFrame({"date": DATES, "region_id": r, "revenue": y}))
    return pd.concat(frames, ignore_index=True), pd.DataFrame(camps), truth


def _fit(daily, camps, **kw):
    return estimate_campaign_effects(
        daily, camps, new_customers=None, fourier=0, min_pre_days=28, **kw
    )


def test_noise_free_panel_recovered_exactly_with_controls_not_without():
    daily, camps, truth = _panel(0, noise=False)
    d1 = daily[daily.region_id == "r1"]
    its = _fit(d1, camps).table.xs("r1", level="region_id")
    ctl = _fit(d1, camps, controls="regions", control_daily=daily).table
    ctl = ctl.xs("r1", level="region_id")
    ids = list(truth)
    true = pd.Series(truth)[ids]
    # log r1 = calendar + log(sum of controls) + lift exactly: exact recovery, coefficient 1
    np.testing.assert_allclose(ctl.loc[ids, "estimate"], true, rtol=1e-6)
    np.testing.assert_allclose(ctl.loc[ids, "control_coef"], 1.0, atol=1e-8)
    assert (ctl.loc[ids, "control_regions"] == "r2,r3,r4").all()
    # ITS alone credits the common shock to the campaigns
    assert (its.loc[ids, "estimate"] / true).mean() > 1.5
    assert "control_regions" not in its.columns  # the default output is unchanged


def test_regions_as_controls_remove_the_common_shock_bias_and_cover():
    cover_ctl, cover_its, rel_ctl, rel_its = [], [], [], []
    for seed in range(4):
        daily, camps, truth = _panel(seed)
        d1 = daily[daily.region_id == "r1"]
        true = pd.Series(truth)
        its = _fit(d1, camps).table.xs("r1", level="region_id").loc[true.index]
        ctl = _fit(d1, camps, controls="regions", control_daily=daily).table
        ctl = ctl.xs("r1", level="region_id").loc[true.index]
        for res, cover, rel in ((its, cover_its, rel_its), (ctl, cover_ctl, rel_ctl)):
            cover += list((res.ci_low <= true) & (true <= res.ci_high))
            rel += list((res.estimate - true) / true)
    # ITS-only: every estimate absorbs the +25% shock (expected relative bias about
    # (1 - 1 / 1.5) / (1 - 1 / 1.2) - 1 = 1)
    assert np.mean(rel_its) > 0.6
    assert np.mean(cover_its) < 0.2
    # with controls: unbiased within noise, and honest intervals (40 campaigns)
    assert abs(np.mean(rel_ctl)) < 0.1
    assert np.mean(cover_ctl) >= 0.85


def test_control_coefficients_equal_ols_without_the_controls_busy_days():
    """A dummy per day when a control is in its own window (and r1 is not) = dropping those
    days: the coefficients equal statsmodels OLS without them, with r1's lift and dip dummies."""
    daily, camps, _ = _panel(7)
    res = _fit(daily[daily.region_id == "r1"], camps, controls="regions", control_daily=daily)
    fit = res.diagnostics["control_fits"][("c0", "r1")]
    wide = daily.pivot(index="date", columns="region_id", values="revenue")
    x = np.log(wide[["r2", "r3", "r4"]].sum(axis=1).to_numpy())
    k = fit.n_calendar
    Xcal = fit.X[:, :k]
    np.testing.assert_allclose(Xcal[:, fit.columns.index("control:regions")], x)
    own, dummies = np.zeros(len(DATES), bool), []
    for _, c in camps[camps.region_id != "r2"].iterrows():  # r1's and the national one
        lift = (DATES >= c.start_date) & (DATES <= c.end_date)
        post = (DATES > c.end_date) & (DATES <= c.end_date + pd.Timedelta(days=7))
        dummies += [lift, post]
        own |= lift | post
    r2 = camps.set_index("campaign_id").loc["own-r2"]
    busy = (DATES >= r2.start_date) & (DATES <= r2.end_date + pd.Timedelta(days=7)) & ~own
    assert busy.sum() == 17
    X = np.column_stack([Xcal, *dummies]).astype(float)[~busy]
    ols = sm.OLS(np.log(wide["r1"].to_numpy())[~busy], X).fit()
    np.testing.assert_allclose(fit.beta[:k], ols.params[:k], rtol=1e-7, atol=1e-9)
    eff = fit.effect("c0")
    assert eff["lift_coef"] == pytest.approx(ols.params[k], rel=1e-7)


def test_national_and_uncontrolled_campaigns_keep_its_and_warn():
    daily, camps, _ = _panel(3)
    # r3 runs a campaign on c4's days: still a clean control set without it
    extra = pd.DataFrame(
        [
            {
                "campaign_id": "own-r3",
                "region_id": "r3",
                "start_date": pd.Timestamp(STARTS[4]),
                "end_date": pd.Timestamp(STARTS[4]) + pd.Timedelta(days=3),
            }
        ]
    )
    camps = pd.concat([camps, extra], ignore_index=True)
    d1 = daily[daily.region_id == "r1"]
    its = _fit(d1, camps).table
    ctl = _fit(d1, camps, controls="regions", control_daily=daily)
    t = ctl.table
    assert t.loc[("c4", "r1"), "control_regions"] == "r2,r4"
    assert t.loc[("nat", "r1"), "control_regions"] == ""
    assert t.loc[("nat", "r1"), "estimate"] == pytest.approx(its.loc[("nat", "r1"), "estimate"])
    assert any("national campaign(s) run in every region" in w for w in ctl.warnings)
    # with only r1 in the pool there is no control at all
    alone = _fit(d1, camps, controls="regions")
    assert (alone.table["control_regions"] == "").all()
    np.testing.assert_allclose(alone.table["estimate"], its["estimate"])
    assert any("no region free of campaign" in w for w in alone.warnings)
    with pytest.raises(ValueError, match="controls must be None or 'regions'"):
        _fit(d1, camps, controls="synthetic")
