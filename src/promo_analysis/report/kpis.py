"""Headline KPIs of a regional report, built from the region's small daily aggregates.

These are census totals of the region's own records (every shipment counted), so they carry
no sampling error; growth is the plain ratio of two totals.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from promo_analysis.report.params import Period
from promo_analysis.report.privacy import DEFAULT_K, suppressed_marker

__all__ = ["KPI_NAMES", "CHANNEL_NAMES", "kpi_table", "channel_mix", "monthly_revenue"]

#: metric -> (name_zh, name_en, unit)
KPI_NAMES: dict[str, tuple[str, str, str]] = {
    "revenue": ("散户收入", "Walk-in revenue", "元 yuan"),
    "express_revenue": ("特快收入", "Express revenue", "元 yuan"),
    "shipments": ("寄件量", "Parcels sent", "件 parcels"),
    "revenue_per_shipment": ("件均收入", "Revenue per parcel", "元 yuan"),
    "coupons_used": ("用券件数", "Coupons used", "张 coupons"),
    "coupon_share": ("用券占比", "Share of parcels with a coupon", "%"),
    "discount": ("优惠金额", "Discounts given", "元 yuan"),
    "campaign_shipments": ("活动寄件量", "Parcels attributed to a campaign", "件 parcels"),
    "new_customers": ("新客户", "New customers (first parcel)", "人 customers"),
    "active_customers": ("活跃客户", "Active senders", "人 customers"),
}

#: channel -> (name_zh, name_en)
CHANNEL_NAMES: dict[str, tuple[str, str]] = {
    "station": ("揽投部", "Courier station"),
    "counter": ("营业网点", "Post-office counter"),
    "pickup_point": ("自提点", "Pickup point"),
    "online": ("线上", "Online / WeChat"),
}


def _in(frame: pd.DataFrame, period: Period | None) -> pd.DataFrame:
    if period is None:
        return frame.iloc[0:0]
    d = pd.to_datetime(frame["date"])
    return frame[(d >= pd.Timestamp(period.start)) & (d <= pd.Timestamp(period.end))]


def _totals(
    daily: pd.DataFrame,
    new_customers: pd.DataFrame,
    period_customers: pd.DataFrame,
    period: Period | None,
    label: str,
) -> dict[str, float]:
    d = _in(daily, period)
    if period is None:
        return {k: np.nan for k in KPI_NAMES}
    revenue = float(d["revenue"].sum())
    shipments = float(d["shipments"].sum())
    coupons = float(d["coupon_shipments"].sum())
    pc = period_customers[
        (period_customers["period"] == label) & (period_customers["channel"] == "all")
    ]
    active = float(pc["customers"].sum()) if len(pc) else 0.0
    return {
        "revenue": revenue,
        "express_revenue": float(d.loc[d["product"] == "express", "revenue"].sum()),
        "shipments": shipments,
        "revenue_per_shipment": revenue / shipments if shipments else np.nan,
        "coupons_used": coupons,
        "coupon_share": 100 * coupons / shipments if shipments else np.nan,
        "discount": float(d["discount"].sum()),
        "campaign_shipments": float(d["campaign_shipments"].sum()),
        "new_customers": float(_in(new_customers, period)["new_customers"].sum()),
        "active_customers": active,
    }


def kpi_table(
    daily: pd.DataFrame,
    new_customers: pd.DataFrame,
    period_customers: pd.DataFrame,
    period: Period,
    compare: Period | None,
    k: int = DEFAULT_K,
    data_start: object = None,
) -> pd.DataFrame:
    """The headline KPI table: each metric in the period, the comparison period and growth.

    Parameters
    ----------
    daily : DataFrame
        ``date, channel, product, shipments, revenue, discount, coupon_shipments,
        campaign_shipments`` (one region; from the report inputs).
    new_customers : DataFrame
        ``date, new_customers``.
    period_customers : DataFrame
        ``period ("current"|"previous"), channel ("all" or a channel), customers``.
    period, compare : Period
        Report and comparison periods (``compare`` may be None).
    k : int
        A period with fewer than ``k`` active senders is suppressed entirely (every figure of it
        would describe fewer than ``k`` customers); customer counts below ``k`` likewise.
    data_start : date-like, optional
        First day of the data. "New" means first parcel *in the data*, so in a period that
        starts on or before that day every sender looks new; such a period's new-customer
        count is left out (NaN) rather than shown misleadingly.

    Returns
    -------
    DataFrame
        Indexed by metric key; columns ``name_zh, name_en, unit, current, previous, change,
        growth_pct``.
    """
    cur = _totals(daily, new_customers, period_customers, period, "current")
    prev = _totals(daily, new_customers, period_customers, compare, "previous")
    rows = []
    for key, (zh, en, unit) in KPI_NAMES.items():
        c, p = cur[key], prev[key]
        change = c - p
        growth = 100 * change / p if p and not np.isnan(p) and key != "coupon_share" else np.nan
        rows.append(
            {
                "metric": key,
                "name_zh": zh,
                "name_en": en,
                "unit": unit,
                "current": c,
                "previous": p,
                "change": change,
                "growth_pct": growth,
            }
        )
    table = pd.DataFrame(rows).set_index("metric")
    if data_start is not None:
        start = pd.Timestamp(data_start)
        for col, p in (("current", period), ("previous", compare)):
            if p is not None and pd.Timestamp(p.start) <= start:
                table.loc["new_customers", [col, "change", "growth_pct"]] = np.nan
    marker = suppressed_marker(k)
    for col, totals in (("current", cur), ("previous", prev)):
        if compare is None and col == "previous":
            continue
        small_period = totals["active_customers"] < k
        for key in KPI_NAMES:
            is_count = key in ("new_customers", "active_customers")
            if small_period or (is_count and 0 < totals[key] < k):
                table[col] = table[col].astype(object)
                table.loc[key, col] = marker
                for dep in ("change", "growth_pct"):
                    table[dep] = table[dep].astype(object)
                    table.loc[key, dep] = marker
    return table


def channel_mix(
    daily: pd.DataFrame,
    period_customers: pd.DataFrame,
    period: Period,
    compare: Period | None,
    k: int = DEFAULT_K,
) -> pd.DataFrame:
    """Revenue by sales channel in both periods, with shares and growth.

    Channels used by fewer than ``k`` customers in a period are suppressed for that period
    (``suppressed_current`` / ``suppressed_previous`` flag them).
    """
    cur = _in(daily, period).groupby("channel")["revenue"].sum()
    prev = _in(daily, compare).groupby("channel")["revenue"].sum()
    channels = [c for c in CHANNEL_NAMES if c in cur.index or c in prev.index]
    channels += sorted((set(cur.index) | set(prev.index)) - set(channels))
    pc = period_customers[period_customers["channel"] != "all"]
    n_cur = pc[pc["period"] == "current"].set_index("channel")["customers"]
    n_prev = pc[pc["period"] == "previous"].set_index("channel")["customers"]
    out = pd.DataFrame(
        {
            "name_zh": [CHANNEL_NAMES.get(c, (c, c))[0] for c in channels],
            "name_en": [CHANNEL_NAMES.get(c, (c, c))[1] for c in channels],
            "revenue_current": [float(cur.get(c, 0.0)) for c in channels],
            "revenue_previous": [float(prev.get(c, 0.0)) for c in channels]
            if compare is not None
            else np.nan,
            "customers_current": [int(n_cur.get(c, 0)) for c in channels],
            "customers_previous": [int(n_prev.get(c, 0)) for c in channels],
        },
        index=pd.Index(channels, name="channel"),
    )
    tot_c = out["revenue_current"].sum()
    tot_p = out["revenue_previous"].sum()
    out["share_current_pct"] = 100 * out["revenue_current"] / tot_c if tot_c else np.nan
    out["share_previous_pct"] = 100 * out["revenue_previous"] / tot_p if tot_p else np.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        growth = 100 * (out["revenue_current"] / out["revenue_previous"] - 1)
    out["growth_pct"] = growth.replace([np.inf, -np.inf], np.nan)
    marker = suppressed_marker(k)
    for which in ("current", "previous"):
        small = out[f"customers_{which}"] < k
        if which == "previous" and compare is None:
            small[:] = False
        out[f"suppressed_{which}"] = small
        cols = [f"revenue_{which}", f"share_{which}_pct", f"customers_{which}", "growth_pct"]
        for col in cols:
            if small.any():
                out[col] = out[col].astype(object)
                out.loc[small, col] = marker
    return out


def monthly_revenue(daily: pd.DataFrame, period: Period, compare: Period | None) -> pd.DataFrame:
    """Revenue per month of the period next to the same month of the comparison period.

    Returns a frame indexed by month number within the period (1 = first month) with
    ``month`` (label of the current month), ``current`` and ``previous`` revenue (元).
    """
    def by_month(p: Period | None) -> pd.Series:
        d = _in(daily, p)
        if p is None or d.empty:
            return pd.Series(dtype=float)
        m = pd.to_datetime(d["date"]).dt.to_period("M")
        s = d.groupby(m)["revenue"].sum()
        start = pd.Timestamp(p.start).to_period("M")
        s.index = [(i - start).n + 1 for i in s.index]
        return s

    cur, prev = by_month(period), by_month(compare)
    months = pd.period_range(period.start, period.end, freq="M")
    idx = pd.Index(range(1, len(months) + 1), name="month_no")
    return pd.DataFrame(
        {
            "month": [str(m) for m in months],
            "current": cur.reindex(idx).fillna(0.0).to_numpy(),
            "previous": prev.reindex(idx).to_numpy() if compare is not None else np.nan,
        },
        index=idx,
    )
