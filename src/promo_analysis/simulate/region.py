"""One region's world: people, coupons to prospects, the experiment, all parcels.

:func:`simulate_region` returns a :class:`RegionWorld` that holds the generated records *and*
what the ground truth needs (hazards, clocks, coupon days, the campaign-free clocks' inputs).
Tables are built from it in :mod:`.tables`, truth in :mod:`.truth`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .campaigns import Campaign
from .population import PRIOR, PROSPECT, People, draw_people, draw_walkins
from .pricing import (
    EXPRESS,
    assign_products_prices,
    calibrate_prices,
    campaign_arrays,
    channel_names,
    design_arrays,
    later_coupon_use,
    prescale_prices,
)
from .scenario import Scenario
from .sending import clock, clock_at, first_send_day, repeat_chains, time_at
from .timeline import Timeline, calendar_weights

__all__ = ["RegionWorld", "simulate_region"]

#: mild seasonality of prospects' first sending (share of the calendar pattern)
PROSPECT_SEASONALITY = 0.3
#: coupons are issued while the 30-day outcome still fits inside the period
LAST_ISSUE_MARGIN = 31


@dataclass
class RegionWorld:
    region: str
    scale: float
    people: People
    campaigns: list[Campaign]
    W: np.ndarray  # repeat-sending weights [segment, day]
    V: np.ndarray  # first-send weights [segment, day]
    L: np.ndarray  # clock(W)
    G: np.ndarray  # clock(V)
    rep_factor: dict[int, np.ndarray]  # campaign index -> factor on W over its window
    pro_factor: dict[int, np.ndarray]  # campaign index -> factor on V over the campaign
    active: np.ndarray  # [segment, day] -> index of the running campaign, -1 none
    # prospects
    e0: np.ndarray  # first eligible day (prospects), -1 otherwise
    target: np.ndarray  # cumulative-hazard target on G
    coupon_day: np.ndarray  # courier / experiment coupon day, -1 none
    coupon_design: np.ndarray  # index into scenario designs, -1 none
    coupon_source: np.ndarray  # 0 none, 1 courier, 2 experiment
    t_first: np.ndarray  # first recorded parcel day (n_days = never)
    exp_arm: np.ndarray  # -1 not in experiment, else arm index
    exp_day: np.ndarray
    experiment: dict | None
    walkin_u: np.ndarray  # thinning uniforms of walk-ins (campaign coupling)
    # customers
    mu: np.ndarray
    acquired: np.ndarray
    churn_years: np.ndarray
    day2: np.ndarray
    time2: np.ndarray  # calendar time of the second recorded parcel (fractional day), -1 none
    pos2: np.ndarray  # its repeat-clock position
    # parcels (records), one entry per parcel
    rec: dict[str, np.ndarray] = field(default_factory=dict)
    price_factor: dict = field(default_factory=dict)
    price_steps: dict = field(default_factory=dict)
    channel_names: list = field(default_factory=list)  # rec["channel"] codes -> names
    coupon_calibration: dict = field(default_factory=dict)


def _campaign_weights(sc: Scenario, tl: Timeline, region: str, campaigns: list[Campaign]):
    n_seg = len(sc.people["segments"])
    segs = sc.people["segments"]
    cal = calendar_weights(tl, region)
    rp = sc.region(region)
    t = (np.arange(tl.n_days) - tl.n_days / 2) / 365.0
    base = cal * np.exp(float(rp["trend"]) * t)
    W = np.tile(base, (n_seg, 1))
    V = np.tile(1.0 + PROSPECT_SEASONALITY * (cal - 1.0), (n_seg, 1))
    active = np.full((n_seg, tl.n_days), -1, dtype=np.int64)
    rep_factor, pro_factor = {}, {}
    nu = float(sc.campaigns["new_customer_lift"])
    for i, c in enumerate(campaigns):
        rows = (
            np.arange(n_seg) if c.target_segment is None else np.array([segs.index(c.target_segment)])
        )
        f = np.ones(c.post_end - c.start + 1)
        f[: c.days] = 1.0 + c.lift
        f[c.days :] = 1.0 - c.dip
        rep_factor[i] = f
        pro_factor[i] = np.full(c.days, 1.0 + nu * c.lift)
        for g in rows:
            W[g, c.start : c.post_end + 1] *= f
            V[g, c.start : c.end + 1] *= pro_factor[i]
            prev = active[g, c.start : c.end + 1]
            # the later-starting campaign wins on overlapping days
            active[g, c.start : c.end + 1] = np.where(
                (prev < 0) | (np.array([campaigns[p].start if p >= 0 else -1 for p in prev])
                              <= c.start),
                i,
                prev,
            )
    return W, V, active, rep_factor, pro_factor


def simulate_region(
    sc: Scenario,
    tl: Timeline,
    region: str,
    scale: float,
    campaigns: list[Campaign],
    rng: np.random.Generator,
) -> RegionWorld:
    """Generate one region (see module docs of :mod:`.sending` for the model)."""
    rp = sc.region(region)
    pp, cp = sc.people, sc.coupons
    D = tl.n_days
    size = float(rp["revenue_2022"]) * float(rp["population_scale"]) * scale / 20.0
    W, V, active, rep_factor, pro_factor = _campaign_weights(sc, tl, region, campaigns)
    L, G = clock(W), clock(V)
    n_seg = W.shape[0]

    people = draw_people(sc, tl, size, rng)
    n = len(people)
    is_pros = people.kind == PROSPECT
    e0 = np.where(is_pros, np.maximum(people.known_day, 0), -1)
    target = np.full(n, np.inf)
    target[is_pros] = G[people.segment[is_pros], e0[is_pros]] + (
        rng.standard_exponential(is_pros.sum()) / people.b[is_pros]
    )
    no_coupon = np.full(n, -1, dtype=np.int64)
    ones = np.ones(n)
    t_nc = np.full(n, D, dtype=np.int64)
    t_nc[is_pros] = first_send_day(
        G, people.segment[is_pros], target[is_pros], no_coupon[is_pros], ones[is_pros], 30
    )

    # courier coupons: more often to people likely to send anyway (observed score), and to new
    # contacts; optionally also on the unobserved U
    score = people.score
    mean_score = score[is_pros].mean() if is_pros.any() else 0.0
    tenure0 = e0 - people.known_day
    rho = float(cp["courier_rate"]) * np.exp(
        float(cp["confounding"]) * (score - mean_score)
        + float(cp["unobserved_confounding"]) * float(pp["unobserved_sd"]) * people.u
        + float(cp["new_contact_boost"]) * (tenure0 < 180)
    )
    validity = int(cp["validity_days"])
    last_issue = D - LAST_ISSUE_MARGIN
    c_day = e0 + np.floor(rng.standard_exponential(n) / rho * 365.0).astype(np.int64)
    got = is_pros & (c_day <= t_nc) & (c_day <= last_issue)
    designs = list(cp["designs"])
    dshare = np.asarray(cp["design_share"], float)
    coupon_day = np.where(got, c_day, -1)
    coupon_design = np.where(got, rng.choice(len(designs), size=n, p=dshare / dshare.sum()), -1)
    coupon_source = np.where(got, 1, 0)

    # the randomized test
    exp_arm = np.full(n, -1, dtype=np.int64)
    exp_day = np.full(n, -1, dtype=np.int64)
    experiment = next((e for e in sc.experiments if e["region_id"] == region), None)
    if experiment is not None:
        a0 = tl.day(experiment["start"])
        a = a0 + rng.integers(0, int(experiment["days"]), size=n)
        eligible = (
            is_pros
            & (people.known_day <= a)
            & (t_nc >= a)
            & ~((coupon_day >= 0) & (coupon_day <= a))
        )
        cand = np.flatnonzero(eligible)
        n_exp = max(int(experiment["min_participants"]), round(experiment["participants"] * scale))
        n_exp = min(n_exp, cand.size)
        chosen = rng.choice(cand, size=n_exp, replace=False)
        chosen.sort()
        arms = list(experiment["arms"])
        arm = np.resize(np.arange(len(arms)), n_exp)
        rng.shuffle(arm)
        exp_arm[chosen] = arm
        exp_day[chosen] = a[chosen]
        # participants get no courier coupon; design arms get the test coupon at assignment
        coupon_day[chosen] = -1
        coupon_design[chosen] = -1
        coupon_source[chosen] = 0
        for j, name in enumerate(arms):
            if name == "control":
                continue
            sel = chosen[arm == j]
            coupon_day[sel] = a[sel]
            coupon_design[sel] = designs.index(name)
            coupon_source[sel] = 2

    tau = np.asarray(pp["coupon_tau"], float)[people.segment]
    dfac = np.asarray(cp["design_factor"], float)
    mult = np.where(coupon_day >= 0, 1.0 + tau * dfac[np.maximum(coupon_design, 0)], 1.0)
    t_first = np.full(n, D, dtype=np.int64)
    t_first[is_pros] = first_send_day(
        G, people.segment[is_pros], target[is_pros], coupon_day[is_pros], mult[is_pros], validity
    )

    # walk-ins: arrivals on the first-send clock (campaigns bring more of them)
    years = D / 365.0
    n_prior = int((people.kind == PRIOR).sum())
    share = np.asarray(pp["segment_share"], float)
    share = share / share.sum()
    w_seg, w_day = [], []
    for g in range(n_seg):
        lam = float(pp["walkin_per_year"]) * n_prior * share[g] * G[g, -1] / years
        m = rng.poisson(lam)
        pos = rng.random(m) * G[g, -1]
        w_seg.append(np.full(m, g))
        w_day.append(np.clip(np.searchsorted(G[g], pos, side="left") - 1, 0, D - 1))
    w_seg, w_day = np.concatenate(w_seg), np.concatenate(w_day)
    walk = draw_walkins(sc, w_seg, w_day, rng)
    walkin_u = rng.random(len(w_seg))
    people = _concat_people(people, walk)
    nw = len(w_seg)
    pad = lambda x, v: np.r_[x, np.full(nw, v, dtype=np.asarray(x).dtype)]  # noqa: E731
    e0, target = pad(e0, -1), pad(target, np.inf)
    coupon_day, coupon_design, coupon_source = (
        pad(coupon_day, -1), pad(coupon_design, -1), pad(coupon_source, 0)
    )
    exp_arm, exp_day = pad(exp_arm, -1), pad(exp_day, -1)
    t_first = np.r_[t_first, w_day]
    walkin_u = np.r_[np.full(n, np.nan), walkin_u]
    n = len(people)

    # repeat sending
    mu = np.exp(
        float(pp["repeat_log_rate"])
        + np.asarray(pp["repeat_offset"], float)[people.segment]
        + float(pp["repeat_wechat_effect"]) * people.wechat
    )
    frailty_shape = float(pp["frailty_shape"])
    frailty = rng.gamma(frailty_shape, 1.0 / frailty_shape, size=n) * np.where(
        people.kind == PRIOR, float(pp["later_rate_prior"]), float(pp["later_rate_new"])
    )
    churn_years = rng.standard_exponential(n) * float(pp["churn_mean_years"])

    world = RegionWorld(
        region=region, scale=scale, people=people, campaigns=campaigns, W=W, V=V, L=L, G=G,
        rep_factor=rep_factor, pro_factor=pro_factor, active=active, e0=e0, target=target,
        coupon_day=coupon_day, coupon_design=coupon_design, coupon_source=coupon_source,
        t_first=t_first, exp_arm=exp_arm, exp_day=exp_day, experiment=experiment,
        walkin_u=walkin_u, mu=mu, acquired=np.zeros(n, bool), churn_years=churn_years,
        day2=np.full(n, -1, dtype=np.int64), time2=np.full(n, -1.0), pos2=np.full(n, np.nan),
        channel_names=channel_names(rp),
    )

    # first parcels of prospects and walk-ins: product, price, coupon use -> coupon-acquired
    sends_first = (people.kind != PRIOR) & (t_first < D)
    first_idx = np.flatnonzero(sends_first)
    first = {
        "cust": first_idx,
        "k": np.ones(first_idx.size, dtype=np.int64),
        "day": t_first[first_idx],
    }
    seg_f = people.segment[first_idx]
    first["time"] = first["day"] + rng.random(first_idx.size)
    first["pos"] = np.empty(first_idx.size)
    for g in np.unique(seg_f):
        m = seg_f == g
        first["pos"][m] = clock_at(L[g], first["time"][m])

    # first-parcel coupon use needs prices: draw attributes for the first parcels now
    assign_products_prices(sc, tl, rp, first, rng)
    _first_parcel_coupons(sc, world, first, rng)
    world.acquired[first_idx] = first["coupon_kind"] > 0
    hr = float(sc.retention["hazard_ratio"])
    chains_new = _chains(world, first_idx, first["time"], frailty, hr, rng)

    # prior senders: the first recorded parcel is the first event of their (established)
    # sending process after the period start; from it on they are like everyone else
    prior_idx = np.flatnonzero(people.kind == PRIOR)
    chains_prior = _prior_chains(sc, tl, rp, world, prior_idx, frailty, hr, rng)

    rec = _concat_records([first, chains_new, chains_prior])
    assign_products_prices(sc, tl, rp, rec, rng, only_missing=True)
    world.rec = rec
    prescale_prices(sc, tl, rp, world)
    later_coupon_use(sc, tl, rp, world, rng)
    calibrate_prices(sc, tl, rp, world)
    return world


def _prior_chains(sc, tl, rp, world, prior_idx, frailty, hr, rng):
    """Chains of prior senders: first recorded parcel, then gap-1 rate by its coupon use."""
    people, L, D = world.people, world.L, tl.n_days
    seg = people.segment[prior_idx]
    mu = world.mu[prior_idx]
    # first recorded parcel: the first event after the period start at the later-state rate
    pos0 = L[seg, 0] + rng.standard_exponential(prior_idx.size) / (mu * frailty[prior_idx])
    day0 = np.full(prior_idx.size, D, dtype=np.int64)
    for g in np.unique(seg):
        m = seg == g
        d = np.searchsorted(L[g], pos0[m], side="left") - 1
        day0[m] = np.where(pos0[m] > L[g][-1], D, np.maximum(d, 0))
    sends = day0 < D
    idx = prior_idx[sends]
    first = {
        "cust": idx,
        "k": np.ones(idx.size, dtype=np.int64),
        "day": day0[sends],
        "pos": pos0[sends],
    }
    first["time"] = np.empty(idx.size)
    for g in np.unique(seg[sends]):
        m = seg[sends] == g
        first["time"][m] = time_at(L[g], first["pos"][m])
    assign_products_prices(sc, tl, rp, first, rng)
    _first_parcel_coupons(sc, world, first, rng)
    world.acquired[idx] = first["coupon_kind"] > 0
    world.t_first[idx] = first["day"]
    return _concat_records([first, _chains(world, idx, first["time"], frailty, hr, rng)])


def _chains(world, idx, start_time, frailty, hr, rng) -> dict:
    """Parcels after the first recorded one of customers ``idx`` (see :mod:`.sending`)."""
    ch = repeat_chains(
        world.L, world.people.segment[idx], start_time,
        world.mu[idx] * np.where(world.acquired[idx], hr, 1.0),
        world.mu[idx] * frailty[idx], world.churn_years[idx], rng,
    )
    ch["cust"] = idx[ch["cust"]]
    world.time2[idx] = ch.pop("time2")
    world.pos2[idx] = ch.pop("pos2")
    world.day2[idx] = np.where(world.time2[idx] >= 0, np.floor(world.time2[idx]), -1).astype(
        np.int64
    )
    return ch


def _first_parcel_coupons(sc: Scenario, world: RegionWorld, first: dict, rng) -> None:
    """Coupon use on first recorded parcels.

    A prospect holding a valid coupon (courier or experiment) uses it on an express first
    parcel priced at or above its threshold with probability ``use_if_eligible``; just below
    (within ``bunching_band``) they move up to the threshold with ``bunching_prob``. Otherwise
    a first parcel sent during a campaign for its segment may use an anonymous paper coupon of
    that campaign (same rules, probability ``anonymous_first_use``).
    Sets ``coupon_kind`` (0 none, 1 personal, 2 anonymous campaign), ``coupon_campaign``,
    ``bunched``; moves ``list_price`` of bunched parcels to the threshold.
    """
    cp = sc.coupons
    cust, day = first["cust"], first["day"]
    n = cust.size
    express = first["product"] == EXPRESS
    price = first["list_price"]
    kind = np.zeros(n, dtype=np.int8)
    camp = np.full(n, -1, dtype=np.int64)
    bunched = np.zeros(n, bool)
    band, pb = float(cp["bunching_band"]), float(cp["bunching_prob"])

    def try_use(mask, thr, prob):
        ok = mask & express & (price >= thr)
        use = ok & (rng.random(n) < prob)
        near = mask & express & (price < thr) & (price >= thr - band)
        up = near & (rng.random(n) < pb)
        return use | up, up

    cday = world.coupon_day[cust]
    holds = (cday >= 0) & (day >= cday) & (day < cday + int(cp["validity_days"]))
    d_thr, _ = design_arrays(sc)
    thr = np.where(holds, d_thr[world.coupon_design[cust]], np.inf)
    used, up = try_use(holds, thr, float(cp["use_if_eligible"]))
    kind[used] = 1
    bunched |= up
    price[up] = thr[up]

    seg = world.people.segment[cust]
    act = world.active[seg, day]
    in_camp = (act >= 0) & (kind == 0)
    cthr = np.where(in_camp, campaign_arrays(world.campaigns)[0][act], np.inf)
    used2, up2 = try_use(in_camp, cthr, float(cp["anonymous_first_use"]))
    kind[used2] = 2
    camp[used2] = act[used2]
    bunched |= up2
    price[up2] = cthr[up2]
    first["coupon_kind"] = kind
    first["coupon_campaign"] = camp
    first["bunched"] = bunched


def _concat_people(a: People, b: People) -> People:
    return People(*[np.r_[getattr(a, f), getattr(b, f)] for f in People.__dataclass_fields__])


def _concat_records(parts: list[dict]) -> dict[str, np.ndarray]:
    keys = set().union(*[p.keys() for p in parts])
    out = {}
    total = sum(len(p["cust"]) for p in parts)
    for key in keys:
        arrays = []
        for p in parts:
            m = len(p["cust"])
            if key in p:
                arrays.append(np.asarray(p[key]))
            else:
                arrays.append(None if m else np.zeros(0))
                arrays[-1] = _missing(key, m)
        out[key] = np.concatenate(arrays) if arrays else np.zeros(total)
    return out


def _missing(key: str, m: int) -> np.ndarray:
    if key in ("coupon_kind",):
        return np.zeros(m, dtype=np.int8)
    if key in ("coupon_campaign",):
        return np.full(m, -1, dtype=np.int64)
    if key in ("bunched",):
        return np.zeros(m, bool)
    if key in ("product", "channel", "payment"):
        return np.full(m, -1, dtype=np.int8)
    if key in ("list_price", "pre_bunch", "time", "pos"):
        return np.full(m, np.nan)
    raise KeyError(key)
