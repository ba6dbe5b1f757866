"""Charts for campaign analyses: calendar heatmap, effects forest, event study, bunching, designs.

Every function takes ``ax=None`` (a new figure when missing) and returns the ``Axes``; titles
and axis labels are bilingual, money is in yuan (元), and intervals are always drawn.
"""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from promo_analysis.plots.axes import axes_for

from ..calendar import THEMES
from ..regions import REGIONS
from ..results import TableResult

__all__ = [
    "campaign_calendar_heatmap",
    "effects_forest",
    "event_study_plot",
    "bunching_plot",
    "design_forest",
]


_ax = axes_for


def _region_label(r: str) -> str:
    zh, en, _ = REGIONS.get(r, (r, r, ""))
    return f"{zh} {en}"


def campaign_calendar_heatmap(
    campaigns: pd.DataFrame,
    regions: list[str],
    start: Any,
    end: Any,
    *,
    festivals: pd.DataFrame | None = None,
    ax: Any = None,
) -> Any:
    """Days (x) by region (y): how many campaigns run on each day; festival days marked.

    ``campaigns`` has ``region_id`` (null = national), ``start_date``, ``end_date``;
    ``festivals`` is an optional ``calendar.festival_calendar`` frame (its ``festival`` rows are
    drawn as ticks at the top).
    """
    days = pd.date_range(start, end, freq="D")
    grid = np.zeros((len(regions), len(days)))
    for _, c in campaigns.iterrows():
        s, e = pd.Timestamp(c["start_date"]), pd.Timestamp(c["end_date"])
        cols = (days >= s) & (days <= e)
        rows = range(len(regions)) if pd.isna(c["region_id"]) else [
            i for i, r in enumerate(regions) if r == c["region_id"]]  # fmt: skip
        for i in rows:
            grid[i, cols] += 1
    ax = _ax(ax, (12, 0.6 * len(regions) + 2))
    im = ax.imshow(
        grid, aspect="auto", cmap="Oranges", interpolation="nearest",
        extent=(0, len(days), len(regions), 0), vmin=0, vmax=max(2, grid.max()),
    )  # fmt: skip
    ax.set_yticks(np.arange(len(regions)) + 0.5, [_region_label(r) for r in regions])
    months = days[days.day == 1]
    ax.set_xticks([days.get_loc(m) for m in months], [m.strftime("%Y-%m") for m in months],
                  rotation=90, fontsize=7)  # fmt: skip
    if festivals is not None:
        fest = festivals[festivals["kind"] == "festival"].drop_duplicates("date")
        fest = fest[(fest["date"] >= days[0]) & (fest["date"] <= days[-1])]
        for d in fest["date"]:
            ax.axvline(days.get_loc(d) + 0.5, color="tab:red", lw=0.4, alpha=0.5)
    plt.colorbar(im, ax=ax, label="进行中的活动数 campaigns running", fraction=0.03)
    free = (grid == 0).mean(axis=1)
    ax.set_title(
        "活动日历 Campaign calendar (red lines: festival days 节日); campaign-free days: "
        + ", ".join(f"{r} {f:.0%}" for r, f in zip(regions, free, strict=True))
    )
    return ax


def effects_forest(
    result: TableResult | pd.DataFrame,
    *,
    column: str = "estimate",
    truth: pd.Series | None = None,
    label: str | None = None,
    max_rows: int = 60,
    ax: Any = None,
) -> Any:
    """Forest plot of per-campaign incremental effects with their confidence intervals.

    ``truth`` (optional) is a Series aligned with the table's index (e.g. the simulator's true
    incremental revenue) drawn as red crosses.
    """
    t = result.table if isinstance(result, TableResult) else result
    t = t.sort_values(column).tail(max_rows)
    n = len(t)
    ax = _ax(ax, (8, 0.25 * n + 1.5))
    y = np.arange(n)
    labels = [" / ".join(map(str, i)) if isinstance(i, tuple) else str(i) for i in t.index]
    sig = (t["ci_low"] > 0) | (t["ci_high"] < 0)
    ax.errorbar(
        t[column], y, xerr=[t[column] - t["ci_low"], t["ci_high"] - t[column]], fmt="none",
        ecolor="grey", elinewidth=1,
    )  # fmt: skip
    ax.scatter(t[column], y, c=np.where(sig, "tab:blue", "lightgrey"), zorder=3, s=18,
               label="估计 estimate (95% CI)")  # fmt: skip
    if truth is not None:
        tv = truth.reindex(t.index)
        ax.scatter(tv, y, marker="x", color="tab:red", zorder=4, label="真值 truth")
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(y, labels, fontsize=7)
    ax.set_xlabel(label or "增量收入 incremental revenue (元 yuan)")
    ax.set_title("各活动增量效果 Incremental effect per campaign")
    ax.legend(loc="lower right", fontsize=8)
    return ax


def event_study_plot(result: TableResult, *, ax: Any = None, unit: str = "") -> Any:
    """Coefficients by period relative to treatment, with CIs; the reference period at 0."""
    t = result.table
    ax = _ax(ax, (7, 4))
    x = t.index.to_numpy()
    ax.fill_between(x, t["ci_low"], t["ci_high"], color="tab:blue", alpha=0.2,
                    label="95% CI")  # fmt: skip
    ax.plot(x, t["estimate"], "o-", color="tab:blue", label="估计 estimate")
    ax.axhline(0, color="black", lw=0.8)
    ax.axvline(-0.5, color="grey", ls="--", lw=0.8)
    ax.set_xlabel("相对处理期 period relative to treatment")
    ax.set_ylabel(f"效应 effect {unit}".strip())
    pre = result.diagnostics.get("pretrend_wald")
    title = "事件研究 Event study"
    if pre:
        title += f" (pre-trend test p = {pre[1]:.2f})"
    ax.set_title(title)
    ax.legend(fontsize=8)
    return ax


def bunching_plot(result: TableResult, threshold: float, *, ax: Any = None) -> Any:
    """Histogram of list prices near a threshold with the smooth counterfactual."""
    bins = result.diagnostics["bins"][float(threshold)]
    width = result.diagnostics["bin_width"]
    ax = _ax(ax, (8, 4))
    colors = np.where(bins["excluded"], "tab:orange", "tab:blue")
    ax.bar(bins["left"], bins["count"], width=width, align="edge", color=colors, alpha=0.7,
           label="观测 observed (orange: excluded region)")  # fmt: skip
    ax.plot(bins["mid"], bins["counterfactual"], color="black", lw=1.5,
            label="平滑反事实 smooth counterfactual")  # fmt: skip
    ax.axvline(threshold, color="tab:red", ls="--", lw=1)
    row = result.table.loc[float(threshold)]
    ax.set_title(
        f"满{threshold:g}元 门槛聚集 Bunching at {threshold:g} yuan: "
        f"{row.estimate:,.0f} parcels moved up [{row.ci_low:,.0f}, {row.ci_high:,.0f}]"
    )
    ax.set_xlabel("标价 list price (元 yuan)")
    ax.set_ylabel("包裹数 parcels per bin")
    ax.legend(fontsize=8)
    return ax


def design_forest(result: TableResult, *, ax: Any = None, label: str | None = None) -> Any:
    """Fitted effect per design with CI, annotated with the probability of being best."""
    t = result.table.iloc[::-1]
    n = len(t)
    ax = _ax(ax, (8, 0.35 * n + 1.5))
    y = np.arange(n)
    ax.errorbar(t["estimate"], y, xerr=[t["estimate"] - t["ci_low"], t["ci_high"] - t["estimate"]],
                fmt="o", color="tab:blue", ecolor="grey", label="模型估计 fitted (95% CI)")  # fmt: skip
    ax.scatter(t["raw_mean"], y, marker="|", color="tab:red", s=80, label="原始均值 raw mean")
    names = []
    for d in t.index:
        parts = [THEMES[p][0] if p in THEMES else p for p in str(d).split(" | ")]
        names.append(" | ".join(parts))
    ax.set_yticks(y, [f"{nm}  (n={k}, P(best)={p:.0%})" for nm, k, p in
                      zip(names, t["n"], t["prob_best"], strict=True)], fontsize=8)  # fmt: skip
    ax.axvline(0, color="black", lw=0.8)
    ax.set_xlabel(label or "相对提升 relative lift (incremental / counterfactual revenue)")
    tau2 = result.diagnostics.get("tau2", np.nan)
    ax.set_title(f"活动设计比较 Design comparison (τ² = {tau2:.3g})")
    ax.legend(fontsize=8, loc="lower right")
    return ax
