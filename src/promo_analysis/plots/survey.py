"""Survey figures: weighted vs. unweighted estimates against the truth, domain estimates.

Each function takes ``ax=None`` (a new figure when omitted) and returns the ``ax``. Estimates
are drawn with their confidence intervals; names are bilingual (Chinese / English).
"""

from __future__ import annotations

import functools

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from promo_analysis.plots.axes import axes_for
from promo_analysis.regions import REGIONS, region_names
from promo_analysis.results import TableResult

__all__ = ["SURVEY_LABELS", "weighting_plot", "domain_plot", "says_does_plot"]

#: Bilingual names of the contract's survey questions.
SURVEY_LABELS = {
    "coupon_influenced": "优惠券影响选择 coupons influence my choice",
    "first_time_sender": "首次寄件 first-time sender",
    "aware_of_campaign": "知晓活动 aware of the campaign",
    "satisfaction": "满意度 satisfaction (1–5)",
    "first_send_within_window": "之后首次寄件 first parcel afterwards",
    "sent_within_window": "之后寄件 any parcel afterwards",
    "full_price_within_window": "之后原价寄件 full-price parcel afterwards",
    # outlet types (survey strata) = the contract's channels
    "station": "揽投部 courier station",
    "counter": "营业网点 post-office counter",
    "pickup_point": "自提点 pickup point",
    "online": "线上 online",
}

_COLORS = {"weighted": "#1f6f8b", "unweighted": "#c0504d"}


_ax = functools.partial(axes_for, constrained=True)


def _label(name: object) -> str:
    name = str(name)
    if name in SURVEY_LABELS:
        return SURVEY_LABELS[name]
    if name in REGIONS:
        return region_names(name)
    return name


def weighting_plot(
    comparison: pd.DataFrame,
    truth: pd.Series | dict | None = None,
    ax: plt.Axes | None = None,
    title: str | None = None,
    group: str | None = None,
) -> plt.Axes:
    """Weighted and unweighted estimates with CIs per question (and group), with the truth.

    Parameters
    ----------
    comparison : DataFrame
        :func:`promo_analysis.survey.weighting_comparison` output. Share rows are plotted in
        percent; mean rows are skipped unless they are the only ones.
    truth : mapping, optional
        Population values keyed by variable (or by ``(variable, group level)`` with
        ``group``), e.g. from the simulator's ``ds.truth.survey``; drawn as a black cross.
    group : str, optional
        The group column of a comparison made with ``group=`` (e.g. ``"region_id"``).
    """
    shares = comparison[comparison["statistic"] == "share"]
    data = shares if len(shares) else comparison
    scale = 100.0 if len(shares) else 1.0
    keys = ["variable"] if group is None else ["variable", group]
    items = list(dict.fromkeys(map(tuple, data[keys].itertuples(index=False, name=None))))
    ax = _ax(ax, (8, 0.8 + 0.7 * len(items)))
    offsets = {"weighted": -0.15, "unweighted": 0.15}
    for analysis, off in offsets.items():
        part = data[data["analysis"] == analysis].set_index(keys)
        part = part.reindex(pd.MultiIndex.from_tuples(items) if group else [i[0] for i in items])
        y = np.arange(len(items)) + off
        est = part["estimate"].to_numpy() * scale
        err = np.vstack([est - part["ci_low"].to_numpy() * scale,
                         part["ci_high"].to_numpy() * scale - est])
        ax.errorbar(est, y, xerr=err, fmt="o", capsize=3, color=_COLORS[analysis],
                    label={"weighted": "加权 weighted (design-based)",
                           "unweighted": "未加权 unweighted (naive)"}[analysis])
    if truth is not None:
        truth = dict(truth)
        found = [(i, truth[it if group else it[0]]) for i, it in enumerate(items)
                 if (it if group else it[0]) in truth]
        if found:
            ax.scatter([v * scale for _, v in found], [i for i, _ in found], marker="x", s=70,
                       color="black", zorder=5, label="真值 true population value")
    ax.set_yticks(np.arange(len(items)),
                  [" · ".join(_label(k) for k in it) for it in items])
    ax.invert_yaxis()
    ax.set_xlabel("比例 share (%)" if scale == 100 else "均值 mean")
    ax.set_title(title or "加权与未加权估计（95% 置信区间）\nweighted vs. unweighted estimates "
                 "(95% CI)")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)  # never over the data
    return ax


def domain_plot(
    result: TableResult,
    ax: plt.Axes | None = None,
    percent: bool = True,
    title: str | None = None,
    truth: pd.Series | dict | None = None,
) -> plt.Axes:
    """Domain estimates (:func:`promo_analysis.survey.by`) with CIs, one row per group."""
    table = result.table
    scale = 100.0 if percent else 1.0
    ax = _ax(ax, (7, 0.8 + 0.5 * len(table)))
    y = np.arange(len(table))
    est = table["estimate"].to_numpy() * scale
    err = np.vstack([est - table["ci_low"].to_numpy() * scale,
                     table["ci_high"].to_numpy() * scale - est])
    ax.errorbar(est, y, xerr=err, fmt="o", capsize=3, color=_COLORS["weighted"],
                label="加权估计 weighted estimate (95% CI)")
    if truth is not None:
        truth = dict(truth)
        ty = [i for i, g in enumerate(table.index) if g in truth]
        ax.scatter([truth[table.index[i]] * scale for i in ty], ty, marker="x", s=70,
                   color="black", zorder=5, label="真值 true value")
    ax.set_yticks(y, [_label(g) for g in table.index])
    ax.invert_yaxis()
    ax.set_xlabel("比例 share (%)" if percent else "均值 mean")
    ax.set_title(title or f"分组估计 domain estimates\n{result.label}")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)  # never over the data
    return ax


def says_does_plot(
    result: TableResult, ax: plt.Axes | None = None, title: str | None = None
) -> plt.Axes:
    """What respondents say vs. what they do (:func:`promo_analysis.survey.linked_behaviour`).

    Percent-point rows: the yes - no differences in later behaviour and the behavioural
    coupon effect; the stated share is given in the title.
    """
    t = result.table
    rows = t[t["kind"].isin(["difference", "does"])]
    ax = _ax(ax, (8, 0.9 + 0.6 * max(len(rows), 1)))
    y = np.arange(len(rows))
    est = rows["estimate"].to_numpy() * 100
    err = np.vstack([est - rows["ci_low"].to_numpy() * 100,
                     rows["ci_high"].to_numpy() * 100 - est])
    colors = ["#1f6f8b" if k == "difference" else "#2e7d32" for k in rows["kind"]]
    for yi, e, lo, hi, c in zip(y, est, err[0], err[1], colors, strict=True):
        ax.errorbar([e], [yi], xerr=[[lo], [hi]], fmt="o", capsize=3, color=c)
    ax.axvline(0, color="grey", lw=1)
    labels = [
        (f"答“是”减答“否” says yes − no: {_label(o)}" if k == "difference"
         else "发券的行为效应 coupon effect on first sending (ATE)")
        for k, o in zip(rows["kind"], rows["outcome"], strict=True)
    ]
    ax.set_yticks(y, labels)
    ax.invert_yaxis()
    ax.set_xlabel("百分点 percentage points (95% CI)")
    says = t[t["kind"] == "says"]
    stated = (f"：{says['estimate'].iloc[0]:.1%} 称优惠券影响选择 say coupons influence them"
              if len(says) else "")
    ax.set_title(title or f"说的与做的 says vs. does{stated}", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    return ax
