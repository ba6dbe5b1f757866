"""Habit formation: do customers acquired with a coupon keep sending, and at full price?

Definitions (documented in docs/methods.md, section 8):

* **coupon-acquired**: the customer's first parcel (earliest ``sent_at``) redeemed a coupon
  (``coupon_id`` not null); on an exact tie at the first instant the customer is
  coupon-acquired if any of the tied parcels used a coupon (the tie rule of every retention
  count); **organic** otherwise.
* **later parcels**: every parcel after the first.
* **full price**: a later parcel sent without a coupon (``coupon_id`` null).
* **window w**: the w days after the first parcel. Only customers whose first parcel is at
  least w days before the end of observation enter the window's estimates; the others are
  counted as excluded, never silently dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from promo_analysis.results import Estimate, TableResult, _html_block
from promo_analysis.retention.cox import CoxResult, cox
from promo_analysis.retention.survival import KaplanMeierResult, kaplan_meier

__all__ = ["habit_formation", "HabitResult", "ratio_share", "rate_difference", "value_by_acquisition"]

_GROUPS = ("coupon", "organic")


def ratio_share(numerator: np.ndarray, denominator: np.ndarray, *, weights=None,
                alpha: float = 0.05, label: str = "", estimand: str = "") -> Estimate:
    """Pooled share ``sum(w numerator) / sum(w denominator)`` over units (customers) with a
    linearisation (cluster-robust) standard error: parcels of one customer are not
    independent, customers are.

    ``se = sqrt(n / (n - 1) * sum(w_i^2 (y_i - R x_i)^2)) / sum(w_i x_i)`` over units with
    ``x_i > 0`` (``w = 1`` without ``weights``) -- the cluster-robust SE of a weighted
    intercept-only regression on parcel-level 0/1 data.
    """
    y = np.asarray(numerator, float)
    x = np.asarray(denominator, float)
    w = np.ones_like(x) if weights is None else np.asarray(weights, float)
    keep = x > 0
    y, x, w = y[keep], x[keep], w[keep]
    n = len(x)
    if n == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), float("nan"), 0,
                        "ratio (linearised)", alpha, estimand, label,
                        warnings=["no unit with a later parcel"])
    sw = float(w @ x)
    r = float(w @ y) / sw
    se = np.sqrt(n / (n - 1) * np.sum(w**2 * (y - r * x) ** 2)) / sw if n > 1 else np.nan
    return Estimate.from_normal(r, se, n=n, method="ratio (linearised)", alpha=alpha,
                                estimand=estimand, label=label,
                                extra={"parcels": float(x.sum())})


def rate_difference(y1: np.ndarray, y0: np.ndarray, *, alpha: float = 0.05,
                    label: str = "", estimand: str = "") -> Estimate:
    """Difference of two means (Welch / unpooled Wald SE) with both means in ``extra``."""
    y1 = np.asarray(y1, float)
    y0 = np.asarray(y0, float)
    m1, m0 = y1.mean(), y0.mean()
    se = np.sqrt(y1.var(ddof=1) / len(y1) + y0.var(ddof=1) / len(y0))
    return Estimate.from_normal(m1 - m0, se, n=len(y1) + len(y0), method="difference in means",
                                alpha=alpha, estimand=estimand, label=label,
                                extra={"mean_coupon": m1, "mean_organic": m0,
                                       "n_coupon": len(y1), "n_organic": len(y0)})


def _drop_meta(t: TableResult) -> TableResult:
    t.table = t.table.drop(columns=[c for c in ("label", "estimand", "method")
                                    if c in t.table.columns])
    return t


@dataclass
class HabitResult:
    """Coupon-acquired vs. organic customers.

    Attributes
    ----------
    customers : DataFrame
        One row per customer who sent: group, covariates, window counts, time to second parcel.
    repeat : TableResult
        Per window: share who sent again within w days, coupon minus organic (raw).
    repeat_adjusted : TableResult or None
        The same contrast adjusted for the covariates by ``causal.estimate_effect`` (ATT:
        among coupon-acquired customers; ``pom1``/``pom0`` are the adjusted rates).
    full_price : TableResult
        Share of later parcels sent without a coupon, by group and window (``all`` = whole
        observation), pooled over parcels with customer-clustered SEs.
    full_price_adjusted : Estimate or None
        Coupon-acquired minus organic full-price share (whole observation) with the organic
        customers reweighted to the coupon-acquired customers' covariates (ATT odds weights
        ``e / (1 - e)`` from ``causal.estimate_effect``'s propensity model);
        ``extra["organic_adjusted"]`` is the reweighted organic share.
    habit_share : Estimate
        Full-price share of coupon-acquired customers' later parcels, whole observation.
    habit_share_organic : Estimate
    km : KaplanMeierResult
        Time to second parcel (days) by group.
    cox : CoxResult
        Cox model of time to second parcel on coupon acquisition and the covariates.
    hazard_ratio : Estimate
        Hazard ratio of a second parcel, coupon-acquired vs. organic (from ``cox``).
    experimental : TableResult or None
        Randomized tests: long-run effect of each arm vs. control on parcels and full-price
        parcels within the largest window after assignment.
    """

    customers: pd.DataFrame
    repeat: TableResult
    repeat_adjusted: TableResult | None
    full_price: TableResult
    full_price_adjusted: Estimate | None
    habit_share: Estimate
    habit_share_organic: Estimate
    km: KaplanMeierResult
    cox: CoxResult
    hazard_ratio: Estimate
    experimental: TableResult | None
    window_days: tuple[int, ...]
    alpha: float = 0.05
    diagnostics: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    method = "habit formation"

    def summary(self) -> pd.DataFrame:
        """The headline numbers, one row each."""
        rows = [
            ("hazard ratio of a 2nd parcel (coupon vs organic, adjusted)", self.hazard_ratio),
            ("full-price share of later parcels, coupon-acquired", self.habit_share),
            ("full-price share of later parcels, organic", self.habit_share_organic),
        ]
        if self.full_price_adjusted is not None:
            rows.append(("full-price share: coupon - organic (covariate-reweighted)",
                         self.full_price_adjusted))
        for w in self.window_days:
            if w in self.repeat.table.index:
                r = self.repeat.table.loc[w]
                rows.append((f"repeat within {w} d: coupon - organic (raw)", Estimate(
                    r["estimate"], r["se"], r["ci_low"], r["ci_high"], int(r["n"]),
                    "difference in means", self.alpha, pvalue=r["pvalue"])))
        out = pd.concat([e.to_frame().assign(quantity=q) for q, e in rows], ignore_index=True)
        return out.set_index("quantity")[["estimate", "se", "ci_low", "ci_high", "pvalue", "n"]]

    def conclusion(self) -> str:
        """A plain-language reading of the numbers (computed, not written by hand)."""
        hr = self.hazard_ratio
        hs, ho = self.habit_share, self.habit_share_organic
        level = f"{100 * (1 - self.alpha):g}%"
        if hr.ci_low > 1:
            speed = "send their second parcel sooner than"
        elif hr.ci_high < 1:
            speed = "send their second parcel later than"
        else:
            speed = "send their second parcel neither clearly sooner nor later than"
        text = (
            f"Customers whose first parcel used a coupon {speed} comparable organic customers "
            f"(hazard ratio {hr.estimate:.2f}, {level} CI {hr.ci_low:.2f}-{hr.ci_high:.2f}, "
            f"adjusted for {', '.join(self.diagnostics.get('covariates_used', [])) or 'nothing'})"
            f". Of their later parcels, {100 * hs.estimate:.1f}% "
            f"({level} CI {100 * hs.ci_low:.1f}-{100 * hs.ci_high:.1f}%) were sent at full "
            f"price, without a coupon, against {100 * ho.estimate:.1f}% for organic customers."
        )
        diff = hs.estimate - ho.estimate
        z = float(stats.norm.ppf(1 - self.alpha / 2))
        half = z * float(np.hypot(hs.se, ho.se))
        text += (f" The difference is {100 * diff:+.1f} points ({level} CI "
                 f"{100 * (diff - half):+.1f} to {100 * (diff + half):+.1f}).")
        if hs.ci_low > 0.5:
            text += " Most of the later sending of coupon-acquired customers needs no coupon"
            if diff + half < 0:
                text += (", but they lean on coupons more than organic customers do: the coupon "
                         "opens the door, and the habit it leaves is weaker than an organic one.")
            else:
                text += (", as much as organic customers': consistent with the claim that the "
                         "coupon opens the door and a habit follows.")
        elif hs.ci_high < 0.5:
            text += (" Most of their later sending still uses a coupon: the habit, if any, "
                     "is a coupon habit.")
        if self.experimental is not None and len(self.experimental):
            t = self.experimental.table
            sig = t[t["pvalue"] < self.alpha]
            text += (f" In the randomized tests, {len(sig)} of {len(t)} arm-outcome "
                     f"comparisons differ from control at the {level} level over "
                     f"{self.diagnostics.get('experimental_window')} days.")
        return text

    def _repr_html_(self) -> str:
        return _html_block("Habit formation: coupon-acquired vs. organic customers",
                           self.summary(), [self.conclusion(), *self.warnings])

    def __repr__(self) -> str:
        return (f"<HabitResult HR={self.hazard_ratio.estimate:.3f}, "
                f"habit share={self.habit_share.estimate:.3f}, n={len(self.customers):,}>")


def _covariates_used(df: pd.DataFrame, covariates: Sequence[str]) -> tuple[list[str], list[str]]:
    used, dropped = [], []
    for c in covariates:
        if c in df.columns and df[c].nunique(dropna=False) > 1:
            used.append(c)
        else:
            dropped.append(c)
    return used, dropped


def habit_formation(
    ds: Any,
    window_days: Sequence[int] = (30, 90, 180),
    covariates: Sequence[str] = ("segment", "wechat_contact", "region_id"),
    adjust: str | None = "aipw",
    end: Any = None,
    alpha: float = 0.05,
    seed: int = 0,
    region: str | None = None,
) -> HabitResult:
    """Coupon-acquired vs. organic customers: repeat rates, full-price share, time to 2nd parcel.

    Parameters
    ----------
    ds : Dataset
        Needs ``customers`` and ``shipments``; ``assignments`` adds the experimental estimate.
    window_days : sequence of int
        Windows (days after the first parcel) for repeat rates and full-price shares.
    covariates : sequence of str
        Customer columns to adjust for (constant ones are skipped and reported).
    adjust : {"aipw", "ipw", "regression"} or None
        Method passed to ``causal.estimate_effect`` (ATT) for the adjusted repeat contrast;
        ``None`` skips it.
    end : date-like, optional
        End of observation (default: the dataset's period end, else its last shipment).
    alpha : float
    seed : int
        Seed of the cross-fitting folds.
    region : str, optional
        Restrict to the customers (and randomized units) of one ``region_id``.

    Returns
    -------
    HabitResult
    """
    from promo_analysis.features.cohorts import repeat_windows
    from promo_analysis.features.customers import customer_table

    window_days = tuple(int(w) for w in window_days)
    if any(w <= 0 for w in window_days):
        raise ValueError(f"window_days must be positive, got {window_days}")
    ct = customer_table(ds)
    rw = repeat_windows(ds, window_days=window_days, end=end)
    senders = ct[ct["first_sent_at"].notna()]
    keep_cols = [c for c in dict.fromkeys(("customer_id", "region_id", "second_sent_at",
                                           *covariates)) if c in ct.columns]
    # inner join: shipments of ids missing from `customers` cannot be described; counted
    df = rw.merge(senders[keep_cols], on="customer_id", how="inner", validate="1:1")
    unknown = len(rw) - len(df)
    if region is not None:
        if region not in set(ct["region_id"]):
            raise ValueError(f"region {region!r} has no customers; regions present: "
                             f"{sorted(ct['region_id'].unique())}")
        df = df[df["region_id"] == region].reset_index(drop=True)
    df["group"] = np.where(df["first_used_coupon"], "coupon", "organic")
    df["coupon_acquired"] = df["first_used_coupon"].astype(int)
    end_days = df["observed_days"]
    second = pd.to_datetime(df["second_sent_at"])
    gap = (second - pd.to_datetime(df["first_sent_at"])).dt.total_seconds() / 86400.0
    df["event_second"] = (second.notna() & (gap <= end_days)).astype(int)
    df["days_to_second"] = np.where(df["event_second"] == 1, gap, end_days)
    warns: list[str] = []
    diag: dict[str, Any] = {"customers_sent": len(df), "region": region,
                            "senders_not_in_customers": unknown}
    if unknown:
        warns.append(f"{unknown} senders are not in table 'customers' and are left out")
    counts = df["group"].value_counts()
    if counts.get("coupon", 0) == 0 or counts.get("organic", 0) == 0:
        raise ValueError(
            f"habit_formation compares coupon-acquired and organic customers, but the data "
            f"have {counts.get('coupon', 0)} coupon-acquired and {counts.get('organic', 0)} "
            "organic customers"
        )
    used, dropped = _covariates_used(df, covariates)
    diag["covariates_used"] = used
    if dropped:
        warns.append(f"covariates not used (absent or constant): {dropped}")
    miss = df[used].isna().any(axis=1) if used else pd.Series(False, index=df.index)
    if miss.any():
        raise ValueError(f"{int(miss.sum())} customers lack a covariate among {used} "
                         f"(e.g. {df.loc[miss, 'customer_id'].iloc[0]!r})")

    # ---- repeat within windows, raw and adjusted; full-price shares
    repeat_rows, adj_rows, fp_rows, excluded = {}, {}, {}, {}
    for w in window_days:
        obs = df[df["observed_days"] >= w].copy()
        excluded[w] = int(len(df) - len(obs))
        obs[f"repeat_{w}"] = (obs[f"later_{w}"] > 0).astype(int)
        c, o = obs[obs["group"] == "coupon"], obs[obs["group"] == "organic"]
        if len(c) < 2 or len(o) < 2:
            warns.append(f"window {w} d: too few customers observed for {w} days "
                         f"({len(c)} coupon, {len(o)} organic)")
            continue
        est = rate_difference(c[f"repeat_{w}"], o[f"repeat_{w}"], alpha=alpha,
                              label=f"{w} d", estimand="difference in repeat rate")
        est.extra["excluded_not_observed"] = excluded[w]
        repeat_rows[w] = est
        if adjust and used:
            from promo_analysis.causal import estimate_effect

            try:
                a = estimate_effect(obs, treatment="coupon_acquired", outcome=f"repeat_{w}",
                                    covariates=used, method=adjust, estimand="att",
                                    alpha=alpha, seed=seed)
                adj_rows[w] = a
            except ValueError as err:
                warns.append(f"window {w} d: adjusted estimate failed: {err}")
        for g, sub in (("coupon", c), ("organic", o)):
            fp_rows[(g, str(w))] = ratio_share(sub[f"later_nocoupon_{w}"], sub[f"later_{w}"],
                                               alpha=alpha, label=f"{g}, {w} d",
                                               estimand="full-price share of later parcels")
    diag["excluded_not_observed"] = excluded
    for g in _GROUPS:
        sub = df[df["group"] == g]
        fp_rows[(g, "all")] = ratio_share(sub["later_nocoupon_all"], sub["later_all"],
                                          alpha=alpha, label=f"{g}, all",
                                          estimand="full-price share of later parcels")
    if not repeat_rows:
        raise ValueError(f"no window of {window_days} days is observed for enough customers")
    full_price_adj = None
    if adjust and used:
        full_price_adj = _adjusted_full_price(df, used, fp_rows[("coupon", "all")], alpha,
                                              seed, warns)
    repeat = _drop_meta(TableResult.from_estimates(repeat_rows, method="difference in means",
                                                   index_name="window_days",
                                                   estimand="repeat rate, coupon - organic",
                                                   alpha=alpha))
    repeat_adj = None
    if adj_rows:
        repeat_adj = _drop_meta(TableResult.from_estimates(
            adj_rows, method=f"{adjust} (att)", index_name="window_days",
            estimand="repeat rate, coupon - organic, adjusted", alpha=alpha))
    fp = TableResult.from_estimates(fp_rows, method="ratio (linearised)", index_name="cell",
                                    estimand="full-price share of later parcels", alpha=alpha)
    fp.table.index = pd.MultiIndex.from_tuples(fp.table.index, names=["group", "window"])
    fp = _drop_meta(fp)

    # ---- time to second parcel
    km = kaplan_meier(df, duration="days_to_second", event="event_second", group="group",
                      alpha=alpha)
    cx = cox(df, duration="days_to_second", event="event_second",
             covariates=["coupon_acquired", *used], alpha=alpha)
    hr = cx.hazard_ratio("coupon_acquired")
    hr.label = "coupon-acquired vs organic"
    hr.estimand = "hazard ratio of a second parcel"

    # ---- randomized tests
    experimental = None
    if ds.has("assignments"):
        units = None if region is None else set(ct.loc[ct["region_id"] == region,
                                                       "customer_id"])
        experimental = _experimental(ds, max(window_days), end, alpha, warns, diag, units)
    return HabitResult(
        customers=df,
        repeat=repeat,
        repeat_adjusted=repeat_adj,
        full_price=fp,
        full_price_adjusted=full_price_adj,
        habit_share=fp_rows[("coupon", "all")],
        habit_share_organic=fp_rows[("organic", "all")],
        km=km,
        cox=cx,
        hazard_ratio=hr,
        experimental=experimental,
        window_days=window_days,
        alpha=alpha,
        diagnostics=diag,
        warnings=warns + list(km.warnings) + list(cx.warnings),
    )


def _adjusted_full_price(df: pd.DataFrame, used: list[str], coupon: Estimate, alpha: float,
                         seed: int, warns: list[str]) -> Estimate | None:
    """Coupon minus covariate-reweighted organic full-price share (ATT odds weights)."""
    from promo_analysis.causal import estimate_effect

    sub = df[df["later_all"] > 0].reset_index(drop=True)
    sub = sub.assign(_share=sub["later_nocoupon_all"] / sub["later_all"])
    try:
        # the propensity model is what we need; trim=None keeps every customer
        ipw = estimate_effect(sub, treatment="coupon_acquired", outcome="_share",
                              covariates=used, method="ipw", estimand="att", trim=None,
                              folds=1, alpha=alpha, seed=seed)
    except ValueError as err:
        warns.append(f"adjusted full-price share failed: {err}")
        return None
    e = ipw.diagnostics["propensity"]["propensity"].to_numpy()
    org = (sub["coupon_acquired"] == 0).to_numpy()
    w = e[org] / (1 - e[org])
    adj = ratio_share(sub.loc[org, "later_nocoupon_all"], sub.loc[org, "later_all"],
                      weights=w, alpha=alpha)
    diff = coupon.estimate - adj.estimate
    se = float(np.hypot(coupon.se, adj.se))
    warns.extend(w_ for w_ in ipw.warnings if w_ not in warns)
    return Estimate.from_normal(
        diff, se, n=len(sub), method="ratio, ATT odds weighting", alpha=alpha,
        estimand="full-price share of later parcels, coupon - organic (adjusted)",
        label="coupon-acquired vs reweighted organic",
        extra={"coupon": coupon.estimate, "organic_adjusted": adj.estimate,
               "organic_adjusted_se": adj.se},
        diagnostics={"balance": ipw.diagnostics.get("balance"),
                     "ess": ipw.diagnostics.get("ess")},
    )


def _experimental(ds: Any, w: int, end: Any, alpha: float, warns: list[str],
                  diag: dict[str, Any], units: set | None = None) -> TableResult | None:
    """Each arm vs. control on parcels and full-price parcels within ``w`` days of assignment."""
    from promo_analysis.experiments import compare_arms
    from promo_analysis.features.cohorts import assignment_outcomes

    ao = assignment_outcomes(ds, window_days=(w,), end=end)
    if units is not None:
        ao = ao[ao["customer_id"].isin(units)]
    full = ao[ao["observed_days"] >= w]
    diag["experimental_window"] = w
    diag["experimental_excluded_not_observed"] = int(len(ao) - len(full))
    ests = []
    for exp_id, sub in full.groupby("experiment_id", sort=True):
        if (sub["arm"] == "control").sum() < 2 or sub["arm"].nunique() < 2:
            warns.append(f"experiment {exp_id}: no control arm observed for {w} days")
            continue
        for outcome, name in ((f"parcels_{w}", "parcels"), (f"nocoupon_{w}", "full-price parcels")):
            t = compare_arms(sub, arm="arm", outcome=outcome, expected=False).table.copy()
            t = t.reset_index()
            t.insert(0, "experiment_id", exp_id)
            t.insert(1, "outcome", f"{name} within {w} d")
            ests.append(t)
    if not ests:
        return None
    tab = pd.concat(ests, ignore_index=True)
    arm_col = tab.columns[2]
    tab = tab.set_index(["experiment_id", "outcome", arm_col])
    return TableResult(table=tab, method="difference in means (randomized)", alpha=alpha,
                       estimand="long-run effect per assigned unit, arm - control")



def value_by_acquisition(
    ds: Any,
    region: str | None = None,
    calibration_end: Any = None,
    horizon: int = 12,
    period: float = 30.0,
    discount_rate: float = 0.01,
    alpha: float = 0.05,
) -> tuple[TableResult, dict[str, Any]]:
    """BG/NBD + Gamma-Gamma per acquisition group: the value of one more customer.

    Fits a BG/NBD model (days) and a Gamma-Gamma spend model (revenue per parcel, yuan) to
    coupon-acquired and to organic customers separately, on their parcels up to
    ``calibration_end`` (default: the last shipment). Returns a table with, per group, the
    expected repeat parcels in the first year after acquisition (``estimate``, SE by the delta
    method over the BG/NBD parameters), the mean repeat spend and the discounted value of a
    newly acquired customer's repeat parcels over ``horizon`` periods of ``period`` days
    (``clv``, yuan) -- the value an extra coupon-acquired customer adds to a campaign's
    return -- and the fitted models.

    The shipments of the region (``customer_id, sent_at, revenue, coupon_id``) are pulled
    into memory: one row per parcel.
    """
    from promo_analysis.retention.bgnbd import (
        customer_lifetime_value,
        fit_bgnbd,
        fit_gamma_gamma,
        rfm_summary,
    )

    s = ds.table("shipments")
    if region is not None:
        s = s.filter(s.region_id == region)
    tx = s.select("customer_id", "sent_at", "revenue", "coupon_id").to_pandas()
    if tx.empty:
        raise ValueError(f"no shipments for region {region!r}")
    # the retention tie rule: among parcels at the first instant, a coupon parcel comes first
    tx["_organic"] = tx["coupon_id"].isna()
    tx = tx.sort_values(["customer_id", "sent_at", "_organic"]).drop(columns="_organic")
    first = tx.drop_duplicates("customer_id").set_index("customer_id")["coupon_id"].notna()
    rfm = rfm_summary(tx, "customer_id", "sent_at", value="revenue",
                      observation_end=calibration_end, freq="D")
    rfm["group"] = np.where(first.reindex(rfm.index).to_numpy(), "coupon", "organic")
    rows, models = {}, {}
    for g in _GROUPS:
        sub = rfm[rfm["group"] == g]
        bg = fit_bgnbd(sub, alpha=alpha)
        gg = fit_gamma_gamma(sub, alpha=alpha)
        year = float(bg.expected_purchases(365.0))
        # delta method for E[X(365)] over (r, alpha, a, b)
        grad = np.zeros(4)
        base = bg.params_.to_numpy().copy()
        for i in range(4):
            h = 1e-6 * base[i]
            up = base.copy()
            up[i] += h
            bg.params_.iloc[:] = up
            hi = float(bg.expected_purchases(365.0))
            up[i] -= 2 * h
            bg.params_.iloc[:] = up
            lo = float(bg.expected_purchases(365.0))
            grad[i] = (hi - lo) / (2 * h)
        bg.params_.iloc[:] = base
        se = float(np.sqrt(grad @ bg.cov_.to_numpy() @ grad))
        clv = customer_lifetime_value(bg, gg, horizon=horizon, period=period,
                                      discount_rate=discount_rate)
        est = Estimate.from_normal(year, se, n=len(sub), method="bg/nbd", alpha=alpha,
                                   estimand="expected repeat parcels in the first year",
                                   label=g,
                                   extra={"mean_spend": gg.mean_spend, "clv": clv,
                                          "p_alive_now": float(np.mean(bg.p_alive(
                                              sub.frequency, sub.recency, sub["T"])))})
        rows[g] = est
        models[g] = {"bgnbd": bg, "gamma_gamma": gg}
    table = _drop_meta(TableResult.from_estimates(
        rows, method="bg/nbd + gamma-gamma", index_name="group",
        estimand="expected repeat parcels in the first year", alpha=alpha))
    return table, models
