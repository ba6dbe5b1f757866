"""Figures of the regional reports: revenue by month, channel mix, campaign calendar, regions.

Each takes ``ax=None`` and returns the ``ax``. KPI charts show census totals (every shipment of
the region counted), which have no sampling error; the titles say so. Names are bilingual.
"""

from __future__ import annotations

import functools

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from promo_analysis.calendar import THEMES
from promo_analysis.plots.axes import axes_for

__all__ = [
    "monthly_revenue_plot",
    "channel_mix_plot",
    "campaign_calendar_plot",
    "region_comparison_plot",
    "effect_interval_plot",
]

_CENSUS = "全量统计，无抽样误差 census totals, no sampling error"


_ax = functools.partial(axes_for, constrained=True)


def monthly_revenue_plot(
    monthly: pd.DataFrame, region_name: str, ax: plt.Axes | None = None
) -> plt.Axes:
    """Bars of revenue per month of the period next to the comparison period (元).

    ``monthly`` is :func:`promo_analysis.report.kpis.monthly_revenue`'s frame.
    """
    ax = _ax(ax)
    x = np.arange(len(monthly))
    has_prev = monthly["previous"].notna().any()
    width = 0.4 if has_prev else 0.8
    ax.bar(x - (width / 2 if has_prev else 0), monthly["current"] / 1e4, width,
           label="本期 current period", color="#1f6fb2")
    if has_prev:
        ax.bar(x + width / 2, monthly["previous"] / 1e4, width,
               label="对比期 comparison period", color="#b0c4de")
    ax.set_xticks(x, [m[-2:] for m in monthly["month"]])
    ax.set_xlabel(f"月份 month ({monthly['month'].iloc[0][:4]})")
    ax.set_ylabel("收入 revenue (万元 10k yuan)")
    ax.set_title(f"{region_name} 月度散户收入 monthly walk-in revenue\n{_CENSUS}", fontsize=10)
    ax.legend(fontsize=8)
    return ax


def channel_mix_plot(mix: pd.DataFrame, region_name: str, ax: plt.Axes | None = None) -> plt.Axes:
    """Horizontal bars of revenue share per channel, both periods (suppressed channels left out).

    ``mix`` is :func:`promo_analysis.report.kpis.channel_mix`'s frame.
    """
    ax = _ax(ax, (8, 3.2))
    labels, cur, prev = [], [], []
    for _, row in mix.iterrows():
        labels.append(f"{row['name_zh']} {row['name_en']}")
        cur.append(np.nan if row["suppressed_current"] else float(row["share_current_pct"]))
        p = row["share_previous_pct"]
        prev.append(np.nan if row["suppressed_previous"] or isinstance(p, str) else float(p))
    y = np.arange(len(labels))
    ax.barh(y - 0.2, cur, 0.4, label="本期 current", color="#1f6fb2")
    if not np.all(np.isnan(prev)):
        ax.barh(y + 0.2, prev, 0.4, label="对比期 comparison", color="#b0c4de")
    ax.set_yticks(y, labels)
    ax.invert_yaxis()
    ax.set_xlabel("收入占比 share of revenue (%)")
    ax.set_title(f"{region_name} 渠道结构 channel mix (% of 元 yuan revenue)\n{_CENSUS}",
                 fontsize=10)
    ax.legend(fontsize=8)
    return ax


def campaign_calendar_plot(
    daily_revenue: pd.Series,
    campaigns: pd.DataFrame,
    region_name: str,
    ax: plt.Axes | None = None,
) -> plt.Axes:
    """Daily revenue (7-day mean, 元) with each campaign's dates shaded and its theme named.

    Parameters
    ----------
    daily_revenue : Series
        Revenue per day, indexed by date.
    campaigns : DataFrame
        ``start_date, end_date, theme, level`` of the campaigns in the period.
    """
    ax = _ax(ax, (10, 3.8))
    smooth = daily_revenue.sort_index().rolling(7, min_periods=1).mean()
    ax.plot(smooth.index, smooth.to_numpy(), color="#333", lw=1, label="7日均值 7-day mean")
    top = float(smooth.max()) if len(smooth) else 1.0
    for i, (_, c) in enumerate(campaigns.sort_values("start_date").iterrows()):
        color = "#f4a261" if c.get("level") == "national" else "#2a9d8f"
        ax.axvspan(c["start_date"], c["end_date"] + pd.Timedelta(days=1), color=color, alpha=0.25,
                   lw=0)
        zh = THEMES.get(c["theme"], (str(c["theme"]), str(c["theme"])))[0]
        ax.text(c["start_date"], top * (1.02 + 0.07 * (i % 3)), zh, fontsize=7, rotation=0)
    ax.set_ylim(0, top * 1.3 if top > 0 else 1)
    ax.set_ylabel("日收入 daily revenue (元 yuan)")
    ax.set_title(
        f"{region_name} 活动日历 campaign calendar: 橙=全国 national, 绿=省级 provincial\n{_CENSUS}",
        fontsize=10,
    )
    ax.legend(fontsize=8, loc="lower right")
    return ax


def effect_interval_plot(
    table: pd.DataFrame,
    label_col: str,
    title: str,
    xlabel: str,
    truth: pd.Series | None = None,
    ax: plt.Axes | None = None,
) -> plt.Axes:
    """Point estimates with their confidence intervals, one row per label.

    ``table`` needs ``estimate, ci_low, ci_high`` and ``label_col``; rows whose estimate is not
    numeric (suppressed) are left out.
    """
    ax = _ax(ax, (8, 0.5 + 0.4 * max(len(table), 2)))
    t = table[pd.to_numeric(table["estimate"], errors="coerce").notna()]
    y = np.arange(len(t))
    est = t["estimate"].astype(float).to_numpy()
    lo = t["ci_low"].astype(float).to_numpy()
    hi = t["ci_high"].astype(float).to_numpy()
    ax.errorbar(est, y, xerr=[est - lo, hi - est], fmt="o", color="#1f6fb2", capsize=3,
                label="估计与95%置信区间 estimate, 95% CI")
    ax.axvline(0, color="#999", lw=0.8)
    ax.set_yticks(y, t[label_col].astype(str).tolist())
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    ax.set_title(title + "\n点与横线：估计值及 95% 置信区间 dots and bars: estimate, 95% CI",
                 fontsize=10)
    return ax


def region_comparison_plot(
    kpis: pd.DataFrame, ax: plt.Axes | None = None
) -> plt.Axes:
    """Walk-in revenue per region, both periods, with growth printed (元, census totals).

    ``kpis`` has one row per region: ``name`` (bilingual), ``revenue_current``,
    ``revenue_previous`` and ``growth_pct``.
    """
    ax = _ax(ax, (8, 3.6))
    x = np.arange(len(kpis))
    cur = pd.to_numeric(kpis["revenue_current"], errors="coerce") / 1e4
    prev = pd.to_numeric(kpis["revenue_previous"], errors="coerce") / 1e4
    ax.bar(x - 0.2, cur, 0.4, label="本期 current period", color="#1f6fb2")
    ax.bar(x + 0.2, prev, 0.4, label="对比期 comparison period", color="#b0c4de")
    for xi, c, g in zip(x, cur, kpis["growth_pct"], strict=True):
        g = pd.to_numeric(g, errors="coerce")
        if np.isfinite(c) and pd.notna(g):
            ax.text(xi - 0.2, c, f"{g:+.1f}%", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(x, kpis["name"].tolist())
    ax.set_ylabel("散户收入 walk-in revenue (万元 10k yuan)")
    ax.set_title(f"各地区散户收入对比 walk-in revenue by region\n{_CENSUS}", fontsize=10)
    ax.legend(fontsize=8)
    return ax
