"""threshold_bunching on synthetic prices with a known number of parcels moved up."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from promo_analysis.campaigns import subsidy_leakage, threshold_bunching


def _prices(seed: int, n: int = 40_000, moved_share: float = 0.3):
    rng = np.random.default_rng(seed)
    p = np.round(np.exp(rng.normal(np.log(16), 0.35, n)), 1)
    moved = 0
    for t in (12.0, 21.0):
        band = (p >= t - 2) & (p < t)
        up = band & (rng.random(n) < moved_share)
        p[up] = t
        moved_t = int(up.sum())
        moved += moved_t
    thr = np.where(np.isin(p, [12.0, 21.0]), p, np.nan)
    return pd.DataFrame({"list_price": p, "thr": thr}), rng


def test_recovers_moved_parcels():
    hits, total = 0, 0
    for seed in range(8):
        rng = np.random.default_rng(seed)
        p = np.round(np.exp(rng.normal(np.log(16), 0.35, 30_000)), 1)
        truth = {}
        for t in (12.0, 21.0):
            up = (p >= t - 2) & (p < t) & (rng.random(len(p)) < 0.3)
            truth[t] = int(up.sum())
            p[up] = t
        res = threshold_bunching(pd.DataFrame({"list_price": p}), n_boot=200, seed=seed)
        for t, true in truth.items():
            total += 1
            hits += res.table.loc[t, "ci_low"] <= true <= res.table.loc[t, "ci_high"]
            assert res.table.loc[t, "estimate"] == pytest.approx(true, rel=0.25)
    assert hits / total >= 0.8


def test_counterfactual_is_the_polynomial_fit_outside_the_excluded_region():
    df, _ = _prices(1)
    res = threshold_bunching(df, thresholds=(12,), degree=4, fit_range=5.0, n_boot=50)
    bins = res.diagnostics["bins"][12.0]
    # independent fit with numpy.polyfit on the same bins
    keep = ~bins.excluded
    x = (bins["mid"] - 12.0) / 5.0
    coef = np.polyfit(x[keep], bins["count"][keep], 4)
    np.testing.assert_allclose(bins["counterfactual"], np.polyval(coef, x), rtol=1e-7)
    # the bunch bin is [12.0, 12.1) and holds every parcel priced exactly 12
    at = bins.loc[np.isclose(bins["left"], 12.0)]
    assert int(at["count"].iloc[0]) == int((np.round(df.list_price, 1) == 12.0).sum())
    excess = float((at["count"] - at["counterfactual"]).iloc[0])
    assert res.table.loc[12.0, "estimate"] == pytest.approx(excess)
    assert len(bins) == 100 and bins.excluded.sum() == 21


def test_coupon_share_and_bad_input():
    df, _ = _prices(2)
    res = threshold_bunching(df, coupon_threshold="thr", n_boot=50)
    n12 = int((df.thr == 12).sum())
    assert res.table.loc[12.0, "coupon_parcels"] == n12
    assert res.table.loc[12.0, "moved_up_share"] == pytest.approx(
        res.table.loc[12.0, "estimate"] / n12
    )
    with pytest.raises(ValueError, match="lacks the column 'price'"):
        threshold_bunching(df, price="price")
    with pytest.raises(ValueError, match="1 missing or negative"):
        threshold_bunching(df.assign(list_price=df.list_price.where(df.index != 5, -1.0)))
    with pytest.raises(ValueError, match="widen fit_range"):
        threshold_bunching(df, fit_range=2.2, degree=25)


def test_subsidy_leakage():
    eff = pd.DataFrame(
        {
            "estimate": [30.0, 150.0, -5.0],
            "ci_low": [10.0, 90.0, -20.0],
            "ci_high": [50.0, 210.0, 10.0],
            "campaign_shipments": [100, 120, 50],
            "discount_cost": [300.0, 360.0, 150.0],
        },
        index=["a", "b", "c"],
    )
    out = subsidy_leakage(eff)
    assert out.loc["a", "leakage_share"] == pytest.approx(0.7)
    assert out.loc["a", "leakage_share_ci_low"] == pytest.approx(0.5)
    assert out.loc["a", "leakage_share_ci_high"] == pytest.approx(0.9)
    assert out.loc["b", "leakage_share"] == 0.0  # more incremental parcels than coupon uses
    assert out.loc["c", "leakage_share"] == 1.0
    assert out.loc["a", "leakage_discount"] == pytest.approx(210.0)
    with pytest.raises(ValueError, match="no coupon parcels"):
        subsidy_leakage(eff.assign(campaign_shipments=[0, 1, 1]))
