"""Figures for effect estimates: forest plot, love plot (balance) and propensity overlap.

Each function takes ``ax=None`` (a new figure when omitted) and returns the ``ax`` it drew on.
Labels are bilingual (Chinese / English).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from promo_analysis.plots.axes import axes_for
from promo_analysis.results import Estimate, TableResult

__all__ = ["forest_plot", "love_plot", "overlap_plot"]


_axes = axes_for


def _as_frame(estimates: Any) -> pd.DataFrame:
    if isinstance(estimates, TableResult):
        return estimates.table[["estimate", "ci_low", "ci_high"]]
    if isinstance(estimates, pd.DataFrame):
        missing = {"estimate", "ci_low", "ci_high"} - set(estimates.columns)
        if missing:
            raise KeyError(f"estimates frame lacks the columns {sorted(missing)}")
        return estimates[["estimate", "ci_low", "ci_high"]]
    if isinstance(estimates, Mapping):
        rows = {}
        for name, est in estimates.items():
            if isinstance(est, Estimate):
                vals = (est.estimate, est.ci_low, est.ci_high)
            elif isinstance(est, (pd.Series, Mapping)):  # e.g. a row of a TableResult
                vals = (est["estimate"], est["ci_low"], est["ci_high"])
            elif isinstance(est, Sequence) and len(est) == 3:
                vals = tuple(est)
            else:
                raise TypeError(
                    f"estimates[{name!r}] is {type(est).__name__}; expected an Estimate, a row "
                    "with estimate/ci_low/ci_high, or a tuple (estimate, ci_low, ci_high)"
                )
            rows[name] = dict(zip(("estimate", "ci_low", "ci_high"), map(float, vals),
                                  strict=True))
        return pd.DataFrame.from_dict(rows, orient="index")
    raise TypeError("estimates must be a mapping label -> Estimate, a TableResult or a DataFrame")


def forest_plot(
    estimates: Mapping[str, Estimate] | TableResult | pd.DataFrame,
    truth: float | None = None,
    null: float = 0.0,
    ax: Any = None,
    title: str = "券的效果 Effect of a coupon",
    xlabel: str = "首寄概率差 difference in first-send probability",
    percent: bool = True,
) -> Any:
    """Point estimates with confidence intervals, one row per method (or arm).

    Parameters
    ----------
    estimates : mapping, TableResult or DataFrame
        A mapping label -> ``Estimate``, a table row (Series with ``estimate``, ``ci_low``,
        ``ci_high``, e.g. ``compare_arms(...).table.loc["12-3"]``) or a tuple
        ``(estimate, ci_low, ci_high)`` — so observational methods and a randomized test can
        share one plot; or a TableResult / DataFrame with those columns (index = labels).
    truth : float, optional
        A known true value (simulated data), drawn as a dashed line.
    null : float
        The no-effect value, drawn as a thin grey line.
    percent : bool
        Show the axis in percentage points (for differences of probabilities).
    """
    df = _as_frame(estimates)
    ax = _axes(ax, (7, 0.5 * len(df) + 1.5))
    scale = 100.0 if percent else 1.0
    ypos = np.arange(len(df))[::-1]
    est = df["estimate"].to_numpy(float) * scale
    lo = df["ci_low"].to_numpy(float) * scale
    hi = df["ci_high"].to_numpy(float) * scale
    ax.errorbar(est, ypos, xerr=[est - lo, hi - est], fmt="o", color="#1f4e79", capsize=3,
                label="估计与置信区间 estimate and CI")
    ax.axvline(null * scale, color="grey", lw=0.8)
    if truth is not None:
        ax.axvline(truth * scale, color="#c00000", ls="--", lw=1.2, label="真实值 truth")
    ax.set_yticks(ypos)
    ax.set_yticklabels([str(i) for i in df.index])
    ax.set_xlabel(xlabel + (" (percentage points 百分点)" if percent else ""))
    ax.set_title(title)
    ax.legend(loc="best", fontsize="small")
    return ax


def love_plot(
    balance: pd.DataFrame | Estimate,
    threshold: float = 0.1,
    ax: Any = None,
    title: str = "协变量平衡 Covariate balance",
) -> Any:
    """Absolute standardized mean differences before and after weighting, per covariate.

    ``balance`` is ``Estimate.diagnostics["balance"]`` (or the estimate itself).
    """
    if isinstance(balance, Estimate):
        balance = balance.diagnostics.get("balance")
        if balance is None:
            raise ValueError("the estimate has no balance table (no covariates)")
    if "smd_before" not in balance.columns:
        raise KeyError("balance table lacks the column 'smd_before'")
    b = balance.assign(_order=balance["smd_before"].abs()).sort_values("_order")
    ax = _axes(ax, (7, 0.3 * len(b) + 1.5))
    y = np.arange(len(b))
    ax.scatter(b["smd_before"].abs(), y, marker="o", facecolors="none", edgecolors="#c00000",
               label="加权前 before weighting")
    if "smd_after" in b.columns:
        ax.scatter(b["smd_after"].abs(), y, marker="o", color="#1f4e79",
                   label="加权后 after weighting")
    ax.axvline(threshold, color="grey", ls="--", lw=0.8)
    ax.set_yticks(y)
    ax.set_yticklabels([str(i) for i in b.index])
    ax.set_xlabel("|标准化均值差| absolute standardized mean difference")
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize="small")
    return ax


def overlap_plot(
    propensity: pd.DataFrame | Estimate,
    bins: int = 40,
    ax: Any = None,
    title: str = "倾向得分重叠 Propensity overlap",
    trim: tuple[float, float] | None = None,
) -> Any:
    """Histograms of the estimated propensity (probability of a coupon) by group.

    ``propensity`` is ``Estimate.diagnostics["propensity"]`` (columns ``propensity``,
    ``treated``) or the estimate itself. Densities, so groups of different size compare.
    """
    if isinstance(propensity, Estimate):
        propensity = propensity.diagnostics["propensity"]
    ax = _axes(ax, (7, 4))
    edges = np.linspace(0, 1, bins + 1)
    t = propensity["treated"].to_numpy().astype(bool)
    e = propensity["propensity"].to_numpy(float)
    ax.hist(e[t], bins=edges, density=True, alpha=0.55, color="#1f4e79",
            label=f"领券 coupon (n={t.sum():,})")
    ax.hist(e[~t], bins=edges, density=True, alpha=0.55, color="#c55a11",
            label=f"未领券 no coupon (n={(~t).sum():,})")
    if trim is not None:
        for v in trim:
            ax.axvline(v, color="grey", ls="--", lw=0.8)
    ax.set_xlabel("倾向得分 propensity score (probability of receiving a coupon)")
    ax.set_ylabel("密度 density")
    ax.set_title(title)
    ax.legend(fontsize="small")
    return ax
