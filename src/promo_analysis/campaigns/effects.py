"""Campaign effects by interrupted time series: counterfactual from non-campaign days.

For each region the daily metric is regressed, on the days outside every campaign window
(campaign days plus the post-campaign pull-forward window), on weekday, official holidays,
make-up workdays, the Spring Festival express slowdown, a trend and annual Fourier terms. The
fit predicts the no-campaign counterfactual on the campaign windows; the incremental metric of a
campaign is the sum of observed minus predicted over its window.

Uncertainty of that sum has two parts, both computed honestly under autocorrelation:

* the day-to-day noise of the window itself: a quadratic form in the residual autocovariances
  (estimated from pairs of training days ``k`` days apart, Bartlett-tapered at ``hac_lags``);
* the error of the fitted counterfactual: ``g' V g`` with ``V`` the Newey-West (HAC)
  covariance of the coefficients and ``g`` the window's summed regressors.

Overlapping windows in one region: each day's excess is split equally between the campaigns
whose windows cover it (so campaign totals add up to the region's total excess); a warning
lists the overlapping pairs.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from ..calendar import THEMES, calendar_features
from ..regions import REGIONS
from ..results import TableResult, normal_interval

__all__ = [
    "estimate_campaign_effects",
    "campaign_effects",
    "its_counterfactual",
    "campaign_discounts",
    "DEFAULT_PULL_FORWARD_DAYS",
]

#: days after a campaign's end counted as its pull-forward (post-campaign dip) window
DEFAULT_PULL_FORWARD_DAYS = 7

_DESIGN_COLUMNS = (
    "name",
    "theme",
    "level",
    "target_segment",
    "coupon_threshold",
    "coupon_face_value",
)


@dataclass
class _Fit:
    """A fitted counterfactual model for one series."""

    dates: pd.DatetimeIndex
    y: np.ndarray
    X: np.ndarray
    columns: list[str]
    train: np.ndarray  # bool mask
    beta: np.ndarray
    vcov: np.ndarray
    resid: np.ndarray  # on the model scale, 0 off the training days
    gamma: np.ndarray  # residual autocovariances at lags 0.. (AR(p)-implied)
    log: bool
    smear: float

    @property
    def yhat(self) -> np.ndarray:
        eta = self.X @ self.beta
        return np.exp(eta) * self.smear if self.log else eta

    def window_total(self, weights: np.ndarray) -> tuple[float, float]:
        """Weighted sum of observed minus counterfactual, and its standard error."""
        yhat = self.yhat
        est = float(np.sum(weights * (self.y - yhat)))
        a = weights * yhat if self.log else weights  # level-scale loading of each day's error
        g = (a[:, None] * self.X).sum(axis=0)
        var_fit = float(g @ self.vcov @ g)
        var_noise = _quad_toeplitz(a, self.gamma)
        if var_noise < 0:  # a tapered sample autocovariance can still be indefinite with gaps
            var_noise = float(a @ a) * self.gamma[0]
        return est, float(np.sqrt(max(var_fit, 0.0) + var_noise))


def _quad_toeplitz(a: np.ndarray, gamma: np.ndarray) -> float:
    """``a' T a`` with ``T[s, t] = gamma[|s - t|]`` (zero beyond the last lag)."""
    idx = np.flatnonzero(a)
    if idx.size == 0:
        return 0.0
    lo, hi = idx[0], idx[-1] + 1
    a = a[lo:hi]
    total = gamma[0] * float(a @ a)
    for k in range(1, min(len(gamma), len(a))):
        total += 2 * gamma[k] * float(a[k:] @ a[:-k])
    return total


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
    if trend in ("linear", "quadratic"):
        X["trend"] = t
    if trend == "quadratic":
        X["trend2"] = t**2
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
    """AR order (0..len(acov)-1) minimising AIC of the Yule-Walker innovation variance."""
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
        aic = n * np.log(sigma2) + 2 * p
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


def its_counterfactual(
    dates: pd.DatetimeIndex,
    y: np.ndarray,
    train: np.ndarray,
    *,
    region: str | None = None,
    scale: str = "auto",
    fourier: int = 3,
    trend: str = "linear",
    festivals: bool = False,
    hac_lags: int = 14,
    ar_order: int | None = None,
    vcov_type: str = "ar",
) -> _Fit:
    """Fit the no-campaign model on ``train`` days of one daily series (dates consecutive).

    Returns a fit object with ``yhat`` (counterfactual for every day) and
    ``window_total(weights)`` (incremental sum and its HAC standard error).
    """
    y = np.asarray(y, dtype=float)
    train = np.asarray(train, dtype=bool)
    Xdf = _design(dates, region, fourier=fourier, trend=trend, festivals=festivals)
    # drop regressors that do not vary on the training days (e.g. a slowdown fully inside
    # campaign windows) -- they cannot be estimated from non-campaign days
    keep = ["const"] + [
        c for c in Xdf.columns if c != "const" and np.ptp(Xdf.loc[train, c].to_numpy()) > 0
    ]
    X = Xdf[keep].to_numpy()
    if scale == "auto":
        scale = "log" if (y[train] > 0).all() else "level"
    if scale not in ("log", "level"):
        raise ValueError(f"scale must be 'auto', 'log' or 'level', got {scale!r}")
    log = scale == "log"
    if log and (y[train] <= 0).any():
        raise ValueError(
            f"scale='log' needs a positive metric on every training day; "
            f"{int((y[train] <= 0).sum())} days are <= 0"
        )
    z = np.log(y) if log else y.copy()
    Xt, zt = X[train], z[train]
    beta, _, p, _ = np.linalg.lstsq(Xt, zt, rcond=None)
    resid = np.where(train, z - X @ beta, 0.0)
    n = int(train.sum())
    # residual autocovariances from pairs of training days k apart (gaps contribute nothing)
    m = int(hac_lags)
    mask = train.astype(float)
    acov = np.zeros(max(m, ar_order or 0) + 1)
    for k in range(len(acov)):
        pairs = _lagged_sum(mask, k)
        if pairs > 0:
            acov[k] = _lagged_sum(resid, k) / pairs
    acov *= n / max(n - p, 1)  # degrees-of-freedom correction of the variance
    order = _select_ar_order(acov, n) if ar_order is None else int(ar_order)
    gamma = _ar_autocovariance(acov[: order + 1], n_lags=len(y))
    bread = np.linalg.pinv(Xt.T @ Xt)
    if vcov_type == "hac":
        # Newey-West covariance of beta (Bartlett kernel over calendar lags)
        Z = X * resid[:, None]
        S = _lagged_sum(Z, 0)
        for k in range(1, m + 1):
            G = _lagged_sum(Z, k)
            S += (1 - k / (m + 1)) * (G + G.T)
        vcov = bread @ S @ bread * n / max(n - p, 1)
    elif vcov_type == "ar":
        # sandwich with the AR-implied error covariance over the training days
        Xm = X * mask[:, None]
        S = gamma[0] * _lagged_sum(Xm, 0)
        small = np.flatnonzero(np.abs(gamma) < 1e-4 * gamma[0]) if gamma[0] > 0 else [1]
        last = int(small[0]) if len(small) else len(gamma)
        for k in range(1, last):
            G = _lagged_sum(Xm, k)
            S += gamma[k] * (G + G.T)
        vcov = bread @ S @ bread
    else:
        raise ValueError(f"vcov_type must be 'ar' or 'hac', got {vcov_type!r}")
    smear = float(np.mean(np.exp(resid[train]))) if log else 1.0
    return _Fit(
        dates=dates,
        y=y,
        X=X,
        columns=keep,
        train=train,
        beta=beta,
        vcov=vcov,
        resid=resid,
        gamma=gamma,
        log=log,
        smear=smear,
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
    trend: str = "linear",
    festivals: bool = False,
    hac_lags: int = 14,
    ar_order: int | None = None,
    vcov_type: str = "ar",
    alpha: float = 0.05,
    short_pre: str = "raise",
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
    short_pre : {"raise", "skip"}
        What to do with a campaign whose pre-period is shorter: raise a ``ValueError``, or
        leave it out of the table with a warning.
    scale : {"auto", "log", "level"}
        Model the metric in logs (multiplicative weekday and season effects; default when the
        metric is positive on every training day) or in levels.
    fourier, trend, festivals, hac_lags, ar_order
        Annual Fourier pairs, ``"none"``/``"linear"``/``"quadratic"`` trend, whether to add
        festival-day dummies (only identified when festivals also occur outside campaigns),
        the Bartlett bandwidth in days of the Newey-West coefficient covariance, and the order
        of the autoregression fitted to the residuals for the window-noise variance.
    alpha : float
        1 - confidence level.

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
    camp = _expand_campaigns(
        campaigns, units, campaign_id=campaign_id, unit=unit, start=start, end=end
    )
    camp = camp[camp[unit].isin(units)]
    if camp.empty:
        raise ValueError("campaigns: no campaign runs in any unit of `daily`")
    q = stats.norm.ppf(1 - alpha / 2)
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
        cover = np.zeros((len(cu), n))  # campaign x day: 1 inside the window
        camp_days = np.zeros((len(cu), n), dtype=bool)
        truncated = []
        for i, (_, r) in enumerate(cu.iterrows()):
            s_i = (r[start] - dates[0]).days
            e_i = (r[end] - dates[0]).days
            pf_end = e_i + pull_forward_days
            if pf_end > n - 1:
                truncated.append(r[campaign_id])
            cover[i, s_i : min(pf_end, n - 1) + 1] = 1
            camp_days[i, s_i : e_i + 1] = True
        if truncated:
            all_warnings.append(
                f"{u}: the pull-forward window of {len(truncated)} campaign(s) runs past the "
                f"data end and is truncated: {truncated[:5]}"
            )
        n_cover = cover.sum(axis=0)
        train = n_cover == 0
        overlap_pairs = []
        ov = (cover @ cover.T) > 0
        ids = list(cu[campaign_id])
        for i in range(len(ids)):
            for j in range(i + 1, len(ids)):
                if ov[i, j]:
                    overlap_pairs.append((ids[i], ids[j]))
        if overlap_pairs:
            all_warnings.append(
                f"{u}: {len(overlap_pairs)} pairs of campaign windows (campaign + "
                f"{pull_forward_days} pull-forward days) overlap, e.g. {overlap_pairs[:3]}; "
                "each shared day's excess is split equally between them"
            )
        overlapped = {c for pair in overlap_pairs for c in pair}
        short = []
        for i, (_, r) in enumerate(cu.iterrows()):
            s_i = (r[start] - dates[0]).days
            pre = int(train[:s_i].sum())
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
                "windows still stay out of the training days)"
            )
        fit_kw = dict(
            region=u, scale=scale, fourier=fourier, trend=trend, festivals=festivals,
            hac_lags=hac_lags, ar_order=ar_order, vcov_type=vcov_type,
        )  # fmt: skip
        fit = its_counterfactual(dates, du[metric].to_numpy(), train, **fit_kw)
        fits[u] = fit
        fit_new = None
        if new_customers is not None:
            fit_new = its_counterfactual(
                dates, du[new_customers].to_numpy(), train, **{**fit_kw, "scale": "level"}
            )
        share = np.divide(cover, n_cover, out=np.zeros_like(cover), where=n_cover > 0)
        yhat = fit.yhat
        for i, (_, r) in enumerate(cu.iterrows()):
            if i in short:
                continue
            w = share[i]
            est, se = fit.window_total(w)
            w_c = np.where(camp_days[i], w, 0.0)
            w_pf = np.where(camp_days[i], 0.0, w)
            part, _ = fit.window_total(w_c)
            pf, pf_se = fit.window_total(w_pf)
            baseline = float(np.sum(w * yhat))
            lo, hi, p = normal_interval(est, se, alpha=alpha)
            row: dict[str, Any] = {
                campaign_id: r[campaign_id],
                unit: u,
                "estimate": est,
                "se": se,
                "ci_low": lo,
                "ci_high": hi,
                "pvalue": p,
                "n": int(train.sum()),
                "campaign_part": part,
                "pull_forward": pf,
                "pull_forward_se": pf_se,
                "baseline": baseline,
                "lift": est / baseline if baseline else np.nan,
                "start_date": r[start],
                "end_date": r[end],
                "duration": int((r[end] - r[start]).days) + 1,
                "national": bool(r["_national"]),
                "overlap": r[campaign_id] in overlapped,
                "scale": "log" if fit.log else "level",
            }
            for col in _DESIGN_COLUMNS:
                if col in cu.columns:
                    row[col] = r[col]
            if fit_new is not None:
                e2, s2 = fit_new.window_total(w)
                row["incremental_new_customers"] = e2
                row["new_customers_se"] = s2
                row["new_customers_ci_low"] = e2 - q * s2
                row["new_customers_ci_high"] = e2 + q * s2
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
            "campaign's window; their split is an attribution rule, not an estimate"
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
            "hac_lags": hac_lags,
            "regressors": {u: f.columns for u, f in fits.items()},
            "training_days": {u: int(f.train.sum()) for u, f in fits.items()},
            "fits": fits,
        },
        warnings=all_warnings,
    )


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
    if region is not None:
        regions = [region] if isinstance(region, str) else list(region)
        unknown = sorted(set(regions) - set(daily["region_id"]))
        if unknown:
            raise ValueError(
                f"campaign_effects: regions {unknown} have no shipments in the dataset "
                f"(present: {', '.join(sorted(daily['region_id'].unique()))})"
            )
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
