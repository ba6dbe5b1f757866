"""Campaign effects on the 4-region sample (guangxi, shanxi, beijing, zhejiang) vs ``ds.truth``.

National campaigns run in all four regions at once, beijing and zhejiang use the scenario's
default campaign strength, so this is the harder case than the 2-region fixture. The dataset is
built once (scale 0.003).

The calibration scales the list prices of express parcels by ``a exp(b t)`` in two steps (before
later coupon use, then a touch-up close to 1; ``truth.calibration["regions"][r]["price_factor"]``
is the combined factor, far from 1 in beijing and zhejiang), so parcels that used a campaign
coupon carry the calibrated price and the truth prices a parcel that would have been sent anyway
without the campaign's coupon the same way: coverage is asserted in every region and the
estimates show no offset where ``a`` is far from 1.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from promo_analysis.campaigns import campaign_effects

REGIONS = ["guangxi", "shanxi", "beijing", "zhejiang"]


@pytest.fixture(scope="module")
def four():
    from promo_analysis.simulate import simulate

    ds = simulate("china-post-2022", scale=0.003, regions=REGIONS, seed=1)
    res = campaign_effects(ds, short_pre="skip")
    m = res.table.reset_index().merge(
        ds.truth.campaigns, on=["campaign_id", "region_id"], suffixes=("", "_true"),
        validate="1:1",
    )  # fmt: skip
    assert len(m) == len(res.table)
    a = {r: c["price_factor"] for r, c in ds.truth.calibration["regions"].items()}
    m["price_factor"] = m.region_id.map(
        {r: float(np.mean([v["a"] for v in f.values()])) for r, f in a.items()}
    )
    m["cover"] = (m.ci_low <= m.incremental_revenue) & (m.incremental_revenue <= m.ci_high)
    return m


def test_cis_cover_the_truth_in_every_region(four):
    m = four
    assert set(m.region_id) == set(REGIONS)
    assert m.national.sum() >= 60  # national campaigns in all four regions
    assert (m.price_factor > 1.1).any() and (m.price_factor < 1.0).any()
    by = m.groupby("region_id").cover.mean()
    print(f"coverage by region: {by.round(3).to_dict()}")
    # one seed, ~103 campaign rows: coverage has a Monte-Carlo SD of ~3 points (21-36 rows a
    # region: ~5-6), so the bounds are set ~2.3 SDs below the coverage measured over seeds 1-4
    # (benchmarks/calibration_campaigns.py: 0.913; every region >= 0.89). The truth offset
    # this file guards against is tested directly below (no_truth_offset).
    assert m.cover.mean() >= 0.85, m.loc[~m.cover, ["campaign_id", "region_id"]]
    assert (by >= 0.75).all(), by
    # national and provincial campaigns alike
    for kind, g in m.groupby("national"):
        assert g.cover.mean() >= 0.80, (kind, g.cover.mean())
    # intervals are not just wide: estimates track the truth
    assert np.corrcoef(m.estimate, m.incremental_revenue)[0, 1] > 0.8


def test_no_truth_offset_where_prices_are_calibrated_up(four):
    # where the calibration raised non-coupon prices (a > 1.1) a truth that priced the
    # counterfactual parcels at their raw price would sit above the estimates by about
    # (a - 1) x the leakage parcels' value; priced consistently the mean error is within
    # 3 standard errors of 0 (campaign errors taken as independent)
    m = four[four.price_factor > 1.1]
    assert len(m) >= 30
    gap = (m.incremental_revenue - m.estimate).mean()
    se = np.sqrt((m.se**2).sum()) / len(m)
    assert abs(gap) < 3 * se, (gap, se)


def test_pull_forward_tracks_the_true_dip(four):
    m = four
    true_dip = -m.pull_forward_revenue
    lo = m.pull_forward - 1.96 * m.pull_forward_se
    hi = m.pull_forward + 1.96 * m.pull_forward_se
    assert ((lo <= true_dip) & (true_dip <= hi)).mean() >= 0.90
    # the total dip over all campaigns: within 3 standard errors (errors of different
    # campaigns taken as independent) and the right sign
    se = np.sqrt((m.pull_forward_se**2).sum())
    assert m.pull_forward.sum() < 0 and true_dip.sum() < 0
    assert abs(m.pull_forward.sum() - true_dip.sum()) < 3 * se, (
        m.pull_forward.sum(), true_dip.sum(), se
    )


def test_null_four_regions_false_positive_rate():
    from promo_analysis.simulate import simulate

    ds = simulate("china-post-2022-null", scale=0.003, regions=REGIONS, seed=1)
    res = campaign_effects(ds, metric="shipments", short_pre="skip")
    t = res.table.reset_index().merge(ds.truth.campaigns, on=["campaign_id", "region_id"])
    assert len(t) == len(res.table) >= 90
    assert (t.incremental_shipments == 0).all()
    assert (t.pvalue < 0.05).mean() <= 0.10
    z = pd.Series(t.estimate / t.se)
    assert 0.7 < z.std() < 1.3
