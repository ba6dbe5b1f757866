"""Retention figures: cohort heatmap, Kaplan-Meier curves with an at-risk table, habit bars,
and scaled Schoenfeld residuals for the proportional-hazards check."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib import transforms

from promo_analysis.plots.fonts import use_cjk_font

__all__ = ["plot_cohort_heatmap", "plot_km", "plot_habit", "plot_schoenfeld"]

_GROUP_NAMES = {"coupon": "用券获客 coupon-acquired", "organic": "自然获客 organic"}


def _label(g: Any) -> str:
    return _GROUP_NAMES.get(str(g), str(g))


def _cohort_label(c: Any) -> str:
    return str(c.date()) if hasattr(c, "date") else str(c)


def plot_cohort_heatmap(result, ax=None, group: Any = None, annotate: bool | None = None,
                        cmap: str = "viridis"):
    """Heatmap of the share of each acquisition cohort active k periods later.

    Cells not yet observed are blank. With several groups, pass ``group=`` (default: first).
    """
    use_cjk_font()
    share = result.share
    if share.index.nlevels == 2:
        groups = list(dict.fromkeys(share.index.get_level_values(0)))
        group = groups[0] if group is None else group
        share = share.xs(group, level=0)
    if ax is None:
        _, ax = plt.subplots(figsize=(1.2 + 0.55 * share.shape[1], 1.0 + 0.32 * len(share)))
    vals = share.to_numpy(dtype=float)
    im = ax.imshow(np.ma.masked_invalid(vals), aspect="auto", cmap=cmap, vmin=0,
                   vmax=np.nanmax(vals[:, 1:]) if vals.shape[1] > 1 else 1)
    ax.set_xticks(range(share.shape[1]), [str(k) for k in share.columns])
    ax.set_yticks(range(len(share)), [_cohort_label(c) for c in share.index])
    ax.set_xlabel(f"periods since first parcel 距首寄期数 (freq={result.freq})")
    ax.set_ylabel("acquisition cohort 获客批次")
    title = "Share of cohort still sending 留存率"
    if group is not None:
        title += f" — {_label(group)}"
    ax.set_title(title)
    if annotate is None:
        annotate = vals.size <= 200
    if annotate:
        for i in range(vals.shape[0]):
            for j in range(vals.shape[1]):
                if np.isfinite(vals[i, j]):
                    ax.text(j, i, f"{vals[i, j]:.0%}", ha="center", va="center", fontsize=7,
                            color="white" if vals[i, j] < 0.5 * np.nanmax(vals[:, 1:] if
                                                                         vals.shape[1] > 1
                                                                         else vals) else "k")
    ax.figure.colorbar(im, ax=ax, label="share active 活跃占比")
    return ax


def plot_km(result, ax=None, at_risk: bool = True, n_ticks: int = 6, xlabel: str | None = None,
            title: str | None = None):
    """Kaplan-Meier step curves with pointwise CI bands and an at-risk table under the axis."""
    use_cjk_font()
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4.5))
    tmax = 0.0
    for g in result.groups:
        c = result.curve(g)
        line = ax.step(c["time"], c["survival"], where="post", label=_label(g))[0]
        ax.fill_between(c["time"], c["ci_low"], c["ci_high"], step="post", alpha=0.2,
                        color=line.get_color(), linewidth=0)
        tmax = max(tmax, float(c["time"].max()))
    level = round(100 * (1 - result.alpha))
    ax.set_ylim(0, 1.02)
    ax.set_xlim(0, tmax)
    ax.set_ylabel(f"survival S(t) 生存概率 ({level}% CI)")
    ax.set_xlabel(xlabel or f"{result.duration} (days 天)")
    ax.set_title(title or "Kaplan-Meier curve 生存曲线")
    ax.legend(loc="upper right", frameon=False)
    if at_risk:
        from matplotlib.ticker import MaxNLocator

        ticks = [t for t in MaxNLocator(nbins=n_ticks, steps=[1, 2, 2.5, 5, 10]).tick_values(
            0, tmax) if 0 <= t <= tmax]
        ax.set_xticks(ticks)
        table = result.at_risk(ticks)
        trans = transforms.blended_transform_factory(ax.transData, ax.transAxes)
        ax.text(0, -0.23, "number at risk 风险集人数", transform=ax.transAxes, ha="left",
                va="top", fontsize=8)
        for row, g in enumerate(table.index):
            # one line with the group's name, the counts under it, aligned with the ticks
            y = -0.30 - 0.13 * row
            ax.text(0, y, _label(g), transform=ax.transAxes, ha="left", va="top", fontsize=7,
                    color=f"C{row}")
            for t, v in table.loc[g].items():
                ax.text(t, y - 0.055, f"{v:,.0f}", transform=trans, ha="center", va="top",
                        fontsize=7)
        ax.figure.subplots_adjust(bottom=0.25 + 0.1 * len(table))
    return ax


def plot_habit(result, ax=None):
    """Bars of the full-price share of later parcels by group and window, with CIs."""
    use_cjk_font()
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4))
    t = result.full_price.table
    windows = list(dict.fromkeys(t.index.get_level_values("window")))
    groups = list(dict.fromkeys(t.index.get_level_values("group")))
    width = 0.8 / len(groups)
    x = np.arange(len(windows))
    for i, g in enumerate(groups):
        sub = t.xs(g, level="group").reindex(windows)
        est = sub["estimate"].to_numpy(float)
        err = np.vstack([est - sub["ci_low"].to_numpy(float),
                         sub["ci_high"].to_numpy(float) - est])
        ax.bar(x + (i - (len(groups) - 1) / 2) * width, est, width, yerr=err, capsize=3,
               label=_label(g))
    ax.set_xticks(x, [f"{w} d" if w != "all" else "all 全部" for w in windows])
    ax.set_ylim(0, 1.15)  # room for the legend above the bars
    level = round(100 * (1 - result.alpha))
    ax.set_ylabel(f"share of later parcels at full price 原价占比 ({level}% CI)")
    ax.set_xlabel("window after first parcel 首寄后窗口")
    ax.set_title("Habit: later parcels sent without a coupon 习惯形成")
    ax.legend(frameon=False, loc="upper left", ncol=2)
    return ax


def plot_schoenfeld(result, covariate: str, ax=None, lowess: bool = True):
    """Scaled Schoenfeld residuals of one covariate against time (flat = proportional)."""
    use_cjk_font()
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    r = result.scaled_schoenfeld()[covariate]
    ax.scatter(r.index, r.to_numpy(), s=6, alpha=0.4)
    if lowess and len(r) > 10:
        from statsmodels.nonparametric.smoothers_lowess import lowess as _lowess

        # it=0: no robustness iterations, which would discard a binary covariate's minority
        fit = _lowess(r.to_numpy(), np.asarray(r.index, float), frac=0.5, it=0)
        ax.plot(fit[:, 0], fit[:, 1], color="C3", label="lowess")
    ax.axhline(float(result.params[covariate]), color="k", ls="--", lw=1, label="β (fitted)")
    p = result.ph_test().loc[covariate, "pvalue"]
    ax.set_title(f"Scaled Schoenfeld residuals: {covariate} (PH test p = {p:.3g})")
    ax.set_xlabel("time (days 天)")
    ax.set_ylabel("β(t)")
    ax.legend(frameon=False)
    return ax
