"""Regions as controls (``controls="regions"``) on the simulator against ``ds.truth``.

The simulator draws each region's noise independently (no shock common to regions), so
controls cannot improve on the ITS counterfactual here; what must hold is that the option keeps
the intervals honest and changes only the provincial campaigns that have a clean control.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from promo_analysis.campaigns import campaign_effects


def test_regions_as_controls_on_the_simulator(small_ds):
    its = campaign_effects(small_ds, short_pre="skip").table
    res = campaign_effects(small_ds, short_pre="skip", controls="regions")
    t = res.table
    truth = small_ds.truth.campaigns
    m = t.reset_index().merge(
        truth, on=["campaign_id", "region_id"], suffixes=("", "_true"), validate="1:1"
    )
    assert len(m) == len(t) == len(its)
    cover = (m.ci_low <= m.incremental_revenue) & (m.incremental_revenue <= m.ci_high)
    has = m.control_regions != ""
    # reported: coverage overall and for the provincial campaigns estimated with controls
    print(
        f"controls='regions': {int(has.sum())} of {int((~m.national).sum())} provincial "
        f"campaigns with a clean control; coverage {cover.mean():.3f} overall, "
        f"{cover[has].mean():.3f} on those"
    )
    assert cover.mean() >= 0.85
    assert has.sum() >= 3
    # national campaigns never get controls and keep the ITS-only estimate, as do provincial
    # ones without a clean control
    assert (m.loc[m.national, "control_regions"] == "").all()
    assert any("national campaign(s) run in every region" in w for w in res.warnings)
    same = t.index[t.control_regions == ""]
    np.testing.assert_allclose(t.loc[same, "estimate"], its.loc[same, "estimate"], rtol=1e-9)
    # a control is a region with no campaign window (campaign + pull-forward) on those days
    camps = small_ds.to_pandas("campaigns")
    for _, r in m[has].iterrows():
        w0 = pd.Timestamp(r.start_date)
        w1 = pd.Timestamp(r.end_date) + pd.Timedelta(days=res.diagnostics["pull_forward_days"])
        for c in r.control_regions.split(","):
            mine = camps[(camps.region_id == c) | camps.region_id.isna()]
            ends = pd.to_datetime(mine.end_date) + pd.Timedelta(days=7)
            assert not ((pd.to_datetime(mine.start_date) <= w1) & (ends >= w0)).any()
