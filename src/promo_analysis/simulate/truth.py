"""Ground truth of a simulated dataset, computed from the model, never estimated.

See ``docs/methods.md`` (section 3) for each estimand's exact definition.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .population import PRIOR, PROSPECT, WALKIN
from .pricing import EXPRESS, no_coupon_price
from .region import RegionWorld
from .sending import clock, clock_at, first_send_day, time_at
from .timeline import Timeline

__all__ = [
    "GroundTruth", "first_use_units", "first_use_truth", "experiment_truth", "campaign_truth",
    "habit_sums", "retention_truth", "bunching_truth",
]

_FRAMES = ("first_use", "experiments", "campaigns", "survey", "bunching")


@dataclass
class GroundTruth:
    """What a simulated dataset's estimators should recover.

    Attributes
    ----------
    first_use : DataFrame
        ``estimand ("att"|"ate"), by ("overall"|"segment"|"design"|"region"), group, value, n``:
        the effect of receiving a coupon on the probability of a first parcel within 30 days of
        the index date (difference of probabilities), computed exactly from the model.
    experiments : DataFrame
        ``experiment_id, region_id, arm, threshold, face_value, n, control_rate, effect``.
    campaigns : DataFrame
        One row per campaign and region it ran in: ``campaign_id, region_id, theme,
        start_date, end_date, incremental_revenue, incremental_shipments,
        incremental_new_customers, discount_cost, pull_forward_revenue`` and extras
        (``level``, ``design``, ``target_segment``, ``lift``, ``overlap``,
        ``leakage_discount``, ``campaign_revenue``, ``incremental_revenue_express``,
        ``window_end``).
    retention : dict
        ``hazard_ratio``, ``habit_share``, ``habit_share_organic`` (+ per region).
    survey : DataFrame
        ``region_id, variable, value``: finite-population values.
    bunching : DataFrame
        ``region_id, threshold, moved_up_parcels``.
    calibration : dict
        Targets and what the generator did to meet them (price factors, coupon factor).
    """

    first_use: pd.DataFrame
    experiments: pd.DataFrame
    campaigns: pd.DataFrame
    retention: dict[str, Any]
    survey: pd.DataFrame
    bunching: pd.DataFrame
    calibration: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (frames as lists of records; dates as ISO strings)."""
        out: dict[str, Any] = {}
        for name in _FRAMES:
            df = getattr(self, name).copy()
            for col in df.columns:
                if pd.api.types.is_datetime64_any_dtype(df[col]):
                    df[col] = df[col].dt.strftime("%Y-%m-%d")
            out[name] = json.loads(df.to_json(orient="records", force_ascii=False))
        out["retention"] = _jsonable(self.retention)
        out["calibration"] = _jsonable(self.calibration)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GroundTruth:
        """Inverse of :meth:`to_dict`."""
        frames = {}
        for name in _FRAMES:
            df = pd.DataFrame(data.get(name, []))
            for col in ("start_date", "end_date", "window_end"):
                if col in df.columns:
                    df[col] = pd.to_datetime(df[col])
            frames[name] = df
        return cls(
            retention=dict(data.get("retention", {})),
            calibration=dict(data.get("calibration", {})),
            **frames,
        )

    def __repr__(self) -> str:
        att = self.first_use.query("estimand == 'att' and by == 'overall'")["value"]
        att_s = f"{att.iloc[0]:.4f}" if len(att) else "-"
        return (
            f"<GroundTruth ATT={att_s} campaigns={len(self.campaigns)} "
            f"HR={self.retention.get('hazard_ratio')}>"
        )


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    return x


# --------------------------------------------------------------------------- first use
def _p30(world: RegionWorld, who: np.ndarray, day: np.ndarray, validity: int) -> np.ndarray:
    """Model probability of a first send within ``validity`` days from ``day``, no coupon:
    as the cumulative hazard ``H``; ``p0 = 1 - exp(-H)``, ``p1 = 1 - exp(-(1 + tau) H)``."""
    G = world.G
    seg = world.people.segment[who]
    D = G.shape[1] - 1
    return world.people.b[who] * (G[seg, np.minimum(day + validity, D)] - G[seg, day])


def first_use_units(sc, world: RegionWorld, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The region's first-use population as compact columns, one entry per unit (a prospect
    at an index date) unless noted: ``segment`` (int8 code into ``sc.people["segments"]``),
    ``treated`` (bool), ``effect_mix`` (design drawn from the courier design mix) and
    ``effect_<design>`` per design; for the treated units only (they come first, in order):
    ``design`` (int8 code into the designs) and ``effect_own`` (their own design's effect).
    Codes and float64 arrays, no Python object per unit: at 50 M shipments the population
    has ~36 M units, which the parent aggregates (:func:`first_use_truth`).

    Population: prospects not in an experiment. Treated: each prospect's courier coupon (the
    first and only coupon they receive while eligible), index date = its issue day. Controls
    (risk-set sampling, the sequential target trial): every prospect draws one day ``d``
    uniformly among the region's treated index days on or after its ``known_since`` day,
    *independently of when it sends*, and is a control at ``d`` if still eligible then -- no
    parcel before ``d`` and no coupon on or before ``d``. (Drawing ``d`` only among days before the prospect's
    first parcel would condition on the outcome: early senders' pseudo dates pile up just
    before their first parcel.) A prospect may be a control at ``d`` and treated later.
    """
    cp = sc.coupons
    V = int(cp["validity_days"])
    people = world.people
    pop = (people.kind == PROSPECT) & (world.exp_arm < 0)
    treated = pop & (world.coupon_source == 1)
    pool = np.sort(world.coupon_day[treated])
    cand = np.flatnonzero(pop)
    lo = np.searchsorted(pool, people.known_day[cand], side="left")
    has = lo < pool.size
    pick = lo + np.floor(rng.random(cand.size) * (pool.size - lo)).astype(np.int64)
    d = pool[np.minimum(pick, max(pool.size - 1, 0))] if pool.size else np.zeros(cand.size, int)
    cday = world.coupon_day[cand]
    ok = has & (world.t_first[cand] >= d) & ((cday < 0) | (cday > d))
    ctrl, cd = cand[ok], d[ok]
    t_idx = np.flatnonzero(treated)
    who = np.r_[t_idx, ctrl]
    day = np.r_[world.coupon_day[t_idx], cd]
    H = _p30(world, who, day, V)
    tau = np.asarray(sc.people["coupon_tau"], float)[people.segment[who]]
    dfac = np.asarray(cp["design_factor"], float)
    dshare = np.asarray(cp["design_share"], float)
    dshare = dshare / dshare.sum()
    p0 = 1 - np.exp(-H)
    out = {
        "segment": people.segment[who].astype(np.int8),
        "treated": np.r_[np.ones(t_idx.size, bool), np.zeros(ctrl.size, bool)],
    }
    mix = np.zeros(who.size)
    for j, d in enumerate(cp["designs"]):
        eff = (1 - np.exp(-(1 + tau * dfac[j]) * H)) - p0
        out[f"effect_{d}"] = eff
        mix += dshare[j] * eff
    out["effect_mix"] = mix
    des = world.coupon_design[t_idx]
    own = np.full(t_idx.size, np.nan)
    for j, d in enumerate(cp["designs"]):
        m = des == j
        own[m] = out[f"effect_{d}"][: t_idx.size][m]
    out["design"] = np.maximum(des, 0).astype(np.int8)
    out["effect_own"] = own
    return out


def first_use_truth(units: list[tuple[str, Mapping[str, np.ndarray]]], designs: list[str],
                    segments: list[str]) -> pd.DataFrame:
    """Aggregate the :func:`first_use_units` of all regions, ``(region_id, columns)`` in
    region order, into the contract's rows.

    ``columns`` may be any mapping that loads a column on access (an ``np.load`` of an
    ``.npz``): one column of all regions is in memory at a time. Each mean is taken over the
    units in region order, with pandas, so the values do not depend on how the columns were
    held.
    """
    rows = []

    def add(estimand, by, group, values):
        rows.append(
            {"estimand": estimand, "by": by, "group": group,
             "value": float(np.mean(pd.Series(values))) if len(values) else float("nan"),
             "n": int(len(values))}
        )

    def cat(name: str, dtype) -> np.ndarray:
        return np.concatenate([np.asarray(c[name]) for _, c in units] + [np.zeros(0, dtype)])

    treated = cat("treated", bool)
    own = cat("effect_own", float)
    seg = cat("segment", np.int8)
    seg_t = seg[treated]
    add("att", "overall", "all", own)
    mix = cat("effect_mix", float)
    add("ate", "overall", "all", mix)
    by_name = sorted(np.unique(seg).tolist(), key=lambda code: segments[code])
    for code in by_name:
        if (seg_t == code).any():
            add("att", "segment", segments[code], own[seg_t == code])
    for code in by_name:
        add("ate", "segment", segments[code], mix[seg == code])
    del mix, seg, seg_t, treated
    by_region = sorted(units, key=lambda u: u[0])
    for region, cols in by_region:
        if len(cols["effect_own"]):
            add("att", "region", region, cols["effect_own"])
    for region, cols in by_region:
        if len(cols["effect_mix"]):
            add("ate", "region", region, cols["effect_mix"])
    des = cat("design", np.int8)
    for j, d in enumerate(designs):
        add("att", "design", d, own[des == j])
        add("ate", "design", d, cat(f"effect_{d}", float))
    return pd.DataFrame(rows)


def experiment_truth(sc, world: RegionWorld) -> pd.DataFrame:
    """Per arm: ``n``, mean model probability without coupon (``control_rate``) and the mean
    exact effect of the arm's coupon (0 for control), over the arm's assigned units."""
    if world.experiment is None:
        return pd.DataFrame()
    cp = sc.coupons
    V = int(cp["validity_days"])
    part = np.flatnonzero(world.exp_arm >= 0)
    H = _p30(world, part, world.exp_day[part], V)
    p0 = 1 - np.exp(-H)
    tau = np.asarray(sc.people["coupon_tau"], float)[world.people.segment[part]]
    dfac = np.asarray(cp["design_factor"], float)
    rows = []
    for j, arm in enumerate(world.experiment["arms"]):
        m = world.exp_arm[part] == j
        if arm == "control":
            thr = face = float("nan")
            eff = np.zeros(m.sum())
        else:
            d = list(cp["designs"]).index(arm)
            thr, face = (float(x) for x in arm.split("-"))
            eff = (1 - np.exp(-(1 + tau[m] * dfac[d]) * H[m])) - p0[m]
        rows.append(
            {
                "experiment_id": world.experiment["experiment_id"],
                "region_id": world.region,
                "arm": arm,
                "threshold": thr,
                "face_value": face,
                "n": int(m.sum()),
                "control_rate": float(p0[m].mean()) if m.any() else float("nan"),
                "effect": float(eff.mean()) if m.any() else float("nan"),
            }
        )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- campaigns
def campaign_truth(sc, tl: Timeline, world: RegionWorld) -> pd.DataFrame:
    """Incremental outcomes of every campaign copy in the region: with-campaign world minus
    the world without that one campaign, over the campaign and its post window.

    Coupling: prospects' first sends use the same ``Exp(1)`` draw on the campaign-free
    first-send clock (later or equal day); walk-ins brought by the campaign are thinned with
    their stored uniform; parcels after the first are the same events of the repeat clock
    mapped through the campaign-free clock (shifted to the customer's counterfactual first
    send). Churn keeps its calendar length. In the campaign-free world a parcel that used this
    campaign's coupon pays no discount and the price the data give a parcel without a coupon:
    its no-bunching list price times the calibration factor of its channel group
    (:func:`.pricing.no_coupon_price`).
    """
    rec = world.rec
    people = world.people
    segs = list(sc.people["segments"])
    D = tl.n_days
    dates = tl.dates
    cp = sc.coupons
    V = int(cp["validity_days"])
    cust = rec["cust"]
    seg_r = people.segment[cust]
    rows = []
    tau = np.asarray(sc.people["coupon_tau"], float)[people.segment]
    dfac = np.asarray(cp["design_factor"], float)
    mult = np.where(
        world.coupon_day >= 0, 1.0 + tau * dfac[np.maximum(world.coupon_design, 0)], 1.0
    )
    express = rec["product"] == EXPRESS
    n_seg = len(segs)
    # records are in time order (see tables.region_tables): a window is a slice
    rec_day = rec["day"]
    if np.any(np.diff(rec_day) < 0):
        order = np.argsort(rec_day, kind="stable")
    else:
        order = np.arange(rec_day.size)
    day_sorted = rec_day[order]
    first_rec_of = np.full(len(people), -1, dtype=np.int64)
    is_first = rec["k"] == 1
    first_rec_of[cust[is_first]] = np.flatnonzero(is_first)
    n_c = len(world.campaigns)
    tag = np.where(rec["campaign"] >= 0, rec["campaign"], n_c)
    tagged_rev = np.bincount(tag, weights=rec["revenue"], minlength=n_c + 1)
    tagged_rev_ex = np.bincount(tag, weights=rec["revenue"] * express, minlength=n_c + 1)
    T1 = world.t_first
    by_t1 = np.argsort(T1, kind="stable")
    t1_sorted = T1[by_t1]
    # counterfactual first days: T1 except where a campaign moved them (few people per
    # campaign); reset after each campaign instead of copying every person's day
    T0 = T1.copy()
    for ci, c in enumerate(world.campaigns):
        s, e, pe = c.start, c.end, c.post_end
        targeted = (
            list(range(len(segs))) if c.target_segment is None else [segs.index(c.target_segment)]
        )
        Wm = world.W.copy()
        Vm = world.V.copy()
        for g in targeted:
            Wm[g, s : pe + 1] /= world.rep_factor[ci]
            Vm[g, s : e + 1] /= world.pro_factor[ci]
        Lm, Gm = clock(Wm), clock(Vm)
        # people whose first recorded parcel falls in the window (sorted by first day)
        lo, hi = np.searchsorted(t1_sorted, [s, pe + 1], side="left")
        inw = by_t1[lo:hi]
        if len(targeted) < n_seg:
            inw = inw[people.segment[inw] == targeted[0]]
        kind_w = people.kind[inw]
        moved = []
        idx = inw[kind_w == PROSPECT]
        if idx.size:
            T0[idx] = first_send_day(
                Gm, people.segment[idx], world.target[idx], world.coupon_day[idx], mult[idx], V
            )
            moved.append(idx)
        wk = inw[(kind_w == WALKIN) & (T1[inw] <= e)]
        if wk.size:
            f = world.pro_factor[ci][T1[wk] - s]
            gone = world.walkin_u[wk] >= 1.0 / f
            T0[wk[gone]] = D
            moved.append(wk[gone])
        # prior senders: their first recorded parcel is an event of the repeat clock, which
        # can also run *ahead* without the campaign when its post-campaign dip falls on busy
        # days (so look 30 days past the window, like the parcels below)
        lo2, hi2 = np.searchsorted(t1_sorted, [s, pe + 31], side="left")
        pr = by_t1[lo2:hi2]
        pr = pr[(people.kind[pr] == PRIOR) & (T1[pr] < D)]
        if len(targeted) < n_seg:
            pr = pr[people.segment[pr] == targeted[0]]
        if pr.size:
            first_rec = first_rec_of[pr]
            for g in targeted:
                m = first_rec[seg_r[first_rec] == g]
                if m.size:
                    T0[cust[m]] = np.floor(time_at(Lm[g], rec["pos"][m])).astype(np.int64)
                    moved.append(cust[m])

        lo, hi = np.searchsorted(day_sorted, [s, pe + 31], side="left")
        cand = order[lo:hi]
        if len(targeted) < n_seg:
            cand = cand[seg_r[cand] == targeted[0]]
        rc = cust[cand]
        # per candidate record, of its customer: first-day shift and counterfactual churn
        t0_rc, t1_rc, time2_rc = T0[rc], T1[rc], world.time2[rc]
        shift = np.where((t0_rc < D) & (t1_rc < D), t0_rc - t1_rc, 0)
        churn_cf = np.where(
            time2_rc >= 0, time2_rc + shift + world.churn_years[rc] * 365.0, np.inf
        )
        for m in moved:
            T0[m] = T1[m]
        k = rec["k"][cand]
        day = rec["day"][cand]
        cf_time = np.full(cand.size, float(D))
        f1 = k == 1
        cf_time[f1] = t0_rc[f1]
        f2 = k == 2
        cf_time[f2] = rec["time"][cand][f2] + shift[f2]
        f3 = k >= 3
        for g in targeted:
            m = f3 & (seg_r[cand] == g)
            if m.any():
                r = rc[m]
                start = clock_at(Lm[g], np.minimum(time2_rc[m] + shift[m], D - 1e-9))
                cf_time[m] = time_at(Lm[g], rec["pos"][cand][m] - world.pos2[r] + start)
        cf_day = np.floor(cf_time).astype(np.int64)
        exists = (t0_rc < D) & (cf_time < D) & ((k <= 2) | (cf_time < churn_cf))
        own = rec["coupon_campaign"][cand] == ci
        rev = rec["revenue"][cand]
        rev_cf = rec["revenue"][cand].copy()
        rev_cf[own] = no_coupon_price(world, tl, cand[own])
        ex = express[cand]
        in_w = (day >= s) & (day <= pe)
        in_w_cf = exists & (cf_day >= s) & (cf_day <= pe)
        in_p = (day > e) & (day <= pe)
        in_p_cf = exists & (cf_day > e) & (cf_day <= pe)
        disc = rec["discount"][cand]
        rows.append(
            {
                "campaign_id": c.campaign_id,
                "region_id": world.region,
                "theme": c.theme,
                "start_date": dates[s],
                "end_date": dates[e],
                "incremental_revenue": float(rev[in_w].sum() - rev_cf[in_w_cf].sum()),
                "incremental_shipments": int(in_w.sum() - in_w_cf.sum()),
                "incremental_new_customers": int(
                    (in_w & (k == 1)).sum() - (in_w_cf & (k == 1)).sum()
                ),
                "discount_cost": float(disc[own].sum()),
                "pull_forward_revenue": float(rev_cf[in_p_cf].sum() - rev[in_p].sum()),
                "level": "national" if c.national else "provincial",
                "design": c.design,
                "target_segment": c.target_segment,
                "lift": float(c.lift),
                "overlap": bool(c.overlap),
                "leakage_discount": float(disc[own & in_w_cf].sum()),
                "campaign_revenue": float(tagged_rev[ci]),
                "campaign_revenue_express": float(tagged_rev_ex[ci]),
                "incremental_revenue_express": float(
                    rev[in_w & ex].sum() - rev_cf[in_w_cf & ex].sum()
                ),
                "window_end": dates[pe],
            }
        )
    return pd.DataFrame(rows)


def habit_sums(world: RegionWorld) -> dict[str, float]:
    """Per region: sums of the coupon-use probabilities of parcels after the first recorded
    one, for coupon-acquired and organic customers (see :func:`retention_truth`)."""
    rec = world.rec
    later = rec["k"] >= 2
    acq = world.acquired[rec["cust"]]
    p = rec["coupon_prob"]
    return {
        "region_id": world.region,
        "sum_acquired": float(p[later & acq].sum()),
        "n_acquired": int((later & acq).sum()),
        "sum_organic": float(p[later & ~acq].sum()),
        "n_organic": int((later & ~acq).sum()),
    }


def retention_truth(sc, sums: list[dict[str, float]]) -> dict[str, Any]:
    """``hazard_ratio`` (the model's first-to-second-parcel hazard ratio, coupon-acquired vs
    organic) and the habit shares: 1 - mean coupon-use probability over parcels after the first
    recorded one, pooled over the parcels of coupon-acquired (first recorded parcel used a
    coupon) and of organic customers; ``by_region`` per region."""

    def share(s_, n_):
        return float(1 - s_ / n_) if n_ else float("nan")

    tot = {k: sum(x[k] for x in sums) for k in ("sum_acquired", "n_acquired", "sum_organic",
                                                  "n_organic")}
    return {
        "hazard_ratio": float(sc.retention["hazard_ratio"]),
        "habit_share": share(tot["sum_acquired"], tot["n_acquired"]),
        "habit_share_organic": share(tot["sum_organic"], tot["n_organic"]),
        "by_region": {
            x["region_id"]: {
                "habit_share": share(x["sum_acquired"], x["n_acquired"]),
                "habit_share_organic": share(x["sum_organic"], x["n_organic"]),
            }
            for x in sums
        },
        "covariates": ["segment", "wechat_contact", "region_id"],
        "definition": (
            "time from a customer's first to second recorded parcel; coupon-acquired = the "
            "first recorded parcel used a coupon; exponential gap in calendar time with rate "
            "mu(segment, wechat_contact) * hazard_ratio^coupon_acquired: proportional hazards "
            "given segment, wechat_contact and region"
        ),
    }


def bunching_truth(world: RegionWorld) -> pd.DataFrame:
    rec = world.rec
    rows = []
    thr = rec["coupon_thr"]
    for t in sorted({float(x) for x in thr[rec["bunched"]]} | {12.0, 21.0}):
        rows.append(
            {
                "region_id": world.region,
                "threshold": t,
                "moved_up_parcels": int((rec["bunched"] & (thr == t)).sum()),
            }
        )
    return pd.DataFrame(rows)
