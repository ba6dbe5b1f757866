"""Daily series per region (or any shipment columns): the input of campaign analyses.

Two engine aggregations, both one pass over ``shipments`` for all groups at once:

* a group-by over ``(date, *by)`` for revenue, shipments, coupon shipments and discounts;
* a group-by over ``customer_id`` for each customer's first shipment (time and the ``by``
  values of that first shipment), then counted per ``(date, *by)``: a new customer is one
  whose first-ever shipment in the data is on that day. On DuckDB this is one integer ``min``
  per customer over a key packing the time and the ``by`` values; elsewhere one ``argmin`` over
  a struct key. Either way ties in time go to the smallest ``by`` values (missing first).

Only the small aggregated frames come into pandas, where days without shipments are filled with
zeros so that every group has one row per calendar day.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import ibis
import ibis.expr.datatypes as dt
import pandas as pd

from .aggregates import arg_min, epoch_us, on_duckdb, scalar

__all__ = ["daily_series", "DAILY_METRICS"]

#: metric name -> what it is (all sums over shipments, except new_customers)
DAILY_METRICS: dict[str, str] = {
    "revenue": "sum of revenue (yuan, list price minus discount)",
    "shipments": "number of shipments",
    "new_customers": "customers whose first shipment in the data is on that day",
    "coupon_shipments": "shipments that redeemed a coupon (coupon_id not null)",
    "discount": "sum of discounts (yuan)",
    "list_price": "sum of list prices (yuan)",
    "campaign_shipments": "shipments attributed to a campaign (campaign_id not null)",
}


def _check(ds: Any, by: Sequence[str], metrics: Sequence[str]) -> tuple[Any, list[str], list[str]]:
    if isinstance(by, str):
        by = (by,)
    if isinstance(metrics, str):
        metrics = (metrics,)
    unknown = [m for m in metrics if m not in DAILY_METRICS]
    if unknown:
        raise ValueError(
            f"daily_series: unknown metrics {unknown}; available: {', '.join(DAILY_METRICS)}"
        )
    if not metrics:
        raise ValueError("daily_series: `metrics` is empty")
    s = ds.table("shipments")
    cols = set(s.columns)
    need = {"sent_at", "customer_id", *by}
    for m, c in (
        ("revenue", "revenue"),
        ("discount", "discount"),
        ("list_price", "list_price"),
        ("coupon_shipments", "coupon_id"),
        ("campaign_shipments", "campaign_id"),
    ):
        if m in metrics:
            need.add(c)
    missing = sorted(need - cols)
    if missing:
        raise ValueError(
            f"daily_series: table 'shipments' lacks the columns {missing} "
            f"(has: {', '.join(s.columns)})"
        )
    if "date" in by:
        raise ValueError("daily_series: `by` must not contain 'date' (it is always the time key)")
    return s, list(by), list(metrics)


def _first_shipment_values(s: Any, by: list[str]) -> dict[str, Any]:
    """The aggregate giving the ``by`` values of each customer's first shipment (earliest
    ``sent_at``; ties go to the smallest ``by`` values, missing first): the portable path, for
    engines other than DuckDB and for data the packed key of :func:`_new_customers_packed` does
    not fit.

    One ``argmin`` of all ``by`` values at once (per-column argmins could take them from
    different tied shipments) over the key ``(sent_at, by_1 present, by_1, ...)``: a struct,
    compared field by field on every engine; ``false < true`` puts missing values first.
    """
    if not by:
        return {}
    values = ibis.struct({b: s[b] for b in by})
    fields: dict[str, Any] = {"t": s.sent_at}
    for i, b in enumerate(by):
        fields[f"p{i}"] = s[b].notnull()
        fields[f"v{i}"] = s[b]
    key = ibis.struct(fields)
    if on_duckdb(s):
        # DuckDB's streaming arg_min; Ibis's argmin would compile to an ordered aggregate
        # (FIRST ... ORDER BY) that buffers and sorts every customer's shipments
        return {"_by": arg_min(values, key, where=s.sent_at.notnull())}
    return {"_by": values.argmin(key, where=s.sent_at.notnull())}


def _new_customers_portable(s: Any, by: list[str]) -> pd.DataFrame:
    firsts = s.group_by("customer_id").aggregate(
        _first=s.sent_at.min(), **_first_shipment_values(s, by)
    )
    if by:
        firsts = firsts.mutate(**{b: firsts._by[b] for b in by}).drop("_by")
    return (
        firsts.group_by([firsts._first.date().name("date"), *by])
        .aggregate(new_customers=firsts.count())
        .to_pandas()
    )


_US_PER_DAY = 86_400_000_000
#: ``list_position`` scans the list per row: ~1 ns per element (10 M shipments: +0.3 CPU-s with
#: 300 values, +2.1 with 2000), so beyond this many values per ``by`` column the struct
#: ``arg_min`` is cheaper
_MAX_CODED_VALUES = 256


def _new_customers_packed(
    s: Any, by: list[str], groups: pd.DataFrame, first_day: pd.Timestamp, last_day: pd.Timestamp
) -> pd.DataFrame | None:
    """New customers per ``(date, *by)`` on DuckDB: one streaming ``min`` of a packed integer
    per customer.

    The key of a shipment is ``(microseconds since first_day) * 2**bits + code``, where
    ``code`` numbers the shipment's ``by`` values (mixed radix over each column's sorted
    distinct values, missing = 0): its minimum over a customer's shipments gives the first
    shipment's time *and* groups, with ties in time broken by the smallest ``by`` values. An
    integer ``min`` is much cheaper than ``arg_min`` of a struct (or of a string).

    Customers are grouped by their id. Grouping by a 64-bit hash of the id instead is cheaper
    (about 30 % less CPU at 50 M shipments), but two ids sharing a hash would silently merge,
    and checking for that (a second hash per row) cost more than it saved: see the
    daily-series section of ``benchmarks/README.md``.

    Returns None when the key does not fit in 63 bits (a very long period with very many
    groups) or a ``by`` column has more than ``_MAX_CODED_VALUES`` values; the caller then uses
    :func:`_new_customers_portable`.
    """
    values = {b: sorted(groups[b].dropna().unique().tolist()) for b in by}
    if any(len(v) > _MAX_CODED_VALUES for v in values.values()):
        return None
    bits = {b: max(1, int(len(v)).bit_length()) for b, v in values.items()}
    width = sum(bits.values())
    span_us = ((last_day - first_day).days + 1) * _US_PER_DAY
    if span_us >= 2 ** (63 - width):
        return None
    code = ibis.literal(0, type="int64")
    shift = width
    for b in by:
        shift -= bits[b]
        lookup = ibis.literal(values[b], type=dt.Array(s[b].type()))
        pos = scalar("list_position", lookup, s[b], output=dt.int64).fill_null(0)
        code = code + pos * (1 << shift)
    base_us = int(first_day.value // 1_000)  # naive timestamps: epoch_us of local midnight
    micros = epoch_us(s.sent_at) - base_us
    packed = micros * (1 << width) + code

    firsts = s.group_by("customer_id").aggregate(k=packed.min())
    # integer division in the engine (Ibis's ``//`` divides in floating point)
    day = scalar("divide", firsts.k, ibis.literal(_US_PER_DAY << width), output=dt.int64)
    new = (
        firsts.group_by(_day=day, _code=firsts.k % (1 << width))
        .aggregate(new_customers=firsts.count())
        .to_pandas()
    )
    new = new[new["_day"].notna()]
    out = pd.DataFrame(
        {"date": first_day + pd.to_timedelta(new["_day"].astype("int64"), unit="D")}
    )
    code_values = new["_code"].astype("int64").to_numpy()
    shift = width
    for b in by:
        shift -= bits[b]
        idx = (code_values >> shift) & ((1 << bits[b]) - 1)
        table = pd.array([None, *values[b]], dtype=groups[b].dtype)
        out[b] = table[idx]
    out["new_customers"] = new["new_customers"].to_numpy()
    return out


def daily_series(
    ds: Any,
    by: Sequence[str] = ("region_id",),
    metrics: Sequence[str] = (
        "revenue",
        "shipments",
        "new_customers",
        "coupon_shipments",
        "discount",
    ),
    *,
    start: str | pd.Timestamp | None = None,
    end: str | pd.Timestamp | None = None,
) -> pd.DataFrame:
    """One row per day and group with the day's shipment totals, computed in the engine.

    Parameters
    ----------
    ds : Dataset
        A dataset whose ``shipments`` table has ``sent_at``, ``customer_id`` and the ``by`` and
        metric columns.
    by : sequence of str, default ``("region_id",)``
        Shipment columns to group by (``()`` for one national series).
    metrics : sequence of str
        Any of :data:`DAILY_METRICS`.
    start, end : date-like, optional
        The calendar to fill (inclusive). Default: first to last shipment day in the data.
        Shipments outside ``[start, end]`` are excluded (and so are new customers whose first
        shipment falls outside); the first-shipment search itself always uses all data.

    Returns
    -------
    pandas.DataFrame
        ``date`` (datetime64, midnight), the ``by`` columns, then the metrics; zero-filled so
        every group seen in the data has every day; sorted by ``by`` then ``date``.

    Notes
    -----
    A customer is new on the day of its earliest ``sent_at`` in all the data, in the group of
    that shipment. When several shipments share that exact time and differ in a ``by`` value,
    the customer counts once, in the group with the smallest ``by`` values (compared column by
    column in ``by`` order, missing first), on every engine.
    """
    s, by, metrics = _check(ds, by, metrics)
    day = s.sent_at.date().name("date")
    aggs: dict[str, Any] = {}
    if "revenue" in metrics:
        aggs["revenue"] = s.revenue.cast("float64").sum()
    if "shipments" in metrics:
        aggs["shipments"] = s.count()
    if "coupon_shipments" in metrics:
        aggs["coupon_shipments"] = s.coupon_id.notnull().sum()
    if "discount" in metrics:
        aggs["discount"] = s.discount.cast("float64").sum()
    if "list_price" in metrics:
        aggs["list_price"] = s.list_price.cast("float64").sum()
    if "campaign_shipments" in metrics:
        aggs["campaign_shipments"] = s.campaign_id.notnull().sum()
    # with only new_customers asked for we still need the groups and the day range
    aggs["_n"] = s.count()
    main = s.group_by([day, *by]).aggregate(**aggs).to_pandas()
    main["date"] = pd.to_datetime(main["date"]).astype("datetime64[ns]")
    frames = [main]
    if "new_customers" in metrics:
        new = None
        days = main["date"].dropna()
        naive = s.sent_at.type().is_timestamp() and s.sent_at.type().timezone is None
        if on_duckdb(s) and naive and len(days):
            new = _new_customers_packed(s, by, main[by], days.min(), days.max())
        if new is None:
            new = _new_customers_portable(s, by)
        frames.append(new)
    for f in frames:
        f["date"] = pd.to_datetime(f["date"]).astype("datetime64[ns]")
    out = main
    if "new_customers" in metrics:
        out = main.merge(frames[1], on=["date", *by], how="outer")
    lo = pd.Timestamp(start) if start is not None else main["date"].min()
    hi = pd.Timestamp(end) if end is not None else main["date"].max()
    if pd.isna(lo) or pd.isna(hi):
        raise ValueError("daily_series: table 'shipments' has no rows with a sent_at")
    if lo > hi:
        raise ValueError(f"daily_series: start {lo.date()} is after end {hi.date()}")
    out = out[(out["date"] >= lo) & (out["date"] <= hi)]
    days = pd.date_range(lo, hi, freq="D", name="date")
    if by:
        groups = main[by].drop_duplicates()
        grid = groups.merge(pd.DataFrame({"date": days}), how="cross")
    else:
        grid = pd.DataFrame({"date": days})
    out = grid.merge(out, on=[*by, "date"], how="left")
    for m in metrics:
        out[m] = out[m].fillna(0)
        if m in ("shipments", "coupon_shipments", "new_customers", "campaign_shipments"):
            out[m] = out[m].astype("int64")
        else:
            out[m] = out[m].astype("float64")
    out = out[["date", *by, *metrics]].sort_values([*by, "date"]).reset_index(drop=True)
    return out
