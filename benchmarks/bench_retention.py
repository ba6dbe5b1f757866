"""Benchmark: cohort matrix and Kaplan-Meier on simulated datasets (engine-side counts).

Targets (issue 5): cohort matrix over 50 M shipments < 15 s; Kaplan-Meier over 10 M customers
< 10 s -- the engine aggregates (``features.cohort_counts``, ``features.survival_table``), pandas
finishes (``retention.cohort_matrix``, ``retention.kaplan_meier``).

Each step runs in a fresh subprocess on the simulated Parquet dataset of each size
(``_harness.dataset_for``: ``write_simulation``, all 31 regions, partitioned shipments, cached in
``benchmarks/.cache/``; or ``--data PATH``): wall and CPU seconds of the step only, its peak RSS,
the load average before it. Hand-written DuckDB SQL of the same engine aggregations on the same
Parquet files is measured in the same run for reference.

Run:  .venv/bin/python benchmarks/bench_retention.py [--sizes 1e6,1e7,5e7] [--data PATH]
Writes benchmarks/results/retention.csv (one row per size and step).
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

OUT = HERE / "results" / "retention.csv"
STEPS = ["cohort_matrix", "sql_cohort_counts", "kaplan_meier", "sql_survival_counts"]

# monthly cohorts, 12 periods, as cohort_counts(ds, freq="M", periods=12)
SQL_COHORT = """
WITH act AS (
  SELECT DISTINCT customer_id, date_trunc('month', sent_at)::DATE AS period FROM shipments
), k AS (
  SELECT period, min(period) OVER (PARTITION BY customer_id) AS cohort FROM act
)
SELECT cohort, date_diff('month', cohort, period) AS k, count(*) AS active
FROM k WHERE date_diff('month', cohort, period) < 12 GROUP BY 1, 2
"""

# time from first to second parcel by coupon use of the first, as survival_table(ds)
SQL_SURVIVAL = """
WITH f AS (
  SELECT customer_id, min(sent_at) AS first_sent_at, min(sent_at, 2)[2] AS second_sent_at,
         arg_min(coupon_id IS NOT NULL, {'t': sent_at, 'id': shipment_id}) AS coupon
  FROM shipments GROUP BY customer_id
), t AS (
  SELECT coupon, second_sent_at IS NOT NULL AND second_sent_at <= $end AS event,
         floor((epoch(CASE WHEN second_sent_at IS NOT NULL AND second_sent_at <= $end
                          THEN second_sent_at ELSE $end END) - epoch(first_sent_at)) / 86400)
           AS duration
  FROM f WHERE first_sent_at <= $end
)
SELECT coupon, duration, event, count(*) AS count FROM t GROUP BY 1, 2, 3
"""


def step(name: str, folder: Path) -> dict:
    """One step on the dataset folder, timing only the step."""
    extra: dict = {}
    if name.startswith("sql_"):
        import duckdb

        con = duckdb.connect()
        h.sql_views(con, folder)
        meta = json.loads((folder / "dataset.json").read_text())
        period = meta["period"]
        last = period["end"] if isinstance(period, dict) else period[1]
        end = pd.Timestamp(last) + pd.Timedelta(days=1, seconds=-1)
        con.execute("SELECT 1").fetchall()
        with h.Timer() as t:
            if name == "sql_cohort_counts":
                out = con.execute(SQL_COHORT).df()
            else:
                out = con.execute(SQL_SURVIVAL, {"end": end.to_pydatetime()}).df()
    else:
        from promo_analysis.dataset import load_dataset
        from promo_analysis.features import survival_table
        from promo_analysis.retention import cohort_matrix, kaplan_meier

        ds = load_dataset(folder)
        ds.table("regions").count().to_pandas()  # warm up the connection, not timed
        if name == "cohort_matrix":
            with h.Timer() as t:
                out = cohort_matrix(ds, freq="M", periods=12).counts
        elif name == "kaplan_meier":
            with h.Timer() as t:
                out = survival_table(ds, by=("first_used_coupon",))
                km = kaplan_meier(out, "duration", "event", group="first_used_coupon",
                                  weights="count")
            extra = {"customers": int(out["count"].sum()),
                     "median_days": float(km.median.estimate.iloc[0])}
        else:
            raise ValueError(f"unknown step {name!r}")
    return {"step": name, "wall_seconds": round(t.wall, 2), "cpu_seconds": round(t.cpu, 2),
            "peak_rss_mb": h.peak_rss_mb(), "rows_out": len(out), **extra}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="1e6,1e7", help="shipments, e.g. 1e6,1e7,5e7")
    ap.add_argument("--data", help="a pre-generated dataset folder (then --sizes is ignored)")
    ap.add_argument("--steps", default=",".join(STEPS))
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--step", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.step:
        print(json.dumps(step(args.step[0], Path(args.step[1]))))
        return
    rows = h.run_steps(__file__, args.steps.split(","), "step", args.sizes, args.data)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    h.append_rows(out, rows)
    print("wrote", out)


if __name__ == "__main__":
    main()
