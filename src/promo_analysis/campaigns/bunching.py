"""Threshold bunching: parcels moved up to a coupon threshold (满 X 减 Y), and subsidy leakage.

A "spend X, get Y off" coupon makes a sender whose parcel would cost a little less than X
declare (or upgrade to) a parcel worth X. In the list-price histogram this shows up as excess
mass just at the threshold and missing mass just below it. Following the bunching estimator
of Chetty, Friedman, Olsen and Pistaferri (2011) and Kleven (2016):

1. bin list prices (``bin_width``) within ``fit_range`` of the threshold;
2. fit a polynomial of ``degree`` to the bin counts, leaving out the excluded region
   ``[t - below, t + above)`` (the hole below and the bunch at the threshold);
3. excess mass = observed minus predicted counts in ``[t, t + above)`` (parcels moved up);
   missing mass = predicted minus observed in ``[t - below, t)`` (where they came from);
4. confidence intervals by a parametric bootstrap of the bin counts (Poisson), refitting the
   polynomial each time (percentile intervals).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..results import TableResult

__all__ = ["threshold_bunching", "subsidy_leakage"]


def _bunch_one(
    prices: np.ndarray,
    t: float,
    *,
    bin_width: float,
    below: float,
    above: float,
    fit_range: float,
    degree: int,
    n_boot: int,
    rng: np.random.Generator,
    alpha: float,
) -> dict[str, Any]:
    # integer bin index relative to the threshold, with a tolerance so that a price of exactly
    # t (stored as 11.999999...) lands in the bin [t, t + w) and not in the one below
    nb = int(round(fit_range / bin_width))
    k = np.floor((prices - t) / bin_width + 1e-6).astype(np.int64)
    k = k[(k >= -nb) & (k < nb)]
    counts = np.bincount(k + nb, minlength=2 * nb)
    ks = np.arange(-nb, nb)
    left = t + ks * bin_width
    mids = left + bin_width / 2
    n_below, n_above = int(round(below / bin_width)), max(1, int(round(above / bin_width)))
    excl = (ks >= -n_below) & (ks < n_above)
    bunch = excl & (ks >= 0)
    hole = excl & (ks < 0)
    if (~excl).sum() <= degree + 1:
        raise ValueError(
            f"threshold_bunching: only {(~excl).sum()} bins outside the excluded region around "
            f"{t:g} for a degree-{degree} polynomial; widen fit_range or lower degree"
        )
    x = (mids - t) / fit_range
    V = np.vander(x, degree + 1)

    def fit(c: np.ndarray) -> tuple[float, float, np.ndarray]:
        coef, *_ = np.linalg.lstsq(V[~excl], c[~excl], rcond=None)
        cf = V @ coef
        return float((c - cf)[bunch].sum()), float((cf - c)[hole].sum()), cf

    excess, missing, cf = fit(counts.astype(float))
    # bootstrap: Poisson draws around the observed counts
    boots = np.empty((n_boot, 2))
    for b in range(n_boot):
        cb = rng.poisson(counts).astype(float)
        boots[b, 0], boots[b, 1], _ = fit(cb)
    q = [100 * alpha / 2, 100 * (1 - alpha / 2)]
    lo, hi = np.percentile(boots[:, 0], q)
    mlo, mhi = np.percentile(boots[:, 1], q)
    se = float(boots[:, 0].std(ddof=1))
    return {
        "estimate": excess,
        "se": se,
        "ci_low": float(lo),
        "ci_high": float(hi),
        "pvalue": float(
            2
            * min(
                (boots[:, 0] - excess <= -excess).mean(), (boots[:, 0] - excess >= -excess).mean()
            )
        ),  # fmt: skip
        "n": int(counts.sum()),
        "missing_mass": missing,
        "missing_ci_low": float(mlo),
        "missing_ci_high": float(mhi),
        "counterfactual_at_threshold": float(cf[bunch].sum()),
        "observed_at_threshold": float(counts[bunch].sum()),
        "excess_ratio": excess / float(cf[bunch].sum()) if cf[bunch].sum() > 0 else np.nan,
        "_bins": pd.DataFrame(
            {
                "left": left,
                "mid": mids,
                "count": counts,
                "counterfactual": cf,
                "excluded": excl,
            }  # fmt: skip
        ),
    }


def threshold_bunching(
    data: pd.DataFrame,
    price: str = "list_price",
    thresholds: Sequence[float] = (12, 21),
    *,
    coupon_threshold: str | None = None,
    bin_width: float = 0.1,
    below: float = 2.0,
    above: float = 0.1,
    fit_range: float = 4.0,
    degree: int = 5,
    n_boot: int = 500,
    alpha: float = 0.05,
    seed: int = 0,
) -> TableResult:
    """Parcels moved up to each coupon threshold: excess mass over a smooth counterfactual.

    Parameters
    ----------
    data : DataFrame
        One row per parcel (e.g. the express shipments of a region).
    price : str
        List-price column (yuan, before discount).
    thresholds : sequence of float
        Coupon thresholds (满 X) to examine.
    coupon_threshold : str, optional
        Column with the threshold of the coupon a parcel used (null if none); adds the number of
        coupon parcels at each threshold and the share of them that were moved up.
    bin_width, below, above, fit_range, degree
        Histogram bin width (yuan; default the 0.1-yuan price grid, so the bunch sits in the
        single bin ``[t, t + 0.1)``); the excluded region ``[t - below, t + above)``; the
        half-width of the fitted price range; the polynomial degree.
    n_boot : int
        Poisson bootstrap replications for the intervals.

    Returns
    -------
    TableResult
        Indexed by ``threshold``: ``estimate`` (excess parcels = moved up), bootstrap ``se``
        and percentile CI, ``missing_mass`` (+CI) below the threshold (should match the excess),
        observed and counterfactual counts at the threshold; ``diagnostics["bins"]`` has the
        binned counts and counterfactual per threshold for plotting.
    """
    if price not in data.columns:
        raise ValueError(f"threshold_bunching: data lacks the column {price!r}")
    prices = data[price].to_numpy(dtype=float)
    bad = ~np.isfinite(prices) | (prices < 0)
    if bad.any():
        raise ValueError(
            f"threshold_bunching: column {price!r} has {int(bad.sum())} missing or negative "
            f"prices, e.g. {data.loc[bad, price].iloc[0]!r}"
        )
    if not thresholds:
        raise ValueError("threshold_bunching: `thresholds` is empty")
    if not 0 < above and not 0 < below:
        raise ValueError("threshold_bunching: `below` and `above` must be positive")
    rng = np.random.default_rng(seed)
    rows, bins = {}, {}
    for t in thresholds:
        r = _bunch_one(
            prices, float(t), bin_width=bin_width, below=below, above=above,
            fit_range=fit_range, degree=degree, n_boot=n_boot, rng=rng, alpha=alpha,
        )  # fmt: skip
        bins[float(t)] = r.pop("_bins")
        if coupon_threshold is not None:
            used = (data[coupon_threshold].to_numpy(dtype=float) == float(t)).sum()
            r["coupon_parcels"] = int(used)
            r["moved_up_share"] = r["estimate"] / used if used else np.nan
        rows[float(t)] = r
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "threshold"
    warnings = [
        f"threshold {t:g}: missing mass below ({r['missing_mass']:.0f}) and excess at the "
        f"threshold ({r['estimate']:.0f}) disagree beyond their intervals; check `below`"
        for t, r in rows.items()
        if r["missing_ci_high"] < r["ci_low"] or r["missing_ci_low"] > r["ci_high"]
    ]
    return TableResult(
        table=table,
        method="bunching (polynomial counterfactual, Poisson bootstrap)",
        alpha=alpha,
        estimand="parcels moved up to the coupon threshold",
        label="threshold bunching",
        diagnostics={"bins": bins, "bin_width": bin_width, "degree": degree},
        warnings=warnings,
    )


def subsidy_leakage(
    effects: pd.DataFrame,
    *,
    incremental: str = "estimate",
    incremental_low: str = "ci_low",
    incremental_high: str = "ci_high",
    coupon_shipments: str = "campaign_shipments",
    discount_cost: str = "discount_cost",
) -> pd.DataFrame:
    """Share of campaign discounts paid on parcels that would have been sent anyway.

    With ``I`` incremental shipments (a campaign effect on shipments) and ``C`` parcels that
    used the campaign's coupons, at least ``C - I`` coupon parcels would have been sent
    without the campaign (if every incremental parcel used a coupon), so the leakage share is
    ``max(0, 1 - I / C)``, a lower bound; its interval follows from the interval of ``I``.

    Parameters
    ----------
    effects : DataFrame
        One row per campaign with the incremental-shipments estimate and CI and the number of
        coupon parcels (e.g. ``campaign_effects(ds, metric="shipments").table`` joined with
        ``campaign_discounts(ds)``).

    Returns
    -------
    DataFrame
        ``leakage_share`` (+ ``_ci_low``/``_ci_high``) and ``leakage_discount`` (= share x
        discount cost, when the discount column is present).
    """
    for c in (incremental, incremental_low, incremental_high, coupon_shipments):
        if c not in effects.columns:
            raise ValueError(f"subsidy_leakage: effects lack the column {c!r}")
    C = effects[coupon_shipments].astype(float)
    bad = C <= 0
    if bad.any():
        raise ValueError(
            f"subsidy_leakage: {int(bad.sum())} campaigns have no coupon parcels "
            f"({coupon_shipments!r} <= 0), e.g. {effects.index[bad.to_numpy()][0]!r}"
        )
    out = pd.DataFrame(index=effects.index)
    out["leakage_share"] = (1 - effects[incremental] / C).clip(0, 1)
    out["leakage_share_ci_low"] = (1 - effects[incremental_high] / C).clip(0, 1)
    out["leakage_share_ci_high"] = (1 - effects[incremental_low] / C).clip(0, 1)
    if discount_cost in effects.columns:
        out["leakage_discount"] = out["leakage_share"] * effects[discount_cost]
    return out
