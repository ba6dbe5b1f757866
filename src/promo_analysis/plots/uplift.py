"""Figures for uplift models: the Qini curve with its bootstrap band and uplift by score group.

Each function takes ``ax=None`` (a new figure when omitted) and returns the ``ax`` it drew on.
Labels are bilingual (Chinese / English).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from promo_analysis.plots.axes import axes_for
from promo_analysis.results import TableResult

__all__ = ["qini_plot", "uplift_by_decile_plot"]


_axes = axes_for


def _require_table(result: Any, what: str) -> TableResult:
    if not isinstance(result, TableResult):
        raise TypeError(
            f"{what} takes the TableResult of uplift.{what.replace('_plot', '')}, "
            f"got {type(result).__name__}"
        )
    return result


def qini_plot(
    curve: TableResult,
    ax: Any = None,
    label: str = "模型排序 model ranking",
    title: str = "Qini 曲线 Qini curve",
    percent: bool = True,
) -> Any:
    """Plot a Qini curve (from :func:`promo_analysis.uplift.qini_curve`) with its CI band.

    The x axis is the share of prospects given a coupon (ranked by predicted uplift), the y axis
    the incremental first senders per treated prospect; the dashed diagonal is random targeting.

    Parameters
    ----------
    curve : TableResult
        Indexed by fraction, with ``estimate``, ``ci_low``, ``ci_high`` and ``random``.
    ax : matplotlib Axes, optional
    label, title : str
    percent : bool
        Show both axes in percent.
    """
    curve = _require_table(curve, "qini_plot")
    tab = curve.table
    ax = _axes(ax, (6.5, 4.5))
    s = 100.0 if percent else 1.0
    x = np.asarray(tab.index, dtype=float) * s
    ax.plot(x, tab["estimate"] * s, color="#1f4e79", lw=2, label=label)
    if tab["ci_low"].notna().any():
        level = round(100 * (1 - curve.alpha))
        ax.fill_between(
            x,
            tab["ci_low"] * s,
            tab["ci_high"] * s,
            color="#1f4e79",
            alpha=0.2,
            label=f"{level}% 置信带 bootstrap CI",
        )
    ax.plot(x, tab["random"] * s, color="grey", ls="--", lw=1.2, label="随机发券 random")
    ax.axhline(0, color="grey", lw=0.6)
    unit = " (%)" if percent else ""
    ax.set_xlabel(f"发券比例 share of prospects given a coupon{unit}")
    ax.set_ylabel(f"每张券新增首寄 incremental first senders per treated{unit}")
    auc = curve.diagnostics.get("auc")
    ax.set_title(title + (f"\nAUC = {auc:.4f}" if auc is not None else ""))
    ax.legend(loc="best", fontsize="small")
    return ax


def uplift_by_decile_plot(
    result: TableResult,
    ax: Any = None,
    title: str = "按预测提升分组的实际提升 Observed uplift by predicted-uplift group",
    percent: bool = True,
) -> Any:
    """Bars of observed uplift per score group (from ``uplift.uplift_by_decile``) with CIs.

    The mean predicted uplift of each group is drawn as a marker for a calibration check.
    """
    result = _require_table(result, "uplift_by_decile_plot")
    tab = result.table
    ax = _axes(ax, (7, 4.5))
    s = 100.0 if percent else 1.0
    pos = np.arange(len(tab))
    est = tab["estimate"].to_numpy(float) * s
    err = np.vstack(
        [est - tab["ci_low"].to_numpy(float) * s, tab["ci_high"].to_numpy(float) * s - est]
    )
    level = round(100 * (1 - result.alpha))
    ax.bar(pos, est, color="#9dc3e6", label="实际提升 observed (treated - control)")
    ax.errorbar(
        pos, est, yerr=err, fmt="none", color="#1f4e79", capsize=3, label=f"{level}% 置信区间 CI"
    )
    if "predicted" in tab.columns:
        ax.plot(
            pos,
            tab["predicted"].to_numpy(float) * s,
            "D",
            color="#c00000",
            label="预测提升 predicted",
        )
    ax.axhline(0, color="grey", lw=0.6)
    ax.set_xticks(pos)
    ax.set_xticklabels([str(i) for i in tab.index])
    ax.set_xlabel("预测提升分组 (1 = 最高) predicted-uplift group (1 = highest)")
    ax.set_ylabel("首寄率差 difference in first-send rate" + (" (pp 百分点)" if percent else ""))
    ax.set_title(title)
    ax.legend(loc="best", fontsize="small")
    return ax
