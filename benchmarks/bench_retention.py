"""Benchmark: cohort matrix and Kaplan-Meier on simulated datasets (engine-side counts).

Targets (issue 5): cohort matrix over 50 M shipments < 15 s; Kaplan-Meier over 10 M customers
< 10 s -- the engine aggregates (``features.cohort_counts``, ``features.survival_table``), pandas
finishes (``retention.cohort_matrix``, ``retention.kaplan_meier``).

Each step runs in a fresh subprocess on the simulated Parquet dataset of each size
(``_harness.dataset_for``: ``write_simulation``, all 31 regions, partitioned shipments, cached in
``benchmarks/.cache/``; or ``--data PATH``): wall and CPU seconds of the step only, its peak RSS,
the load average before it. Hand-written DuckDB SQL of the same engine aggregations on the same
Parquet files is measured in the same run for reference (the fastest formulation found: one
streaming group-by per customer, no DISTINCT, window or sort), and so is the floor of any
per-customer count, ``min(sent_at)`` grouped by customer (``sql_first_floor``). The Kaplan-Meier rows say how
many customers they covered and the time scaled to 10 M customers. To measure at ~10 M
customers directly, ``--data <50 M folder> --subset-senders 1e7`` links (symlinks, in
``--subset-folder``) the region partitions with the most senders, in that order, while the
total stays <= 10 M: 13 regions, 9.98 M senders, 32.5 M shipments.

Run:  .venv/bin/python benchmarks/bench_retention.py [--sizes 1e6,1e7,5e7] [--data PATH]
      [--steps kaplan_meier,sql_survival_counts] [--subset-senders 1e7 --data <50 M folder>]
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
STEPS = ["cohort_matrix", "sql_cohort_counts", "kaplan_meier", "sql_survival_counts",
         "sql_first_floor"]

# monthly cohorts, 12 periods, as cohort_counts(ds, freq="M", periods=12): one pass over the
# shipments, per customer the first month index and a BIGINT bitmask of the months with a parcel
# (months since the first month in the data; the 24 simulated months fit one 63-bit mask),
# then per cohort the bits cohort + k; the period span comes from a min/max query (as in
# cohort_counts). Unlike DISTINCT (customer, month) + a window, nothing is sorted.
SQL_SPAN = "SELECT min(sent_at), max(sent_at) FROM shipments"
SQL_COHORT = """
WITH c AS (
  SELECT min(m) AS cohort, bit_or(1::BIGINT << m) AS mask
  FROM (SELECT customer_id, (year(sent_at) - $y0) * 12 + month(sent_at) - $m0 AS m FROM shipments)
  GROUP BY customer_id
)
SELECT cohort, count(*) AS size, {active} FROM c GROUP BY cohort
""".replace("{active}", ", ".join(f"sum((mask >> (cohort + {k})) & 1) AS a{k}" for k in range(12)))

# the floor of any per-customer count: the first parcel's time per customer, nothing else (the
# outer max uses it: DuckDB drops aggregates nobody reads, count(*) over the group-by would time
# only the grouping)
SQL_FIRST_FLOOR = "SELECT max(f) FROM (SELECT customer_id, min(sent_at) AS f FROM shipments GROUP BY 1)"

# time from first to second parcel by coupon use of the first, as survival_table(ds): one
# streaming group-by with a BIGINT minimum whose low bit is "no coupon" (a coupon at the first
# instant wins ties, as in survival_table) and the two smallest sent_at
SQL_SURVIVAL = """
WITH f AS (
  SELECT min(epoch_us(sent_at) * 2 + (coupon_id IS NULL)::BIGINT) AS key,
         min(sent_at, 2) AS two
  FROM shipments GROUP BY customer_id
), t AS (
  SELECT key & 1 = 0 AS coupon, two[2] IS NOT NULL AND two[2] <= $end AS event,
         floor((epoch(CASE WHEN two[2] IS NOT NULL AND two[2] <= $end THEN two[2] ELSE $end END)
                - epoch(two[1])) / 86400) AS duration
  FROM f WHERE two[1] <= $end
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
                lo, _ = con.execute(SQL_SPAN).fetchone()
                out = con.execute(SQL_COHORT, {"y0": lo.year, "m0": lo.month}).df()
            elif name == "sql_first_floor":
                out = con.execute(SQL_FIRST_FLOOR).df()
            else:
                out = con.execute(SQL_SURVIVAL, {"end": end.to_pydatetime()}).df()
        if name == "sql_survival_counts":
            extra = {"customers": int(out["count"].sum())}
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
    if "customers" in extra:
        # the target is per 10 M customers: the time scaled linearly to 10 M (an
        # approximation -- group-by cost grows a little faster than linearly)
        extra["wall_per_10M_customers"] = round(t.wall * 1e7 / extra["customers"], 2)
        extra["cpu_per_10M_customers"] = round(t.cpu * 1e7 / extra["customers"], 2)
    return {"step": name, "wall_seconds": round(t.wall, 2), "cpu_seconds": round(t.cpu, 2),
            "peak_rss_mb": h.peak_rss_mb(), "rows_out": len(out), **extra}


def link_region_subset(src: Path, dst: Path, senders: float) -> Path:
    """A dataset folder ``dst`` whose shipments are the region partitions of ``src`` with the
    most distinct senders, taken in that order while the total stays <= ``senders`` (symlinks
    to the Parquet parts, nothing copied; the other tables are linked whole)."""
    import duckdb

    per = duckdb.connect().execute(
        "SELECT region_id, count(DISTINCT customer_id) AS n FROM read_parquet($1, "
        "hive_partitioning = true, hive_types_autocast = false) GROUP BY 1 ORDER BY n DESC, 1",
        [h.shipment_files(src)]).fetchall()
    regions, total = [], 0
    for region, n in per:
        if total + n <= senders:
            regions.append(region)
            total += n
    dst.mkdir(parents=True, exist_ok=True)
    for region in regions:
        for f in (src / "shipments" / f"region_id={region}").rglob("*.parquet"):
            link = dst / f.relative_to(src)
            link.parent.mkdir(parents=True, exist_ok=True)
            if not link.exists():
                link.symlink_to(f.resolve())
    for f in src.iterdir():
        if f.name not in ("shipments", "dataset.json") and not (dst / f.name).exists():
            (dst / f.name).symlink_to(f.resolve())
    meta = json.loads((src / "dataset.json").read_text())
    meta.update(regions=regions, name=f"{meta.get('name', src.name)} [{len(regions)} regions, "
                f"{total} senders]")
    (dst / "dataset.json").write_text(json.dumps(meta, indent=1))
    print(f"linked {len(regions)} regions with {total} senders into {dst}", flush=True)
    return dst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="1e6,1e7", help="shipments, e.g. 1e6,1e7,5e7")
    ap.add_argument("--data", help="a pre-generated dataset folder (then --sizes is ignored)")
    ap.add_argument("--subset-senders", type=float,
                    help="with --data: run on a linked subset of its regions with about this "
                         "many senders (see link_region_subset), built in --subset-folder")
    ap.add_argument("--subset-folder", default="/tmp/promo-bench-retention-subset")
    ap.add_argument("--steps", default=",".join(STEPS))
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--step", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.step:
        print(json.dumps(step(args.step[0], Path(args.step[1]))))
        return
    data = args.data
    if args.subset_senders:
        if not data:
            ap.error("--subset-senders needs --data (the full dataset to take regions from)")
        data = link_region_subset(Path(data), Path(args.subset_folder), args.subset_senders)
    rows = h.run_steps(__file__, args.steps.split(","), "step", args.sizes, data)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    h.append_rows(out, rows)
    print("wrote", out)


if __name__ == "__main__":
    main()
