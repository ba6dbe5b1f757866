"""The customer table: one row per known customer, sending history summarised in the engine.

The shipments table is the only large table of a dataset. :func:`customer_table` reduces it to
one row per customer with a single window pass (rank of each shipment within its customer) and
one group-by, both written as Ibis expressions so that they run inside DuckDB (or Spark); only the
per-customer result is pulled into pandas.
"""

from __future__ import annotations

from typing import Any

import ibis
import pandas as pd

__all__ = ["customer_table", "shipment_history", "CUSTOMER_COLUMNS", "HISTORY_COLUMNS"]

#: Customer columns every customer table starts with (from the ``customers`` table).
CUSTOMER_COLUMNS = ["customer_id", "region_id", "segment", "wechat_contact", "known_since"]

#: Columns computed from the shipments, in output order.
HISTORY_COLUMNS = [
    "first_sent_at",
    "first_channel",
    "first_list_price",
    "first_revenue",
    "first_used_coupon",
    "first_coupon_id",
    "n_shipments",
    "revenue",
    "last_sent_at",
    "second_sent_at",
    "n_coupon_shipments",
    "n_full_price_shipments",
]

_SHIPMENT_COLUMNS = [
    "shipment_id",
    "customer_id",
    "sent_at",
    "channel",
    "list_price",
    "discount",
    "revenue",
    "coupon_id",
]


def _require(table: Any, name: str, columns: list[str]) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(
            f"table {name!r} lacks the column(s) {missing} that customer_table needs "
            f"(it has {list(table.columns)})"
        )


def shipment_history(shipments: Any) -> Any:
    """Ibis expression: one row per ``customer_id`` of ``shipments`` with the history columns.

    The building block of :func:`customer_table` (and of the first-use table), left lazy so that
    callers can join it further inside the engine. Columns: ``customer_id`` and
    :data:`HISTORY_COLUMNS`.
    """
    s = shipments
    # Rank each shipment within its customer: rank 0 is the first parcel, rank 1 the second.
    # shipment_id breaks ties so that the result does not depend on the engine's row order.
    ranked = s.mutate(
        _rank=ibis.row_number().over(group_by=s.customer_id, order_by=[s.sent_at, s.shipment_id])
    )
    first = ranked._rank == 0
    has_coupon = ranked.coupon_id.notnull()
    full_price = ~has_coupon & (ranked.discount == 0)
    history = ranked.group_by("customer_id").aggregate(
        first_sent_at=ranked.sent_at.min(),
        first_channel=ranked.channel.max(where=first),
        first_list_price=ranked.list_price.max(where=first),
        first_revenue=ranked.revenue.max(where=first),
        first_used_coupon=has_coupon.cast("int8").max(where=first),
        first_coupon_id=ranked.coupon_id.max(where=first),
        n_shipments=ranked.count(),
        revenue=ranked.revenue.sum(),
        last_sent_at=ranked.sent_at.max(),
        second_sent_at=ranked.sent_at.min(where=ranked._rank == 1),
        n_coupon_shipments=has_coupon.cast("int64").sum(),
        n_full_price_shipments=full_price.cast("int64").sum(),
    )
    return history


def customer_table(ds: Any) -> pd.DataFrame:
    """One row per customer with the first, second and last shipment and sending counts.

    Parameters
    ----------
    ds : Dataset
        A dataset with at least the ``customers`` and ``shipments`` tables (data contract v1).

    Returns
    -------
    pandas.DataFrame
        One row per row of ``customers``, sorted by ``customer_id``. The customer columns
        ``customer_id, region_id, segment, wechat_contact, known_since`` and every extra column
        of the customers table (e.g. ``parcels_received``) come first, then:

        ``first_sent_at``, ``first_channel``, ``first_list_price``, ``first_revenue``,
        ``first_used_coupon`` (nullable bool), ``first_coupon_id``
            The customer's first shipment (earliest ``sent_at``; ties broken by
            ``shipment_id``). Null for prospects who never sent.
        ``n_shipments``, ``revenue``
            Number of shipments and total revenue (yuan); 0 for prospects.
        ``last_sent_at``, ``second_sent_at``
            Time of the last and of the second shipment (null if there is none).
        ``n_coupon_shipments``
            Shipments that redeemed a coupon (``coupon_id`` not null).
        ``n_full_price_shipments``
            Shipments at full price: no coupon and no discount (``discount == 0``).

        ``df.attrs["exclusions"]`` counts shipments left out because their ``customer_id`` is
        not in the customers table (``"shipments_without_customer"``); a non-zero count is also
        listed in ``df.attrs["warnings"]``.

    Raises
    ------
    ValueError
        If a needed column is missing, if ``customer_id`` is not unique in ``customers``, or if
        an extra customer column has the name of a computed column.
    """
    c = ds.table("customers")
    s = ds.table("shipments")
    _require(c, "customers", CUSTOMER_COLUMNS)
    _require(s, "shipments", _SHIPMENT_COLUMNS)
    clash = sorted(set(c.columns) & set(HISTORY_COLUMNS))
    if clash:
        raise ValueError(
            f"table 'customers' has column(s) {clash} whose names customer_table computes from "
            "the shipments; rename them before building the customer table"
        )

    n_rows, n_ids = c.aggregate(n=c.count(), k=c.customer_id.nunique()).to_pandas().iloc[0].tolist()
    if n_rows != n_ids:
        dup = (
            c.group_by("customer_id")
            .aggregate(k=c.count())
            .filter(lambda t: t.k > 1)
            .limit(1)
            .to_pandas()
        )
        raise ValueError(
            f"table 'customers' must have one row per customer_id (key rule): {n_rows - n_ids} "
            f"duplicate row(s), e.g. customer_id={dup.customer_id.iloc[0]!r} appears "
            f"{int(dup.k.iloc[0])} times"
        )

    history = shipment_history(s)
    history = history.rename(_cid="customer_id")
    joined = c.left_join(history, c.customer_id == history._cid)
    expr = joined.select(
        *[joined[col] for col in c.columns],
        *[joined[col] for col in HISTORY_COLUMNS],
    ).mutate(
        n_shipments=lambda t: t.n_shipments.fill_null(0),
        revenue=lambda t: t.revenue.fill_null(0.0),
        n_coupon_shipments=lambda t: t.n_coupon_shipments.fill_null(0),
        n_full_price_shipments=lambda t: t.n_full_price_shipments.fill_null(0),
    )
    # sorted here rather than by the engine: an ORDER BY over the joined result costs DuckDB
    # more than sorting the small per-customer frame in pandas
    df = expr.to_pandas().sort_values("customer_id", kind="stable", ignore_index=True)

    # 0/1/null from the engine -> nullable boolean, vectorised
    df["first_used_coupon"] = df["first_used_coupon"].astype("Float64").astype("boolean")
    for col in ("n_shipments", "n_coupon_shipments", "n_full_price_shipments"):
        df[col] = df[col].astype("int64")

    orphans = int(s.anti_join(c, s.customer_id == c.customer_id).count().to_pandas())
    df.attrs["exclusions"] = {"shipments_without_customer": orphans}
    df.attrs["warnings"] = (
        [
            f"{orphans} shipment(s) have a customer_id that is not in the customers table; "
            "they are not counted in any customer's history"
        ]
        if orphans
        else []
    )
    return df
