"""Habit-formation building blocks by hand, and habit_formation's input errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from promo_analysis.retention import ratio_share
from promo_analysis.retention.habit import rate_difference


def test_ratio_share_by_hand():
    # three customers with later parcels (f without coupon of L), one with none (left out)
    f = np.array([1, 3, 0, 0])
    L = np.array([2, 4, 1, 0])
    est = ratio_share(f, L)
    R = 4 / 7
    assert est.estimate == pytest.approx(R)
    resid = np.array([1 - R * 2, 3 - R * 4, 0 - R * 1])
    assert est.se == pytest.approx(np.sqrt(3 / 2 * np.sum(resid**2)) / 7)
    assert est.n == 3 and est.extra["parcels"] == 7


def test_ratio_share_matches_cluster_robust_regression():
    """The linearised SE equals statsmodels' cluster-robust SE of an intercept-only WLS on
    parcel-level data, up to the small-sample factor."""
    import statsmodels.api as sm

    rng = np.random.default_rng(0)
    L = rng.integers(1, 6, 200)
    f = rng.binomial(L, rng.beta(4, 2, 200))
    est = ratio_share(f, L)
    y = np.concatenate([np.r_[np.ones(fi), np.zeros(li - fi)] for fi, li in zip(f, L,
                                                                                strict=True)])
    g = np.repeat(np.arange(200), L)
    res = sm.OLS(y, np.ones_like(y)).fit(cov_type="cluster", cov_kwds={"groups": g,
                                                                       "use_correction": False})
    assert est.estimate == pytest.approx(res.params[0])
    n = 200
    assert est.se == pytest.approx(res.bse[0] * np.sqrt(n / (n - 1)), rel=1e-10)
    # with customer weights: weighted least squares, parcels carry their customer's weight
    w = rng.uniform(0.2, 3.0, 200)
    west = ratio_share(f, L, weights=w)
    wres = sm.WLS(y, np.ones_like(y), weights=np.repeat(w, L)).fit(
        cov_type="cluster", cov_kwds={"groups": g, "use_correction": False})
    assert west.estimate == pytest.approx(wres.params[0])
    assert west.se == pytest.approx(wres.bse[0] * np.sqrt(n / (n - 1)), rel=1e-10)


def test_rate_difference_by_hand():
    y1, y0 = np.array([1, 0, 1, 1]), np.array([0, 0, 1, 0, 0])
    est = rate_difference(y1, y0)
    assert est.estimate == pytest.approx(0.75 - 0.2)
    assert est.se == pytest.approx(np.sqrt(np.var(y1, ddof=1) / 4 + np.var(y0, ddof=1) / 5))
    assert est.extra["n_coupon"] == 4


def test_habit_formation_needs_both_groups():
    from promo_analysis.dataset import Dataset
    from promo_analysis.retention import habit_formation

    customers = pd.DataFrame({"customer_id": ["a", "b"], "region_id": ["guangxi"] * 2,
                              "known_since": pd.to_datetime(["2021-01-01"] * 2),
                              "segment": ["office", "mall"], "wechat_contact": [True, False]})
    shipments = pd.DataFrame({
        "shipment_id": ["s1", "s2", "s3"], "customer_id": ["a", "a", "b"],
        "region_id": ["guangxi"] * 3,
        "sent_at": pd.to_datetime(["2021-01-05", "2021-02-05", "2021-03-01"]),
        "channel": ["station"] * 3, "product": ["express"] * 3,
        "list_price": [12.0] * 3, "discount": [0.0] * 3, "revenue": [12.0] * 3,
        "coupon_id": [None] * 3, "campaign_id": [None] * 3, "payment": ["cash"] * 3})
    ds = Dataset.from_frames({"customers": customers, "shipments": shipments})
    with pytest.raises(ValueError, match=r"have 0 coupon-acquired and 2 organic customers"):
        habit_formation(ds)
    with pytest.raises(ValueError, match="window_days must be positive"):
        habit_formation(ds, window_days=(0,))
    with pytest.raises(ValueError, match=r"region 'tibet' has no customers"):
        habit_formation(ds, region="tibet")
