#!/usr/bin/env python3
"""Benchmark of ``render_reports``: the cost of one extra region and of the 4-region sample.

Targets (issue 8): each extra region < 10 s at sample scale; the whole sample (4 regions,
2 workers) < 60 s after set-up. Runs standalone::

    .venv/bin/python benchmarks/bench_report.py [--data data/sample]

Without ``--data`` the sample (scale 0.01; guangxi, shanxi, beijing, zhejiang; seed 0) is
simulated into ``benchmarks/work/sample`` first (set-up, not timed). Writes
``benchmarks/results/report.csv`` with one row per measured run, including the 1-minute load
average, because on a shared machine wall time depends on what else runs, and the CPU seconds
of this process (``cpu_self``: inputs, validation, HTML export, index) and of the notebook
kernels (``cpu_kernels``, reaped child processes), which do not.
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REGIONS = ["guangxi", "shanxi", "beijing", "zhejiang"]


def _sample(path: Path) -> Path:
    if (path / "dataset.json").exists():
        return path
    from promo_analysis.dataset import save_dataset
    from promo_analysis.simulate import simulate

    ds = simulate("china-post-2022", scale=0.01, regions=REGIONS, seed=0)
    save_dataset(ds, path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None)
    args = parser.parse_args()
    from promo_analysis.report.render import render_reports

    data = args.data or _sample(HERE / "work" / "sample")
    rows = []
    with tempfile.TemporaryDirectory() as out:
        for label, regions, workers in (
            ("1 region, 1 worker", REGIONS[:1], 1),
            ("2 regions, 1 worker", REGIONS[:2], 1),
            ("4 regions, 2 workers", REGIONS, 2),
        ):
            self0 = resource.getrusage(resource.RUSAGE_SELF)
            kids0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter()
            summary = render_reports(data, regions=regions, out=out, workers=workers,
                                     progress=None)
            seconds = time.perf_counter() - t0
            self1 = resource.getrusage(resource.RUSAGE_SELF)
            kids1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu_self = (self1.ru_utime + self1.ru_stime) - (self0.ru_utime + self0.ru_stime)
            cpu_kids = (kids1.ru_utime + kids1.ru_stime) - (kids0.ru_utime + kids0.ru_stime)
            per_region = [round(s.seconds, 2) for s in summary.regions.values()]
            rows.append({
                "run": label,
                "regions": len(regions),
                "workers": workers,
                "seconds": round(seconds, 2),
                "region_seconds": " ".join(map(str, per_region)),
                "ok": summary.ok,
                "cpu_self": round(cpu_self, 2),
                "cpu_kernels": round(cpu_kids, 2),
                "load_avg_1min": round(os.getloadavg()[0], 2),
                "cpus": os.cpu_count(),
            })
            print(rows[-1], flush=True)
    rows.append({
        "run": "extra region (2 regions - 1 region, 1 worker)",
        "regions": 1,
        "workers": 1,
        "seconds": round(rows[1]["seconds"] - rows[0]["seconds"], 2),
        "region_seconds": "",
        "ok": rows[0]["ok"] and rows[1]["ok"],
        "cpu_self": round(rows[1]["cpu_self"] - rows[0]["cpu_self"], 2),
        "cpu_kernels": round(rows[1]["cpu_kernels"] - rows[0]["cpu_kernels"], 2),
        "load_avg_1min": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
    })
    print(rows[-1])
    target = HERE / "results" / "report.csv"
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
