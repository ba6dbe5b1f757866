"""Benchmark: simulate ~10 M shipments and write them as Parquet (target: < 60 s, < 4 GB).

Uses :func:`promo_analysis.simulate.write_simulation` (region by region, streamed to Parquet).

Run standalone: ``.venv/bin/python benchmarks/bench_simulate.py [--shipments 10000000]``.
A small pilot run finds the scale that gives the requested number of shipments; the timed run
happens in a fresh subprocess so its peak memory (max RSS) is its own. Appends a row to
``benchmarks/results/simulate.csv``.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "simulate.csv"


def _timed_run(scenario: str, scale: float, regions: str, seed: int, out: str) -> dict:
    import pyarrow.parquet as pq

    from promo_analysis.simulate import write_simulation

    c0, t0 = time.process_time(), time.perf_counter()
    write_simulation(out, scenario, scale=scale, regions=regions, seed=seed)
    c1, t1 = time.process_time(), time.perf_counter()
    n = pq.ParquetFile(Path(out) / "shipments.parquet").metadata.num_rows
    size = sum(f.stat().st_size for f in Path(out).iterdir())
    return {
        "shipments": n,
        "total_s": round(t1 - t0, 2),
        "cpu_s": round(c1 - c0, 2),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2, 2),
        "folder_mb": round(size / 1024**2, 1),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shipments", type=int, default=10_000_000)
    p.add_argument("--regions", default="guangxi,shanxi,beijing,zhejiang")
    p.add_argument("--scenario", default="china-post-2022")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        scale, out = args.child.split("|")
        print(json.dumps(_timed_run(args.scenario, float(scale), args.regions, args.seed, out)))
        return

    from promo_analysis.simulate import simulate_frames

    pilot_scale = 0.002
    frames, _, _ = simulate_frames(args.scenario, scale=pilot_scale, regions=args.regions,
                                   seed=args.seed)
    per_scale = len(frames["shipments"]) / pilot_scale
    scale = round(args.shipments / per_scale, 4)
    with tempfile.TemporaryDirectory(prefix="bench-simulate-") as tmp:
        out = os.path.join(tmp, "data")
        proc = subprocess.run(
            [sys.executable, __file__, "--regions", args.regions, "--scenario", args.scenario,
             "--seed", str(args.seed), "--child", f"{scale}|{out}"],
            capture_output=True, text=True, check=True,
        )
    row = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "scenario": args.scenario,
        "regions": args.regions,
        "scale": scale,
        "cpus": os.cpu_count(),
        **json.loads(proc.stdout.strip().splitlines()[-1]),
    }
    row["target_met"] = row["total_s"] < 60 and row["peak_rss_gb"] < 4
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    new = not RESULTS.exists() or RESULTS.read_text().splitlines()[0] != ",".join(row)
    with RESULTS.open("w" if new else "a", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(row))
        if new:
            w.writeheader()
        w.writerow(row)
    print(json.dumps(row, indent=1))


if __name__ == "__main__":
    main()
