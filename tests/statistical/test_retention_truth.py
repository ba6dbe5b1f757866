"""Retention estimators against the simulator's ground truth and nominal coverage."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from promo_analysis.retention import cox, habit_formation, kaplan_meier


@pytest.fixture(scope="module")
def habit(small_ds):
    return habit_formation(small_ds, adjust=None)


def test_hazard_ratio_ci_covers_truth(habit, small_ds):
    truth = small_ds.truth.retention["hazard_ratio"]
    hr = habit.hazard_ratio
    assert hr.covers(truth), (hr, truth)
    assert hr.ci_high - hr.ci_low < 0.25  # informative, not covering by being vague


def test_habit_shares_cover_truth(habit, small_ds):
    r = small_ds.truth.retention
    assert habit.habit_share.covers(r["habit_share"]), (habit.habit_share, r["habit_share"])
    assert habit.habit_share_organic.covers(r["habit_share_organic"]), (
        habit.habit_share_organic, r["habit_share_organic"])


def test_habit_share_recomputed_from_raw_shipments(habit, small_ds):
    """An independent pandas computation from the raw tables gives the same pooled share."""
    s = small_ds.to_pandas("shipments").sort_values(["customer_id", "sent_at", "shipment_id"])
    known = set(small_ds.to_pandas("customers")["customer_id"])
    s = s[s.customer_id.isin(known)]
    s["rank"] = s.groupby("customer_id").cumcount()
    first_coupon = s[s["rank"] == 0].set_index("customer_id")["coupon_id"].notna()
    later = s[s["rank"] > 0].copy()
    later["acq"] = later.customer_id.map(first_coupon)
    share = later[later.acq].coupon_id.isna().mean()
    assert habit.habit_share.estimate == pytest.approx(share, rel=1e-12)
    assert habit.habit_share.n == later[later.acq].customer_id.nunique()
    # every sender is in exactly one group and the window exclusions are counted
    assert len(habit.customers) == s.customer_id.nunique()
    n30 = habit.repeat.table.loc[30]
    assert n30["n"] + habit.diagnostics["excluded_not_observed"][30] == len(habit.customers)


def test_null_scenario_hazard_ratio_covers_one(null_ds):
    h = habit_formation(null_ds, adjust=None, window_days=(90,))
    truth = null_ds.truth.retention["hazard_ratio"]
    assert truth == 1.0
    assert h.hazard_ratio.covers(truth), h.hazard_ratio
    assert h.habit_share.covers(null_ds.truth.retention["habit_share"]), h.habit_share


def test_kaplan_meier_interval_coverage():
    """Log-log pointwise 95% intervals for S(t0) cover the truth about 95% of the time."""
    rng = np.random.default_rng(20)
    t0, hits, reps = 0.7, 0, 200
    s_true = np.exp(-t0)
    for _ in range(reps):
        n = 60
        t = rng.exponential(1.0, n)
        c = rng.exponential(2.0, n)
        df = pd.DataFrame({"t": np.minimum(t, c), "e": (t <= c).astype(int)})
        a = kaplan_meier(df, "t", "e").at([t0]).iloc[0]
        hits += a.ci_low <= s_true <= a.ci_high
    assert 0.92 <= hits / reps <= 0.98


def test_cox_hazard_ratio_coverage():
    rng = np.random.default_rng(21)
    hits, reps, beta = 0, 100, np.log(0.8)
    for _ in range(reps):
        n = 300
        g = rng.integers(0, 2, n)
        seg = rng.choice(["a", "b"], n)
        rate = np.exp(beta * g + 0.5 * (seg == "b"))
        t = rng.exponential(1 / rate)
        c = rng.exponential(1.5, n)
        df = pd.DataFrame({"t": np.minimum(t, c), "e": (t <= c).astype(int), "g": g, "seg": seg})
        hr = cox(df, "t", "e", ["g", "seg"]).hazard_ratio("g")
        hits += hr.covers(0.8)
    assert 0.89 <= hits / reps <= 0.99
