"""Survey answers linked to behaviour, the contract-table design, weighting comparison, plots."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from promo_analysis import survey as sv

T = pd.Timestamp


def tiny_dataset():
    from promo_analysis.dataset import Dataset

    survey = pd.DataFrame(
        {
            "response_id": [f"r{i}" for i in range(8)],
            "region_id": ["guangxi"] * 8,
            "surveyed_at": [T("2022-03-01")] * 8,
            "customer_id": ["c1", "c2", "c3", "c4", "c5", None, "c6", "c7"],
            "weight": [10.0, 20, 10, 30, 20, 10, 40, 10],
            "stratum": ["s1"] * 4 + ["s2"] * 4,
            "cluster": ["k1", "k1", "k2", "k2", "k1", "k1", "k2", "k2"],
            "coupon_influenced": pd.array([True, True, False, None, True, False, False, True],
                                          dtype="boolean"),
            "first_time_sender": [True, False, True, False, True, False, True, False],
            "aware_of_campaign": [True] * 8,
            "satisfaction": [4, 5, 3, 4, 2, 5, 4, 3],
        }
    )
    ship = [  # customer, sent_at, coupon_id
        ("c1", T("2022-03-05"), "cp1"),  # prospect, first send in window with a coupon
        ("c2", T("2022-01-10"), None),  # sent before the survey ...
        ("c2", T("2022-03-20"), None),  # ... and at full price in the window
        ("c3", T("2022-05-01"), None),  # prospect, sends after the window
        ("c5", T("2022-03-30"), None),  # prospect, full-price first send in window (day 29)
        ("c6", T("2022-03-31"), None),  # day 30: outside the 30-day window
        ("c7", T("2022-02-01"), "cp2"),  # sent before, not in window
    ]
    shipments = pd.DataFrame(
        {
            "shipment_id": [f"s{i}" for i in range(len(ship))],
            "customer_id": [s[0] for s in ship],
            "region_id": "guangxi",
            "sent_at": [s[1] for s in ship],
            "channel": "station",
            "product": "express",
            "list_price": 20.0,
            "discount": [3.0 if s[2] else 0.0 for s in ship],
            "revenue": [17.0 if s[2] else 20.0 for s in ship],
            "coupon_id": [s[2] for s in ship],
            "campaign_id": None,
            "payment": "epay",
        }
    )
    customers = pd.DataFrame(
        {
            "customer_id": [f"c{i}" for i in range(1, 8)],
            "region_id": "guangxi",
            "known_since": T("2021-06-01"),
            "segment": "office",
            "wechat_contact": True,
            "parcels_received": 1,
        }
    )
    regions = pd.DataFrame({"region_id": ["guangxi"], "name_zh": ["广西"], "name_en": ["Guangxi"]})
    return Dataset.from_frames(
        {"regions": regions, "customers": customers, "shipments": shipments, "survey": survey}
    )


def test_linked_outcomes_counted_in_the_engine():
    ds = tiny_dataset()
    out = sv.linked_outcomes(ds, sv.survey_table(ds), window_days=30).set_index("response_id")
    assert out["n_before"].tolist()[:5] == [0, 1, 0, 0, 0]
    assert np.isnan(out.loc["r5", "n_before"])  # not linked
    expect_first = {"r0": 1, "r2": 0, "r3": 0, "r4": 1, "r6": 0}  # prospects only
    got = out["first_send_within_window"].dropna().to_dict()
    assert got == expect_first
    assert out.loc["r1", "full_price_within_window"] == 1
    assert out.loc["r0", "full_price_within_window"] == 0  # sent with a coupon
    assert out.loc["r7", "sent_within_window"] == 0


def test_linked_behaviour_domain_means_by_answer():
    ds = tiny_dataset()
    res = sv.linked_behaviour(ds, window_days=30, region="guangxi")
    t = res.table
    # stated share among those who answered: (10 + 20 + 20 + 10) / (10+20+10+20+10+40+10)
    assert t.loc["says: share coupon_influenced", "estimate"] == pytest.approx(60 / 120)
    # first send in window among prospects who said yes (r0: 1, r4: 1) and no (r2: 0, r6: 0)
    assert t.loc["first_send_within_window | coupon_influenced=yes", "estimate"] == 1.0
    assert t.loc["first_send_within_window | coupon_influenced=no", "estimate"] == 0.0
    # full price among linked yes-sayers r0 (0), r1 (1), r4 (1), r7 (0): weights 10, 20, 20, 10
    fp = t.loc["full_price_within_window | coupon_influenced=yes", "estimate"]
    assert fp == pytest.approx(40 / 60)
    diff = t.loc["full_price_within_window | yes - no"]
    no = t.loc["full_price_within_window | coupon_influenced=no", "estimate"]
    assert diff["estimate"] == pytest.approx(fp - no)
    assert res.diagnostics["linked"] == 7
    assert res.diagnostics["prospects_at_survey"] == 5
    # no coupons table: the behavioural effect is reported as not computed, not silently absent
    assert any("behavioural coupon effect not computed" in w for w in res.warnings)
    assert any("no answer" in w for w in res.warnings)


def test_survey_design_from_contract_table_handles_null_strata_and_clusters():
    ds = tiny_dataset()
    frame = sv.survey_table(ds)
    d = sv.survey_design(frame)
    assert (d.n_strata, d.n_psu, d.df) == (2, 4, 2)
    none = sv.survey_design(frame.assign(stratum=None, cluster=None))
    assert (none.n_strata, none.n_psu) == (1, 8)
    with pytest.raises(ValueError, match="no response for region 'shanxi'"):
        sv.survey_table(ds, region="shanxi")


def test_weighting_comparison_and_plots():
    from promo_analysis.plots import survey as psv

    ds = tiny_dataset()
    d = sv.survey_design(sv.survey_table(ds))
    comp = sv.weighting_comparison(d, ["coupon_influenced", "first_time_sender", "satisfaction"])
    w = comp.set_index(["variable", "analysis"])
    assert w.loc[("coupon_influenced", "weighted"), "estimate"] == pytest.approx(0.5)
    assert w.loc[("coupon_influenced", "unweighted"), "estimate"] == pytest.approx(4 / 7)
    assert w.loc[("satisfaction", "unweighted"), "estimate"] == pytest.approx(30 / 8)
    assert w.loc[("coupon_influenced", "weighted"), "n_missing"] == 1
    grouped = sv.weighting_comparison(d, ["coupon_influenced"], group="stratum")
    g = grouped.set_index(["stratum", "analysis"])
    # stratum s2 answered: r4 (yes, 20), r5 (no, 10), r6 (no, 40), r7 (yes, 10)
    assert g.loc[("s2", "weighted"), "estimate"] == pytest.approx(30 / 80)
    assert g.loc[("s2", "unweighted"), "estimate"] == pytest.approx(2 / 4)
    assert g.loc[("s1", "weighted"), "n_missing"] == 1
    axg = psv.weighting_plot(grouped, group="stratum",
                             truth={("coupon_influenced", "s2"): 0.4})
    assert len(axg.get_yticklabels()) == 2
    ax = psv.weighting_plot(comp, truth={"coupon_influenced": 0.504})
    assert "weighted" in ax.get_title()
    assert any("优惠券" in t.get_text() for t in ax.get_yticklabels())
    ax2 = psv.domain_plot(sv.by(d, "coupon_influenced", "stratum", stat="proportion"))
    assert len(ax2.get_yticklabels()) == 2
    ax3 = psv.says_does_plot(sv.linked_behaviour(ds))
    assert "says vs. does" in ax3.get_title()
    plt.close("all")


def test_survey_design_of_several_regions_crosses_region_and_stratum():
    a = pd.DataFrame({"region_id": "guangxi", "stratum": ["s1", "s1", "s2", "s2"],
                      "cluster": ["k1", "k2", "k3", "k4"], "weight": 1.0,
                      "stratum_clusters": [10, 10, 4, 4], "y": [1.0, 2, 3, 4]})
    b = a.assign(region_id="shanxi", stratum_clusters=[20, 20, 8, 8], y=[5.0, 6, 7, 9])
    both = pd.concat([a, b], ignore_index=True)
    d = sv.survey_design(both)
    assert d.n_strata == 4 and d.df == 8 - 4
    # strata of different regions are independent: variances add up
    v = sum(sv.total(sv.survey_design(x), "y").se ** 2 for x in (a, b))
    assert sv.total(d, "y").se ** 2 == pytest.approx(v)
    by_region = sv.by(d, "y", "region_id")
    assert by_region.estimate["shanxi"] == pytest.approx(27 / 4)
