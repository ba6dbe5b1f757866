"""Products, channels, payments, list prices and coupon use of parcels; price calibration.

List prices are smooth: express is a lognormal mixture (intra-province light parcels around
13 yuan, inter-province around 22, heavy around 38), economy a lognormal around 8 yuan. Only
coupon holders move a parcel up to a threshold (bunching at 12 and 21 yuan).

Calibration (analytic, no loop): after all parcels exist, the list prices of express parcels
without a coupon are multiplied by ``a * exp(b * t)`` (``t`` in years from the period's
middle; one ``(a, b)`` per channel group) so that each year's walk-in express revenue equals
``scale`` x the region's target exactly. ``RegionWorld.price_factor`` records ``a`` and ``b``
(close to 1 and 0 when the scenario's volumes are right).
"""

from __future__ import annotations

import numpy as np

from .timeline import Timeline

__all__ = [
    "assign_products_prices", "later_coupon_use", "calibrate_prices", "coupon_terms",
    "design_arrays", "campaign_arrays", "no_coupon_price",
]

_EXPRESS_MIX = (np.array([0.45, 0.40, 0.15]), np.log([13.0, 22.0, 38.0]), np.array([0.15, 0.18, 0.35]))
_ECONOMY = (np.log(8.0), 0.3)
_ECONOMY_CHANNELS = (["station", "counter", "pickup_point", "online"], [0.4, 0.3, 0.2, 0.1])
_PAYMENTS = (["cash", "epay", "stored_value"], [0.25, 0.65, 0.10])
LOYALTY_DESIGN = (12.0, 3.0)


def assign_products_prices(sc, tl: Timeline, rp: dict, rec: dict, rng, only_missing=False):
    """Draw product, channel, payment and list price for the records (in place)."""
    n = len(rec["cust"])
    if only_missing and "product" in rec:
        todo = np.array([p is None for p in rec["product"]], dtype=bool)
    else:
        todo = np.ones(n, bool)
        for key, fill in (("product", None), ("channel", None), ("payment", None)):
            rec[key] = np.full(n, fill, dtype=object)
        rec["list_price"] = np.full(n, np.nan)
        rec["coupon_kind"] = np.zeros(n, dtype=np.int8)
        rec["coupon_campaign"] = np.full(n, -1, dtype=np.int64)
        rec["bunched"] = np.zeros(n, bool)
        rec["pre_bunch"] = np.full(n, np.nan)
    m = int(todo.sum())
    if m == 0:
        return
    day = rec["day"][todo]
    economy = rng.random(m) < float(rp["economy_share"])
    product = np.array(["express", "economy"], dtype=object)[economy.astype(np.int8)]
    # express channel mix moves linearly from the start to the end of the period
    chans = list(rp["express_channels"])
    s0 = np.asarray(rp["express_mix_start"], float)
    s1 = np.asarray(rp["express_mix_end"], float)
    frac = day / max(1, tl.n_days - 1)
    probs = s0[None, :] + frac[:, None] * (s1 - s0)[None, :]
    probs /= probs.sum(axis=1, keepdims=True)
    u = rng.random(m)
    ch_idx = (u[:, None] > np.cumsum(probs, axis=1)).sum(axis=1)
    channel = np.asarray(chans, dtype=object)[np.minimum(ch_idx, len(chans) - 1)]
    e_names, e_p = _ECONOMY_CHANNELS
    channel[economy] = np.asarray(e_names, dtype=object)[
        rng.choice(len(e_names), size=int(economy.sum()), p=e_p)
    ]
    w, mu, sd = _EXPRESS_MIX
    comp = rng.choice(3, size=m, p=w)
    price = np.exp(mu[comp] + sd[comp] * rng.standard_normal(m))
    price[economy] = np.exp(_ECONOMY[0] + _ECONOMY[1] * rng.standard_normal(int(economy.sum())))
    price = np.round(price, 1)
    p_names, p_p = _PAYMENTS
    payment = np.asarray(p_names, dtype=object)[rng.choice(len(p_names), size=m, p=p_p)]
    rec["product"][todo] = product
    rec["channel"][todo] = channel
    rec["payment"][todo] = payment
    rec["list_price"][todo] = price
    rec["pre_bunch"][todo] = price


def design_arrays(sc) -> tuple[np.ndarray, np.ndarray]:
    """Threshold and face value of each courier coupon design (index = design number)."""
    pairs = [tuple(float(x) for x in d.split("-")) for d in sc.coupons["designs"]]
    return np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])


def campaign_arrays(campaigns) -> tuple[np.ndarray, np.ndarray]:
    """Threshold and face value per campaign index (a trailing NaN for index -1)."""
    return (
        np.array([c.threshold for c in campaigns] + [np.nan]),
        np.array([c.face_value for c in campaigns] + [np.nan]),
    )


def coupon_terms(sc, world) -> tuple[np.ndarray, np.ndarray]:
    """Threshold and face value of the coupon used on each record (NaN if none)."""
    rec = world.rec
    n = len(rec["cust"])
    thr, face = np.full(n, np.nan), np.full(n, np.nan)
    kind = rec["coupon_kind"]
    d_thr, d_face = design_arrays(sc)
    m1 = kind == 1
    des = world.coupon_design[rec["cust"][m1]]
    thr[m1], face[m1] = d_thr[des], d_face[des]
    mc = (kind == 2) | (kind == 3)
    c_thr, c_face = campaign_arrays(world.campaigns)
    cs = rec["coupon_campaign"][mc]
    thr[mc], face[mc] = c_thr[cs], c_face[cs]
    m4 = kind == 4
    thr[m4], face[m4] = LOYALTY_DESIGN
    return thr, face


def _systematic(p: np.ndarray, rng) -> np.ndarray:
    """Systematic PPS selection in random order: inclusion probabilities exactly ``p`` and a
    sample size of ``floor`` or ``ceil`` of ``sum(p)``."""
    order = rng.permutation(p.size)
    cum = np.cumsum(p[order])
    u = rng.random()
    hits = np.floor(cum - u) - np.floor(np.r_[0.0, cum[:-1]] - u)
    sel = np.zeros(p.size, bool)
    sel[order] = hits > 0
    return sel


def later_coupon_use(sc, tl: Timeline, rp: dict, world, rng) -> None:
    """Coupon use on parcels after the first recorded one.

    Propensity ``p = base * habit * price_ok`` with ``base = later_campaign_use`` during a
    campaign for the customer's segment (the campaign's coupon) or ``later_off_campaign_use``
    for WeChat contacts otherwise (a loyalty coupon 满12减3), ``habit = habit_acquired`` for
    coupon-acquired customers, ``price_ok`` 1 at or above the threshold, ``bunching_prob``
    within ``bunching_band`` below it (those parcels move up to the threshold), else 0;
    express only. All propensities are multiplied by one constant so that the expected number
    of coupons used in the last year equals the region's target; the parcels are then drawn
    by systematic PPS sampling (exact inclusion probabilities, a sample size that does not
    vary). ``rec["coupon_prob"]`` keeps each parcel's inclusion probability (habit truth).
    """
    cp = sc.coupons
    rec = world.rec
    cust, day, k = rec["cust"], rec["day"], rec["k"]
    people = world.people
    seg = people.segment[cust]
    act = world.active[seg, day]
    rec["campaign"] = act
    # personal coupons reach a customer from the day after the first parcel on (a coupon on
    # the first parcel's day would make them look like a prospect with a coupon)
    first_day = np.full(len(people), np.iinfo(np.int64).max)
    f1 = k == 1
    first_day[cust[f1]] = day[f1]
    later = (
        (k >= 2) & (rec["coupon_kind"] == 0) & (rec["product"] == "express")
        & (day > first_day[cust])
    )
    thr = np.where(act >= 0, campaign_arrays(world.campaigns)[0][act], LOYALTY_DESIGN[0])
    price = rec["list_price"]
    band, pb = float(cp["bunching_band"]), float(cp["bunching_prob"])
    price_ok = np.where(price >= thr, 1.0, np.where(price >= thr - band, pb, 0.0))
    base = np.where(
        act >= 0, float(cp["later_campaign_use"]),
        float(cp["later_off_campaign_use"]) * people.wechat[cust],
    )
    habit = np.where(world.acquired[cust], float(cp["habit_acquired"]), 1.0)
    p = np.where(later, base * habit * price_ok, 0.0)

    years = tl.year_of(day)
    last = max(sc.years)
    target = float(rp["coupons_used_2022"]) * world.scale
    already = int(((rec["coupon_kind"] > 0) & (years == last)).sum())
    need = max(0.0, target - already)
    in_last = years == last
    pl = p[in_last]
    lo, hi = 0.0, 1.0
    while np.minimum(1.0, hi * pl).sum() < need and hi < 1e6:
        hi *= 2
    for _ in range(60):
        mid = (lo + hi) / 2
        if np.minimum(1.0, mid * pl).sum() < need:
            lo = mid
        else:
            hi = mid
    factor = hi
    prob = np.minimum(1.0, factor * p)
    sel = np.zeros(prob.size, bool)
    for y in np.unique(years):
        m = years == y
        sel[m] = _systematic(prob[m], rng)
    world.coupon_calibration = {
        "factor": float(factor),
        "target_last_year": target,
        "first_parcel_uses_last_year": already,
        "reachable": bool(np.minimum(1.0, factor * pl).sum() >= need - 1.0),
    }
    rec["coupon_prob"] = prob
    on_camp = sel & (act >= 0)
    rec["coupon_kind"][on_camp] = 3
    rec["coupon_campaign"][on_camp] = act[on_camp]
    rec["coupon_kind"][sel & (act < 0)] = 4
    up = sel & (price < thr)
    rec["bunched"] |= up
    rec["list_price"][up] = thr[up]


def _solve_b(t21, p21, t22, p22, ratio):
    def f(b):
        return (p22 * np.exp(b * t22)).sum() / (p21 * np.exp(b * t21)).sum() - ratio

    lo, hi = -3.0, 3.0
    if f(lo) > 0 or f(hi) < 0:
        return 0.0
    for _ in range(45):
        mid = (lo + hi) / 2
        if f(mid) < 0:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def _calibrated(price: np.ndarray, day: np.ndarray, tl: Timeline, a: float, b: float):
    """``price * a * exp(b * t)`` rounded to 0.1 yuan, ``t`` in years from the period's middle."""
    t = (day - tl.n_days / 2) / 365.0
    return np.round(price * a * np.exp(b * t), 1)


def no_coupon_price(world, tl: Timeline, idx: np.ndarray) -> np.ndarray:
    """List price the records ``idx`` would have had without a coupon: the no-bunching price
    (``list_orig``), for express parcels scaled by their channel group's calibration factor
    ``a * exp(b * t)`` and rounded as :func:`calibrate_prices` prices parcels without a coupon.

    Coupon parcels keep their raw price in the data, so a counterfactual that removes the
    coupon must apply the factor the data apply to every parcel without one; for records
    without a coupon this returns their (already calibrated) list price unchanged.
    """
    rec = world.rec
    idx = np.asarray(idx)
    out = rec["list_orig"][idx].astype(float)
    coupon = (rec["coupon_kind"][idx] > 0) & (rec["product"][idx] == "express")
    if not coupon.any():
        return out
    chan = rec["channel"][idx]
    day = rec["day"][idx]
    for g, ab in world.price_factor.items():
        m = coupon & (chan == g) if g != "all" else coupon
        if m.any():
            out[m] = _calibrated(out[m], day[m], tl, ab["a"], ab["b"])
    return out


def calibrate_prices(sc, tl: Timeline, rp: dict, world) -> None:
    """Scale express list prices (parcels without coupon) to hit the revenue targets."""
    rec = world.rec
    thr, face = coupon_terms(sc, world)
    rec["coupon_thr"], rec["coupon_face"] = thr, face
    years = tl.year_of(rec["day"])
    y_last, y_prev = max(sc.years), max(sc.years) - 1
    t = (rec["day"] - tl.n_days / 2) / 365.0
    express = rec["product"] == "express"
    coupon = rec["coupon_kind"] > 0
    scale = world.scale
    if "channel_revenue_2022" in rp:
        groups = {
            ch: (float(v) * scale, float(v) * scale / (1 + float(rp["channel_growth"][ch])))
            for ch, v in rp["channel_revenue_2022"].items()
        }
    else:
        r22 = float(rp["revenue_2022"]) * scale
        groups = {None: (r22, r22 / (1 + float(rp["growth"])))}
    factors = {}
    for ch, (t22, t21) in groups.items():
        grp = express & (rec["channel"] == ch if ch is not None else True)
        free = grp & ~coupon
        rev_c = np.where(coupon, rec["list_price"] - face, 0.0)
        need22 = t22 - rev_c[grp & (years == y_last)].sum()
        need21 = t21 - rev_c[grp & (years == y_prev)].sum()
        m22, m21 = free & (years == y_last), free & (years == y_prev)
        if need22 <= 0 or need21 <= 0 or not m22.any() or not m21.any():
            continue
        # t depends on the day only: the root search runs on per-day price sums
        day_t = (np.arange(tl.n_days) - tl.n_days / 2) / 365.0
        p21 = np.bincount(rec["day"][m21], weights=rec["list_price"][m21], minlength=tl.n_days)
        p22 = np.bincount(rec["day"][m22], weights=rec["list_price"][m22], minlength=tl.n_days)
        b = _solve_b(day_t, p21, day_t, p22, need22 / need21)
        a = need22 / (rec["list_price"][m22] * np.exp(b * t[m22])).sum()
        factors[ch or "all"] = {"a": float(a), "b": float(b)}
        rec["list_price"][free] = _calibrated(rec["list_price"][free], rec["day"][free], tl, a, b)
    # list prices that were not moved up by a coupon holder: the no-bunching price
    rec["list_orig"] = np.where(rec["bunched"], rec["pre_bunch"], rec["list_price"])
    world.price_factor = factors
    rec["discount"] = np.where(coupon, face, 0.0)
    rec["revenue"] = rec["list_price"] - rec["discount"]
