"""The customer table: one row per known customer, sending history summarised in the engine.

The shipments table is the only large table of a dataset. :func:`customer_table` reduces it to
one row per customer in one pass (a streaming group-by on DuckDB; a window rank plus a group-by
on other engines), written as Ibis expressions so that it runs inside DuckDB (or Spark); only the
per-customer result is pulled into pandas. At national scale (tens of millions of customers) that
result is itself several GB: ``customer_table(ds, path=...)`` writes it to Parquet from the engine
instead and returns only a :class:`CustomerTableFile` summary.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ibis
import pandas as pd

from .aggregates import bucket, on_duckdb, smallest, struct_min
from .frames import arrow_to_frame, to_frame

__all__ = [
    "customer_table",
    "shipment_history",
    "CustomerTableFile",
    "CUSTOMER_COLUMNS",
    "HISTORY_COLUMNS",
]

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

    The building block of :func:`customer_table` (and of the first-use table and the retention
    counts), left lazy so that callers can join it further inside the engine. Columns:
    ``customer_id`` and :data:`HISTORY_COLUMNS`. A customer's first shipment is the one with
    the earliest ``sent_at``, ties broken by ``shipment_id`` (so the result does not depend on
    the engine's row order); the second shipment is the next one in that order.

    On DuckDB this is one streaming group-by (``min`` of a ``(sent_at, shipment_id, ...)``
    struct for the first parcel, ``min(sent_at, 2)`` for the second; both spill to disk under
    a ``memory_limit``); on other engines a window
    ranks each customer's shipments first. Both give the same table (tests/spark).
    """
    s = shipments
    has_coupon = s.coupon_id.notnull()
    full_price = ~has_coupon & (s.discount == 0)
    totals = {
        "n_shipments": s.count(),
        "revenue": s.revenue.sum(),
        "last_sent_at": s.sent_at.max(),
        # count, not a sum of 0/1: DuckDB sums BIGINT to HUGEINT, which Ibis types as int64
        # (so a cast is dropped) and DuckDB writes to Parquet as DOUBLE
        "n_coupon_shipments": s.count(where=has_coupon),
        "n_full_price_shipments": s.count(where=full_price),
    }
    if on_duckdb(s):
        # no window: sorting 50 M shipments by customer costs several times the group-by.
        # The first parcel is the smallest (sent_at, shipment_id, ...) struct: shipment_id is
        # unique, so the later fields never decide. Not arg_min(struct, struct key): DuckDB
        # keeps such states outside what it can spill, and at 37.9 M customers they ran out of
        # any memory_limit (a plain min of a struct spills like any group-by).
        first_row = ibis.struct(
            {
                "sent_at": s.sent_at,
                "shipment_id": s.shipment_id,
                "channel": s.channel,
                "list_price": s.list_price,
                "revenue": s.revenue,
                "coupon_id": s.coupon_id,
            }
        )
        h = s.group_by("customer_id").aggregate(
            first_sent_at=s.sent_at.min(),
            _first=struct_min(first_row),
            _two=smallest(s.sent_at, 2),
            **totals,
        )
        first = h._first
        return h.select(
            "customer_id",
            "first_sent_at",
            first_channel=first["channel"],
            first_list_price=first["list_price"],
            first_revenue=first["revenue"],
            first_used_coupon=ibis.ifelse(
                first.isnull(), ibis.null("int8"), first["coupon_id"].notnull().cast("int8")
            ),
            first_coupon_id=first["coupon_id"],
            n_shipments=h.n_shipments,
            revenue=h.revenue,
            last_sent_at=h.last_sent_at,
            second_sent_at=h._two[1],
            n_coupon_shipments=h.n_coupon_shipments,
            n_full_price_shipments=h.n_full_price_shipments,
        )
    # Rank each shipment within its customer: rank 0 is the first parcel, rank 1 the second.
    ranked = s.mutate(
        _rank=ibis.row_number().over(group_by=s.customer_id, order_by=[s.sent_at, s.shipment_id])
    )
    first = ranked._rank == 0
    return ranked.group_by("customer_id").aggregate(
        first_sent_at=ranked.sent_at.min(),
        first_channel=ranked.channel.max(where=first),
        first_list_price=ranked.list_price.max(where=first),
        first_revenue=ranked.revenue.max(where=first),
        first_used_coupon=ranked.coupon_id.notnull().cast("int8").max(where=first),
        first_coupon_id=ranked.coupon_id.max(where=first),
        n_shipments=ranked.count(),
        revenue=ranked.revenue.sum(),
        last_sent_at=ranked.sent_at.max(),
        second_sent_at=ranked.sent_at.min(where=ranked._rank == 1),
        n_coupon_shipments=ranked.count(where=ranked.coupon_id.notnull()),
        n_full_price_shipments=ranked.count(
            where=ranked.coupon_id.isnull() & (ranked.discount == 0)
        ),
    )


@dataclass(frozen=True)
class CustomerTableFile:
    """Where ``customer_table(ds, path=...)`` wrote the customer table, and what it holds.

    Attributes
    ----------
    path : pathlib.Path
        The Parquet file (or folder of part files) written by the engine.
    rows : int
        Rows written: one per customer.
    exclusions : dict
        ``{"shipments_without_customer": n}``, as ``df.attrs["exclusions"]`` of the frame.
    warnings : list of str
        As ``df.attrs["warnings"]`` of the frame.
    """

    path: Path
    rows: int
    exclusions: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)

    def read(self, columns: list[str] | None = None) -> pd.DataFrame:
        """The table (or some of its ``columns``) as pandas, sorted by ``customer_id`` when
        that column is read, with the dtypes of ``customer_table(ds)``."""
        import pyarrow.dataset as pads

        table = pads.dataset(self.path, format="parquet").to_table(columns=columns)
        sort_by = ["customer_id"] if "customer_id" in table.column_names else []
        df = arrow_to_frame(table, sort_by=sort_by)
        if "first_used_coupon" in df.columns:
            df["first_used_coupon"] = df["first_used_coupon"].astype("boolean")
        return df


def _customer_types_back(df: pd.DataFrame, schema: Any) -> pd.DataFrame:
    """The customers' own integer and boolean columns as they are without orphans.

    The full outer join gives the orphans' rows nulls in every customer column, so pandas
    holds those columns as float64 / object; once the orphans are dropped, a column without
    nulls goes back to ``int64`` / ``bool`` (what the engine, and the Parquet output, give).
    """
    for col, dtype in schema.items():
        if col not in df.columns or df[col].isna().any():
            continue
        if dtype.is_integer() and df[col].dtype == "float64":
            df[col] = df[col].astype("int64")
        elif dtype.is_boolean() and df[col].dtype == object:
            df[col] = df[col].astype(bool)
    return df


def _orphan_message(orphans: int) -> list[str]:
    return (
        [
            f"{orphans} shipment(s) have a customer_id that is not in the customers table; "
            "they are not counted in any customer's history"
        ]
        if orphans
        else []
    )


def _key_violations(c: Any) -> tuple[int, Any, int]:
    """Duplicate rows of ``customers`` by the key rule of :func:`_check_unique` (a missing id
    counts as a duplicate), as one engine group-by: ``(n_dup, example id, its rows)``."""
    per_id = c.group_by("customer_id").aggregate(_n=c.count())
    bad = per_id.filter((per_id._n > 1) | per_id.customer_id.isnull())
    extra = ibis.ifelse(bad.customer_id.isnull(), bad._n, bad._n - 1)
    n_dup = bad.aggregate(n=extra.sum()).to_pyarrow().column("n")[0].as_py() or 0
    if not n_dup:
        return 0, None, 0
    named = bad.filter(bad.customer_id.notnull()).order_by("customer_id").limit(1)
    row = named.to_pyarrow().to_pylist()
    if row:
        return int(n_dup), row[0]["customer_id"], int(row[0]["_n"])
    return int(n_dup), None, int(n_dup)


def _check_unique_in_engine(parts: list[Any]) -> None:
    """The key rule over ``customers`` split into ``parts`` by customer_id (a duplicate id
    falls into one part), raising :func:`_check_unique`'s error."""
    found = [_key_violations(part) for part in parts]
    n_dup = sum(f[0] for f in found)
    if not n_dup:
        return
    named = [f for f in found if f[1] is not None]
    _, example, times = min(named, key=lambda f: f[1]) if named else (0, None, n_dup)
    raise ValueError(
        f"table 'customers' must have one row per customer_id (key rule): {n_dup} "
        f"duplicate row(s), e.g. customer_id={example!r} appears {times} times"
    )


@contextlib.contextmanager
def _unordered_copy(expr: Any) -> Iterator[None]:
    """DuckDB keeps the row order of a ``COPY`` unless told not to, which buffers rows (GBs
    for tens of millions of customers); the file promises no order, so drop it for the copy."""
    if not on_duckdb(expr):
        yield
        return
    raw = ibis.get_backend(expr).con
    before = raw.execute("SELECT current_setting('preserve_insertion_order')").fetchall()[0][0]
    raw.execute("SET preserve_insertion_order = false").fetchall()
    try:
        yield
    finally:
        raw.execute(f"SET preserve_insertion_order = {bool(before)}").fetchall()


def _table_expr(c: Any, s: Any) -> Any:
    """The customer table (file form) of customers ``c`` and shipments ``s``, lazily."""
    history = shipment_history(s).rename(_cid="customer_id")
    joined = c.left_join(history, c.customer_id == history._cid)
    filled = {
        col: ibis.coalesce(joined[col], 0).cast("int64")
        for col in ("n_shipments", "n_coupon_shipments", "n_full_price_shipments")
    }
    filled["revenue"] = ibis.coalesce(joined.revenue, 0.0).cast("float64")
    filled["first_used_coupon"] = joined.first_used_coupon.cast("boolean")
    return joined.select(
        *[joined[col] for col in c.columns],
        **{col: filled.get(col, joined[col]) for col in HISTORY_COLUMNS},
    )


def _write_customer_table(c: Any, s: Any, path: Path, buckets: int = 1) -> CustomerTableFile:
    """``customer_table(ds, path=...)``: one engine query (customers left-joined to the
    history) per bucket of customer ids, written to ``path`` (``buckets > 1``: a folder of
    ``part-<i>.parquet``); the key check is a group-by of ``customers`` (per bucket) and the
    orphan count is all shipments minus those counted in the file, so nothing large reaches
    Python. Buckets bound the engine's group-by and join to 1/``buckets`` of the customers, at
    the price of one scan of the shipments per bucket."""
    import pyarrow.compute as pc
    import pyarrow.dataset as pads

    if buckets < 1:
        raise ValueError(f"buckets must be a positive integer, got {buckets!r}")
    if buckets == 1:
        pieces = [(c, s, path)]
    else:
        pieces = [
            (
                c.filter(bucket(c.customer_id, buckets) == i),
                s.filter(bucket(s.customer_id, buckets) == i),
                path / f"part-{i}.parquet",
            )
            for i in range(buckets)
        ]
    _check_unique_in_engine([piece[0] for piece in pieces])
    (path if buckets > 1 else path.parent).mkdir(parents=True, exist_ok=True)
    for ci, si, target in pieces:
        expr = _table_expr(ci, si)
        with _unordered_copy(expr):
            expr.to_parquet(target)

    written = pads.dataset(path, format="parquet")
    rows = written.count_rows()
    counted = sum(
        pc.sum(batch.column(0)).as_py() or 0
        for batch in written.to_batches(columns=["n_shipments"])
    )
    total = int(s.count().to_pyarrow().as_py())
    orphans = total - int(counted)
    return CustomerTableFile(
        path=path,
        rows=int(rows),
        exclusions={"shipments_without_customer": orphans},
        warnings=_orphan_message(orphans),
    )


def _check_unique(ids: pd.Series) -> None:
    """The key rule of ``customers``, checked on the sorted ids of the result (equal
    neighbours are duplicates; a missing id counts as a duplicate, as in ``validate``)."""
    present = ids.dropna().to_numpy()
    same = present[1:] == present[:-1] if len(present) > 1 else present[:0].astype(bool)
    n_dup = len(ids) - (len(present) - int(same.sum()))
    if n_dup:
        if same.any():
            example = present[1:][same][0]
            times = int((present == example).sum())
        else:
            example, times = None, len(ids) - len(present)
        raise ValueError(
            f"table 'customers' must have one row per customer_id (key rule): {n_dup} "
            f"duplicate row(s), e.g. customer_id={example!r} appears {times} times"
        )


def customer_table(
    ds: Any, path: str | os.PathLike | None = None, buckets: int = 1
) -> Any:
    """One row per customer with the first, second and last shipment and sending counts.

    Parameters
    ----------
    ds : Dataset
        A dataset with at least the ``customers`` and ``shipments`` tables (data contract v1).
    path : path, optional
        Write the table to this Parquet file (DuckDB; replaced if it exists) or folder of part
        files (Spark) from the engine instead of returning it: for national data, where the
        table has tens of millions of rows (37.9 M at 50 M shipments) and would take GBs as a
        pandas frame. Same rows and columns as the frame (row order unspecified), engine types
        (``known_since`` a date, ``first_used_coupon`` a nullable boolean); the same key check
        and orphan count. Returns a :class:`CustomerTableFile` then.
    buckets : int, default 1
        With ``path``: split the customers by a hash of ``customer_id`` into this many parts,
        each computed by its own query and written to ``path/part-<i>.parquet`` (``path`` is
        then a folder). Bounds the engine's memory to about 1/``buckets`` of the one-query
        peak (10 M shipments, 7.6 M customers: 2.7 GB in one query, 0.87 GB in 4) for one
        extra scan of the shipments per bucket.

    Returns
    -------
    pandas.DataFrame or CustomerTableFile
        Without ``path``: one row per row of ``customers``, sorted by ``customer_id``. The customer columns
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

    if path is not None:
        return _write_customer_table(c, s, Path(path), buckets)
    if buckets != 1:
        raise ValueError("buckets only applies to customer_table(ds, path=...)")

    # One query: the customers joined (full outer) to the per-customer history, so that the
    # shipments are read once; history rows without a customer are the orphans, counted below.
    history = shipment_history(s).rename(_cid="customer_id")
    known = c.mutate(_in_customers=ibis.literal(True))
    joined = known.outer_join(history, known.customer_id == history._cid)
    expr = joined.select(
        *[joined[col] for col in c.columns],
        joined._in_customers,
        *[joined[col] for col in HISTORY_COLUMNS],
    )
    df = to_frame(expr, sort_by=["customer_id"])
    orphan = df["_in_customers"].isna().to_numpy()
    orphans = int(df.loc[orphan, "n_shipments"].sum())
    df = df.drop(columns="_in_customers")
    if orphan.any():
        df = df.loc[~orphan].reset_index(drop=True)
        df = _customer_types_back(df, c.schema())
    _check_unique(df["customer_id"])
    for col in ("n_shipments", "n_coupon_shipments", "n_full_price_shipments"):
        df[col] = df[col].fillna(0).astype("int64")
    df["revenue"] = df["revenue"].fillna(0.0)
    # 0/1/null from the engine -> nullable boolean, vectorised
    df["first_used_coupon"] = df["first_used_coupon"].astype("Float64").astype("boolean")

    df.attrs["exclusions"] = {"shipments_without_customer": orphans}
    df.attrs["warnings"] = _orphan_message(orphans)
    return df
