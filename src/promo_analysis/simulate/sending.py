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

The gap from first to second parcel has rate ``mu * hazard_ratio^[coupon-acquired]`` with
``mu = exp(repeat_log_rate + segment offset + repeat_wechat_effect * wechat)``: proportional
hazards given segment, WeChat contact and region. Later gaps have rate ``mu * frailty``
(gamma, mean 1); churn (exponential, mean ``churn_mean_years``) starts at the second parcel.
"""

from __future__ import annotations

import numpy as np

__all__ = ["clock", "first_send_day", "repeat_chains", "day_of"]


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


def repeat_chains(
    L: np.ndarray,
    seg: np.ndarray,
    start_pos: np.ndarray,
    rate_first: np.ndarray,
    rate_later: np.ndarray,
    churn_years: np.ndarray,
    first_is_event: np.ndarray,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """Repeat parcels of customers whose chain starts at clock position ``start_pos``.

    For customers with ``first_is_event`` (prior senders) the first *recorded* parcel is itself
    the first event of the chain, drawn with ``rate_later``; their second recorded parcel then
    follows with ``rate_first`` (so every customer's first-to-second gap is proportional
    hazards). Churn: a customer stops ``churn_years`` (calendar) after the second recorded
    parcel.

    Returns arrays ``cust`` (index into the inputs), ``k`` (1 = first recorded parcel),
    ``pos`` (clock position), ``day``; plus per customer ``day2`` (day of the second
    recorded parcel, -1 if none) -- records with ``k == 1`` are only returned for
    ``first_is_event`` customers.
    """
    n_days = L.shape[1] - 1
    n = len(seg)
    pos = start_pos.astype(float).copy()
    k = np.where(first_is_event, 0, 1).astype(np.int64)
    churn_day = np.full(n, np.inf)
    day2 = np.full(n, -1, dtype=np.int64)
    alive = np.arange(n)
    out_c, out_k, out_p, out_d = [], [], [], []
    while alive.size:
        kk = k[alive]
        rate = np.where(kk == 1, rate_first[alive], rate_later[alive])
        pos_a = pos[alive] + rng.standard_exponential(alive.size) / rate
        day = np.full(alive.size, n_days, dtype=np.int64)
        sg = seg[alive]
        for g in np.unique(sg):
            m = sg == g
            d = np.searchsorted(L[g], pos_a[m], side="left") - 1
            day[m] = np.where(pos_a[m] > L[g][-1], n_days, np.maximum(d, 0))
        ok = (day < n_days) & (day < churn_day[alive])
        idx = alive[ok]
        knew = kk[ok] + 1
        out_c.append(idx)
        out_k.append(knew)
        out_p.append(pos_a[ok])
        out_d.append(day[ok])
        second = knew == 2
        day2[idx[second]] = day[ok][second]
        churn_day[idx[second]] = day[ok][second] + churn_years[idx[second]] * 365.0
        pos[idx] = pos_a[ok]
        k[idx] = knew
        alive = idx
    return {
        "cust": np.concatenate(out_c) if out_c else np.zeros(0, np.int64),
        "k": np.concatenate(out_k) if out_k else np.zeros(0, np.int64),
        "pos": np.concatenate(out_p) if out_p else np.zeros(0),
        "day": np.concatenate(out_d) if out_d else np.zeros(0, np.int64),
        "day2": day2,
    }
