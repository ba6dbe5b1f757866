"""Contract tables (customers, shipments, coupons, assignments) from a :class:`RegionWorld`.

Times of day: parcels are sent between 09:00 and 20:00 (a customer's parcels of one day in
order, at least two minutes apart); coupons to prospects are issued between 08:00 and 09:00 of
their day, so a first parcel on the issue day comes after the coupon. Personal coupons of
customers are issued after their first recorded parcel (they are no longer prospects).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .population import PRIOR
from .region import RegionWorld
from .timeline import Timeline

__all__ = ["region_tables"]

_DAY = 86400
_MIN = 60


def _ts(tl: Timeline, seconds: np.ndarray) -> pd.Series:
    base = np.datetime64(pd.Timestamp(tl.start).to_datetime64(), "s")
    return pd.Series(base + seconds.astype("int64").astype("timedelta64[s]")).astype(
        "datetime64[ns]"
    )


def _send_seconds(rec: dict, rng) -> np.ndarray:
    """Seconds since the period start; within a customer's day in record order (k)."""
    n = len(rec["cust"])
    t = rng.integers(9 * 3600, 20 * 3600, size=n)
    # both orders group the records by (customer, day) identically
    by_time = np.lexsort((t, rec["day"], rec["cust"]))
    by_k = np.lexsort((rec["k"], rec["day"], rec["cust"]))
    o = t[by_time]
    cust_s, day_s = rec["cust"][by_k], rec["day"][by_k]
    new_grp = np.r_[True, (cust_s[1:] != cust_s[:-1]) | (day_s[1:] != day_s[:-1])]
    pos = np.arange(n)
    j = pos - np.maximum.accumulate(np.where(new_grp, pos, 0))
    # strictly increasing, at least two minutes apart, within a customer's day
    adj = _group_cummax(o - 120 * j, new_grp) + 120 * j
    out = np.empty(n, dtype=np.int64)
    out[by_k] = adj
    return rec["day"].astype(np.int64) * _DAY + out


def _group_cummax(x: np.ndarray, new_grp: np.ndarray) -> np.ndarray:
    """Cumulative maximum restarting at each ``new_grp`` position."""
    if x.size == 0:
        return x
    gid = np.cumsum(new_grp).astype(np.int64) - 1
    # lift each group above all previous ones so one global cummax respects the groups
    lift = gid * 10**6
    return np.maximum.accumulate(x.astype(np.int64) + lift) - lift


def region_tables(
    world: RegionWorld, sc, tl: Timeline, rng: np.random.Generator
) -> dict[str, pd.DataFrame]:
    """The region's rows of customers, shipments, coupons and assignments.

    Also stores ``world.rec["sent_s"]``, ``["shipment_id"]`` and ``world.customer_ids`` for the
    truth computations.
    """
    region = world.region
    people = world.people
    rec = world.rec
    D = tl.n_days
    segs = np.asarray(sc.people["segments"], dtype=object)

    # customers: every prospect and walk-in; prior senders who send inside the period
    keep = (people.kind != PRIOR) | (world.t_first < D)
    idx_all = np.arange(len(people))
    cid = np.array([f"{region}-c{i:07d}" for i in idx_all], dtype=object)
    world.customer_ids = cid
    known = np.where(people.kind == PRIOR, world.t_first, people.known_day)
    customers = pd.DataFrame(
        {
            "customer_id": cid[keep],
            "region_id": region,
            "known_since": _ts(tl, known[keep] * _DAY).dt.normalize(),
            "segment": segs[people.segment[keep]],
            "wechat_contact": people.wechat[keep].astype(bool),
            "parcels_received": people.parcels_received[keep].astype(np.int64),
            "prior_sender": (people.kind[keep] == PRIOR),
        }
    )

    # shipments in time order
    sent = _send_seconds(rec, rng)
    order = np.lexsort((rec["cust"], sent))
    for key in list(rec):
        rec[key] = rec[key][order]
    sent = sent[order]
    rec["sent_s"] = sent
    n = len(sent)
    sid = np.array([f"{region}-s{i:08d}" for i in range(n)], dtype=object)
    rec["shipment_id"] = sid
    first_s = np.full(len(people), -1, dtype=np.int64)
    f = rec["k"] == 1
    first_s[rec["cust"][f]] = sent[f]
    camp_ids = np.array([c.campaign_id for c in world.campaigns] + [None], dtype=object)

    # coupons ---------------------------------------------------------------------------
    cp = sc.coupons
    designs = [tuple(float(x) for x in d.split("-")) for d in cp["designs"]]
    validity = int(cp["validity_days"])
    rows = []
    coupon_of_rec = np.full(n, None, dtype=object)

    # 1. personal coupons to prospects (courier, experiment), used or not
    has = np.flatnonzero(world.coupon_day >= 0)
    issue_s = world.coupon_day[has] * _DAY + 8 * 3600 + rng.integers(0, 3600, size=has.size)
    exp_issue = world.exp_day[has] >= 0
    issue_s[exp_issue] = world.exp_day[has][exp_issue] * _DAY + 8 * 3600
    world.assigned_s = np.full(len(people), -1, dtype=np.int64)
    world.assigned_s[has[exp_issue]] = issue_s[exp_issue]
    k_ids = np.array([f"{region}-k{i:07d}" for i in has], dtype=object)
    des = world.coupon_design[has]
    rows.append(
        pd.DataFrame(
            {
                "coupon_id": k_ids,
                "campaign_id": None,
                "customer_id": cid[has],
                "issued_at": _ts(tl, issue_s),
                "expires_at": _ts(tl, (world.coupon_day[has] + validity) * _DAY - 1),
                "threshold": [designs[d][0] for d in des],
                "face_value": [designs[d][1] for d in des],
                "issue_channel": np.where(
                    (world.coupon_source[has] == 2) | people.wechat[has], "wechat", "door_to_door"
                ).astype(object),
            }
        )
    )
    m1 = rec["coupon_kind"] == 1
    pos_of = {c: j for j, c in enumerate(has)}
    coupon_of_rec[m1] = k_ids[[pos_of[c] for c in rec["cust"][m1]]]

    # 2-4. coupons used on customers' parcels
    kind = rec["coupon_kind"]
    used = np.flatnonzero(kind >= 2)
    u_ids = np.array([f"{region}-u{i:08d}" for i in range(used.size)], dtype=object)
    coupon_of_rec[used] = u_ids
    camp = rec["coupon_campaign"][used]
    c_start = np.array([c.start for c in world.campaigns] + [0])[camp]
    c_end = np.array([c.end for c in world.campaigns] + [0])[camp]
    s_at = sent[used]
    k_used = kind[used]
    first_at = first_s[rec["cust"][used]]
    # personal coupons: from the morning after the first parcel's day
    after_first = (first_at // _DAY + 1) * _DAY + 8 * 3600
    lo = np.where(k_used == 4, np.maximum(after_first, s_at - 20 * _DAY), 0)
    lo = np.where(k_used == 3, np.maximum(after_first, c_start * _DAY + 8 * 3600), lo)
    lo = np.where(k_used == 2, np.maximum(c_start * _DAY + 8 * 3600, s_at - 14 * _DAY), lo)
    hi = s_at - _MIN
    lo = np.minimum(lo, hi)
    iss = lo + np.floor(rng.random(used.size) * (hi - lo + 1)).astype(np.int64)
    iss = np.minimum(iss, hi)
    # personal coupons on a day after the first recorded parcel's day (before this parcel)
    iss = np.where(k_used == 2, iss, np.maximum(iss, after_first))
    exp_s = np.where(k_used == 4, iss + validity * _DAY, (c_end + 1) * _DAY - 1)
    wechat = people.wechat[rec["cust"][used]]
    chan = np.where(
        k_used == 2,
        np.where(rec["channel"][used] == "counter", "counter", "door_to_door"),
        np.where(wechat, "wechat", "counter"),
    ).astype(object)
    rows.append(
        pd.DataFrame(
            {
                "coupon_id": u_ids,
                "campaign_id": np.where(k_used == 4, None, camp_ids[camp]),
                "customer_id": np.where(k_used == 2, None, cid[rec["cust"][used]]),
                "issued_at": _ts(tl, iss),
                "expires_at": _ts(tl, exp_s),
                "threshold": rec["coupon_thr"][used],
                "face_value": rec["coupon_face"][used],
                "issue_channel": chan,
            }
        )
    )

    # 5. campaign coupons issued but never used
    red = float(cp["redemption_rate"])
    extra = []
    first_day = np.where(world.t_first < D, world.t_first, D)
    for ci, c in enumerate(world.campaigns):
        n_used = int(((kind == 3) & (rec["coupon_campaign"] == ci)).sum())
        n_anon = int(((kind == 2) & (rec["coupon_campaign"] == ci)).sum())
        n_extra = int(round(n_used * (1.0 / red - 1.0)))
        pool = np.flatnonzero(
            keep & (first_day < c.start)
            & (
                True if c.target_segment is None
                else segs[people.segment] == c.target_segment
            )
        )
        if n_extra and pool.size:
            who = rng.choice(pool, size=n_extra, replace=True)
            iss = (c.start + rng.integers(0, c.days, size=n_extra)) * _DAY + 8 * 3600
            iss = np.maximum(iss, (first_s[who] // _DAY + 1) * _DAY + 8 * 3600)
            extra.append((ci, who, iss))
        if n_anon:
            iss = (c.start + rng.integers(0, c.days, size=n_anon)) * _DAY + 8 * 3600
            extra.append((ci, None, iss))
    j = 0
    for ci, who, iss in extra:
        c = world.campaigns[ci]
        m = iss.size
        ok = iss <= (c.end + 1) * _DAY - 1
        rows.append(
            pd.DataFrame(
                {
                    "coupon_id": [f"{region}-x{j + i:08d}" for i in range(m)],
                    "campaign_id": c.campaign_id,
                    "customer_id": None if who is None else cid[who],
                    "issued_at": _ts(tl, iss),
                    "expires_at": _ts(tl, np.full(m, (c.end + 1) * _DAY - 1)),
                    "threshold": c.threshold,
                    "face_value": c.face_value,
                    "issue_channel": (
                        "counter" if who is None
                        else np.where(people.wechat[who], "wechat", "counter").astype(object)
                    ),
                }
            )[ok]
        )
        j += m
    coupons = pd.concat(rows, ignore_index=True)

    shipments = pd.DataFrame(
        {
            "shipment_id": sid,
            "customer_id": cid[rec["cust"]],
            "region_id": region,
            "sent_at": _ts(tl, sent),
            "channel": rec["channel"],
            "product": rec["product"],
            "list_price": rec["list_price"],
            "discount": rec["discount"],
            "revenue": np.round(rec["revenue"], 2),
            "coupon_id": coupon_of_rec,
            "campaign_id": camp_ids[rec["campaign"]],
            "payment": rec["payment"],
        }
    )

    assignments = pd.DataFrame(
        columns=["experiment_id", "customer_id", "arm", "assigned_at"]
    )
    if world.experiment is not None:
        part = np.flatnonzero(world.exp_arm >= 0)
        arms = np.asarray(world.experiment["arms"], dtype=object)
        a_s = world.exp_day[part] * _DAY + 8 * 3600
        # design arms: the coupon is issued at assignment (same timestamp)
        a_s = np.where(world.assigned_s[part] >= 0, world.assigned_s[part], a_s)
        assignments = pd.DataFrame(
            {
                "experiment_id": world.experiment["experiment_id"],
                "customer_id": cid[part],
                "arm": arms[world.exp_arm[part]],
                "assigned_at": _ts(tl, a_s),
            }
        )
    return {
        "customers": customers,
        "shipments": shipments,
        "coupons": coupons,
        "assignments": assignments,
    }
