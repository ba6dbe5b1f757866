"""Benchmark: cohort matrix and Kaplan-Meier on large shipment tables (engine-side counts).

Targets (issue 5): cohort matrix over 50 M shipments < 15 s; Kaplan-Meier over 10 M customers
< 10 s -- aggregate in the engine (DuckDB), finish in memory.

Synthetic shipments are generated inside DuckDB (no pandas copy of the big table) and written
as Parquet; the dataset folder is then opened with ``load_dataset`` like any user's data.
About one customer per 5 shipments, so 50 M shipments have 10 M customers.

Run:  .venv/bin/python benchmarks/bench_retention.py [--sizes 1000000 5000000] [--keep]
Writes benchmarks/results/retention.csv (one row per size and step).
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
from pathlib import Path

import duckdb
import pandas as pd

HERE = Path(__file__).resolve().parent
OUT = HERE / "results" / "retention.csv"


def make_folder(n_shipments: int, folder: Path, seed: int = 0) -> None:
    """Write customers, shipments and regions Parquet files for ``n_shipments`` parcels."""
    n_cust = max(n_shipments // 5, 1)
    con = duckdb.connect()
    con.execute(f"SELECT setseed({seed / 1000})")
    con.execute(f"""
        CREATE TABLE customers AS
        SELECT 'c' || i AS customer_id,
               CASE WHEN i % 2 = 0 THEN 'guangxi' ELSE 'shanxi' END AS region_id,
               TIMESTAMP '2021-01-01' + to_days(CAST(i % 365 AS INTEGER)) AS known_since,
               ['office', 'campus', 'mall', 'residential', 'other'][1 + i % 5] AS segment,
               (i % 5 < 2) AS wechat_contact
        FROM range({n_cust}) t(i)
    """)
    # each shipment: a customer, a time in 2021-2022 after a customer-specific start
    con.execute(f"""
        CREATE TABLE shipments AS
        SELECT 's' || i AS shipment_id,
               'c' || c AS customer_id,
               CASE WHEN c % 2 = 0 THEN 'guangxi' ELSE 'shanxi' END AS region_id,
               TIMESTAMP '2021-01-01' + to_seconds(CAST((c % 365) * 86400
                   + floor(random() * (730 - c % 365) * 86400) AS BIGINT)) AS sent_at,
               'station' AS channel, 'express' AS product,
               round(10 + random() * 20, 1)::DOUBLE AS list_price,
               CASE WHEN random() < 0.15 THEN 3.0 ELSE 0.0 END::DOUBLE AS discount,
               NULL::VARCHAR AS campaign_id, 'cash' AS payment
        FROM (SELECT i, CAST(floor(random() * {n_cust}) AS BIGINT) AS c
              FROM range({n_shipments}) t(i))
    """)
    con.execute("""
        CREATE OR REPLACE TABLE shipments AS
        SELECT *, list_price - discount AS revenue,
               CASE WHEN discount > 0 THEN 'k' || shipment_id END AS coupon_id
        FROM shipments
    """)
    con.execute("""CREATE TABLE regions AS SELECT * FROM (VALUES
        ('guangxi', '广西', 'Guangxi'), ('shanxi', '山西', 'Shanxi')) t(region_id, name_zh, name_en)""")
    folder.mkdir(parents=True, exist_ok=True)
    for t in ("customers", "shipments", "regions"):
        con.execute(f"COPY {t} TO '{folder / (t + '.parquet')}' (FORMAT PARQUET)")
    con.close()


def run(n: int, keep: bool) -> list[dict]:
    from promo_analysis.dataset import load_dataset
    from promo_analysis.features.cohorts import survival_table
    from promo_analysis.retention import cohort_matrix, kaplan_meier

    tmp = Path(tempfile.mkdtemp(prefix="bench-retention-"))
    rows = []
    try:
        t0 = time.perf_counter()
        make_folder(n, tmp / "data")
        rows.append({"shipments": n, "step": "generate", "seconds": time.perf_counter() - t0})
        ds = load_dataset(tmp / "data")

        # wall seconds depend on what else runs on the machine; cpu_seconds (all threads of
        # this process, DuckDB's included) do not
        t0, c0 = time.perf_counter(), time.process_time()
        cm = cohort_matrix(ds, freq="M", periods=12)
        rows.append({"shipments": n, "step": "cohort_matrix (M, 12 periods)",
                     "seconds": time.perf_counter() - t0,
                     "cpu_seconds": time.process_time() - c0, "cells": int(cm.counts.shape[0])})

        t0, c0 = time.perf_counter(), time.process_time()
        st = survival_table(ds, by=("first_used_coupon",))
        t1, c1 = time.perf_counter(), time.process_time()
        km = kaplan_meier(st, "duration", "event", group="first_used_coupon", weights="count")
        t2, c2 = time.perf_counter(), time.process_time()
        n_cust = int(st["count"].sum())
        rows.append({"shipments": n, "step": "kaplan_meier: survival_table in engine",
                     "seconds": t1 - t0, "cpu_seconds": c1 - c0, "customers": n_cust,
                     "cells": len(st)})
        rows.append({"shipments": n, "step": "kaplan_meier: curves in memory",
                     "seconds": t2 - t1, "cpu_seconds": c2 - c1, "customers": n_cust})
        rows.append({"shipments": n, "step": "kaplan_meier total", "seconds": t2 - t0,
                     "cpu_seconds": c2 - c0, "customers": n_cust,
                     "median_days": float(km.median.estimate.iloc[0])})
    finally:
        if keep:
            print("kept", tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for r in rows:
        r["peak_rss_mb"] = peak
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 5_000_000])
    ap.add_argument("--keep", action="store_true", help="keep the generated data folder")
    args = ap.parse_args()
    rows = []
    for n in args.sizes:
        rows += run(n, args.keep)
        print(pd.DataFrame(rows).to_string(index=False))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(OUT, index=False)
    print("wrote", OUT)


if __name__ == "__main__":
    main()
