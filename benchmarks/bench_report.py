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

Scale mode (issue 9: 31 reports from 50 M shipments in < 10 min) times one ``render_reports``
call on a simulated national dataset and APPENDS its row (with the dataset and its shipment
count) to the same CSV, e.g.::

    .venv/bin/python benchmarks/bench_report.py --size 1e7 --regions guangdong --workers 1
    .venv/bin/python benchmarks/bench_report.py --size 1e6 --regions all --workers 2

``cpu_validate`` is the dataset validation (run once per call, timed separately in the same
process before ``render_reports``, which is given the report: ``validation=``), so
``cpu_self`` is the per-region work of the main process (inputs, HTML export, index) and
``cpu_kernels`` that of the notebook kernels. ``--fresh-kernels`` starts a kernel per region
(``reuse_kernels=False``, the behaviour before session 4) for a same-run comparison.
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


def _cpu() -> tuple[float, float]:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime


def _write(rows: list[dict], append: bool) -> Path:
    target = HERE / "results" / "report.csv"
    target.parent.mkdir(parents=True, exist_ok=True)
    old = []
    if target.exists():
        with target.open(newline="") as fh:
            old = list(csv.DictReader(fh))
    if not append:  # a new sample run replaces the sample rows; the scale rows stay
        old = [r for r in old if r.get("data")]
    rows = old + rows
    fields = list(dict.fromkeys(k for r in rows for k in r))
    with target.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return target


def scale_run(data: Path, regions: str, workers: int, label: str = "",
              reuse_kernels: bool = True, kernel_rows: int | None = -1) -> dict:
    """One ``render_reports`` call on ``data``; CPU of this process and of the kernels."""
    import datetime as dt

    import duckdb

    from promo_analysis import load_dataset, validate
    from promo_analysis.report.render import render_reports

    shipments = duckdb.sql(
        f"select count(*) from read_parquet('{data}/shipments/**/*.parquet')").fetchall()[0][0]
    ds = load_dataset(data)
    wanted = None if regions == "all" else [r for r in regions.split(",") if r]
    load0 = os.getloadavg()[0]
    c0 = _cpu()
    report = validate(ds, strict=False)
    cpu_validate = _cpu()[0] - c0[0]
    with tempfile.TemporaryDirectory(prefix="bench-report-") as out:
        c1 = _cpu()
        t0 = time.perf_counter()
        limit = {} if kernel_rows == -1 else {"kernel_rows": kernel_rows}
        summary = render_reports(ds, regions=wanted, out=out, workers=workers, progress=None,
                                 validation=report, reuse_kernels=reuse_kernels, **limit)
        seconds = time.perf_counter() - t0
        c2 = _cpu()
        peak_self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    return {
        "run": f"{data.name}: {len(summary.regions)} region(s), {workers} worker(s)"
        + (f" [{label}]" if label else ""),
        "regions": len(summary.regions),
        "workers": workers,
        "seconds": round(seconds, 2),
        "region_seconds": " ".join(f"{r}={s.seconds:.1f}" for r, s in summary.regions.items())
        if len(summary.regions) <= 4 else "",
        "ok": summary.ok,
        "cpu_self": round(c2[0] - c1[0], 2),
        "cpu_kernels": round(c2[1] - c1[1], 2),
        "load_avg_1min": f"{load0:.2f}/{os.getloadavg()[0]:.2f}",
        "cpus": os.cpu_count(),
        "data": str(data),
        "shipments": shipments,
        "cpu_validate": round(cpu_validate, 2),
        "validation_given": True,
        "reuse_kernels": reuse_kernels,
        "kernel_rows": "default" if kernel_rows == -1 else kernel_rows,
        # this process's ru_maxrss in GB (1e9 bytes), validation included; not the tree's
        # summed RSS (bench_scale.py polls that). A kernel's ru_maxrss is not reported: a
        # child forked from this process counts this process's pages until it execs
        "peak_gb_main": round(peak_self, 2),
        "run_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--size", default=None,
                        help="scale mode on benchmarks/.cache/sim-<size>-seed0 (e.g. 1e6, 1e7)")
    parser.add_argument("--regions", default=None,
                        help="scale mode: comma-separated region ids, or 'all'")
    parser.add_argument("--workers", type=int, default=2, help="scale mode: kernels at a time")
    parser.add_argument("--label", default="", help="scale mode: a note for the row's run name")
    parser.add_argument("--fresh-kernels", action="store_true",
                        help="scale mode: a new kernel per region (reuse_kernels=False)")
    parser.add_argument("--kernel-rows", type=int, default=-1,
                        help="scale mode: render_reports(kernel_rows=); 0: no limit; "
                             "default: the function's default")
    args = parser.parse_args()
    if args.size or args.regions:
        data = args.data or HERE / ".cache" / f"sim-{int(float(args.size or 1e6))}-seed0"
        row = scale_run(data, args.regions or "all", args.workers, args.label,
                        reuse_kernels=not args.fresh_kernels,
                        kernel_rows=None if args.kernel_rows == 0 else args.kernel_rows)
        print(row, flush=True)
        print(f"appended to {_write([row], append=True)}")
        return
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
    print(f"wrote {_write(rows, append=False)}")


if __name__ == "__main__":
    main()
