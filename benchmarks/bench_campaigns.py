"""Benchmark: daily series from many shipments, and campaign effects for 31 regions x 25 campaigns.

Targets (issue 6): daily series from 50 M shipments under 5 s; campaign effects for 31 regions x
25 campaigns under 60 s. Run standalone::

    .venv/bin/python benchmarks/bench_campaigns.py --shipments 50000000

Writes ``benchmarks/results/campaigns.csv`` (one row per measurement).
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

RESULTS = Path(__file__).resolve().parent / "results" / "campaigns.csv"


class _ParquetTables:
    """The part of a Dataset that ``daily_series`` uses: ``table(name)`` -> Ibis table."""

    def __init__(self, con, paths: dict[str, Path]):
        self._t = {k: con.read_parquet(str(v), table_name=k) for k, v in paths.items()}

    def table(self, name: str):
        return self._t[name]


def bench_daily(n: int, folder: Path) -> dict:
    import duckdb
    import ibis

    from promo_analysis.features.daily import daily_series

    path = folder / "shipments.parquet"
    t0 = time.perf_counter()
    # synthetic shipments written by DuckDB itself (2 years, 31 regions, 10% coupons)
    duckdb.sql(
        f"""
        COPY (
          SELECT 's' || i AS shipment_id,
                 'c' || (hash(i) % {max(n // 8, 1)}) AS customer_id,
                 'r' || (hash(i * 7) % 31) AS region_id,
                 TIMESTAMP '2021-01-01' + to_seconds((hash(i * 13) % (730 * 86400))::BIGINT)
                   AS sent_at,
                 (10 + (hash(i * 17) % 300) / 10.0)::DOUBLE AS list_price,
                 CASE WHEN hash(i * 19) % 10 = 0 THEN 3.0 ELSE 0.0 END AS discount,
                 CASE WHEN hash(i * 19) % 10 = 0 THEN 'k' || i END AS coupon_id
          FROM range({n}) t(i)
        ) TO '{path}' (FORMAT parquet)
        """
    )
    write_s = time.perf_counter() - t0
    con = ibis.duckdb.connect()
    ds = _ParquetTables(con, {"shipments": path})
    # revenue = list_price - discount is a column of the contract; add it as a view
    s = ds.table("shipments")
    ds._t["shipments"] = s.mutate(revenue=s.list_price - s.discount)
    ds.table("shipments").limit(1).to_pandas()  # warm up: imports and connection, not timed
    t0 = time.perf_counter()
    out = daily_series(ds)
    secs = time.perf_counter() - t0
    # the same two aggregations hand-written in DuckDB SQL, for the overhead of the Ibis path
    raw = duckdb.connect()
    t0 = time.perf_counter()
    raw.sql(
        f"SELECT sent_at::DATE d, region_id, sum(list_price - discount), count(*), "
        f"count(coupon_id), sum(discount) FROM '{path}' GROUP BY 1, 2"
    ).df()
    raw.sql(
        f"SELECT d, region_id, count(*) FROM (SELECT customer_id, min(sent_at)::DATE d, "
        f"arg_min(region_id, sent_at) region_id FROM '{path}' GROUP BY 1) GROUP BY 1, 2"
    ).df()
    raw_secs = time.perf_counter() - t0
    return {
        "what": "daily_series",
        "raw_duckdb_seconds": round(raw_secs, 2),
        "size": n,
        "seconds": round(secs, 2),
        "target_seconds": 5.0 * n / 50e6,
        "rows_out": len(out),
        "setup_seconds": round(write_s, 1),
    }


def bench_effects(n_regions: int = 31, n_campaigns: int = 25, seed: int = 0) -> dict:
    from promo_analysis.calendar import calendar_features
    from promo_analysis.campaigns import estimate_campaign_effects
    from promo_analysis.regions import REGIONS

    rng = np.random.default_rng(seed)
    dates = pd.date_range("2021-01-01", "2022-12-31")
    cal = calendar_features(dates)
    regions = list(REGIONS)[:n_regions]
    frames = []
    for r in regions:
        level = np.exp(
            rng.normal(7, 1)
            + 0.3 * np.arange(len(dates)) / 365
            - 0.15 * (cal.weekday.to_numpy() >= 5)
            - 0.8 * cal.is_slowdown.to_numpy()
            + rng.normal(0, 0.1, len(dates))
        )
        frames.append(
            pd.DataFrame(
                {
                    "date": dates,
                    "region_id": r,
                    "revenue": level,
                    "new_customers": rng.poisson(20, len(dates)),
                }  # fmt: skip
            )
        )
    daily = pd.concat(frames, ignore_index=True)
    rows = []
    # 10 national campaigns + 15 provincial ones per region, a few days to two weeks each
    starts = pd.date_range("2021-03-01", "2022-11-30", periods=n_campaigns)
    for j, s in enumerate(starts):
        length = int(rng.integers(3, 12))
        national = j % 5 < 2
        for r in [None] if national else regions:
            shift = 0 if national else int(rng.integers(-5, 5))
            rows.append(
                {
                    "campaign_id": f"c{j}-{r}",
                    "region_id": r,
                    "theme": "other",
                    "start_date": s + pd.Timedelta(days=shift),
                    "end_date": s + pd.Timedelta(days=shift + length - 1),
                    "fixed_cost": 1000.0,
                }  # fmt: skip
            )
    camps = pd.DataFrame(rows)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = estimate_campaign_effects(daily, camps, short_pre="skip")
    secs = time.perf_counter() - t0
    return {
        "what": "campaign_effects",
        "raw_duckdb_seconds": np.nan,
        "size": len(res.table),
        "seconds": round(secs, 2),
        "target_seconds": 60.0,
        "rows_out": len(res.table),
        "setup_seconds": 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shipments", type=int, default=10_000_000)
    parser.add_argument("--regions", type=int, default=31)
    parser.add_argument("--campaigns", type=int, default=25)
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        results.append(bench_daily(args.shipments, Path(tmp)))
    results.append(bench_effects(args.regions, args.campaigns))
    df = pd.DataFrame(results).assign(
        machine=platform.machine(), python=platform.python_version(),
        date=pd.Timestamp.now(tz="UTC").strftime("%Y-%m-%d %H:%M"),
    )  # fmt: skip
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(RESULTS, index=False)
    print(df.to_string(index=False))


if __name__ == "__main__":
    main()
