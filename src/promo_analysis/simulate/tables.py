"""Contract tables (customers, shipments, coupons, assignments) from a :class:`RegionWorld`.

Times of day: parcels are sent between 09:00 and 20:00 (a customer's parcels of one day in
order, at least two minutes apart); coupons to prospects are issued between 08:00 and 09:00 of
their day, so a first parcel on the issue day comes after the coupon. Personal coupons of
customers are issued after their first recorded parcel (they are no longer prospects).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .columns import TableSlices
from .population import PRIOR
from .pricing import PAYMENTS, PRODUCTS, campaign_arrays, channel_code, design_arrays
from .region import RegionWorld
from .timeline import Timeline

__all__ = ["region_tables"]

_DAY = 86400
_MIN = 60


def _ids(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    """``prefix`` + zero-padded numbers, as an Arrow string array (no Python str per row)."""
    numbers = np.asarray(numbers, dtype=np.int64)
    if numbers.size == 0:
        return pa.array([], type=pa.string())
    digits = pc.utf8_lpad(pa.array(numbers).cast(pa.string()), width, "0")
    return pc.binary_join_element_wise(prefix, digits, "")


def _take(values: pa.Array, idx: np.ndarray, null: np.ndarray | None = None) -> pa.Array:
    """``values[idx]``, null where ``null`` is true (those positions of ``idx`` are ignored)."""
    idx = np.asarray(idx, dtype=np.int64)
    if null is not None:
        idx = np.where(null, 0, idx)
    if not len(values):  # only nulls can be taken from nothing
        return pa.nulls(idx.size, values.type)
    return values.take(pa.array(idx, mask=null))


def _labels(values: list) -> pa.Array:
    """A small Arrow string array of labels (None: null) to take rows from by code."""
    return pa.array(list(values), type=pa.string())


def _ts(tl: Timeline, seconds: np.ndarray) -> np.ndarray:
    """``datetime64[ns]`` of seconds since the period start (built in ns: no pandas cast)."""
    base = np.datetime64(pd.Timestamp(tl.start).to_datetime64(), "ns")
    return base + (np.asarray(seconds, dtype=np.int64) * 1_000_000_000).astype("timedelta64[ns]")


def _send_seconds(rec: dict, rng) -> np.ndarray:
    """Seconds since the period start; within a customer's day in record order (k)."""
    n = len(rec["cust"])
    t = rng.integers(9 * 3600, 20 * 3600, size=n)
    group = rec["cust"].astype(np.int64) * 1024 + rec["day"]
    # both orders group the records by (customer, day) identically
    by_time = np.argsort(group * (1 << 17) + t, kind="stable")
    by_k = np.argsort(group * (1 << 17) + rec["k"], kind="stable")
    o = t[by_time]
    g_s = group[by_k]
    new_grp = np.r_[True, g_s[1:] != g_s[:-1]]
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


def _stack(parts: list[dict]) -> dict:
    """One column dict from column dicts of equal-length arrays (a scalar is repeated): what
    ``pd.concat`` of their frames gives, without its per-value all-missing checks of object
    columns (seconds at millions of rows). Arrow columns stay Arrow."""
    sizes = [max(len(v) for v in p.values() if isinstance(v, (pa.Array, np.ndarray)))
             for p in parts]
    cols = {}
    for key in parts[0]:
        vals = [p[key] for p in parts]
        if all(isinstance(v, pa.Array) for v in vals):
            cols[key] = pa.concat_arrays(vals)
            continue
        cols[key] = np.concatenate([
            v.to_numpy(zero_copy_only=False) if isinstance(v, pa.Array)
            else np.asarray(v) if np.ndim(v) else np.full(n, v, dtype=object)
            for v, n in zip(vals, sizes, strict=True)
        ])
    return cols


def region_tables(
    world: RegionWorld, sc, tl: Timeline, rng: np.random.Generator, arrow: bool = False
) -> dict[str, pd.DataFrame] | dict[str, pa.Table]:
    """The region's rows of customers, shipments, coupons and assignments.

    As pandas frames in the contract's dtypes, or (``arrow=True``, what the writer uses) as
    Arrow tables in the contract's types: same values, no Python string per id. Also stores
    ``world.rec["sent_s"]`` and ``world.customer_ids`` (Arrow, every person's id by index)
    for the truth and survey computations.
    """
    from .columns import to_arrow, to_pandas

    def table(name: str, cols: dict):
        return to_arrow(name, cols) if arrow else to_pandas(cols)

    region = world.region
    people = world.people
    rec = world.rec
    D = tl.n_days
    segs = np.asarray(sc.people["segments"], dtype=object)

    # customers: every prospect and walk-in; prior senders who send inside the period
    keep = (people.kind != PRIOR) | (world.t_first < D)
    idx_all = np.arange(len(people))
    cid = _ids(f"{region}-c", idx_all, 7)
    world.customer_ids = cid
    known = np.where(people.kind == PRIOR, world.t_first, people.known_day)
    kept = np.flatnonzero(keep)

    def customer_rows(lo: int, hi: int) -> dict:
        """Rows ``lo:hi`` of the region's customers."""
        who = kept[lo:hi]
        return {
            "customer_id": _take(cid, who),
            "region_id": region,
            "known_since": _ts(tl, known[who] * _DAY),  # whole days: midnight
            "segment": segs[people.segment[who]],
            "wechat_contact": people.wechat[who].astype(bool),
            "parcels_received": people.parcels_received[who].astype(np.int64),
            "prior_sender": (people.kind[who] == PRIOR),
        }

    # built when written (after this function's temporaries are gone), like the shipments
    customers = TableSlices("customers", kept.size, customer_rows)
    if not arrow:
        customers = customers.to_pandas()

    # shipments in time order
    sent = _send_seconds(rec, rng)
    order = np.lexsort((rec["cust"], sent))
    for key in list(rec):
        rec[key] = rec[key][order]
    sent = sent[order]
    rec["sent_s"] = sent
    n = len(sent)
    first_s = np.full(len(people), -1, dtype=np.int64)
    f = rec["k"] == 1
    first_s[rec["cust"][f]] = sent[f]
    camp_ids = _labels([c.campaign_id for c in world.campaigns] + [None])
    n_camp = len(world.campaigns)

    # coupons ---------------------------------------------------------------------------
    cp = sc.coupons
    d_thr, d_face = design_arrays(sc)
    validity = int(cp["validity_days"])
    rows = []
    # each parcel's coupon as a position in [personal ids, used ids]; -1 none
    coupon_of_rec = np.full(n, -1, dtype=np.int64)

    # 1. personal coupons to prospects (courier, experiment), used or not
    has = np.flatnonzero(world.coupon_day >= 0)
    issue_s = world.coupon_day[has] * _DAY + 8 * 3600 + rng.integers(0, 3600, size=has.size)
    exp_issue = world.exp_day[has] >= 0
    issue_s[exp_issue] = world.exp_day[has][exp_issue] * _DAY + 8 * 3600
    world.assigned_s = np.full(len(people), -1, dtype=np.int64)
    world.assigned_s[has[exp_issue]] = issue_s[exp_issue]
    k_ids = _ids(f"{region}-k", has, 7)
    des = world.coupon_design[has]
    rows.append(
        {
            "coupon_id": k_ids,
            "campaign_id": pa.nulls(has.size, pa.string()),
            "customer_id": _take(cid, has),
            "issued_at": _ts(tl, issue_s),
            "expires_at": _ts(tl, (world.coupon_day[has] + validity) * _DAY - 1),
            "threshold": d_thr[des],
            "face_value": d_face[des],
            "issue_channel": np.where(
                (world.coupon_source[has] == 2) | people.wechat[has], "wechat", "door_to_door"
            ).astype(object),
        }
    )
    m1 = rec["coupon_kind"] == 1
    # has is sorted: a customer's coupon row by binary search
    coupon_of_rec[m1] = np.searchsorted(has, rec["cust"][m1])

    # 2-4. coupons used on customers' parcels
    kind = rec["coupon_kind"]
    used = np.flatnonzero(kind >= 2)
    u_ids = _ids(f"{region}-u", np.arange(used.size), 8)
    coupon_of_rec[used] = len(k_ids) + np.arange(used.size)
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
        np.where(rec["channel"][used] == channel_code(world.channel_names, "counter"),
                 "counter", "door_to_door"),
        np.where(wechat, "wechat", "counter"),
    ).astype(object)
    rows.append(
        {
            "coupon_id": u_ids,
            "campaign_id": _take(camp_ids, np.where(camp < 0, n_camp, camp), k_used == 4),
            "customer_id": _take(cid, rec["cust"][used], k_used == 2),
            "issued_at": _ts(tl, iss),
            "expires_at": _ts(tl, exp_s),
            "threshold": rec["coupon_thr"][used],
            "face_value": rec["coupon_face"][used],
            "issue_channel": chan,
        }
    )

    # 5. campaign coupons issued but never used: personal ones to customers who had sent
    # before the campaign (its target segment), anonymous paper ones
    red = float(cp["redemption_rate"])
    first_day = np.where(keep & (world.t_first < D), world.t_first, D)
    by_first = np.argsort(first_day, kind="stable")
    first_sorted = first_day[by_first]
    n_c = len(world.campaigns)
    cc = np.where(kind >= 2, rec["coupon_campaign"], n_c)
    n_used = np.bincount(cc[kind == 3], minlength=n_c + 1)
    n_anon = np.bincount(cc[kind == 2], minlength=n_c + 1)
    x_camp, x_who, x_iss = [], [], []
    for ci, c in enumerate(world.campaigns):
        n_extra = int(round(n_used[ci] * (1.0 / red - 1.0)))
        pool = by_first[: np.searchsorted(first_sorted, c.start, side="left")]
        if c.target_segment is not None:
            pool = pool[people.segment[pool] == sc.people["segments"].index(c.target_segment)]
        if n_extra and pool.size:
            who = rng.choice(pool, size=n_extra, replace=True)
            iss = (c.start + rng.integers(0, c.days, size=n_extra)) * _DAY + 8 * 3600
            iss = np.maximum(iss, (first_s[who] // _DAY + 1) * _DAY + 8 * 3600)
            x_camp.append(np.full(n_extra, ci))
            x_who.append(who)
            x_iss.append(iss)
        if n_anon[ci]:
            m = int(n_anon[ci])
            x_camp.append(np.full(m, ci))
            x_who.append(np.full(m, -1))
            x_iss.append((c.start + rng.integers(0, c.days, size=m)) * _DAY + 8 * 3600)
    if x_camp:
        xc, xw, xi = np.concatenate(x_camp), np.concatenate(x_who), np.concatenate(x_iss)
        c_end = np.array([c.end for c in world.campaigns])[xc]
        ok = xi <= (c_end + 1) * _DAY - 1
        xc, xw, xi, c_end = xc[ok], xw[ok], xi[ok], c_end[ok]
        anon = xw < 0
        c_thr, c_face = campaign_arrays(world.campaigns)
        rows.append(
            {
                "coupon_id": _ids(f"{region}-x", np.arange(xc.size), 8),
                "campaign_id": _take(camp_ids, xc),
                "customer_id": _take(cid, xw, anon),
                "issued_at": _ts(tl, xi),
                "expires_at": _ts(tl, (c_end + 1) * _DAY - 1),
                "threshold": c_thr[xc],
                "face_value": c_face[xc],
                "issue_channel": np.where(
                    anon | ~people.wechat[np.maximum(xw, 0)], "counter", "wechat"
                ).astype(object),
            }
        )
    coupons = table("coupons", _stack(rows))

    coupon_ids = pa.concat_arrays([k_ids, u_ids])
    channels = _labels(world.channel_names)
    del k_ids, u_ids, rows

    def shipment_rows(lo: int, hi: int) -> dict:
        """Rows ``lo:hi`` of the region's shipments (in time order)."""
        cpn = coupon_of_rec[lo:hi]
        camp = rec["campaign"][lo:hi]
        return {
            "shipment_id": _ids(f"{region}-s", np.arange(lo, hi), 8),
            "customer_id": _take(cid, rec["cust"][lo:hi]),
            "region_id": region,
            "sent_at": _ts(tl, sent[lo:hi]),
            "channel": _take(channels, rec["channel"][lo:hi]),
            "product": _take(_labels(PRODUCTS), rec["product"][lo:hi]),
            "list_price": rec["list_price"][lo:hi],
            "discount": rec["discount"][lo:hi],
            "revenue": np.round(rec["revenue"][lo:hi], 2),
            "coupon_id": _take(coupon_ids, cpn, cpn < 0),
            "campaign_id": _take(camp_ids, np.where(camp < 0, n_camp, camp)),
            "payment": _take(_labels(PAYMENTS), rec["payment"][lo:hi]),
        }

    # the biggest table (~140 bytes a row as Arrow): the writer builds it slice by slice
    shipments = TableSlices("shipments", n, shipment_rows, _ts(tl, sent))
    if not arrow:
        shipments = shipments.to_pandas()

    no_rows = np.zeros(0, dtype=object)
    assignments = table("assignments", {
        "experiment_id": no_rows, "customer_id": no_rows, "arm": no_rows,
        "assigned_at": np.zeros(0, dtype="datetime64[ns]"),
    })
    if world.experiment is not None:
        part = np.flatnonzero(world.exp_arm >= 0)
        arms = np.asarray(world.experiment["arms"], dtype=object)
        a_s = world.exp_day[part] * _DAY + 8 * 3600
        # design arms: the coupon is issued at assignment (same timestamp)
        a_s = np.where(world.assigned_s[part] >= 0, world.assigned_s[part], a_s)
        assignments = table(
            "assignments",
            {
                "experiment_id": world.experiment["experiment_id"],
                "customer_id": _take(cid, part),
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
