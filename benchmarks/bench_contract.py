"""Benchmark: load + validate + quarantine at 1 M and 5 M shipments; validate on a dataset.

Builds a synthetic dataset folder (Parquet, written by DuckDB; 1 customer per 4 shipments, a
coupon on every 5th shipment, 0.1 % of shipments with a broken revenue) and times, each in a
fresh subprocess so that peak resident memory (``ru_maxrss``) is the step's own:

* ``load``       -- ``load_dataset`` (registers the files; reads only metadata);
* ``validate``   -- ``validate(ds)``: every rule as engine queries;
* ``quarantine`` -- ``quarantine(ds, out)``: flags, cascade, cleaned Parquet + rejected CSV.

The point: validation runs in the engine, so memory stays far below the size of the data in
pandas (about 12 columns x 8 bytes x rows for shipments alone).

Run:  .venv/bin/python benchmarks/bench_contract.py [--sizes 1000000 5000000]

**Dataset mode** (``--data PATH``, e.g. the cached simulated 10 M / 50 M datasets of
``benchmarks/.cache/sim-<n>-seed0``): ``validate`` of that dataset in a fresh subprocess --
wall and CPU seconds (all threads), peak RSS (``ru_maxrss`` of the subprocess: DuckDB runs in
its threads) and the 1-minute load average before and after -- next to a reference measured
in the same run, also in its own subprocess: ``ref_sql_first`` = hand-written DuckDB SQL
``SELECT customer_id, min(sent_at) FROM shipments GROUP BY 1`` on the Parquet files (one hash
table over all senders; 6.9-8.9 s idle at 50 M). On a loaded machine compare the ratio
``validate / ref_sql_first`` and the CPU seconds, not the wall seconds. ``--memory-limit``
passes DuckDB's memory limit to ``load_dataset``; ``--partition-rows`` overrides
``validation.PARTITION_ROWS`` (experiments). Target (issue 9): peak < 4 GB at 50 M.

    .venv/bin/python benchmarks/bench_contract.py --data benchmarks/.cache/sim-50000000-seed0

Both modes append their rows to benchmarks/results/contract.csv.
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


REF_SQL_FIRST = "SELECT count(*) FROM (SELECT customer_id, min(sent_at) FROM shipments GROUP BY 1)"


def step(kind: str, folder: str, out: str, memory_limit: str | None = None,
         partition_rows: int | None = None) -> dict:
    from promo_analysis import load_dataset, validate
    from promo_analysis.contract import quarantine, validation

    if partition_rows:
        validation.PARTITION_ROWS = partition_rows
    t0, c0 = time.perf_counter(), time.process_time()
    result: dict = {}
    if kind == "ref_sql_first":
        import _harness as h
        import duckdb

        con = duckdb.connect()
        h.sql_views(con, Path(folder))
        result["rows_out"] = int(con.execute(REF_SQL_FIRST).fetchone()[0])
        ds = None
    else:
        ds = load_dataset(folder, memory_limit=memory_limit)
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


def _subprocess_step(kind: str, folder: Path, out: Path, extra: list[str] = ()) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--step", kind, "--folder", str(folder), "--out", str(out),
         *extra],
        capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    if proc.returncode:
        raise RuntimeError(f"step {kind} on {folder} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_dataset(folder: Path, memory_limit: str | None, partition_rows: int | None) -> None:
    """``validate`` of the dataset at ``folder`` and the hand-SQL reference, appended to the
    CSV."""
    import _harness as h

    n = h.count_shipments(folder)
    extra = ["--memory-limit", memory_limit] if memory_limit else []
    extra += ["--partition-rows", str(partition_rows)] if partition_rows else []
    rows = []
    for kind in ("ref_sql_first", "validate"):
        load0 = os.getloadavg()[0]
        res = _subprocess_step(kind, folder, folder, extra if kind == "validate" else [])
        rows.append({
            "shipments": n, "step": kind, "data": str(folder), **res,
            "peak_rss_gb": round(res["peak_rss_mb"] * 2**20 / 1e9, 2),
            "load_before": round(load0, 2), "load_after": round(os.getloadavg()[0], 2),
            "memory_limit": memory_limit or "", "partition_rows": partition_rows or "",
        })
        print("  ", rows[-1], flush=True)
    ref, val = rows
    val["ratio_to_ref_sql"] = round(val["seconds"] / ref["seconds"], 2)
    val["cpu_ratio_to_ref_sql"] = round(val["cpu_seconds"] / ref["cpu_seconds"], 2)
    val["target"] = "peak < 4 GB (1e9 bytes)"
    val["met"] = val["peak_rss_gb"] < 4.0
    h.append_rows(OUT, rows)
    print(f"validate / hand SQL: {val['ratio_to_ref_sql']}x wall, "
          f"{val['cpu_ratio_to_ref_sql']}x CPU; peak {val['peak_rss_gb']} GB; wrote {OUT}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 5_000_000])
    parser.add_argument("--data", type=Path, help="validate this dataset folder instead")
    parser.add_argument("--memory-limit", help="DuckDB memory limit for validate, e.g. 3GB")
    parser.add_argument("--partition-rows", type=int, help="override PARTITION_ROWS")
    parser.add_argument("--step", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:
        print(json.dumps(step(args.step, args.folder, args.out, args.memory_limit,
                              args.partition_rows)))
        return
    if args.data:
        run_dataset(args.data.resolve(), args.memory_limit, args.partition_rows)
        return

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
                res = _subprocess_step(kind, folder, out)
                rows.append({"shipments": n, "step": kind, "files_mb": round(size_mb, 1), **res})
                print("  ", rows[-1])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    import _harness as h

    h.append_rows(OUT, rows)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
