"""Survey respondents linked to customer ids: share, region, history, answers vs. behaviour.

The simulator links a simple random sample of ``linked_share`` of each region's respondents to
customers (``docs/methods.md`` section 3): first-time senders to prospects without a parcel
before ``surveyed_at``, others to customers with one, matched with weights ``exp(+-lambda z)``
on their coupon reliance ``z`` so that coupon-reliant people say "coupons influence my choice"
more often. Answers, weights and the population truth are not touched by the linking.
"""

from __future__ import annotations

import importlib
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from promo_analysis import survey as sv
from promo_analysis.simulate import load_scenario
from promo_analysis.simulate.population import PRIOR, PROSPECT, People
from promo_analysis.simulate.survey import link_respondents, simulate_survey
from promo_analysis.simulate.timeline import Timeline


@pytest.fixture(scope="module")
def linked(small_ds):
    """Linked respondents with their customer's region, known_since and parcel history."""
    s = small_ds.to_pandas("survey")
    c = small_ds.to_pandas("customers")
    sh = small_ds.to_pandas("shipments")[["customer_id", "sent_at", "coupon_id"]]
    lk = s[s.customer_id.notna()].merge(
        c[["customer_id", "region_id", "known_since"]], on="customer_id", how="left",
        suffixes=("", "_customer"),
    )
    j = lk[["response_id", "customer_id", "surveyed_at"]].merge(sh, on="customer_id")
    before = j[j.sent_at < j.surveyed_at].groupby("response_id").size()
    lk["n_before"] = lk.response_id.map(before).fillna(0).astype(int)
    per = sh.assign(coupon=sh.coupon_id.notna()).groupby("customer_id")["coupon"]
    lk["coupon_share"] = lk.customer_id.map(per.mean())
    return s, lk


def test_a_known_share_is_linked_within_the_region(small_ds, linked):
    s, lk = linked
    share = load_scenario("china-post-2022").survey["linked_share"]
    assert share == 0.6
    links = small_ds.truth.calibration["regions"]
    for region, sub in s.groupby("region_id"):
        n_linked = int(sub.customer_id.notna().sum())
        assert n_linked == round(share * len(sub))  # exact: the pools are large enough
        assert links[region]["survey_links"] == {
            "respondents": len(sub),
            "linked": n_linked,
            "linked_first_time": int((sub.customer_id.notna() & sub.first_time_sender).sum()),
        }
    # every link resolves to a customer of the respondent's own region, known by then,
    # and no customer answers twice
    assert lk.region_id_customer.notna().all()
    assert (lk.region_id_customer == lk.region_id).all()
    assert (lk.known_since <= lk.surveyed_at).all()
    assert not lk.customer_id.duplicated().any()


def test_first_time_sender_agrees_with_the_records(linked):
    _, lk = linked
    assert lk.first_time_sender.sum() >= 20  # both kinds occur
    assert ((lk.n_before == 0) == lk.first_time_sender).all()


def test_linking_changes_nothing_but_customer_id(small_ds):
    """The same survey stream without the world gives the same answers, weights, truth."""
    sim = importlib.import_module("promo_analysis.simulate")
    sc = load_scenario("china-post-2022")
    tl = Timeline(sc.start, sc.n_days)
    s = small_ds.to_pandas("survey")
    truth = small_ds.truth.survey
    for region in ("guangxi", "shanxi"):
        frame, t = simulate_survey(sc, tl, region, sim._rng(small_ds.meta["seed"], region,
                                                            "survey"))
        assert frame.customer_id.isna().all()
        got = s[s.region_id == region].reset_index(drop=True)
        cols = [c for c in frame.columns if c != "customer_id"]
        pd.testing.assert_frame_equal(
            got[cols], frame[cols], check_dtype=False, check_exact=False, rtol=1e-12
        )
        pd.testing.assert_frame_equal(
            truth[truth.region_id == region].reset_index(drop=True), t, check_dtype=False
        )
    guangxi = truth[(truth.region_id == "guangxi") & (truth.variable == "coupon_influenced")]
    assert float(guangxi.value.iloc[0]) == pytest.approx(0.504, abs=1e-4)


def test_yes_sayers_rely_on_coupons_more(linked):
    """The built-in link: the coupon share of the linked customer's parcels (2021-2022)."""
    _, lk = linked
    has = lk[lk.coupon_influenced.notna() & lk.coupon_share.notna()]
    yes = has[has.coupon_influenced.astype(bool)].coupon_share
    no = has[~has.coupon_influenced.astype(bool)].coupon_share
    assert len(yes) > 50 and len(no) > 50
    # 0.29 vs 0.06 at seed 1 (p ~ 3e-12); seeds 1-5: 0.27-0.31 vs 0.06-0.09
    test = stats.ttest_ind(yes, no, equal_var=False)
    assert yes.mean() > no.mean() + 0.1
    assert test.pvalue < 1e-6


def test_linked_behaviour_says_vs_does(small_ds):
    res = sv.linked_behaviour(small_ds, window_days=30)
    t = res.summary()
    assert res.diagnostics["linked"] == int(small_ds.to_pandas("survey").customer_id.notna().sum())
    for outcome in ("first_send_within_window", "sent_within_window",
                    "full_price_within_window"):
        for answer in ("yes", "no"):
            row = f"{outcome} | coupon_influenced={answer}"
            assert row in t.index
            assert res.n[row] > 0
    assert res.n["first_send_within_window | coupon_influenced=yes"] >= 10
    # the direction built in: yes-sayers send at full price less often (they use coupons),
    # but the 30-day difference is about one SE (-3.7 points, SE 3.3, at seed 1 with Guangxi's
    # earlier campaign strength; +0.7 points after its recalibration): a sign test at one seed
    # would fail by chance. Checked here: not significantly *positive*; the strong check of the
    # mechanism is test_yes_sayers_rely_on_coupons_more.
    row = "full_price_within_window | yes - no"
    assert res.estimate[row] < 1.96 * res.se[row], (res.estimate[row], res.se[row])
    assert res.estimate["full_price_within_window | coupon_influenced=no"] > 0.05


def _toy_world(known_day, first_day, coupon):
    """A minimal world for link_respondents: people, one parcel per sender (day ``first_day``,
    -1 = never sends), ``coupon`` = that parcel used a coupon."""
    n = len(known_day)
    first_day = np.asarray(first_day)
    senders = np.flatnonzero(first_day >= 0)
    zeros = np.zeros(n)
    people = People(
        kind=np.where(first_day >= 0, PRIOR, PROSPECT), segment=zeros.astype(int),
        wechat=zeros.astype(bool), parcels_received=zeros.astype(int), u=zeros,
        known_day=np.asarray(known_day), score=zeros, b=zeros,
    )
    return SimpleNamespace(
        people=people,
        rec={
            "cust": senders,
            "k": np.ones(senders.size, dtype=np.int64),
            "sent_s": first_day[senders].astype(np.int64) * 86400 + 3600,
            "coupon_kind": np.asarray(coupon)[senders].astype(np.int8),
        },
    )


def test_link_respondents_finds_the_only_eligible_person():
    """Prospects known after the first respondent's day crowd the front of the ranking; the
    first respondent must still get the one prospect known in time (also when the ranking's
    front runs out and the whole pool is ranked)."""
    n = 6000
    known = np.full(n, 10)
    known[1234] = 0
    world = _toy_world(known, np.full(n, -1), np.zeros(n))
    s = np.array([5 * 86400, 12 * 86400])
    hits = []
    for seed in range(8):
        out = link_respondents(world, s, np.array([True, True]), pd.array([True, False]),
                               np.random.default_rng(seed), share=1.0)
        assert out[0] == 1234
        assert out[1] >= 0 and out[1] != 1234
        hits.append(out[1])
    assert len(set(hits)) > 1


def test_link_respondents_share_and_bad_share():
    n = 50
    first = np.where(np.arange(n) < 25, 3, -1)
    world = _toy_world(np.zeros(n), first, np.arange(n) % 2)
    s = np.full(10, 30 * 86400)
    ft = np.arange(10) < 5
    out = link_respondents(world, s, ft, pd.array([True] * 10), np.random.default_rng(0),
                           share=0.6)
    assert (out >= 0).sum() == 6
    # first-timers get never-senders, others senders
    assert (first[out[(out >= 0) & ft]] < 0).all()
    assert (first[out[(out >= 0) & ~ft]] >= 0).all()
    none = link_respondents(world, s, ft, pd.array([True] * 10), np.random.default_rng(0),
                            share=0.0)
    assert (none == -1).all()
    with pytest.raises(ValueError, match="linked_share"):
        link_respondents(world, s, ft, pd.array([True] * 10), np.random.default_rng(0),
                         share=1.5)
