"""Benchmark: daily series from many shipments, and campaign effects for 31 regions x 25 campaigns.

Targets (issue 6, 9): daily series from 50 M shipments under 5 s and at least 5x faster than
pandas; campaign effects for 31 regions x 25 campaigns under 60 s.

The daily series (``features.daily_series`` by region) runs on the simulated Parquet dataset of
each size (``_harness.dataset_for``, cached in ``benchmarks/.cache/``, or ``--data PATH``), each
method in a fresh subprocess (peak RSS per step; wall and CPU seconds of the step only; load
average before it), next to the best exact hand-written DuckDB query
(``_harness.ref_sql_daily``, the same one ``bench_scale.py`` times) and a plain pandas
version. Campaign effects run on a synthetic daily panel in this process. Run::

    .venv/bin/python benchmarks/bench_campaigns.py --sizes 1e6,1e7,5e7 [--data PATH]

Writes ``benchmarks/results/campaigns.csv`` (one row per measurement).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _harness as h  # noqa: E402

RESULTS = HERE / "results" / "campaigns.csv"
DAILY_METHODS = ["daily_series", "sql_daily_series", "pandas_daily_series"]


def _pandas_daily(folder: Path) -> pd.DataFrame:
    """What a user would write: read the columns, two groupbys."""
    parts = folder / "shipments"
    src = parts if parts.is_dir() else folder / "shipments.parquet"
    s = pd.read_parquet(src, columns=["customer_id", "region_id", "sent_at", "revenue",
                                      "discount", "coupon_id"])
    s["date"] = s["sent_at"].dt.normalize()
    s["_coupon"] = s["coupon_id"].notna()
    main = s.groupby(["date", "region_id"], observed=True).agg(
        revenue=("revenue", "sum"), shipments=("revenue", "size"),
        coupon_shipments=("_coupon", "sum"), discount=("discount", "sum"))
    first = s.loc[s.groupby("customer_id")["sent_at"].idxmin(), ["date", "region_id"]]
    new = first.groupby(["date", "region_id"], observed=True).size().rename("new_customers")
    return main.join(new, how="outer").fillna(0).reset_index()


def step(method: str, folder: Path) -> dict:
    """One daily-series method on the dataset folder, timing only the step."""
    if method == "sql_daily_series":
        import duckdb  # noqa: F401

        with h.Timer() as t:
            out = h.ref_sql_daily(folder)
    elif method == "pandas_daily_series":
        import pyarrow  # noqa: F401

        with h.Timer() as t:
            out = _pandas_daily(folder)
    elif method == "daily_series":
        from promo_analysis.dataset import load_dataset
        from promo_analysis.features import daily_series

        ds = load_dataset(folder)
        ds.table("regions").count().to_pandas()  # warm up the connection, not timed
        with h.Timer() as t:
            out = daily_series(ds)
    else:
        raise ValueError(f"unknown method {method!r}")
    return {"what": method, "wall_seconds": round(t.wall, 2), "cpu_seconds": round(t.cpu, 2),
            "peak_rss_mb": h.peak_rss_mb(), "rows_out": len(out)}


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
    with warnings.catch_warnings(), h.Timer() as t:
        warnings.simplefilter("ignore")
        res = estimate_campaign_effects(daily, camps, short_pre="skip")
    return {
        "what": "campaign_effects",
        "size": len(res.table),
        "wall_seconds": round(t.wall, 2),
        "cpu_seconds": round(t.cpu, 2),
        "target_seconds": 60.0,
        "rows_out": len(res.table),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1e6,1e7", help="shipments, e.g. 1e6,1e7,5e7")
    parser.add_argument("--data", help="a pre-generated dataset folder (then --sizes is ignored)")
    parser.add_argument("--methods", default=",".join(DAILY_METHODS))
    parser.add_argument("--regions", type=int, default=31)
    parser.add_argument("--campaigns", type=int, default=25)
    parser.add_argument("--no-effects", action="store_true", help="skip campaign_effects")
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--step", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:
        print(json.dumps(step(args.step[0], Path(args.step[1]))))
        return
    folders = ([Path(args.data)] if args.data
               else [h.dataset_for(n) for n in h.parse_sizes(args.sizes)])
    results = []
    for folder in folders:
        n = h.count_shipments(folder)
        for method in args.methods.split(","):
            row = {"size": n, "target_seconds": 5.0 * n / 50e6 if method == "daily_series"
                   else np.nan, **h.run_step(__file__, [method, str(folder)])}
            row.setdefault("what", method)
            print(row, flush=True)
            results.append({**row, "dataset": folder.name})
    if not args.no_effects:
        load = os.getloadavg()[0]
        row = bench_effects(args.regions, args.campaigns)
        results.append({**row, "load_1min": round(load, 2)})
        print(results[-1], flush=True)
    df = pd.DataFrame(results).assign(**h.machine())
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(out, index=False)
    print(df.to_string(index=False))


if __name__ == "__main__":
    main()
