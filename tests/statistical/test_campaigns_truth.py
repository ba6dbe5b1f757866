"""Campaign analyses against the simulator's ground truth (``ds.truth``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from promo_analysis.campaigns import campaign_effects, compare_designs, threshold_bunching


@pytest.fixture(scope="module")
def effects(small_ds):
    return campaign_effects(small_ds, short_pre="skip")


def _with_truth(res, ds) -> pd.DataFrame:
    truth = ds.truth.campaigns
    m = res.table.reset_index().merge(
        truth, on=["campaign_id", "region_id"], suffixes=("", "_true"), validate="1:1"
    )
    assert len(m) == len(res.table), "every estimated campaign has a truth row"
    return m


def test_cis_cover_true_incremental_revenue(effects, small_ds):
    m = _with_truth(effects, small_ds)
    cover = (m.ci_low <= m.incremental_revenue) & (m.incremental_revenue <= m.ci_high)
    assert len(m) >= 40
    # one seed, ~60 campaigns: the Monte-Carlo SD of a 0.92 coverage is ~0.035, so one draw is
    # held to 0.85; the >= 90% claim is checked over seeds in benchmarks/calibration_campaigns.py
    assert cover.mean() >= 0.85, m.loc[~cover, ["campaign_id", "region_id", "estimate", "se",
                                                "incremental_revenue"]]  # fmt: skip
    # and the estimates track the truth across campaigns
    assert np.corrcoef(m.estimate, m.incremental_revenue)[0, 1] > 0.8
    # costs: discounts paid on the campaign's coupons are observed, so they match exactly
    np.testing.assert_allclose(m.discount_cost, m.discount_cost_true, rtol=0.1, atol=50)


def test_null_scenario_finds_few_effects(null_ds):
    # sending: campaigns change nothing, the true incremental shipments are exactly 0, so every
    # significant campaign is a false positive
    ship = _with_truth(campaign_effects(null_ds, metric="shipments", short_pre="skip"), null_ds)
    assert (ship.incremental_shipments == 0).all()
    assert (ship.pvalue < 0.05).mean() <= 0.10
    # revenue: the coupons are still paid on parcels sent anyway, so the true incremental
    # revenue is minus those discounts (< 0) and a significantly *negative* estimate is right;
    # a significant gain is a false finding (two-sided 5%: 2.5% nominal on this side)
    res = campaign_effects(null_ds, short_pre="skip")
    m = _with_truth(res, null_ds)
    assert (m.incremental_revenue <= 0).mean() > 0.9
    assert ((m.pvalue < 0.05) & (m.estimate > 0)).mean() <= 0.05
    cover = (m.ci_low <= m.incremental_revenue) & (m.incremental_revenue <= m.ci_high)
    assert cover.mean() >= 0.90


def test_compare_designs_ranks_the_truly_best_design_first(effects, small_ds):
    res = compare_designs(effects, by=["coupon_threshold", "coupon_face_value"])
    truth = small_ds.truth.campaigns
    true_best = truth.groupby("design").lift.mean().idxmax()
    thr, face = (float(x) for x in true_best.split("-"))
    top = res.table.iloc[0]
    assert (top.coupon_threshold, top.coupon_face_value) == (thr, face)
    assert top.prob_best > 0.5


def test_bunching_recovers_moved_up_parcels(small_ds):
    s = small_ds.to_pandas("shipments")
    truth = small_ds.truth.bunching.set_index(["region_id", "threshold"])
    for region in s.region_id.unique():
        express = s[(s.region_id == region) & (s["product"] == "express")]
        res = threshold_bunching(express, thresholds=(12, 21), n_boot=300)
        for t in (12.0, 21.0):
            true = truth.loc[(region, t), "moved_up_parcels"]
            row = res.table.loc[t]
            assert row.ci_low <= true <= row.ci_high, (region, t, true, row.ci_low, row.ci_high)


def test_dataset_wrapper_bad_input(small_ds):
    with pytest.raises(ValueError, match="regions \\['atlantis'\\] have no shipments"):
        campaign_effects(small_ds, region="atlantis")
    with pytest.raises(ValueError, match="method must be 'its'"):
        campaign_effects(small_ds, method="synthetic_control")
    with pytest.raises(ValueError, match="pre-period is too short"):
        campaign_effects(small_ds)  # the first 2021 campaigns start within days of the data
