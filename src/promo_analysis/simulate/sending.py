"""When people send: first parcels of prospects and walk-ins, then repeat parcels.

Time runs on two clocks per region and segment ``g`` (arrays of length ``n_days + 1``,
cumulative, in years):

* ``G[g]`` -- the prospects' first-send clock: mild calendar seasonality times the campaign
  lift for new customers. A prospect with hazard ``b`` per year who is eligible from day
  ``e0`` sends first on the day ``T`` where ``b * (G[T+1] - G[e0]) `` first exceeds an
  ``Exp(1)`` draw; a coupon held on days ``c .. c+29`` multiplies the hazard by ``1 + tau``.
* ``L[g]`` -- the repeat-sending clock: calendar weights x trend x campaign lifts and
  pull-forward dips. Parcels after the first are events of a Poisson process with a constant
  rate on this clock (time change), so a campaign that speeds the clock up sends more parcels
  and a customer's events in a world without that campaign are the same draws mapped through
  the campaign-free clock (exact coupling, used for the campaign truth).

The gap from first to second parcel is exponential in *calendar* time (days since the first
parcel, no seasonality) with rate ``mu * hazard_ratio^[coupon-acquired]`` per year,
``mu = exp(repeat_log_rate + segment offset + repeat_wechat_effect * wechat)``: exactly
proportional hazards in time since the first parcel given segment, WeChat contact and region
(a calendar-modulated gap would not be: customers acquired during a campaign, more often with
a coupon, would start on a fast clock). Later gaps have rate ``mu * frailty``
(gamma, mean 1); churn (exponential, mean ``churn_mean_years``) starts at the second parcel.
"""

from __future__ import annotations

import numpy as np

__all__ = ["clock", "clock_at", "time_at", "first_send_day", "repeat_chains", "day_of"]


def clock(weights: np.ndarray) -> np.ndarray:
    """Cumulative clock in years: ``out[d]`` is the weight of days ``0 .. d-1`` / 365."""
    w = np.atleast_2d(weights)
    out = np.zeros((w.shape[0], w.shape[1] + 1))
    np.cumsum(w, axis=1, out=out[:, 1:])
    out /= 365.0
    return out if weights.ndim == 2 else out[0]


def day_of(clk: np.ndarray, position: np.ndarray) -> np.ndarray:
    """The day on which clock ``clk`` (1-D) reaches ``position`` (``len(clk) - 1`` = never)."""
    d = np.searchsorted(clk, position, side="left") - 1
    return np.clip(d, 0, len(clk) - 1)


def first_send_day(
    G: np.ndarray,
    seg: np.ndarray,
    target: np.ndarray,
    coupon_day: np.ndarray,
    mult: np.ndarray,
    validity: int,
) -> np.ndarray:
    """First-send day on clock ``G[seg]`` for cumulative-hazard targets ``target`` (= G[e0] +
    E/b), with a coupon (``coupon_day >= 0``) multiplying the hazard by ``mult`` on days
    ``coupon_day .. coupon_day + validity - 1``. ``n_days`` means: not within the period."""
    n_days = G.shape[1] - 1
    out = np.empty(len(target), dtype=np.int64)
    for g in np.unique(seg):
        m = seg == g
        clk = G[g]
        x = target[m].copy()
        c = coupon_day[m]
        has = c >= 0
        cc = np.clip(c, 0, n_days)
        ce = np.clip(c + validity, 0, n_days)
        g0, g1 = clk[cc], clk[ce]
        k = mult[m]
        # inside the coupon window: the clock runs k times faster
        inside = has & (x > g0) & (x <= g0 + k * (g1 - g0))
        after = has & (x > g0 + k * (g1 - g0))
        pos = x.copy()
        pos[inside] = g0[inside] + (x[inside] - g0[inside]) / k[inside]
        pos[after] = x[after] - (k[after] - 1.0) * (g1[after] - g0[after])
        d = np.searchsorted(clk, pos, side="left") - 1
        out[m] = np.where(pos > clk[-1], n_days, np.maximum(d, 0))
    return out


def clock_at(clk: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Clock position at calendar time ``t`` (days, fractional: day + share of the day)."""
    n_days = len(clk) - 1
    d = np.clip(np.floor(t).astype(np.int64), 0, n_days - 1)
    frac = np.clip(t - d, 0.0, 1.0)
    return clk[d] + frac * (clk[d + 1] - clk[d])


def time_at(clk: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Calendar time (fractional day) at which clock ``clk`` reaches ``pos``; ``n_days`` if
    never inside the period."""
    n_days = len(clk) - 1
    d = np.clip(np.searchsorted(clk, pos, side="left") - 1, 0, n_days - 1)
    width = clk[d + 1] - clk[d]
    frac = np.where(width > 0, (pos - clk[d]) / np.where(width > 0, width, 1.0), 0.0)
    return np.where(pos > clk[-1], float(n_days), d + np.clip(frac, 0.0, 1.0))


def repeat_chains(
    L: np.ndarray,
    seg: np.ndarray,
    start_time: np.ndarray,
    rate_first: np.ndarray,
    rate_later: np.ndarray,
    churn_years: np.ndarray,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """Parcels after a customer's first recorded one, sent at calendar time ``start_time``.

    The second parcel follows after an exponential gap in *calendar* time with rate
    ``rate_first`` per year (proportional hazards in time since the first parcel, exactly);
    later parcels are events of a Poisson process with rate ``rate_later`` on the repeat
    clock ``L[seg]`` (calendar, trend, campaigns). Churn: a customer stops ``churn_years``
    (calendar) after the second parcel.

    Returns per record ``cust`` (index into the inputs), ``k`` (2, 3, ...), ``pos`` (clock
    position), ``time`` (fractional day), ``day``; per customer ``day2`` and ``time2`` (the
    second parcel, -1 if none) and ``pos2``.
    """
    n_days = L.shape[1] - 1
    n = len(seg)
    t = start_time.astype(float).copy()
    pos = np.zeros(n)
    k = np.ones(n, dtype=np.int64)
    churn_at = np.full(n, np.inf)
    time2 = np.full(n, -1.0)
    pos2 = np.full(n, np.nan)
    alive = np.arange(n)
    out_c, out_k, out_p, out_t = [], [], [], []
    while alive.size:
        kk = k[alive]
        sg = seg[alive]
        t_new = np.empty(alive.size)
        p_new = np.empty(alive.size)
        gap1 = kk == 1
        # second parcel: calendar-time exponential gap
        t_new[gap1] = t[alive[gap1]] + rng.standard_exponential(int(gap1.sum())) / rate_first[
            alive[gap1]
        ] * 365.0
        later = ~gap1
        p_new[later] = pos[alive[later]] + (
            rng.standard_exponential(int(later.sum())) / rate_later[alive[later]]
        )
        for g in np.unique(sg):
            m1 = gap1 & (sg == g)
            p_new[m1] = clock_at(L[g], np.minimum(t_new[m1], n_days - 1e-9))
            m2 = later & (sg == g)
            t_new[m2] = time_at(L[g], p_new[m2])
        ok = (t_new < n_days) & (t_new < churn_at[alive])
        idx = alive[ok]
        knew = kk[ok] + 1
        out_c.append(idx)
        out_k.append(knew)
        out_p.append(p_new[ok])
        out_t.append(t_new[ok])
        second = knew == 2
        time2[idx[second]] = t_new[ok][second]
        pos2[idx[second]] = p_new[ok][second]
        churn_at[idx[second]] = t_new[ok][second] + churn_years[idx[second]] * 365.0
        pos[idx] = p_new[ok]
        t[idx] = t_new[ok]
        k[idx] = knew
        alive = idx
    cat = lambda parts, dt: np.concatenate(parts) if parts else np.zeros(0, dt)  # noqa: E731
    times = cat(out_t, float)
    return {
        "cust": cat(out_c, np.int64),
        "k": cat(out_k, np.int64),
        "pos": cat(out_p, float),
        "time": times,
        "day": np.floor(times).astype(np.int64),
        "time2": time2,
        "pos2": pos2,
    }
