"""Benchmark: customer table and first-use table at 1 M and 10 M shipments.

Compares ``features.customer_table`` (Ibis on DuckDB) with a hand-written DuckDB SQL query and a
plain pandas sort + groupby computing the same columns, and times ``features.first_use_table``.
Each case runs in a fresh subprocess so that its peak resident memory (``ru_maxrss``) is its own.

Run:  .venv/bin/python benchmarks/bench_features.py [--sizes 1000000 10000000] [--repeat 1]
Writes benchmarks/results/features.csv.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
OUT = HERE / "results" / "features.csv"

SQL = """
WITH ranked AS (
  SELECT *, row_number() OVER (PARTITION BY customer_id ORDER BY sent_at, shipment_id) - 1 AS rk
  FROM shipments
), hist AS (
  SELECT customer_id,
         min(sent_at) AS first_sent_at,
         max(channel) FILTER (WHERE rk = 0) AS first_channel,
         max(list_price) FILTER (WHERE rk = 0) AS first_list_price,
         max(revenue) FILTER (WHERE rk = 0) AS first_revenue,
         max(CAST(coupon_id IS NOT NULL AS INT)) FILTER (WHERE rk = 0) AS first_used_coupon,
         max(coupon_id) FILTER (WHERE rk = 0) AS first_coupon_id,
         count(*) AS n_shipments,
         sum(revenue) AS revenue,
         max(sent_at) AS last_sent_at,
         min(sent_at) FILTER (WHERE rk = 1) AS second_sent_at,
         sum(CAST(coupon_id IS NOT NULL AS BIGINT)) AS n_coupon_shipments,
         sum(CAST(coupon_id IS NULL AND discount = 0 AS BIGINT)) AS n_full_price_shipments
  FROM ranked GROUP BY customer_id
)
SELECT c.*, h.* EXCLUDE (customer_id)
FROM customers c LEFT JOIN hist h USING (customer_id)
ORDER BY c.customer_id
"""


def make_frames(n_shipments: int, seed: int = 0) -> dict[str, pd.DataFrame]:
    """Synthetic contract tables: ~1 customer per 5 shipments, a third of them prospects."""
    rng = np.random.default_rng(seed)
    n_cust = n_shipments // 5
    start = np.datetime64("2021-01-01T00:00:00", "s")
    span = 730 * 86400
    cid = np.char.add("c", np.arange(n_cust).astype(str))
    known = start + rng.integers(0, span // 2, n_cust).astype("timedelta64[s]")
    customers = pd.DataFrame(
        {
            "customer_id": cid,
            "region_id": rng.choice(["guangxi", "shanxi"], n_cust),
            "known_since": known.astype("datetime64[ns]"),
            "segment": rng.choice(["office", "campus", "mall", "residential", "other"], n_cust),
            "wechat_contact": rng.random(n_cust) < 0.4,
            "parcels_received": rng.poisson(2, n_cust),
        }
    )
    senders = rng.choice(n_cust, size=int(n_cust * 2 / 3), replace=False)
    owner = senders[rng.integers(0, len(senders), n_shipments)]
    sent = known[owner] + rng.integers(0, span // 2, n_shipments).astype("timedelta64[s]")
    coupon = rng.random(n_shipments) < 0.15
    lp = np.round(rng.lognormal(2.8, 0.3, n_shipments), 1)
    disc = np.where(coupon, 3.0, 0.0)
    shipments = pd.DataFrame(
        {
            "shipment_id": np.char.add("s", np.arange(n_shipments).astype(str)),
            "customer_id": cid[owner],
            "region_id": customers["region_id"].to_numpy()[owner],
            "sent_at": sent.astype("datetime64[ns]"),
            "channel": rng.choice(["station", "counter", "pickup_point", "online"], n_shipments),
            "product": "express",
            "list_price": lp,
            "discount": disc,
            "revenue": lp - disc,
            "coupon_id": pd.Series(
                np.where(coupon, np.char.add("k", np.arange(n_shipments).astype(str)), None),
                dtype="string",
            ),
            "campaign_id": pd.Series(np.full(n_shipments, "m1"), dtype="string"),
            "payment": "cash",
        }
    )
    # personal coupons for a fifth of the customers (issued after they became known)
    holders = rng.choice(n_cust, size=n_cust // 5, replace=False)
    coupons = pd.DataFrame(
        {
            "coupon_id": np.char.add("q", np.arange(len(holders)).astype(str)),
            "campaign_id": pd.Series(np.full(len(holders), "m1"), dtype="string"),
            "customer_id": cid[holders],
            "issued_at": (
                known[holders] + rng.integers(0, 120 * 86400, len(holders)).astype("timedelta64[s]")
            )
            .astype("datetime64[D]")
            .astype("datetime64[ns]"),
            "threshold": rng.choice([12.0, 21.0], len(holders)),
            "face_value": 3.0,
            "issue_channel": "wechat",
        }
    )
    coupons["face_value"] = np.where(coupons["threshold"] == 21.0, 5.0, 3.0)
    coupons["expires_at"] = coupons["issued_at"] + pd.Timedelta(days=30)
    return {"customers": customers, "shipments": shipments, "coupons": coupons}


def run_case(method: str, n: int, repeat: int) -> dict:
    frames = make_frames(n)
    times = []
    rows = 0
    for _ in range(repeat):
        if method == "pandas":
            t0 = time.perf_counter()
            s = frames["shipments"].sort_values(["customer_id", "sent_at", "shipment_id"])
            g = s.groupby("customer_id", sort=False)
            first = g.nth(0).set_index("customer_id")
            second = g.nth(1).set_index("customer_id")["sent_at"].rename("second_sent_at")
            s2 = s.assign(
                _coupon=s["coupon_id"].notna(), _full=s["coupon_id"].isna() & (s["discount"] == 0)
            )
            agg = s2.groupby("customer_id").agg(
                n_shipments=("shipment_id", "size"),
                revenue=("revenue", "sum"),
                last_sent_at=("sent_at", "max"),
                n_coupon_shipments=("_coupon", "sum"),
                n_full_price_shipments=("_full", "sum"),
            )
            hist = first[["sent_at", "channel", "list_price", "revenue", "coupon_id"]].rename(
                columns={
                    "sent_at": "first_sent_at",
                    "channel": "first_channel",
                    "list_price": "first_list_price",
                    "revenue": "first_revenue",
                    "coupon_id": "first_coupon_id",
                }
            )
            hist = hist.join(agg).join(second)
            out = frames["customers"].merge(
                hist, left_on="customer_id", right_index=True, how="left"
            )
            rows = len(out)
            times.append(time.perf_counter() - t0)
            continue
        from promo_analysis.dataset import Dataset
        from promo_analysis.features.customers import customer_table
        from promo_analysis.features.first_use import first_use_table

        ds = Dataset.from_frames(frames)
        if method == "duckdb_sql":
            # the raw duckdb connection under Ibis; from_frames stored the frames (already of
            # contract types here) as tables named after them
            con = ds.con.con
            t0 = time.perf_counter()
            out = con.execute(SQL).df()
        elif method == "ibis_customer_table":
            t0 = time.perf_counter()
            out = customer_table(ds)
        elif method == "ibis_first_use_table":
            t0 = time.perf_counter()
            out = first_use_table(ds, as_of="2023-01-01")
        else:
            raise ValueError(method)
        rows = len(out)
        times.append(time.perf_counter() - t0)
    import resource

    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "method": method,
        "shipments": n,
        "rows_out": rows,
        "seconds": min(times),
        "peak_rss_mb": round(peak_mb),
        "cpus": os.cpu_count(),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument(
        "--methods",
        nargs="+",
        default=["ibis_customer_table", "duckdb_sql", "pandas", "ibis_first_use_table"],
    )
    p.add_argument("--case", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.case:
        print(json.dumps(run_case(args.case[0], int(args.case[1]), args.repeat)))
        return
    rows = []
    for n in args.sizes:
        for method in args.methods:
            proc = subprocess.run(
                [sys.executable, __file__, "--case", method, str(n), "--repeat", str(args.repeat)],
                capture_output=True,
                text=True,
                check=False,
            )
            if proc.returncode:
                print(proc.stderr[-2000:], file=sys.stderr)
                rows.append({"method": method, "shipments": n, "error": proc.stderr[-300:]})
                continue
            row = json.loads(proc.stdout.strip().splitlines()[-1])
            print(row, flush=True)
            rows.append(row)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(OUT, index=False)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
