"""Benchmark: load + validate + quarantine at 1 M and 5 M shipments.

Builds a synthetic dataset folder (Parquet, written by DuckDB; 1 customer per 4 shipments, a
coupon on every 5th shipment, 0.1 % of shipments with a broken revenue) and times, each in a
fresh subprocess so that peak resident memory (``ru_maxrss``) is the step's own:

* ``load``       -- ``load_dataset`` (registers the files; reads only metadata);
* ``validate``   -- ``validate(ds)``: every rule as engine queries;
* ``quarantine`` -- ``quarantine(ds, out)``: flags, cascade, cleaned Parquet + rejected CSV.

The point: validation runs in the engine, so memory stays far below the size of the data in
pandas (about 12 columns x 8 bytes x rows for shipments alone).

Run:  .venv/bin/python benchmarks/bench_contract.py [--sizes 1000000 5000000]
Writes benchmarks/results/contract.csv.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "results" / "contract.csv"

BUILD = """
COPY (SELECT * FROM (VALUES ('guangxi', '广西', 'Guangxi'), ('shanxi', '山西', 'Shanxi'))
      t(region_id, name_zh, name_en)) TO '{d}/regions.parquet' (FORMAT parquet);
COPY (SELECT lpad(CAST(i AS VARCHAR), 9, '0') AS customer_id,
             CASE WHEN i % 2 = 0 THEN 'guangxi' ELSE 'shanxi' END AS region_id,
             DATE '2020-06-01' + CAST(i % 300 AS INTEGER) AS known_since,
             ['office','campus','mall','residential','hospital','tourist_site','military',
              'transport_hub','other'][1 + i % 9] AS segment,
             i % 3 = 0 AS wechat_contact
      FROM range({n_cust}) r(i)) TO '{d}/customers.parquet' (FORMAT parquet);
COPY (SELECT 'K' || lpad(CAST(i AS VARCHAR), 9, '0') AS coupon_id, NULL::VARCHAR AS campaign_id,
             lpad(CAST((i * 5) // 4 % {n_cust} AS VARCHAR), 9, '0') AS customer_id,
             TIMESTAMP '2021-01-01' AS issued_at, TIMESTAMP '2022-12-31 23:59' AS expires_at,
             12.0 AS threshold, 3.0 AS face_value, 'wechat' AS issue_channel
      FROM range({n_coupons}) r(i)) TO '{d}/coupons.parquet' (FORMAT parquet);
COPY (SELECT 'S' || lpad(CAST(i AS VARCHAR), 10, '0') AS shipment_id,
             lpad(CAST(i // 4 AS VARCHAR), 9, '0') AS customer_id,
             CASE WHEN (i // 4) % 2 = 0 THEN 'guangxi' ELSE 'shanxi' END AS region_id,
             TIMESTAMP '2021-01-01' + INTERVAL (i % 700) DAY + INTERVAL (i % 600) MINUTE AS sent_at,
             ['station','counter','pickup_point','online'][1 + i % 4] AS channel,
             CASE WHEN i % 7 = 0 THEN 'economy' ELSE 'express' END AS product,
             18.0 + (i % 10) AS list_price,
             CASE WHEN i % 5 = 0 THEN 3.0 ELSE 0.0 END AS discount,
             18.0 + (i % 10) - CASE WHEN i % 5 = 0 THEN 3.0 ELSE 0.0 END
               + CASE WHEN i % 1000 = 1 THEN 1.0 ELSE 0.0 END AS revenue,
             CASE WHEN i % 5 = 0 THEN 'K' || lpad(CAST(i // 5 AS VARCHAR), 9, '0') END AS coupon_id,
             NULL::VARCHAR AS campaign_id,
             ['cash','epay','stored_value'][1 + i % 3] AS payment
      FROM range({n}) r(i)) TO '{d}/shipments.parquet' (FORMAT parquet);
"""


def build(folder: Path, n: int) -> None:
    import duckdb

    folder.mkdir(parents=True, exist_ok=True)
    sql = BUILD.format(d=folder, n=n, n_cust=(n + 3) // 4, n_coupons=(n + 4) // 5)
    con = duckdb.connect()
    for stmt in filter(str.strip, sql.split(";")):
        con.execute(stmt)
    (folder / "dataset.json").write_text(json.dumps({"name": f"bench-{n}"}))


def step(kind: str, folder: str, out: str) -> dict:
    from promo_analysis import load_dataset, validate
    from promo_analysis.contract import quarantine

    t0, c0 = time.perf_counter(), time.process_time()
    ds = load_dataset(folder)
    result: dict = {}
    if kind == "validate":
        report = validate(ds)
        result["rules_failing"] = len(report.issues)
        result["rows_failing"] = int(report.issues["rows_failing"].fillna(0).sum())
    elif kind == "quarantine":
        q = quarantine(ds, out)
        result["rejected_rows"] = q.rejected_rows
        result["balanced"] = q.balanced
    result["seconds"] = round(time.perf_counter() - t0, 2)
    result["cpu_seconds"] = round(time.process_time() - c0, 2)
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 5_000_000])
    parser.add_argument("--step", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:
        print(json.dumps(step(args.step, args.folder, args.out)))
        return

    import pandas as pd

    rows = []
    work = Path(tempfile.mkdtemp(prefix="bench-contract-"))
    try:
        for n in args.sizes:
            folder = work / f"data-{n}"
            t0 = time.perf_counter()
            build(folder, n)
            size_mb = sum(f.stat().st_size for f in folder.iterdir()) / 2**20
            print(f"{n:,} shipments: built in {time.perf_counter() - t0:.1f} s, {size_mb:.0f} MB")
            for kind in ("load", "validate", "quarantine"):
                out = work / f"clean-{n}"
                shutil.rmtree(out, ignore_errors=True)
                proc = subprocess.run(
                    [sys.executable, __file__, "--step", kind, "--folder", str(folder),
                     "--out", str(out)],
                    capture_output=True, text=True, check=True,
                    env={**os.environ, "PYTHONWARNINGS": "ignore"},
                )
                res = json.loads(proc.stdout.strip().splitlines()[-1])
                rows.append({"shipments": n, "step": kind, "files_mb": round(size_mb, 1), **res})
                print("  ", rows[-1])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    OUT.parent.mkdir(exist_ok=True)
    pd.DataFrame(rows).to_csv(OUT, index=False)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
