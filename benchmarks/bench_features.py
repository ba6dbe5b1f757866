"""Benchmark: customer table and first-use table on a simulated dataset of 1 M / 10 M / 50 M
shipments, against a hand-written DuckDB SQL query and a plain pandas version.

Targets (issue 9): ``features.customer_table`` and ``first_use_table`` within 1.5x of the
hand-written DuckDB SQL of the same aggregation on the same Parquet files at 10 M and 50 M; at
50 M at most half the wall time and a third of the peak memory of the pandas version; peak
memory < 4 GB for every step at 50 M.

Every method runs in a fresh subprocess (peak RSS is per step) on the dataset folder written by
``promo_analysis.simulate.write_simulation`` (all 31 regions, shipments partitioned by region and
month; cached in ``benchmarks/.cache/``, see ``_harness.py``). Wall and CPU seconds cover the
step only (the dataset is opened and the engine warmed up before the clock starts); the load
average before each step is recorded next to it.

Methods:

* ``ibis_customer_table`` -- ``features.customer_table(load_dataset(folder))``;
* ``sql_customer_table`` -- the same table by one hand-written DuckDB query (streaming
  group-by: ``min`` of a ``(sent_at, shipment_id, ...)`` struct, ``min(x, 2)``; left join,
  ``ORDER BY``) straight on the Parquet files;
* ``sql_window_customer_table`` -- the textbook SQL (``row_number()`` window + filtered
  aggregates), what the package did before; shows what the window costs;
* ``pandas_customer_table`` -- read the needed columns, sort + groupby (what a user writes);
* ``ibis_customer_table_parquet`` -- ``features.customer_table(ds, path=...)``: the table written
  to Parquet from the engine, never pulled into Python (the national-scale output);
* ``sql_customer_table_copy`` -- the same by hand: ``SQL_CUSTOMER_TABLE`` without ``ORDER BY``
  (the file promises no order) in a DuckDB ``COPY ... TO 'x.parquet'``,
  ``preserve_insertion_order = false``;
* ``pandas_customer_table_parquet`` -- ``pandas_customer_table`` plus ``DataFrame.to_parquet``;
* ``ibis_first_use_table`` -- ``features.first_use_table(ds)`` (engine part + seeded draw);
* ``ibis_first_use_engine_part`` -- only its engine part (``first_use._prospect_frame``: the
  query and the pull into pandas), what ``sql_first_use`` computes;
* ``sql_first_use`` -- the engine part of the first-use table (customers + first shipment +
  first eligible coupon, minus experiment participants) as one hand-written DuckDB query.

A method name may end in ``@<limit>`` (``ibis_customer_table_parquet@3GB``): DuckDB's
``memory_limit`` for the step (``load_dataset(..., memory_limit=...)``, ``SET memory_limit`` for
the hand SQL); the pandas methods ignore it (cap them with ``prlimit --as=<bytes>``). The two
Parquet methods of the engine take ``*<k>`` before it (``ibis_customer_table_parquet*4@3GB``,
``sql_customer_table_copy*4``): ``customer_table(ds, path=..., buckets=k)`` and the hand SQL
split the same way (one query per ``hash(customer_id) % k``).

Run:  .venv/bin/python benchmarks/bench_features.py [--sizes 1e6,1e7,5e7] [--data PATH]
      [--methods ibis_customer_table,sql_customer_table]
Writes benchmarks/results/features.csv (``--out`` to change).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _harness as h  # noqa: E402

OUT = HERE / "results" / "features.csv"
METHODS = [
    "ibis_customer_table",
    "sql_customer_table",
    "sql_window_customer_table",
    "pandas_customer_table",
    "ibis_customer_table_parquet",
    "sql_customer_table_copy",
    "pandas_customer_table_parquet",
    "ibis_first_use_table",
    "ibis_first_use_engine_part",
    "sql_first_use",
]

# the first parcel: min of a (sent_at, shipment_id, ...) struct, not arg_min(struct, key):
# DuckDB cannot spill arg_min states of structs (a 50 M run fails under any memory_limit)
SQL_CUSTOMER_TABLE = """
WITH hist AS (
  SELECT customer_id,
         min(sent_at) AS first_sent_at,
         min({'t': sent_at, 'id': shipment_id, 'channel': channel, 'list_price': list_price,
              'revenue': revenue, 'coupon_id': coupon_id}) AS f,
         count(*) AS n_shipments,
         sum(revenue) AS revenue,
         max(sent_at) AS last_sent_at,
         min(sent_at, 2)[2] AS second_sent_at,
         count(coupon_id) AS n_coupon_shipments,
         count(*) FILTER (WHERE coupon_id IS NULL AND discount = 0) AS n_full_price_shipments
  FROM shipments GROUP BY customer_id
)
SELECT c.*, h.first_sent_at, h.f.channel AS first_channel, h.f.list_price AS first_list_price,
       h.f.revenue AS first_revenue,
       CASE WHEN h.f IS NOT NULL THEN h.f.coupon_id IS NOT NULL END AS first_used_coupon,
       h.f.coupon_id AS first_coupon_id, coalesce(h.n_shipments, 0) AS n_shipments,
       coalesce(h.revenue, 0) AS revenue, h.last_sent_at, h.second_sent_at,
       coalesce(h.n_coupon_shipments, 0) AS n_coupon_shipments,
       coalesce(h.n_full_price_shipments, 0) AS n_full_price_shipments
FROM customers c LEFT JOIN hist h USING (customer_id)
ORDER BY c.customer_id
"""

#: the hand-written customer table for a COPY to Parquet: the same query, no ORDER BY
SQL_CUSTOMER_TABLE_COPY = SQL_CUSTOMER_TABLE.replace("ORDER BY c.customer_id\n", "")

SQL_WINDOW_CUSTOMER_TABLE = """
WITH ranked AS (
  SELECT customer_id, sent_at, channel, list_price, revenue, coupon_id, discount,
         row_number() OVER (PARTITION BY customer_id ORDER BY sent_at, shipment_id) - 1 AS rk
  FROM shipments
), hist AS (
  SELECT customer_id,
         min(sent_at) AS first_sent_at,
         max(channel) FILTER (WHERE rk = 0) AS first_channel,
         max(list_price) FILTER (WHERE rk = 0) AS first_list_price,
         max(revenue) FILTER (WHERE rk = 0) AS first_revenue,
         max(CAST(coupon_id IS NOT NULL AS TINYINT)) FILTER (WHERE rk = 0) AS first_used_coupon,
         max(coupon_id) FILTER (WHERE rk = 0) AS first_coupon_id,
         count(*) AS n_shipments,
         sum(revenue) AS revenue,
         max(sent_at) AS last_sent_at,
         min(sent_at) FILTER (WHERE rk = 1) AS second_sent_at,
         count(coupon_id) AS n_coupon_shipments,
         count(*) FILTER (WHERE coupon_id IS NULL AND discount = 0) AS n_full_price_shipments
  FROM ranked GROUP BY customer_id
)
SELECT c.*, h.* EXCLUDE (customer_id)
FROM customers c LEFT JOIN hist h USING (customer_id)
ORDER BY c.customer_id
"""

# the engine part of first_use_table (features/first_use.py, _prospect_frame), by hand
SQL_FIRST_USE = """
WITH hist AS (
  SELECT customer_id, min(sent_at) AS first_sent_at,
         arg_min({'revenue': revenue, 'list_price': list_price},
                 {'t': sent_at, 'id': shipment_id}) AS f
  FROM shipments GROUP BY customer_id
), base AS (
  SELECT c.*, date_trunc('day', c.known_since::TIMESTAMP) AS _known, h.first_sent_at,
         h.f.revenue AS first_revenue, h.f.list_price AS _first_list_price
  FROM customers c LEFT JOIN hist h USING (customer_id)
  WHERE c.customer_id NOT IN (SELECT customer_id FROM assignments)
), k AS (
  SELECT k.customer_id, date_trunc('day', k.issued_at::TIMESTAMP) AS issued,
         k.issued_at::TIMESTAMP AS issued_ts, k.coupon_id, k.threshold, k.face_value,
         b._known <= date_trunc('day', k.issued_at::TIMESTAMP)
           AND (b.first_sent_at IS NULL
                OR b.first_sent_at >= date_trunc('day', k.issued_at::TIMESTAMP)) AS eligible
  FROM coupons k JOIN base b USING (customer_id)
), el AS (
  SELECT customer_id,
         arg_min({'issued': issued, 'coupon_id': coupon_id, 'threshold': threshold,
                  'face': face_value}, {'t': issued_ts, 'id': coupon_id})
           FILTER (WHERE eligible) AS e,
         count(*) FILTER (WHERE NOT eligible) AS n_not_eligible
  FROM k GROUP BY customer_id
)
SELECT base.*, el.e.issued AS _issued, el.e.coupon_id AS _coupon_id,
       el.e.threshold AS _threshold, el.e.face AS _face, el.n_not_eligible
FROM base LEFT JOIN el USING (customer_id)
ORDER BY base.customer_id
"""


def _pandas_customer_table(folder: Path) -> pd.DataFrame:
    """What a user would write: read the columns, sort, groupby."""
    cols = ["shipment_id", "customer_id", "sent_at", "channel", "list_price", "discount",
            "revenue", "coupon_id"]
    parts = folder / "shipments"
    src = parts if parts.is_dir() else folder / "shipments.parquet"
    # text held as pandas 3 holds it by default (Arrow-backed ``str``): pandas 2's object
    # strings cost ~4x the memory (at 50 M shipments that version died while reading)
    with pd.option_context("future.infer_string", True):
        s = pd.read_parquet(src, columns=cols)
        customers = pd.read_parquet(folder / "customers.parquet")
    s = s.sort_values(["customer_id", "sent_at", "shipment_id"])
    g = s.groupby("customer_id", sort=False)
    first = g.nth(0).set_index("customer_id")
    second = g.nth(1).set_index("customer_id")["sent_at"].rename("second_sent_at")
    s["_coupon"] = s["coupon_id"].notna()
    s["_full"] = s["coupon_id"].isna() & (s["discount"] == 0)
    agg = s.groupby("customer_id").agg(
        n_shipments=("shipment_id", "size"),
        revenue=("revenue", "sum"),
        last_sent_at=("sent_at", "max"),
        n_coupon_shipments=("_coupon", "sum"),
        n_full_price_shipments=("_full", "sum"),
    )
    hist = first[["sent_at", "channel", "list_price", "revenue", "coupon_id"]].rename(
        columns={"sent_at": "first_sent_at", "channel": "first_channel",
                 "list_price": "first_list_price", "revenue": "first_revenue",
                 "coupon_id": "first_coupon_id"}
    )
    hist = hist.join(agg).join(second)
    return customers.merge(hist, left_on="customer_id", right_index=True, how="left")


def _sql_views(con, folder: Path) -> None:
    h.sql_views(con, folder)
    con.execute(f"CREATE VIEW assignments AS SELECT * FROM '{folder}/assignments.parquet'")
    coupons = folder / "coupons"
    src = (f"read_parquet('{coupons}/**/*.parquet', hive_partitioning = true)"
           if coupons.is_dir() else f"'{folder}/coupons.parquet'")
    con.execute(f"CREATE VIEW coupons AS SELECT * FROM {src}")


def _bucketed(query: str, buckets: int, i: int) -> str:
    """``SQL_CUSTOMER_TABLE_COPY`` for the customers with ``hash(customer_id) % buckets = i``."""
    cond = f"hash(customer_id) % {buckets} = {i}"
    out = (query.replace("FROM shipments GROUP BY customer_id",
                         f"FROM shipments WHERE {cond} GROUP BY customer_id")
           .replace("FROM customers c LEFT JOIN",
                    f"FROM (SELECT * FROM customers WHERE {cond}) c LEFT JOIN"))
    assert out.count(cond) == 2, "SQL_CUSTOMER_TABLE_COPY changed: update _bucketed"
    return out


def _parquet_rows(path: Path) -> int:
    import pyarrow.dataset as pads

    return pads.dataset(path, format="parquet").count_rows()


def step(method: str, folder: Path) -> dict:
    """Run one method once, timing only the step itself (``method@3GB``: DuckDB memory limit)."""
    import tempfile

    name, _, limit = method.partition("@")
    name, _, buckets = name.partition("*")
    buckets = int(buckets or 1)
    tmp = tempfile.TemporaryDirectory(prefix="bench-features-")
    target = Path(tmp.name) / "customers.parquet"
    if name.startswith("sql"):
        import duckdb

        con = duckdb.connect()
        if limit:
            con.execute(f"SET memory_limit = '{limit}'")
        _sql_views(con, folder)
        query = {"sql_customer_table": SQL_CUSTOMER_TABLE,
                 "sql_window_customer_table": SQL_WINDOW_CUSTOMER_TABLE,
                 "sql_first_use": SQL_FIRST_USE,
                 "sql_customer_table_copy": SQL_CUSTOMER_TABLE_COPY}[name]
        con.execute("SELECT 1").fetchall()
        if name == "sql_customer_table_copy":
            con.execute("SET preserve_insertion_order = false")
            with h.Timer() as t:
                if buckets == 1:
                    con.execute(f"COPY ({query}) TO '{target}' (FORMAT parquet)")
                else:
                    target.mkdir()
                    for i in range(buckets):
                        con.execute(f"COPY ({_bucketed(query, buckets, i)}) TO "
                                    f"'{target}/part-{i}.parquet' (FORMAT parquet)")
            rows = _parquet_rows(target)
        else:
            with h.Timer() as t:
                rows = len(con.execute(query).df())
    elif name.startswith("pandas_customer_table"):
        import pyarrow  # noqa: F401  (imported before the clock, as the engines are)

        with h.Timer() as t:
            out = _pandas_customer_table(folder)
            if name == "pandas_customer_table_parquet":
                out.to_parquet(target, index=False)
        rows = len(out)
    else:
        from promo_analysis.dataset import load_dataset
        from promo_analysis.features import customer_table, first_use_table

        ds = load_dataset(folder, memory_limit=limit or None)
        ds.table("regions").count().to_pandas()  # warm up the connection, not timed
        from promo_analysis.features.first_use import _prospect_frame

        fn = {"ibis_customer_table": customer_table, "ibis_first_use_table": first_use_table,
              "ibis_first_use_engine_part": lambda ds: _prospect_frame(ds)[0],
              "ibis_customer_table_parquet":
                  lambda ds: customer_table(ds, path=target, buckets=buckets)}
        with h.Timer() as t:
            out = fn[name](ds)
        rows = out.rows if name == "ibis_customer_table_parquet" else len(out)
    tmp.cleanup()
    return {"method": method, "wall_seconds": round(t.wall, 2), "cpu_seconds": round(t.cpu, 2),
            "peak_rss_mb": h.peak_rss_mb(), "rows_out": rows}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="1e6,1e7", help="shipments, e.g. 1e6,1e7,5e7")
    p.add_argument("--data", help="a pre-generated dataset folder (then --sizes is ignored)")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--out", default=str(OUT))
    p.add_argument("--step", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.step:
        print(json.dumps(step(args.step[0], Path(args.step[1]))))
        return
    rows = h.run_steps(__file__, args.methods.split(","), "method", args.sizes, args.data)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    h.append_rows(out, rows)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
