"""Campaign effects by interrupted time series (segmented regression on daily series).

For each region the daily metric (in logs when positive) is regressed on weekday, official
holidays, make-up workdays, the Spring Festival express slowdown and the New-Year goods peak
before it, the e-commerce returns week after 618 and Double 11, a trend and annual Fourier
terms, plus -- per campaign -- a lift term on its days and a dip term on its pull-forward days.
Non-campaign days pin down the calendar (the counterfactual); each campaign's incremental metric
is observed minus the same days without that campaign's terms:
``sum_t y_t (1 - exp(-theta_c,t))`` in logs (multiplicative lifts, so overlapping campaigns
combine as they do in sending rates), ``sum_t theta_c,t`` in levels.

Optionally (``controls="regions"``) a provincial campaign's counterfactual also uses the
summed metric of the regions that ran no campaign on its days (comparative ITS), so shocks
common to all regions are not credited to the campaign.

Uncertainty: the residual autocorrelation is modelled by an autoregression fitted (Yule-Walker,
order by BIC) to the residuals of days outside every window -- inside a window the lift term
forces residuals to average zero, which would fake negative autocorrelation. The coefficient
covariance is the OLS sandwich with that AR covariance (``vcov_type="ar"``; Newey-West HAC is
available but understates the variance of short-window dummies), and the delta method carries
it to each campaign's total.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import signal, stats

from ..calendar import THEMES, calendar_features
from ..regions import REGIONS
from ..results import TableResult, normal_interval

__all__ = [
    "estimate_campaign_effects",
    "campaign_effects",
    "fit_its",
    "ITSFit",
    "campaign_discounts",
    "placebo_campaigns",
    "DEFAULT_PULL_FORWARD_DAYS",
]

#: days after a campaign's end counted as its pull-forward (post-campaign dip) window
DEFAULT_PULL_FORWARD_DAYS = 7

#: trend shapes of the counterfactual; "spline" is piecewise linear with a knot every
#: ``TREND_KNOT_DAYS`` days from the first day
TRENDS = ("none", "linear", "quadratic", "spline")
TREND_KNOT_DAYS = 91

_DESIGN_COLUMNS = (
    "name",
    "theme",
    "level",
    "target_segment",
    "coupon_threshold",
    "coupon_face_value",
)


@dataclass
class ITSFit:
    """A fitted segmented (interrupted time series) regression for one daily series.

    ``X`` holds the calendar regressors (``n_calendar`` first columns) and then, per campaign,
    a lift column (1 on campaign days) and a dip column (1 on its pull-forward days).
    """

    dates: pd.DatetimeIndex
    y: np.ndarray
    X: np.ndarray
    columns: list[str]
    n_calendar: int
    effects: dict[str, tuple[int | None, int | None]]  # campaign -> (lift col, dip col)
    beta: np.ndarray
    vcov: np.ndarray
    resid: np.ndarray
    gamma: np.ndarray  # residual autocovariances at lags 0.. (AR(p)-implied)
    ar_order: int
    log: bool
    smear: float
    dropped: list[str]

    @property
    def fitted(self) -> np.ndarray:
        """Fitted values with every campaign term (the observed world's model)."""
        eta = self.X @ self.beta
        return np.exp(eta) * self.smear if self.log else eta

    @property
    def counterfactual(self) -> np.ndarray:
        """Model prediction with every campaign term removed (a world without campaigns)."""
        k = self.n_calendar
        eta = self.X[:, :k] @ self.beta[:k]
        return np.exp(eta) * self.smear if self.log else eta

    def _term(self, col: int | None, mask: np.ndarray) -> tuple[float, np.ndarray]:
        """Incremental metric of one campaign term and its gradient in ``beta``."""
        grad = np.zeros(len(self.beta))
        if col is None or not mask.any():
            return 0.0, grad
        theta = self.beta[col]
        if self.log:
            # observed minus the same days without this campaign's multiplicative term
            ys = float(self.y[mask].sum())
            grad[col] = ys * np.exp(-theta)
            return ys * (1 - np.exp(-theta)), grad
        grad[col] = float(mask.sum())
        return float(mask.sum()) * theta, grad

    def effect(self, name: str) -> dict[str, float]:
        """Incremental metric of campaign ``name`` (with minus without it) and its parts."""
        lift_col, dip_col = self.effects[name]
        camp = self.X[:, lift_col] > 0 if lift_col is not None else np.zeros(len(self.y), bool)
        post = self.X[:, dip_col] > 0 if dip_col is not None else np.zeros(len(self.y), bool)
        part, g1 = self._term(lift_col, camp)
        pf, g2 = self._term(dip_col, post)
        g = g1 + g2
        window = camp | post
        return {
            "estimate": part + pf,
            "se": float(np.sqrt(max(g @ self.vcov @ g, 0.0))),
            "campaign_part": part,
            "campaign_part_se": float(np.sqrt(max(g1 @ self.vcov @ g1, 0.0))),
            "pull_forward": pf,
            "pull_forward_se": float(np.sqrt(max(g2 @ self.vcov @ g2, 0.0))),
            "observed": float(self.y[window].sum()),
            "baseline": float(self.y[window].sum()) - (part + pf),
            "lift_coef": float(self.beta[lift_col]) if lift_col is not None else np.nan,
        }


def _design(
    dates: pd.DatetimeIndex,
    region: str | None,
    *,
    fourier: int,
    trend: str,
    festivals: bool,
) -> pd.DataFrame:
    key = (dates[0], len(dates), region if region in REGIONS else None, fourier, trend, festivals)
    return _design_cached(*key).copy()


@functools.lru_cache(maxsize=64)
def _design_cached(
    first: pd.Timestamp, n_days: int, region: str | None, fourier: int, trend: str, festivals: bool
) -> pd.DataFrame:
    # regions share one calendar (only 三月三 differs), so many series reuse this frame
    dates = pd.date_range(first, periods=n_days, freq="D")
    cal = calendar_features(dates, region=region)
    X = pd.DataFrame(index=dates)
    X["const"] = 1.0
    for d in range(1, 7):
        X[f"weekday_{d}"] = (cal["weekday"].to_numpy() == d).astype(float)
    for col in (
        "is_holiday",
        "is_makeup_workday",
        "is_slowdown",
        "is_pre_slowdown",
        "is_ecommerce_returns",
    ):
        X[col] = cal[col].to_numpy(dtype=float)
    t = (dates - dates[0]).days.to_numpy(dtype=float) / 365.25
    if trend not in TRENDS:
        raise ValueError(f"trend must be one of {TRENDS}, got {trend!r}")
    if trend != "none":
        X["trend"] = t
    if trend == "quadratic":
        X["trend2"] = t**2
    if trend == "spline":
        # piecewise-linear trend, a knot every quarter: the level of a growing customer base
        # bends (acquisition waves, start-up of the data) in ways a line plus annual Fourier
        # terms shared by all years cannot follow; the last knot keeps half a quarter after it
        days = (dates - dates[0]).days.to_numpy()
        for k in range(TREND_KNOT_DAYS, n_days - TREND_KNOT_DAYS // 2, TREND_KNOT_DAYS):
            X[f"trend_knot{k}"] = np.maximum(days - k, 0) / 365.25
    doy = dates.dayofyear.to_numpy(dtype=float)
    for k in range(1, fourier + 1):
        X[f"sin{k}"] = np.sin(2 * np.pi * k * doy / 365.25)
        X[f"cos{k}"] = np.cos(2 * np.pi * k * doy / 365.25)
    if festivals:
        for col in cal.columns:
            if col.startswith("festival_"):
                X[col] = cal[col].to_numpy(dtype=float)
    return X


def _select_ar_order(acov: np.ndarray, n: int) -> int:
    """AR order (0..len(acov)-1) minimising BIC of the Yule-Walker innovation variance."""
    best, best_aic = 0, n * np.log(max(acov[0], 1e-300))
    for p in range(1, len(acov)):
        R = acov[np.abs(np.subtract.outer(np.arange(p), np.arange(p)))]
        try:
            phi = np.linalg.solve(R, acov[1 : p + 1])
        except np.linalg.LinAlgError:
            break
        sigma2 = acov[0] - phi @ acov[1 : p + 1]
        if sigma2 <= 0:
            break
        aic = n * np.log(sigma2) + np.log(n) * p  # BIC: AIC over-fits on gappy data
        if aic < best_aic:
            best, best_aic = p, aic
    return best


def _ar_autocovariance(acov: np.ndarray, n_lags: int) -> np.ndarray:
    """Autocovariances up to ``n_lags`` implied by a Yule-Walker AR(p) fit to ``acov[0..p]``.

    The AR model extrapolates the correlation beyond the lags estimated directly and keeps the
    implied covariance matrix positive definite, so long windows get an honest variance.
    """
    p = len(acov) - 1
    if p == 0 or acov[0] <= 0:
        out = np.zeros(n_lags)
        out[0] = max(acov[0], 0.0)
        return out
    R = acov[np.abs(np.subtract.outer(np.arange(p), np.arange(p)))]
    try:
        phi = np.linalg.solve(R, acov[1:])
    except np.linalg.LinAlgError:
        phi = np.linalg.lstsq(R, acov[1:], rcond=None)[0]
    sigma2 = max(float(acov[0] - phi @ acov[1:]), 0.0)
    # impulse response (MA(infinity) weights) of the AR filter
    J = n_lags + 400
    psi = np.zeros(J)
    psi[0] = 1.0
    for j in range(1, J):
        k = min(j, p)
        psi[j] = phi[:k] @ psi[j - k : j][::-1]
    if not np.isfinite(psi).all() or np.abs(psi[-50:]).max() > 1e-6:
        # not stationary: fall back to the directly estimated lags
        out = np.zeros(n_lags)
        out[: p + 1] = acov[: min(p + 1, n_lags)]
        return out
    return sigma2 * np.array([psi[: J - k] @ psi[k:] for k in range(n_lags)])


def _lagged_sum(z: np.ndarray, k: int) -> Any:
    """sum_t z_t z_{t-k} (outer products for 2-d ``z``)."""
    if z.ndim == 1:
        return float(z[k:] @ z[: len(z) - k])
    return z[k:].T @ z[: len(z) - k]


def fit_its(
    dates: pd.DatetimeIndex,
    y: np.ndarray,
    interventions: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None,
    *,
    region: str | None = None,
    scale: str = "auto",
    fourier: int = 3,
    trend: str = "spline",
    festivals: bool = False,
    ar_order: int | None = None,
    max_ar_order: int = 14,
    vcov_type: str = "ar",
    hac_lags: int = 14,
    identify: str = "rank",
    covariates: Mapping[str, np.ndarray] | None = None,
) -> ITSFit:
    """Segmented regression of one daily series on calendar terms and campaign windows.

    Parameters
    ----------
    dates : DatetimeIndex
        Consecutive days.
    y : array
        The daily metric.
    interventions : mapping name -> (campaign-day mask, pull-forward-day mask)
        Each campaign gets a lift term on its days and a dip term on its pull-forward days;
        overlapping campaigns combine multiplicatively (``scale="log"``) or additively.
    scale : {"auto", "log", "level"}
        ``"auto"``: logs when the metric is positive on every day, else levels.
    trend : {"spline", "linear", "quadratic", "none"}
        Trend of the counterfactual; ``"spline"`` (default): piecewise linear with a knot every
        ``TREND_KNOT_DAYS`` (91) days.
    ar_order : int, optional
        Order of the autoregression for the residuals; ``None`` chooses it by AIC up to
        ``max_ar_order``.
    vcov_type : {"ar", "hac"}
        Coefficient covariance: sandwich with the AR-implied residual covariance (default), or
        Newey-West with a Bartlett kernel of ``hac_lags`` days.
    covariates : mapping name -> array, optional
        Extra regressors of the counterfactual (e.g. the log metric of control regions); they
        join the calendar block, so the counterfactual keeps them.
    """
    y = np.asarray(y, dtype=float)
    n = len(y)
    interventions = dict(interventions or {})
    Xcal = _design(dates, region, fourier=fourier, trend=trend, festivals=festivals)
    for cname, cval in (covariates or {}).items():
        cval = np.asarray(cval, dtype=float)
        if cval.shape != (n,) or not np.isfinite(cval).all():
            raise ValueError(f"covariate {cname!r} must be {n} finite values, one per day")
        Xcal[f"control:{cname}"] = cval
    cols: list[np.ndarray] = [Xcal[c].to_numpy() for c in Xcal.columns]
    names: list[str] = list(Xcal.columns)
    n_cal = len(names)
    effects: dict[str, tuple[int | None, int | None]] = {}
    seen: dict[bytes, int] = {}
    for name, (camp, post) in interventions.items():
        idx: list[int | None] = []
        for kind, mask in (("lift", camp), ("dip", post)):
            mask = np.asarray(mask, dtype=bool)
            if not mask.any():
                idx.append(None)
                continue
            key = mask.tobytes()
            if key in seen:  # identical windows share one term: not separately identified
                idx.append(seen[key])
                continue
            seen[key] = len(cols)
            idx.append(len(cols))
            cols.append(mask.astype(float))
            names.append(f"{kind}:{name}")
        effects[name] = (idx[0], idx[1])
    X = np.column_stack(cols)
    # calendar regressors the campaign terms make unidentifiable are dropped (recorded in
    # ``dropped``): with identify="rank" those that add nothing to the rank of the design (a
    # bump covering part of a window is kept: the constant-lift terms leave it identified);
    # with identify="outside" every term that does not vary outside the windows
    inside = np.zeros(n, bool)
    for camp, post in interventions.values():
        inside |= np.asarray(camp, bool) | np.asarray(post, bool)
    if identify == "outside":
        dropped = [
            names[j] for j in range(1, n_cal) if (~inside).any() and np.ptp(X[~inside, j]) == 0
        ]
    else:
        # a calendar term is kept when the campaign terms leave it identified (e.g. a bump
        # covering part of a window), i.e. when it adds to the rank of the design
        base = np.column_stack([X[:, :1], X[:, n_cal:]])
        rank = np.linalg.matrix_rank(base)
        dropped = []
        for j in range(1, n_cal):
            trial = np.column_stack([base, X[:, j]])
            r = np.linalg.matrix_rank(trial)
            if r > rank:
                base, rank = trial, r
            else:
                dropped.append(names[j])
    if dropped:
        keep = [j for j in range(X.shape[1]) if names[j] not in dropped]
        remap = {old: new for new, old in enumerate(keep)}
        X = X[:, keep]
        names = [names[j] for j in keep]
        n_cal -= len(dropped)
        effects = {
            k: tuple(remap[c] if c is not None else None for c in v)  # type: ignore[misc]
            for k, v in effects.items()
        }
    if scale == "auto":
        scale = "log" if (y > 0).all() else "level"
    if scale not in ("log", "level"):
        raise ValueError(f"scale must be 'auto', 'log' or 'level', got {scale!r}")
    log = scale == "log"
    if log and (y <= 0).any():
        raise ValueError(
            f"scale='log' needs a positive metric on every day; {int((y <= 0).sum())} days "
            "are <= 0 (use scale='level')"
        )
    z = np.log(y) if log else y
    beta, _, p, _ = np.linalg.lstsq(X, z, rcond=None)
    resid = z - X @ beta
    dof = n / max(n - p, 1)
    m = max(int(hac_lags), int(ar_order or max_ar_order))
    # Noise autocovariances from days outside every window only: inside a window the lift
    # term forces the residuals to average zero, which fakes negative autocorrelation and
    # would understate the variance of window sums. Pairs of free days k apart.
    free = (~inside).astype(float) if (~inside).sum() > 2 * n_cal else np.ones(n)
    n_free = float(free.sum())
    rf = resid * free
    acov = np.zeros(m + 1)
    for k in range(m + 1):
        pairs = _lagged_sum(free, k)
        if pairs > 0:
            acov[k] = _lagged_sum(rf, k) / pairs
    acov *= n_free / max(n_free - n_cal, 1)
    order = _select_ar_order(acov[: max_ar_order + 1], n) if ar_order is None else int(ar_order)
    gamma = _ar_autocovariance(acov[: order + 1], n_lags=n)
    bread = np.linalg.pinv(X.T @ X)
    if vcov_type == "hac":
        Z = X * resid[:, None]
        S = _lagged_sum(Z, 0)
        for k in range(1, int(hac_lags) + 1):
            G = _lagged_sum(Z, k)
            S += (1 - k / (hac_lags + 1)) * (G + G.T)
        vcov = bread @ S @ bread * dof
    elif vcov_type == "ar":
        # X' T X with T[s, t] = gamma[|s - t|]: T X is a convolution, done by FFT
        kernel = np.r_[gamma[:0:-1], gamma]
        TX = signal.fftconvolve(X, kernel[:, None], axes=0)[n - 1 : 2 * n - 1]
        S = X.T @ TX
        S = (S + S.T) / 2
        vcov = bread @ S @ bread
    else:
        raise ValueError(f"vcov_type must be 'ar' or 'hac', got {vcov_type!r}")
    smear = float(np.mean(np.exp(resid))) if log else 1.0
    return ITSFit(
        dates=dates,
        y=y,
        X=X,
        columns=names,
        n_calendar=n_cal,
        effects=effects,
        beta=beta,
        vcov=vcov,
        resid=resid,
        gamma=gamma,
        ar_order=order,
        log=log,
        smear=smear,
        dropped=dropped,
    )


def _require(data: pd.DataFrame, cols: Sequence[str], table: str) -> None:
    missing = [c for c in cols if c not in data.columns]
    if missing:
        raise ValueError(f"{table} lacks the columns {missing} (has: {', '.join(data.columns)})")


def _expand_campaigns(
    campaigns: pd.DataFrame,
    units: Sequence[str],
    *,
    campaign_id: str,
    unit: str,
    start: str,
    end: str,
) -> pd.DataFrame:
    """One row per (campaign, unit): a campaign with a null unit applies to every unit."""
    c = campaigns.copy()
    c[start] = pd.to_datetime(c[start])
    c[end] = pd.to_datetime(c[end])
    bad = c[c[end] < c[start]]
    if len(bad):
        raise ValueError(
            f"campaigns: {len(bad)} rows break the rule end_date >= start_date, e.g. "
            f"{bad.iloc[0][campaign_id]!r} ({bad.iloc[0][start].date()} .. "
            f"{bad.iloc[0][end].date()})"
        )
    if "theme" in c.columns:
        unknown = c.loc[c["theme"].notna() & ~c["theme"].isin(list(THEMES)), "theme"]
        if len(unknown):
            raise ValueError(
                f"campaigns: {len(unknown)} rows have an unknown theme, e.g. "
                f"{unknown.iloc[0]!r}; allowed (calendar.THEMES): {', '.join(THEMES)}"
            )
    national = c[c[unit].isna()]
    local = c[c[unit].notna()]
    rows = [local]
    if len(national):
        rep = national.drop(columns=[unit]).merge(pd.DataFrame({unit: list(units)}), how="cross")
        rows.append(rep)
    out = pd.concat(rows, ignore_index=True)
    out["_national"] = out[campaign_id].isin(set(national[campaign_id]))
    n_units = out.groupby(campaign_id)[unit].transform("size")
    out["_n_units"] = n_units
    return out


def estimate_campaign_effects(
    daily: pd.DataFrame,
    campaigns: pd.DataFrame,
    *,
    metric: str = "revenue",
    date: str = "date",
    unit: str = "region_id",
    campaign_id: str = "campaign_id",
    start: str = "start_date",
    end: str = "end_date",
    pull_forward_days: int = DEFAULT_PULL_FORWARD_DAYS,
    new_customers: str | None = "new_customers",
    discount_cost: pd.DataFrame | None = None,
    fixed_cost: str | None = "fixed_cost",
    min_pre_days: int = 28,
    scale: str = "auto",
    fourier: int = 3,
    trend: str = "spline",
    festivals: bool = False,
    hac_lags: int = 14,
    ar_order: int | None = None,
    vcov_type: str = "ar",
    alpha: float = 0.05,
    short_pre: str = "raise",
    national_units: Sequence[str] | None = None,
    identify: str = "rank",
    controls: str | None = None,
    control_daily: pd.DataFrame | None = None,
) -> TableResult:
    """Incremental metric of each campaign in each unit over an ITS counterfactual.

    Parameters
    ----------
    daily : DataFrame
        One row per ``unit`` and ``date`` (consecutive days; e.g. ``features.daily_series``)
        with the ``metric`` column (and ``new_customers`` if given).
    campaigns : DataFrame
        One row per campaign: ``campaign_id``, ``unit`` (null = runs in every unit), ``start``,
        ``end`` (inclusive); optional ``theme`` (checked against ``calendar.THEMES``),
        ``fixed_cost`` and design columns (kept in the output).
    metric : str
        The outcome column; with ``"revenue"`` costs, net gain and ROI are added.
    pull_forward_days : int
        Days after the campaign's end that belong to its window: the post-campaign dip of
        parcels pulled forward is subtracted from the campaign's effect.
    new_customers : str or None
        Column of daily new customers; if present its incremental count and the cost per
        incremental new customer are added.
    discount_cost : DataFrame, optional
        ``campaign_id``, ``unit``, ``discount_cost``: discounts paid on the campaign's coupons
        (yuan). Missing pairs count as 0.
    fixed_cost : str or None
        Column of ``campaigns`` with the fixed cost (yuan); a national campaign's fixed cost is
        split equally over the units it runs in.
    min_pre_days : int
        Least number of non-campaign days before a campaign's start.
    national_units : sequence of str, optional
        Every unit national campaigns run in (for splitting their fixed cost); default the units
        of ``daily``.
    short_pre : {"raise", "skip"}
        What to do with a campaign whose pre-period is shorter: raise a ``ValueError``, or
        leave it out of the table with a warning.
    scale : {"auto", "log", "level"}
        Model the metric in logs (multiplicative weekday and season effects; default when the
        metric is positive on every training day) or in levels.
    fourier, trend, festivals, hac_lags, ar_order
        Annual Fourier pairs, ``"spline"`` (piecewise linear, a knot every 91 days; default)
        /``"linear"``/``"quadratic"``/``"none"`` trend, whether to add
        festival-day dummies (only identified when festivals also occur outside campaigns),
        the Bartlett bandwidth in days of the Newey-West coefficient covariance, and the order
        of the autoregression fitted to the residuals for the window-noise variance.
    alpha : float
        1 - confidence level.
    controls : {None, "regions"}
        ``"regions"``: for each provincial campaign, the units (other than its own) that have
        no campaign window (campaign + pull-forward days) on its window days are its control
        regions; the log of their summed metric (levels for a level-scale metric) joins the
        counterfactual, fitted on days when neither the unit nor its controls are in a window
        (other days get a dummy each). National campaigns, and campaigns without a clean
        control, keep the ITS-only estimate (``control_regions`` empty, warned). Adds the
        columns ``control_regions`` and ``control_coef``. Default ``None``: ITS only.
    control_daily : DataFrame, optional
        The pool of control series (same columns as ``daily``); default ``daily`` itself.

    Returns
    -------
    TableResult
        Indexed by (``campaign_id``, ``unit``); ``estimate``/``se``/CI of the incremental
        metric over the window, ``campaign_part``, ``pull_forward`` (+ ``pull_forward_se``),
        ``baseline`` (counterfactual total), ``lift`` (estimate / baseline), window dates,
        ``overlap`` flag, design columns; with revenue: ``discount_cost``, ``fixed_cost``,
        ``cost``, ``net_gain`` (+CI), ``roi`` (+CI); with new customers:
        ``incremental_new_customers`` (+se, CI), ``cost_per_new_customer`` (+CI).
    """
    _require(daily, [date, unit, metric], "daily")
    _require(campaigns, [campaign_id, unit, start, end], "campaigns")
    if new_customers is not None and new_customers not in daily.columns:
        new_customers = None
    if short_pre not in ("raise", "skip"):
        raise ValueError(f"short_pre must be 'raise' or 'skip', got {short_pre!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    d = daily.copy()
    d[date] = pd.to_datetime(d[date])
    dup = d.duplicated([unit, date])
    if dup.any():
        ex = d.loc[dup].iloc[0]
        raise ValueError(
            f"daily: {int(dup.sum())} duplicate ({unit}, {date}) rows, e.g. "
            f"({ex[unit]!r}, {ex[date].date()}); aggregate to one row per unit and day first"
        )
    if d[metric].isna().any():
        raise ValueError(
            f"daily: column {metric!r} has {int(d[metric].isna().sum())} missing values "
            "(zero-fill days without shipments)"
        )
    units = sorted(d[unit].dropna().unique())
    # a national campaign's fixed cost is split over every unit it runs in, also those not
    # analysed here (e.g. when ``daily`` holds one region of a national dataset)
    split_units = sorted(set(national_units)) if national_units is not None else units
    camp = _expand_campaigns(
        campaigns, split_units, campaign_id=campaign_id, unit=unit, start=start, end=end
    )
    camp = camp[camp[unit].isin(units)]
    if camp.empty:
        raise ValueError("campaigns: no campaign runs in any unit of `daily`")
    pool = None
    if controls is not None:
        if controls != "regions":
            raise ValueError(f"controls must be None or 'regions', got {controls!r}")
        pd_ = d if control_daily is None else control_daily.copy()
        _require(pd_, [date, unit, metric], "control_daily")
        pd_[date] = pd.to_datetime(pd_[date])
        if pd_.duplicated([unit, date]).any():
            raise ValueError(f"control_daily: duplicate ({unit}, {date}) rows")
        pool_units = sorted(pd_[unit].dropna().unique())
        pool_camp = _expand_campaigns(
            campaigns, pool_units, campaign_id=campaign_id, unit=unit, start=start, end=end
        )
        pool = (pd_, pool_camp[pool_camp[unit].isin(pool_units)], pool_units)
    from threadpoolctl import threadpool_limits

    # hundreds of small least-squares fits: multi-threaded BLAS only adds contention here
    with threadpool_limits(limits=1, user_api="blas"):
        return _estimate(
            d, camp, units, metric=metric, date=date, unit=unit, campaign_id=campaign_id,
            start=start, end=end, pull_forward_days=pull_forward_days,
            new_customers=new_customers, discount_cost=discount_cost, fixed_cost=fixed_cost,
            min_pre_days=min_pre_days, short_pre=short_pre, alpha=alpha, pool=pool,
            fit_kw=dict(scale=scale, fourier=fourier, trend=trend, festivals=festivals,
                        hac_lags=hac_lags, ar_order=ar_order, vcov_type=vcov_type,
                        identify=identify),
        )  # fmt: skip


def _estimate(
    d: pd.DataFrame,
    camp: pd.DataFrame,
    units: list,
    *,
    metric: str,
    date: str,
    unit: str,
    campaign_id: str,
    start: str,
    end: str,
    pull_forward_days: int,
    new_customers: str | None,
    discount_cost: pd.DataFrame | None,
    fixed_cost: str | None,
    min_pre_days: int,
    short_pre: str,
    alpha: float,
    fit_kw: dict[str, Any],
    pool: tuple[pd.DataFrame, pd.DataFrame, list] | None = None,
) -> TableResult:
    q = stats.norm.ppf(1 - alpha / 2)
    control_fits: dict[tuple[Any, Any], Any] = {}
    all_warnings: list[str] = []
    rows: list[dict[str, Any]] = []
    fits: dict[str, Any] = {}
    for u, cu in camp.groupby(unit, sort=True):
        du = d[d[unit] == u].sort_values(date)
        dates = pd.DatetimeIndex(du[date])
        full = pd.date_range(dates.min(), dates.max(), freq="D")
        if len(full) != len(dates):
            raise ValueError(
                f"daily: unit {u!r} has {len(full) - len(dates)} missing days between "
                f"{dates.min().date()} and {dates.max().date()}; zero-fill days without "
                "shipments (features.daily_series does)"
            )
        outside = cu[(cu[start] < dates.min()) | (cu[end] > dates.max())]
        if len(outside):
            ex = outside.iloc[0]
            raise ValueError(
                f"campaigns: {len(outside)} campaigns in {u!r} lie outside the data range "
                f"{dates.min().date()} .. {dates.max().date()}, e.g. {ex[campaign_id]!r} "
                f"({ex[start].date()} .. {ex[end].date()})"
            )
        n = len(dates)
        ids = list(cu[campaign_id])
        camp_days = np.zeros((len(cu), n), dtype=bool)
        post_days = np.zeros((len(cu), n), dtype=bool)
        truncated = []
        for i, (_, r) in enumerate(cu.iterrows()):
            s_i = (r[start] - dates[0]).days
            e_i = (r[end] - dates[0]).days
            pf_end = e_i + pull_forward_days
            if pf_end > n - 1:
                truncated.append(r[campaign_id])
            camp_days[i, s_i : e_i + 1] = True
            post_days[i, e_i + 1 : min(pf_end, n - 1) + 1] = True
        if truncated:
            all_warnings.append(
                f"{u}: the pull-forward window of {len(truncated)} campaign(s) runs past the "
                f"data end and is truncated: {truncated[:5]}"
            )
        window = camp_days | post_days
        ov = (window.astype(int) @ window.T.astype(int)) > 0
        overlap_pairs = [
            (ids[i], ids[j]) for i in range(len(ids)) for j in range(i + 1, len(ids)) if ov[i, j]
        ]
        if overlap_pairs:
            all_warnings.append(
                f"{u}: {len(overlap_pairs)} pairs of campaign windows (campaign + "
                f"{pull_forward_days} pull-forward days) overlap, e.g. {overlap_pairs[:3]}; "
                "their effects are separated by the model (multiplicative lifts), which rests "
                "on each campaign having one constant lift over its days"
            )
        overlapped = {c for pair in overlap_pairs for c in pair}
        free = ~window.any(axis=0)
        short = []
        for i, (_, r) in enumerate(cu.iterrows()):
            s_i = (r[start] - dates[0]).days
            pre = int(free[:s_i].sum())
            if pre < min_pre_days:
                if short_pre == "raise":
                    raise ValueError(
                        f"campaigns: campaign {r[campaign_id]!r} in {u!r} has only {pre} "
                        f"non-campaign days before its start {r[start].date()} (min_pre_days="
                        f"{min_pre_days}); the pre-period is too short for a counterfactual "
                        "(short_pre='skip' leaves such campaigns out with a warning)"
                    )
                short.append(i)
        if short:
            all_warnings.append(
                f"{u}: {len(short)} campaign(s) with fewer than {min_pre_days} non-campaign "
                f"days before their start left out: {[ids[i] for i in short][:5]} (their "
                "windows are still modelled)"
            )
        interventions = {c: (camp_days[i], post_days[i]) for i, c in enumerate(ids)}
        fit = fit_its(dates, du[metric].to_numpy(), interventions, region=u, **fit_kw)
        fits[u] = fit
        shared = [c for c, (lc, _) in fit.effects.items() if lc is not None and sum(
            1 for v in fit.effects.values() if v[0] == lc) > 1]  # fmt: skip
        if shared:
            all_warnings.append(
                f"{u}: campaigns {shared[:4]} run on exactly the same days; each row reports "
                "their joint effect (not separately identified)"
            )
        if fit.dropped:
            all_warnings.append(
                f"{u}: calendar terms {fit.dropped} cannot be separated from the campaign "
                "windows and were dropped; their effect is absorbed by the campaigns"
            )
        fit_new = None
        if new_customers is not None:
            fit_new = fit_its(
                dates, du[new_customers].to_numpy(), interventions, region=u,
                **{**fit_kw, "scale": "level"},
            )  # fmt: skip
        by_campaign: dict[Any, tuple[Any, Any, list]] = {}
        if pool is not None:
            by_campaign = _regions_as_controls(
                u, dates, du, cu, camp_days, post_days, interventions, short, pool,
                fit=fit, fit_new=fit_new, metric=metric, new_customers=new_customers,
                date=date, unit=unit, campaign_id=campaign_id, start=start, end=end,
                pull_forward_days=pull_forward_days, min_pre_days=min_pre_days,
                fit_kw=fit_kw, warn=all_warnings,
            )  # fmt: skip
            control_fits.update({(c, u): v[0] for c, v in by_campaign.items() if v[2]})
        for i, (_, r) in enumerate(cu.iterrows()):
            if i in short:
                continue
            f_m, f_n, ctrl = by_campaign.get(r[campaign_id], (fit, fit_new, []))
            eff = f_m.effect(r[campaign_id])
            est, se = eff["estimate"], eff["se"]
            lo, hi, p = normal_interval(est, se, alpha=alpha)
            row: dict[str, Any] = {
                campaign_id: r[campaign_id],
                unit: u,
                "estimate": est,
                "se": se,
                "ci_low": lo,
                "ci_high": hi,
                "pvalue": p,
                "n": n,
                "campaign_part": eff["campaign_part"],
                "pull_forward": eff["pull_forward"],
                "pull_forward_se": eff["pull_forward_se"],
                "observed": eff["observed"],
                "baseline": eff["baseline"],
                "lift": est / eff["baseline"] if eff["baseline"] else np.nan,
                "start_date": r[start],
                "end_date": r[end],
                "duration": int((r[end] - r[start]).days) + 1,
                "national": bool(r["_national"]),
                "overlap": r[campaign_id] in overlapped,
                "scale": "log" if fit.log else "level",
            }
            if pool is not None:
                row["control_regions"] = ",".join(map(str, ctrl))
                cc = [k for k, c in enumerate(f_m.columns) if c.startswith("control:")]
                row["control_coef"] = float(f_m.beta[cc[0]]) if ctrl and cc else np.nan
            for col in _DESIGN_COLUMNS:
                if col in cu.columns:
                    row[col] = r[col]
            if f_n is not None:
                e2 = f_n.effect(r[campaign_id])
                row["incremental_new_customers"] = e2["estimate"]
                row["new_customers_se"] = e2["se"]
                row["new_customers_ci_low"] = e2["estimate"] - q * e2["se"]
                row["new_customers_ci_high"] = e2["estimate"] + q * e2["se"]
            rows.append(row)
    table = pd.DataFrame(rows)
    if metric == "revenue":
        table = _add_costs(
            table, camp, discount_cost, fixed_cost, campaign_id=campaign_id, unit=unit
        )
        table["net_gain"] = table["estimate"] - table["fixed_cost"]
        table["net_gain_ci_low"] = table["ci_low"] - table["fixed_cost"]
        table["net_gain_ci_high"] = table["ci_high"] - table["fixed_cost"]
        # cost is observed, so the ROI interval is the net-gain interval divided by it
        with np.errstate(divide="ignore", invalid="ignore"):
            cost = table["cost"].where(table["cost"] > 0)
            table["roi"] = table["net_gain"] / cost
            table["roi_ci_low"] = table["net_gain_ci_low"] / cost
            table["roi_ci_high"] = table["net_gain_ci_high"] / cost
        if "incremental_new_customers" in table.columns:
            table = _cost_per_new(table)
    if table["overlap"].any():
        all_warnings.append(
            f"{int(table['overlap'].sum())} of {len(table)} campaign rows overlap another "
            "campaign's window; their separation rests on the constant-lift model"
        )
    table = table.set_index([campaign_id, unit])
    return TableResult(
        table=table,
        method="its",
        alpha=alpha,
        estimand=f"incremental {metric} over campaign + {pull_forward_days}-day pull-forward",
        label=f"campaign effects on {metric}",
        diagnostics={
            "pull_forward_days": pull_forward_days,
            "settings": fit_kw,
            "regressors": {u: f.columns[: f.n_calendar] for u, f in fits.items()},
            "ar_order": {u: f.ar_order for u, f in fits.items()},
            "fits": fits,
            "controls": "regions" if pool is not None else None,
            "control_fits": control_fits,
        },
        warnings=all_warnings,
    )


def _regions_as_controls(
    u: Any,
    dates: pd.DatetimeIndex,
    du: pd.DataFrame,
    cu: pd.DataFrame,
    camp_days: np.ndarray,
    post_days: np.ndarray,
    interventions: dict[str, tuple[np.ndarray, np.ndarray]],
    short: list[int],
    pool: tuple[pd.DataFrame, pd.DataFrame, list],
    *,
    fit: ITSFit,
    fit_new: ITSFit | None,
    metric: str,
    new_customers: str | None,
    date: str,
    unit: str,
    campaign_id: str,
    start: str,
    end: str,
    pull_forward_days: int,
    min_pre_days: int,
    fit_kw: dict[str, Any],
    warn: list[str],
) -> dict[Any, tuple[ITSFit, ITSFit | None, list]]:
    """Refit unit ``u`` with the other regions' summed metric as a counterfactual covariate.

    Returns campaign -> (metric fit, new-customer fit, control units) for the provincial
    campaigns of ``u`` that have clean controls; the others keep the ITS-only fit.
    """
    pool_d, pool_camp, pool_units = pool
    n = len(dates)
    series: dict[Any, tuple[np.ndarray, np.ndarray | None, np.ndarray]] = {}
    for j in pool_units:
        if j == u:
            continue
        dj = pool_d[pool_d[unit] == j].set_index(date).reindex(dates)
        yj = dj[metric].to_numpy(dtype=float)
        if np.isnan(yj).any():
            continue  # not observed on every day of u: cannot serve as its control
        nj = None
        if new_customers is not None and new_customers in dj.columns:
            nj = dj[new_customers].to_numpy(dtype=float)
            nj = None if np.isnan(nj).any() else nj
        win = np.zeros(n, bool)
        for _, c in pool_camp[pool_camp[unit] == j].iterrows():
            s_i = (c[start] - dates[0]).days
            e_i = (c[end] - dates[0]).days + pull_forward_days
            win[max(s_i, 0) : max(min(e_i, n - 1) + 1, 0)] = True
        series[j] = (yj, nj, win)
    own = (camp_days | post_days).any(axis=0)
    groups: dict[tuple, list[int]] = {}
    national, no_clean = [], []
    for i, (_, r) in enumerate(cu.iterrows()):
        if i in short:
            continue
        if r["_national"]:
            national.append(r[campaign_id])
            continue
        w = camp_days[i] | post_days[i]
        ctrl = tuple(j for j, (_, _, win) in series.items() if not win[w].any())
        if not ctrl:
            no_clean.append(r[campaign_id])
            continue
        groups.setdefault(ctrl, []).append(i)
    out: dict[Any, tuple[ITSFit, ITSFit | None, list]] = {}
    y = du[metric].to_numpy(dtype=float)
    for ctrl, idx in groups.items():
        # days a control is in its own campaign window (and u is not) would carry that
        # campaign into the covariate: one dummy each takes them out of the fit
        busy = np.zeros(n, bool)
        for j in ctrl:
            busy |= series[j][2]
        nuisance = np.flatnonzero(busy & ~own)
        clean = ~(own | busy)
        ids = [cu.iloc[i][campaign_id] for i in idx]
        too_short = [
            c for i, c in zip(idx, ids, strict=True)
            if clean[: (cu.iloc[i][start] - dates[0]).days].sum() < min_pre_days
        ]  # fmt: skip
        no_clean += too_short
        if len(too_short) == len(ids):
            continue
        iv = dict(interventions)
        zero = np.zeros(n, bool)
        for t in nuisance:
            one = zero.copy()
            one[t] = True
            iv[f"_control_busy_{t}"] = (one, zero)
        x = np.sum([series[j][0] for j in ctrl], axis=0)
        if fit.log and not (x > 0).all():
            # a log-scale fit needs the log of the controls' sum: not defined on zero days
            no_clean += [c for c in ids if c not in too_short]
            continue
        f_m = fit_its(
            dates, y, iv, region=u, covariates={"regions": np.log(x) if fit.log else x},
            **{**fit_kw, "scale": "log" if fit.log else "level"},
        )  # fmt: skip
        f_n = fit_new
        if fit_new is not None and all(series[j][1] is not None for j in ctrl):
            xn = np.sum([series[j][1] for j in ctrl], axis=0)
            f_n = fit_its(
                dates, du[new_customers].to_numpy(dtype=float), iv, region=u,
                covariates={"regions": xn}, **{**fit_kw, "scale": "level"},
            )  # fmt: skip
        for c in ids:
            if c not in too_short:
                out[c] = (f_m, f_n, list(ctrl))
    if national:
        warn.append(
            f"{u}: {len(national)} national campaign(s) run in every region at once, so no "
            "region can serve as their control; they keep the ITS-only estimate "
            "(control_regions empty)"
        )
    if no_clean:
        warn.append(
            f"{u}: {len(no_clean)} provincial campaign(s) have no region free of campaign "
            f"windows on their days (or fewer than {min_pre_days} clean pre-period days, or "
            "a control sum of 0 on some day in a log-scale fit): "
            f"ITS-only estimate, control_regions empty: {no_clean[:5]}"
        )
    return out


def _add_costs(
    table: pd.DataFrame,
    camp: pd.DataFrame,
    discount_cost: pd.DataFrame | None,
    fixed_cost: str | None,
    *,
    campaign_id: str,
    unit: str,
) -> pd.DataFrame:
    if discount_cost is not None:
        _require(discount_cost, [campaign_id, unit, "discount_cost"], "discount_cost")
        dc = discount_cost[[campaign_id, unit, "discount_cost"]]
        table = table.merge(dc, on=[campaign_id, unit], how="left")
        table["discount_cost"] = table["discount_cost"].fillna(0.0)
    else:
        table["discount_cost"] = 0.0
    if fixed_cost is not None and fixed_cost in camp.columns:
        fc = camp[[campaign_id, unit, fixed_cost, "_n_units"]].copy()
        fc["fixed_cost"] = fc[fixed_cost].fillna(0.0).astype(float) / fc["_n_units"]
        table = table.merge(fc[[campaign_id, unit, "fixed_cost"]], on=[campaign_id, unit])
    else:
        table["fixed_cost"] = 0.0
    table["cost"] = table["discount_cost"] + table["fixed_cost"]
    return table


def _cost_per_new(table: pd.DataFrame) -> pd.DataFrame:
    e = table["incremental_new_customers"]
    lo, hi = table["new_customers_ci_low"], table["new_customers_ci_high"]
    cost = table["cost"]
    with np.errstate(divide="ignore", invalid="ignore"):
        table["cost_per_new_customer"] = np.where(e > 0, cost / e, np.nan)
        # invert the interval: cost / count is decreasing in the count
        table["cost_per_new_customer_ci_low"] = np.where(hi > 0, cost / hi, np.nan)
        table["cost_per_new_customer_ci_high"] = np.where(
            lo > 0, cost / lo, np.where(hi > 0, np.inf, np.nan)
        )
    return table


def campaign_discounts(ds: Any) -> pd.DataFrame:
    """Discounts paid on each campaign's coupons per region, summed in the engine."""
    s = ds.table("shipments")
    t = s.filter(s.campaign_id.notnull())
    agg = t.group_by(["campaign_id", "region_id"]).aggregate(
        discount_cost=t.discount.sum(), campaign_shipments=t.count()
    )
    return agg.to_pandas()


def campaign_effects(
    ds: Any,
    region: str | Sequence[str] | None = None,
    metric: str = "revenue",
    method: str = "its",
    alpha: float = 0.05,
    *,
    pull_forward_days: int = DEFAULT_PULL_FORWARD_DAYS,
    daily: pd.DataFrame | None = None,
    **kwargs: Any,
) -> TableResult:
    """Incremental revenue (or another daily metric), cost and ROI of every campaign.

    A thin wrapper of :func:`estimate_campaign_effects` on a Dataset: builds the daily series
    per region in the engine (one pass), the campaigns table and the discounts paid on each
    campaign's coupons.

    Parameters
    ----------
    ds : Dataset
        Needs ``shipments`` and ``campaigns``.
    region : str or list of str, optional
        Regions to report; all regions in the data by default.
    metric : str
        A ``features.daily_series`` metric (``"revenue"``, ``"shipments"``, ...).
    method : {"its"}
        Interrupted time series counterfactual (see module documentation).
    daily : DataFrame, optional
        A precomputed ``daily_series(ds, metrics=(metric, "new_customers"))`` to avoid a rescan.
    controls : {None, "regions"}, via ``**kwargs``
        ``"regions"``: other regions free of campaigns on a provincial campaign's days serve as
        its controls (see :func:`estimate_campaign_effects`); drawn from all regions of ``ds``.
    **kwargs
        Passed to :func:`estimate_campaign_effects`.
    """
    if method != "its":
        raise ValueError(f"method must be 'its', got {method!r}")
    if not ds.has("campaigns"):
        raise ValueError("campaign_effects: the dataset has no 'campaigns' table")
    from ..features.daily import daily_series

    if daily is None:
        metrics = tuple(dict.fromkeys((metric, "new_customers")))
        daily = daily_series(ds, by=("region_id",), metrics=metrics)
    campaigns = ds.to_pandas("campaigns")
    if kwargs.get("controls") is not None:
        # control regions come from every region, also those not reported
        kwargs.setdefault("control_daily", daily)
    if region is not None:
        regions = [region] if isinstance(region, str) else list(region)
        unknown = sorted(set(regions) - set(daily["region_id"]))
        if unknown:
            raise ValueError(
                f"campaign_effects: regions {unknown} have no shipments in the dataset "
                f"(present: {', '.join(sorted(daily['region_id'].unique()))})"
            )
        kwargs.setdefault("national_units", sorted(daily["region_id"].unique()))
        daily = daily[daily["region_id"].isin(regions)]
    discounts = campaign_discounts(ds) if metric == "revenue" else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return estimate_campaign_effects(
            daily,
            campaigns,
            metric=metric,
            pull_forward_days=pull_forward_days,
            discount_cost=discounts,
            alpha=alpha,
            **kwargs,
        )


def placebo_campaigns(
    daily: pd.DataFrame,
    campaigns: pd.DataFrame,
    *,
    length: int = 7,
    n_per_unit: int = 10,
    seed: int = 0,
    date: str = "date",
    unit: str = "region_id",
    campaign_id: str = "campaign_id",
    start: str = "start_date",
    end: str = "end_date",
    pull_forward_days: int = DEFAULT_PULL_FORWARD_DAYS,
    **kwargs: Any,
) -> TableResult:
    """Placebo check of the counterfactual: fake campaigns on campaign-free days.

    Places up to ``n_per_unit`` fake campaigns of ``length`` days (plus their pull-forward
    window) per unit inside stretches free of real campaign windows, estimates them together
    with the real ones and returns the fake rows: their true effect is 0, so about ``alpha`` of
    them should be significant and their z-scores should have standard deviation about 1.
    ``diagnostics`` holds ``rejection_rate`` and ``z_sd``.
    """
    d = daily.copy()
    d[date] = pd.to_datetime(d[date])
    camps = campaigns.copy()
    camps[start] = pd.to_datetime(camps[start])
    camps[end] = pd.to_datetime(camps[end])
    rng = np.random.default_rng(seed)
    fakes = []
    span = length + pull_forward_days
    for u, du in d.groupby(unit):
        dates = pd.DatetimeIndex(du[date].sort_values())
        busy = np.zeros(len(dates), bool)
        mine = camps[camps[unit].isna() | (camps[unit] == u)]
        for _, c in mine.iterrows():
            lo = (c[start] - dates[0]).days - pull_forward_days  # keep fakes' windows clear too
            hi = (c[end] - dates[0]).days + pull_forward_days
            busy[max(lo, 0) : max(hi + 1, 0)] = True
        # candidate starts: the whole fake window free, after a month of data
        ok = np.array(
            [not busy[i : i + span].any() if i + span <= len(dates) else False
             for i in range(len(dates))]
        )  # fmt: skip
        ok[:28] = False
        placed = 0
        for i in rng.permutation(np.flatnonzero(ok)):
            if placed >= n_per_unit or busy[i : i + span].any():
                continue
            busy[i : i + span] = True
            fakes.append({campaign_id: f"placebo-{u}-{placed}", unit: u,
                          start: dates[i], end: dates[i + length - 1]})  # fmt: skip
            placed += 1
    if not fakes:
        raise ValueError("placebo_campaigns: no campaign-free stretch is long enough")
    fake = pd.DataFrame(fakes)
    res = estimate_campaign_effects(
        d, pd.concat([camps, fake], ignore_index=True), date=date, unit=unit,
        campaign_id=campaign_id, start=start, end=end, pull_forward_days=pull_forward_days,
        short_pre="skip", **kwargs,
    )  # fmt: skip
    ids = set(fake[campaign_id])
    table = res.table[res.table.index.get_level_values(0).isin(ids)]
    z = table["estimate"] / table["se"]
    return TableResult(
        table=table,
        method="its placebo",
        alpha=res.alpha,
        estimand="effect of fake campaigns (truly 0)",
        label="placebo campaigns",
        diagnostics={
            "rejection_rate": float((table["pvalue"] < res.alpha).mean()),
            "z_sd": float(z.std(ddof=1)) if len(z) > 1 else np.nan,
            "n_placebos": len(table),
        },
        warnings=[w for w in res.warnings if "placebo" not in w],
    )
