"""Benchmark: the national scenario written one-file-per-table vs. partitioned by region/month.

For each layout, in a fresh subprocess (so the peak memory, max RSS, is that run's own):
``write_simulation(..., partitioned=...)``, then ``load_dataset`` + ``features.customer_table``
+ ``features.daily_series``; wall seconds and max RSS of each step are recorded, and the two
layouts' feature results are checked to be identical (floats to 1e-9 relative).

Run standalone: ``.venv/bin/python benchmarks/bench_partitioned.py [--scale 0.001]
[--regions all]``. Appends rows to ``benchmarks/results/partitioned.csv``.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "partitioned.csv"


def _rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _child(step: str, out: str, scale: float, regions: str, seed: int, partitioned: bool) -> dict:
    t0 = time.perf_counter()
    if step == "write":
        from promo_analysis.simulate import write_simulation

        write_simulation(out, scale=scale, regions=regions, seed=seed, partitioned=partitioned)
        files = [f for f in Path(out).rglob("*.parquet")]
        return {"seconds": round(time.perf_counter() - t0, 2), "peak_rss_mb": _rss_mb(),
                "parquet_files": len(files),
                "mb_on_disk": round(sum(f.stat().st_size for f in files) / 2**20, 1)}
    from promo_analysis import features, load_dataset

    ds = load_dataset(out)
    n = int(ds.table("shipments").count().execute())
    ct = features.customer_table(ds).sort_values("customer_id").reset_index(drop=True)
    daily = features.daily_series(ds).sort_values(["date", "region_id"]).reset_index(drop=True)
    seconds = round(time.perf_counter() - t0, 2)
    ct.to_pickle(Path(out).parent / f"{Path(out).name}-ct.pkl")
    daily.to_pickle(Path(out).parent / f"{Path(out).name}-daily.pkl")
    return {"seconds": seconds, "peak_rss_mb": _rss_mb(), "shipments": n, "customers": len(ct)}


def _run(step: str, out: Path, args, partitioned: bool) -> dict:
    call = [step, str(out), args.scale, args.regions, args.seed, partitioned]
    code = (
        f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
        f"from bench_partitioned import _child; print(json.dumps(_child(*{call!r})))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    import pandas as pd

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=0.001)
    ap.add_argument("--regions", default="all")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-partitioned-") as tmp:
        for layout in ("flat", "partitioned"):
            out = Path(tmp) / layout
            for step in ("write", "load+features"):
                r = _run("write" if step == "write" else "features", out, args,
                         layout == "partitioned")
                rows.append({"layout": layout, "step": step, **r})
                print(layout, step, r, flush=True)
        # floats compared to 1e-9 relative: a per-customer revenue sum adds the same numbers
        # in another order when the rows come from other files (observed: 1e-14 yuan)
        same = True
        for k in ("ct", "daily"):
            try:
                pd.testing.assert_frame_equal(pd.read_pickle(Path(tmp) / f"flat-{k}.pkl"),
                                              pd.read_pickle(Path(tmp) / f"partitioned-{k}.pkl"),
                                              check_exact=False, rtol=1e-9)
            except AssertionError as err:
                print(k, "differs:", err)
                same = False
    print("features identical on both layouts:", same)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    machine = f"{platform.machine()} {os.cpu_count()} cpu, Python {platform.python_version()}"
    fields = ["run_at", "machine", "scale", "regions", "layout", "step", "seconds",
              "peak_rss_mb", "parquet_files", "mb_on_disk", "shipments", "customers",
              "identical_features"]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    new = not RESULTS.exists()
    with open(RESULTS, "a", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        if new:
            w.writeheader()
        for r in rows:
            w.writerow({"run_at": stamp, "machine": machine, "scale": args.scale,
                        "regions": args.regions, "identical_features": same, **r})


if __name__ == "__main__":
    main()
