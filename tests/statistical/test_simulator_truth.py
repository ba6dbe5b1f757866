"""The simulator as a scientific instrument: calibration, confounding, randomization, null
scenario and the retention / bunching / survey truths, all checked against figures computed
from the generated tables (never from generator parameters)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from promo_analysis import validate

# 2022 facts of CONTEXT.md (yuan, counts at scale 1)
GX_REVENUE, GX_GROWTH, GX_COUPONS, GX_CAMPAIGN = 77.70e6, 0.453, 1.094e6, 20.50e6
SX_REVENUE, SX_GROWTH, SX_COUPONS = 56.12e6, 0.677, 0.383e6
SX_STATION, SX_COUNTER, SX_STATION_G, SX_COUNTER_G = 46.36e6, 9.76e6, 0.824, 0.213


@pytest.fixture(scope="module")
def tables(small_ds):
    s = small_ds.to_pandas("shipments")
    s["year"] = s["sent_at"].dt.year
    return {
        "shipments": s,
        "customers": small_ds.to_pandas("customers"),
        "coupons": small_ds.to_pandas("coupons"),
        "assignments": small_ds.to_pandas("assignments"),
    }


def test_generated_datasets_validate(small_ds, null_ds):
    for ds in (small_ds, null_ds):
        report = validate(ds)
        assert report.ok, report
        assert len(report.issues) == 0


def test_calibration_to_the_2022_facts(small_ds, tables):
    scale = small_ds.meta["scale"]
    s = tables["shipments"]
    ex = s[s["product"] == "express"]
    rev = ex.groupby(["region_id", "year"])["revenue"].sum() / scale
    assert rev["guangxi", 2022] == pytest.approx(GX_REVENUE, rel=0.02)
    assert rev["guangxi", 2022] / rev["guangxi", 2021] - 1 == pytest.approx(GX_GROWTH, abs=0.02)
    assert rev["shanxi", 2022] == pytest.approx(SX_REVENUE, rel=0.02)
    assert rev["shanxi", 2022] / rev["shanxi", 2021] - 1 == pytest.approx(SX_GROWTH, abs=0.02)
    ch = ex[ex.region_id == "shanxi"].groupby(["channel", "year"])["revenue"].sum() / scale
    assert ch["station", 2022] == pytest.approx(SX_STATION, rel=0.02)
    assert ch["counter", 2022] == pytest.approx(SX_COUNTER, rel=0.02)
    assert ch["station", 2022] / ch["station", 2021] - 1 == pytest.approx(SX_STATION_G, abs=0.03)
    assert ch["counter", 2022] / ch["counter", 2021] - 1 == pytest.approx(SX_COUNTER_G, abs=0.03)
    used = s[s.coupon_id.notna()].groupby(["region_id", "year"]).size() / scale
    assert used["guangxi", 2022] == pytest.approx(GX_COUPONS, rel=0.03)
    assert used["shanxi", 2022] == pytest.approx(SX_COUPONS, rel=0.03)
    # Shanxi: revenue of parcels sent under a campaign is about half of walk-in revenue
    sx22 = ex[(ex.region_id == "shanxi") & (ex.year == 2022)]
    share = sx22.loc[sx22.campaign_id.notna(), "revenue"].sum() / sx22["revenue"].sum()
    assert share == pytest.approx(0.5, abs=0.05)
    # Guangxi: true incremental campaign revenue of 2022 (truth, from tagged records)
    tc = small_ds.truth.campaigns
    gx = tc[(tc.region_id == "guangxi") & (tc.start_date.dt.year == 2022)]
    assert gx["incremental_revenue"].sum() / scale == pytest.approx(GX_CAMPAIGN, rel=0.05)


def test_campaign_calendar(small_ds):
    c = small_ds.to_pandas("campaigns")
    c["year"] = c["start_date"].dt.year
    nat = c.region_id.isna()
    n22 = lambda r: int(((c.region_id == r) | nat)[c.year == 2022].sum())  # noqa: E731
    assert n22("guangxi") == 25 and n22("shanxi") == 15
    assert "sanyuesan" in set(c.loc[c.region_id == "guangxi", "theme"])
    assert (((c.region_id == "guangxi") | nat) & (c.year == 2021)).sum() < 25
    # at least 40% of the days of each region are campaign-free, overlaps rare and flagged
    days = pd.date_range("2021-01-01", "2022-12-31")
    for r in ("guangxi", "shanxi"):
        mine = c[(c.region_id == r) | nat]
        on = np.zeros(len(days), bool)
        for a, b in zip(mine.start_date, mine.end_date, strict=True):
            on |= (days >= a) & (days <= b)
        assert 1 - on.mean() >= 0.4
    tc = small_ds.truth.campaigns
    assert tc.overlap.mean() <= 0.1


def _risk_set_table(tables, seed=0) -> pd.DataFrame:
    """First-use analysis table built here from the tables alone: treated = prospects' first
    personal coupon while eligible (index = issue day); controls drawn by risk-set sampling
    (one day per prospect among the region's treated index days on or after its known_since,
    kept if still eligible then)."""
    s, c, k, a = tables["shipments"], tables["customers"], tables["coupons"], tables["assignments"]
    first = s.groupby("customer_id")["sent_at"].min().dt.normalize()
    c = c[~c.customer_id.isin(a.customer_id)].copy()
    c["first"] = c.customer_id.map(first)
    c = c[c["first"].isna() | (c["first"] > c["known_since"])]  # known before sending
    kk = k[k.customer_id.isin(c.customer_id)].copy()
    kk["day"] = kk["issued_at"].dt.normalize()
    kk = kk.merge(c[["customer_id", "known_since", "first"]], on="customer_id")
    kk = kk[(kk.day >= kk.known_since) & (kk["first"].isna() | (kk["first"] >= kk.day))]
    kk = kk.sort_values("day").groupby("customer_id").head(1)
    treated = c.merge(kk[["customer_id", "day"]], on="customer_id")
    rng = np.random.default_rng(seed)
    ctrl = []
    for r, sub in c.groupby("region_id"):
        pool = np.sort(treated.loc[treated.region_id == r, "day"].to_numpy())
        lo = np.searchsorted(pool, sub.known_since.to_numpy(), side="left")
        pick = lo + np.floor(rng.random(len(sub)) * (pool.size - lo)).astype(int)
        d = pd.to_datetime(pool[np.minimum(pick, pool.size - 1)])
        first_coupon = sub.customer_id.map(kk.set_index("customer_id")["day"])
        ok = (
            (lo < pool.size)
            & (sub["first"].isna().to_numpy() | (sub["first"].to_numpy() >= d))
            & (first_coupon.isna().to_numpy() | (first_coupon.to_numpy() > d))
        )
        ctrl.append(sub[ok].assign(day=d[ok]))
    out = pd.concat([treated.assign(got=1), pd.concat(ctrl).assign(got=0)], ignore_index=True)
    delay = (out["first"] - out["day"]).dt.days
    out["y"] = ((delay >= 0) & (delay < 30)).astype(int)
    return out


def test_naive_first_use_difference_is_confounded(small_ds, tables):
    t = _risk_set_table(tables)
    naive = t.loc[t.got == 1, "y"].mean() - t.loc[t.got == 0, "y"].mean()
    fu = small_ds.truth.first_use
    att = fu.query("estimand == 'att' and by == 'overall'")["value"].iloc[0]
    n_treated = fu.query("estimand == 'att' and by == 'overall'")["n"].iloc[0]
    assert (t.got == 1).sum() == n_treated  # same treated set as the truth
    assert att > 0.02
    assert naive > att + 0.01 and naive > 1.3 * att
    # people who got coupons were likelier to send anyway: observed covariates differ
    assert t.loc[t.got == 1, "wechat_contact"].mean() > t.loc[t.got == 0, "wechat_contact"].mean()
    assert (
        t.loc[t.got == 1, "parcels_received"].mean() > t.loc[t.got == 0, "parcels_received"].mean()
    )


def test_effects_differ_by_segment_and_design(small_ds):
    fu = small_ds.truth.first_use
    seg = fu.query("estimand == 'ate' and by == 'segment'").set_index("group")["value"]
    des = fu.query("estimand == 'ate' and by == 'design'").set_index("group")["value"]
    assert seg.max() > 2 * seg.min()
    assert des["12-3"] > des["21-5"] > 0


@pytest.fixture(scope="module")
def experiment_frames():
    """Guangxi alone at scale 0.01: the randomized test has its design size (1,500 per arm)."""
    from promo_analysis.simulate import simulate_frames

    frames, _, truth = simulate_frames("china-post-2022", scale=0.01, regions=["guangxi"], seed=0)
    return frames, truth


def test_randomized_test_difference_covers_truth(experiment_frames):
    # (coverage over seeds: benchmarks/calibration_simulator.py)
    frames, truth_all = experiment_frames
    a, s = frames["assignments"], frames["shipments"]
    first = s.groupby("customer_id")["sent_at"].min()
    a = a.assign(first=a.customer_id.map(first))
    delay = (a["first"].dt.normalize() - a["assigned_at"].dt.normalize()).dt.days
    a["y"] = ((delay >= 0) & (delay < 30)).astype(int)
    g = a.groupby("arm")["y"].agg(["mean", "count"])
    truth = truth_all.experiments.set_index("arm")
    assert set(g.index) == {"control", "12-3", "21-5"}
    assert g["count"].sum() == 4500
    assert g["count"].nunique() == 1  # equal allocation
    assert truth.loc["control", "effect"] == 0
    p0 = g.loc["control", "mean"]
    for arm in ("12-3", "21-5"):
        p1 = g.loc[arm, "mean"]
        se = np.sqrt(p1 * (1 - p1) / g.loc[arm, "count"] + p0 * (1 - p0) / g.loc["control", "count"])
        eff = truth.loc[arm, "effect"]
        assert abs((p1 - p0) - eff) < 1.96 * se
        assert truth.loc[arm, "n"] == g.loc[arm, "count"]
    assert abs(p0 - truth.loc["control", "control_rate"]) < 1.96 * np.sqrt(
        p0 * (1 - p0) / g.loc["control", "count"]
    ) + 0.005


def _null_campaign_revenue_from_tables(ds) -> pd.DataFrame:
    """Per (campaign, region), over the parcels that used the campaign's coupon inside its
    window (start .. window_end): the sum of revenue minus the no-coupon price, from the tables
    and the recorded calibration steps, and the number of parcels.

    Without a coupon an express parcel pays round(raw x step 1 x step 2, 1). A customer's
    first shipment with a coupon carries its raw price (its coupon was decided before the
    calibration): both steps apply to its list price. Later coupon parcels carry the step-1
    price rounded to 0.1 yuan: step 2 applies to it, exact up to that rounding (0.1 a parcel).
    """
    s = ds.to_pandas("shipments")
    first = s.sort_values(["sent_at", "shipment_id"]).drop_duplicates("customer_id").shipment_id
    s["first"] = s.shipment_id.isin(first)
    cpn = ds.to_pandas("coupons")[["coupon_id", "campaign_id"]]
    s = s.drop(columns="campaign_id").merge(cpn, on="coupon_id", how="inner")
    s = s[s.campaign_id.notna()]
    tc = ds.truth.campaigns[["campaign_id", "region_id", "start_date", "window_end"]]
    s = s.merge(tc, on=["campaign_id", "region_id"], how="inner")
    s = s[(s.sent_at >= s.start_date) & (s.sent_at < s.window_end + pd.Timedelta(days=1))]
    day = (s.sent_at.dt.normalize() - pd.Timestamp("2021-01-01")).dt.days.to_numpy()
    t = (day - 730 / 2) / 365.0
    f = np.ones(len(s))
    express = (s["product"] == "express").to_numpy()
    for region, cal in ds.truth.calibration["regions"].items():
        for step, factors in cal["price_steps"].items():
            for group, ab in factors.items():
                m = (s.region_id == region).to_numpy() & express
                if group != "all":
                    m &= (s.channel == group).to_numpy()
                if step == "list":
                    m &= s["first"].to_numpy()
                f[m] *= ab["a"] * np.exp(ab["b"] * t[m])
    cf = np.where(express, np.round(s.list_price.to_numpy() * f, 1), s.list_price.to_numpy())
    s["gap"] = s.revenue.to_numpy() - cf
    return s.groupby(["campaign_id", "region_id"]).agg(gap=("gap", "sum"), n=("gap", "size"))


def test_null_scenario_truth_is_zero(null_ds):
    t = null_ds.truth
    assert (t.first_use["value"] == 0).all()
    assert (t.experiments["effect"] == 0).all()
    c = t.campaigns
    assert (c.incremental_shipments == 0).all() and (c.incremental_new_customers == 0).all()
    assert (c.pull_forward_revenue == 0).all()
    # coupons still redeemed by people who would have sent anyway: the revenue lost is the
    # discount plus the gap between the parcel's price and its no-coupon price (module docs of
    # simulate.pricing), recomputed here from the tables
    want = _null_campaign_revenue_from_tables(null_ds)
    got = c.set_index(["campaign_id", "region_id"]).incremental_revenue
    want = want.reindex(got.index, fill_value=0.0)
    err = (got - want.gap).abs()
    assert (err <= 0.1 * want.n + 1e-6).all(), err.max()
    assert c.discount_cost.sum() > 0
    # the price gap is visible (first parcels that used a coupon keep their raw price): a
    # truth of minus the discount alone would fail the check above
    disc = c.set_index(["campaign_id", "region_id"]).discount_cost
    assert ((want.gap + disc).abs() > 0.1 * want.n + 1e-6).any()
    assert null_ds.to_pandas("shipments").coupon_id.notna().sum() > 0
    assert t.retention["hazard_ratio"] == 1.0
    assert (t.bunching.moved_up_parcels == 0).all()


def test_retention_hazard_ratio_recovered_by_cox(small_ds, tables):
    lifelines = pytest.importorskip("lifelines")
    s = tables["shipments"].sort_values(["customer_id", "sent_at", "shipment_id"])
    g = s.groupby("customer_id")
    d = g.head(1).set_index("customer_id")[["sent_at", "coupon_id"]]
    d["second"] = g.nth(1).set_index("customer_id")["sent_at"]
    c = tables["customers"].set_index("customer_id")
    d = d.join(c[["segment", "wechat_contact", "region_id"]])
    end = pd.Timestamp("2023-01-01")
    d["T"] = ((d["second"].fillna(end) - d["sent_at"]).dt.total_seconds() / 86400).clip(lower=1e-3)
    d["E"] = d["second"].notna().astype(int)
    d["acq"] = d["coupon_id"].notna().astype(float)
    d["wechat"] = d["wechat_contact"].astype(float)
    x = pd.get_dummies(
        d[["T", "E", "acq", "wechat", "segment", "region_id"]],
        columns=["segment", "region_id"], drop_first=True,
    ).astype(float)
    cph = lifelines.CoxPHFitter().fit(x, "T", "E")
    lo, hi = np.exp(cph.confidence_intervals_.loc["acq"])
    assert lo < small_ds.truth.retention["hazard_ratio"] < hi


def test_habit_share_matches_later_parcels(small_ds, tables):
    s = tables["shipments"].sort_values(["customer_id", "sent_at", "shipment_id"])
    first = s.groupby("customer_id").head(1).set_index("customer_id")["coupon_id"].notna()
    later = s[s.groupby("customer_id").cumcount() > 0]
    acq = later.customer_id.map(first)
    full = later.coupon_id.isna()
    r = small_ds.truth.retention
    for flag, key in ((True, "habit_share"), (False, "habit_share_organic")):
        f = full[acq == flag]
        se = np.sqrt(r[key] * (1 - r[key]) / len(f))
        assert abs(f.mean() - r[key]) < 4 * se + 0.005
    assert r["habit_share"] < r["habit_share_organic"]


def test_bunching_truth_is_the_excess_at_thresholds(small_ds, tables):
    s = tables["shipments"]
    ex = s[s["product"] == "express"]
    b = small_ds.truth.bunching.set_index(["region_id", "threshold"])["moved_up_parcels"]
    for (r, thr), moved in b.items():
        p = ex.loc[ex.region_id == r, "list_price"].round(1)
        at = int((p == thr).sum())
        # smooth density around the threshold (0.1-yuan bins 0.5 yuan either side)
        near = ((p - thr).abs() <= 0.55) & (p != thr)
        smooth = near.sum() / 10
        assert moved > 0
        assert abs(at - smooth - moved) < 4 * np.sqrt(smooth + 1) + 0.1 * moved


def test_survey_weights_recover_population_truth(small_ds):
    sv = small_ds.to_pandas("survey")
    t = small_ds.truth.survey.set_index(["region_id", "variable"])["value"]
    assert t["guangxi", "coupon_influenced"] == pytest.approx(0.504, abs=1e-4)
    for r, sub in sv.groupby("region_id"):
        sub = sub[sub.coupon_influenced.notna()]
        y = sub.coupon_influenced.astype(float)
        weighted = np.average(y, weights=sub.weight)
        assert abs(weighted - t[r, "coupon_influenced"]) < 0.08
        assert {"stratum_clusters", "cluster_size", "design_weight"} <= set(sub.columns)


def _guangxi_increment_2022(truth, scale):
    tc = truth.campaigns
    gx = tc[(tc.region_id == "guangxi") & (tc.start_date.dt.year == 2022)]
    return gx["incremental_revenue"].sum() / scale


@pytest.mark.parametrize("scale,seeds", [(0.003, (0, 1, 2, 3, 9, 11, 19, 21)), (0.01, (1, 2))])
def test_campaign_truth_calibrated_across_seeds(scale, seeds):
    """The true 2022 campaign increment of Guangxi (with-minus-without, from the generated
    records) is 20.50 M (x scale) within 5% for every seed, and on average within 2%.

    The lift noise is normalised per region-year so the *expected* increment is the same for
    every seed, and campaign-coupon parcels carry the calibrated price (two-step calibration),
    so the seed's price factor no longer moves the truth; what remains is the realised noise of
    the difference (24 seeds: sd 2.2% at 0.003, 1.1% at 0.01, none outside 5%;
    benchmarks/calibration_campaign_truth.py and docs/methods.md section 3). Seeds 9, 11, 19
    and 21 were outside 5% when coupon parcels kept their raw price.
    """
    from promo_analysis.simulate import simulate_frames

    got = []
    for seed in seeds:
        _, _, truth = simulate_frames("china-post-2022", scale=scale, regions=["guangxi"],
                                      seed=seed, workers=1)
        got.append(_guangxi_increment_2022(truth, scale))
    got = np.array(got)
    assert np.all(np.abs(got / GX_CAMPAIGN - 1) < 0.05), got / 1e6
    assert got.mean() == pytest.approx(GX_CAMPAIGN, rel=0.02 if scale < 0.01 else 0.03)


def test_campaign_lift_noise_keeps_the_expected_increment_fixed():
    """Per region and year the lift noise leaves the proxy of the expected campaign increment
    unchanged: the year's sum of the proxies at the drawn lifts is the same for every seed and
    equals the sum at the noise-free lifts x exp(sd^2/2), while the lifts differ by seed."""
    from promo_analysis.simulate import _rng, load_scenario
    from promo_analysis.simulate.campaigns import _expected_increments, campaign_calendar
    from promo_analysis.simulate.timeline import Timeline

    sc = load_scenario("china-post-2022")
    tl = Timeline(sc.start, sc.n_days)

    def year_sums(camps, factor=1.0):
        items = [[c.campaign_id, c.national, tl.dates[c.start].year, c.theme, c.start, c.end,
                  c.post_end, c.threshold, c.face_value, c.target_segment, c.overlap,
                  c.lift * factor, 0.0, 0.0] for c in camps]
        x = np.array(_expected_increments(sc, tl, "guangxi", items))
        year = np.array([it[2] for it in items])
        return {y: x[year == y].sum() for y in (2021, 2022)}

    flat = load_scenario("china-post-2022")
    flat.campaigns["noise_sd"] = 0.0
    base = campaign_calendar(flat, tl, ["guangxi"], _rng(0, "guangxi", "campaigns"))
    want = year_sums(base, factor=np.exp(float(sc.campaigns["noise_sd"]) ** 2 / 2))
    lifts = []
    for seed in range(4):
        camps = campaign_calendar(sc, tl, ["guangxi"], _rng(seed, "guangxi", "campaigns"))
        assert [c.campaign_id for c in camps] == [c.campaign_id for c in base]
        got = year_sums(camps)
        for y in (2021, 2022):
            assert got[y] == pytest.approx(want[y], rel=1e-4)
        lifts.append([c.lift for c in camps])
    assert not np.allclose(lifts[0], lifts[1])
