"""Products, channels, payments, list prices and coupon use of parcels; price calibration.

List prices are smooth: express is a lognormal mixture (intra-province light parcels around
13 yuan, inter-province around 22, heavy around 38), economy a lognormal around 8 yuan. Only
coupon holders move a parcel up to a threshold (bunching at 12 and 21 yuan).

Calibration (analytic, no loop), in two steps per channel group, with ``t`` in years from
the period's middle:

1. :func:`prescale_prices`, once all parcels exist and before coupons are used on parcels
   after the first: the raw list prices of every express parcel that has no coupon yet are
   multiplied by ``a1 * exp(b1 * t)`` so that each year's walk-in express revenue would equal
   ``scale`` x the region's target after the expected discounts of the later coupons. Coupon
   use and bunching on those parcels are then decided at the calibrated prices.
2. :func:`calibrate_prices`, after coupon use: the prices of express parcels without a coupon
   get a touch-up ``a2 * exp(b2 * t)`` (close to 1) so that the targets hold exactly.

A parcel's price without a coupon is ``round(raw * a1 exp(b1 t) * a2 exp(b2 t), 1)`` for
every express parcel (``rec["price_base"]`` holds ``raw * a1 exp(b1 t)``), which is what the
campaign truth charges a parcel that would have been sent without its coupon. Coupon parcels
carry this price up to the touch-up (and the rounding); only first parcels that used a coupon
(decided before step 1) carry their raw price. ``RegionWorld.price_factor`` records the
combined ``a = a1 a2`` and ``b = b1 + b2`` (close to 1 and 0 when the scenario's volumes are
right), ``RegionWorld.price_steps`` both steps.
"""

from __future__ import annotations

import numpy as np

from .timeline import Timeline

__all__ = [
    "assign_products_prices", "later_coupon_use", "calibrate_prices", "coupon_terms",
    "design_arrays", "campaign_arrays", "no_coupon_price", "prescale_prices",
]

_EXPRESS_MIX = (np.array([0.45, 0.40, 0.15]), np.log([13.0, 22.0, 38.0]), np.array([0.15, 0.18, 0.35]))
_ECONOMY = (np.log(8.0), 0.3)
_ECONOMY_CHANNELS = (["station", "counter", "pickup_point", "online"], [0.4, 0.3, 0.2, 0.1])
_PAYMENTS = (["cash", "epay", "stored_value"], [0.25, 0.65, 0.10])
LOYALTY_DESIGN = (12.0, 3.0)
#: ``rec["product"]`` holds codes into PRODUCTS, ``rec["payment"]`` into PAYMENTS and
#: ``rec["channel"]`` into the region's :func:`channel_names` (int8; -1 = not drawn yet): the
#: labels are attached when the tables are built (no Python string per parcel)
PRODUCTS = ("express", "economy")
EXPRESS = 0
PAYMENTS = tuple(_PAYMENTS[0])


def channel_names(rp: dict) -> list[str]:
    """A region's channel vocabulary: its express channels, then the economy channels."""
    return list(dict.fromkeys([*rp["express_channels"], *_ECONOMY_CHANNELS[0]]))


def channel_code(names: list[str], name: str) -> int:
    """Code of channel ``name`` (-2, matching no parcel, if the region does not have it)."""
    return names.index(name) if name in names else -2


def assign_products_prices(sc, tl: Timeline, rp: dict, rec: dict, rng, only_missing=False):
    """Draw product, channel, payment and list price for the records (in place)."""
    n = len(rec["cust"])
    if only_missing and "product" in rec:
        todo = rec["product"] < 0
    else:
        todo = np.ones(n, bool)
        for key in ("product", "channel", "payment"):
            rec[key] = np.full(n, -1, dtype=np.int8)
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
    product = economy.astype(np.int8)  # PRODUCTS: 0 express, 1 economy
    # express channel mix moves linearly from the start to the end of the period
    names = channel_names(rp)
    chans = list(rp["express_channels"])
    s0 = np.asarray(rp["express_mix_start"], float)
    s1 = np.asarray(rp["express_mix_end"], float)
    frac = day / max(1, tl.n_days - 1)
    probs = s0[None, :] + frac[:, None] * (s1 - s0)[None, :]
    probs /= probs.sum(axis=1, keepdims=True)
    u = rng.random(m)
    ch_idx = (u[:, None] > np.cumsum(probs, axis=1)).sum(axis=1)
    express_codes = np.array([names.index(c) for c in chans], dtype=np.int8)
    channel = express_codes[np.minimum(ch_idx, len(chans) - 1)]
    e_names, e_p = _ECONOMY_CHANNELS
    economy_codes = np.array([names.index(c) for c in e_names], dtype=np.int8)
    channel[economy] = economy_codes[rng.choice(len(e_names), size=int(economy.sum()), p=e_p)]
    w, mu, sd = _EXPRESS_MIX
    comp = rng.choice(3, size=m, p=w)
    price = np.exp(mu[comp] + sd[comp] * rng.standard_normal(m))
    price[economy] = np.exp(_ECONOMY[0] + _ECONOMY[1] * rng.standard_normal(int(economy.sum())))
    price = np.round(price, 1)
    p_names, p_p = _PAYMENTS
    payment = rng.choice(len(p_names), size=m, p=p_p).astype(np.int8)
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


def _later_propensity(sc, world) -> tuple[np.ndarray, ...]:
    """Unscaled coupon-use propensity of every record after the first recorded one (see
    :func:`later_coupon_use`), with the running campaign, the threshold and face value of the
    coupon it would use."""
    cp = sc.coupons
    rec = world.rec
    cust, day, k = rec["cust"], rec["day"], rec["k"]
    people = world.people
    seg = people.segment[cust]
    act = world.active[seg, day]
    # personal coupons reach a customer from the day after the first parcel on (a coupon on
    # the first parcel's day would make them look like a prospect with a coupon)
    first_day = np.full(len(people), np.iinfo(np.int64).max)
    f1 = k == 1
    first_day[cust[f1]] = day[f1]
    later = (
        (k >= 2) & (rec["coupon_kind"] == 0) & (rec["product"] == EXPRESS)
        & (day > first_day[cust])
    )
    c_thr, c_face = campaign_arrays(world.campaigns)
    thr = np.where(act >= 0, c_thr[act], LOYALTY_DESIGN[0])
    face = np.where(act >= 0, c_face[act], LOYALTY_DESIGN[1])
    price = rec["list_price"]
    band, pb = float(cp["bunching_band"]), float(cp["bunching_prob"])
    price_ok = np.where(price >= thr, 1.0, np.where(price >= thr - band, pb, 0.0))
    base = np.where(
        act >= 0, float(cp["later_campaign_use"]),
        float(cp["later_off_campaign_use"]) * people.wechat[cust],
    )
    habit = np.where(world.acquired[cust], float(cp["habit_acquired"]), 1.0)
    p = np.where(later, base * habit * price_ok, 0.0)
    return p, act, thr, face


def _later_need(sc, tl: Timeline, rp: dict, world) -> tuple[float, int, float]:
    """Coupons used in the last year: the target, those on first parcels, the rest to draw."""
    rec = world.rec
    target = float(rp["coupons_used_2022"]) * world.scale
    already = int(((rec["coupon_kind"] > 0) & (tl.year_of(rec["day"]) == max(sc.years))).sum())
    return target, already, max(0.0, target - already)


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
    rec = world.rec
    p, act, thr, _ = _later_propensity(sc, world)
    rec["campaign"] = act
    price = rec["list_price"]
    years = tl.year_of(rec["day"])
    last = max(sc.years)
    target, already, need = _later_need(sc, tl, rp, world)
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


def _factor(day: np.ndarray, tl: Timeline, ab: dict) -> np.ndarray:
    """``a * exp(b * t)`` of the days, ``t`` in years from the period's middle."""
    return ab["a"] * np.exp(ab["b"] * (day - tl.n_days / 2) / 365.0)


def _revenue_groups(rp: dict, scale: float) -> dict:
    """Channel group (``None``: all express) -> (last year's, previous year's) revenue target."""
    if "channel_revenue_2022" in rp:
        return {
            ch: (float(v) * scale, float(v) * scale / (1 + float(rp["channel_growth"][ch])))
            for ch, v in rp["channel_revenue_2022"].items()
        }
    r22 = float(rp["revenue_2022"]) * scale
    return {None: (r22, r22 / (1 + float(rp["growth"])))}


def _solve_factors(sc, tl: Timeline, rp: dict, world, base: np.ndarray, free: np.ndarray,
                   fixed_rev: np.ndarray, extra: np.ndarray) -> dict:
    """Per channel group ``{"a", "b"}`` such that ``base * a exp(b t)`` summed over the group's
    ``free`` express parcels of each year, plus ``fixed_rev`` of its other express parcels,
    minus ``extra`` (expected discounts still to come), hits the year's revenue target.
    Groups whose targets cannot be met that way (nothing free, nothing left) are missing."""
    rec = world.rec
    years = tl.year_of(rec["day"])
    y_last, y_prev = max(sc.years), max(sc.years) - 1
    express = rec["product"] == EXPRESS
    day_t = (np.arange(tl.n_days) - tl.n_days / 2) / 365.0
    factors = {}
    for ch, (t22, t21) in _revenue_groups(rp, world.scale).items():
        grp = express & (
            rec["channel"] == channel_code(world.channel_names, ch) if ch is not None else True
        )
        g22, g21 = grp & (years == y_last), grp & (years == y_prev)
        need22 = t22 - fixed_rev[g22].sum() + extra[g22].sum()
        need21 = t21 - fixed_rev[g21].sum() + extra[g21].sum()
        m22, m21 = grp & free & (years == y_last), grp & free & (years == y_prev)
        if need22 <= 0 or need21 <= 0 or not m22.any() or not m21.any():
            continue
        # t depends on the day only: the root search runs on per-day price sums
        p21 = np.bincount(rec["day"][m21], weights=base[m21], minlength=tl.n_days)
        p22 = np.bincount(rec["day"][m22], weights=base[m22], minlength=tl.n_days)
        b = _solve_b(day_t, p21, day_t, p22, need22 / need21)
        a = need22 / (p22 * np.exp(b * day_t)).sum()
        factors[ch or "all"] = {"a": float(a), "b": float(b)}
    return factors


def _group_factor(world, tl: Timeline, factors: dict, mask: np.ndarray) -> np.ndarray:
    """Per record: its channel group's ``a exp(b t)`` where ``mask``, else 1."""
    rec = world.rec
    out = np.ones(len(rec["day"]))
    for g, ab in factors.items():
        m = mask & (rec["channel"] == channel_code(world.channel_names, g)) if g != "all" else mask
        out[m] = _factor(rec["day"][m], tl, ab)
    return out


def prescale_prices(sc, tl: Timeline, rp: dict, world) -> None:
    """Step 1 of the calibration (module docs): scale the raw prices of express parcels
    without a coupon so that the targets would hold after the expected later discounts.

    The expected discounts: the last year's coupons still to draw (target minus first-parcel
    uses) spread over the records by their use propensity, times each coupon's face value;
    the previous year at the same propensity scale. Sets ``rec["price_base"]`` (every express
    parcel's raw no-bunching price times its step-1 factor, unrounded) and the step-1 list
    prices (rounded to 0.1 yuan).
    """
    rec = world.rec
    express = rec["product"] == EXPRESS
    coupon = rec["coupon_kind"] > 0
    thr, face = coupon_terms(sc, world)
    fixed_rev = np.where(express & coupon, rec["list_price"] - face, 0.0)
    p, _, _, later_face = _later_propensity(sc, world)
    in_last = tl.year_of(rec["day"]) == max(sc.years)
    _, _, need = _later_need(sc, tl, rp, world)
    total = p[in_last].sum()
    extra = p * later_face * (need / total) if total > 0 else np.zeros_like(p)
    free = express & ~coupon
    factors = _solve_factors(sc, tl, rp, world, rec["list_price"], free, fixed_rev, extra)
    f1 = _group_factor(world, tl, factors, express)
    rec["price_base"] = np.where(express, rec["pre_bunch"] * f1, rec["list_price"])
    rec["list_price"][free] = np.round(rec["price_base"][free], 1)
    rec["pre_bunch"][free] = rec["list_price"][free]
    world.price_steps = {"list": factors}


def no_coupon_price(world, tl: Timeline, idx: np.ndarray) -> np.ndarray:
    """List price the records ``idx`` would have had without a coupon: for express parcels
    with a coupon ``round(price_base * a2 exp(b2 t), 1)`` -- the price :func:`calibrate_prices`
    gives a parcel without a coupon (both calibration steps from its raw no-bunching price);
    for the other records their list price.
    """
    rec = world.rec
    idx = np.asarray(idx)
    out = rec["list_orig"][idx].astype(float)
    coupon = (rec["coupon_kind"][idx] > 0) & (rec["product"][idx] == EXPRESS)
    if not coupon.any():
        return out
    chan = rec["channel"][idx]
    day = rec["day"][idx]
    base = rec["price_base"][idx]
    for g, ab in world.price_steps["touch_up"].items():
        m = coupon & (chan == channel_code(world.channel_names, g)) if g != "all" else coupon
        out[m] = np.round(base[m] * _factor(day[m], tl, ab), 1)
    # a group without a touch-up keeps step 1
    rest = coupon & ~_in_groups(world, chan, world.price_steps["touch_up"])
    out[rest] = np.round(base[rest], 1)
    return out


def _in_groups(world, chan: np.ndarray, factors: dict) -> np.ndarray:
    if "all" in factors:
        return np.ones(chan.size, bool)
    return np.isin(chan, [channel_code(world.channel_names, g) for g in factors])


def calibrate_prices(sc, tl: Timeline, rp: dict, world) -> None:
    """Step 2 of the calibration (module docs): touch up the prices of express parcels without
    a coupon so that the revenue targets hold exactly; discounts and revenue of every record."""
    rec = world.rec
    thr, face = coupon_terms(sc, world)
    rec["coupon_thr"], rec["coupon_face"] = thr, face
    express = rec["product"] == EXPRESS
    coupon = rec["coupon_kind"] > 0
    fixed_rev = np.where(express & coupon, rec["list_price"] - face, 0.0)
    free = express & ~coupon
    factors = _solve_factors(sc, tl, rp, world, rec["price_base"], free, fixed_rev,
                             np.zeros(len(rec["day"])))
    f2 = _group_factor(world, tl, factors, free)
    touched = free & _in_groups(world, rec["channel"], factors)
    rec["list_price"][touched] = np.round(rec["price_base"][touched] * f2[touched], 1)
    # list prices that were not moved up by a coupon holder: the no-bunching price
    rec["list_orig"] = np.where(rec["bunched"], rec["pre_bunch"], rec["list_price"])
    world.price_steps["touch_up"] = factors
    world.price_factor = {
        g: {"a": ab["a"] * factors.get(g, {"a": 1.0})["a"],
            "b": ab["b"] + factors.get(g, {"b": 0.0})["b"]}
        for g, ab in world.price_steps["list"].items()
    }
    rec["discount"] = np.where(coupon, face, 0.0)
    rec["revenue"] = rec["list_price"] - rec["discount"]
