#!/usr/bin/env python3
"""``first_use_table`` at national scale: in memory vs written to Parquet piece by piece.

Issue 9's target for every step: peak memory < 4 GB at 50 M shipments. The in-memory table
cannot meet it there (at 10 M it is already 6.96 M rows, ~2.9 GB as pandas, 7.4 GB peak with the
engine's unbounded hash tables); ``first_use_table(ds, path=...)`` writes the same rows in
customer-id ranges of at most ``PIECE_CUSTOMERS`` customers, with DuckDB capped at
``FILE_MEMORY_LIMIT`` (or the connection's own lower cap). Steps, each in a fresh subprocess:

* ``file``      -- ``first_use_table(load_dataset(data[, memory_limit=M]), path=tmp.parquet)``
  (without ``--memory-limit``: the dataset loaded as a user would, the function's own cap);
* ``table``     -- ``first_use_table(load_dataset(data))``, the in-memory table (not at 50 M
  unless asked: it needs > 20 GB there);
* ``ref_sql``   -- the reference measured in the same run: hand-written DuckDB SQL of the first
  step of both, the customers' first parcel (``SELECT customer_id, min(sent_at) ... GROUP BY
  1``, fetched as Arrow), under the same ``memory_limit`` (none by default).

Per row (appended to ``benchmarks/results/first_use.csv``): the step's own wall and CPU
seconds (after imports and opening the dataset), the subprocess's wall and CPU seconds
(``RUSAGE_CHILDREN``), peak memory as the summed RSS of the step's process tree polled every
0.2 s with psutil and the child's ``ru_maxrss`` (both in GB = 1e9 bytes), the 1-minute load
average before and after, rows out.

Run::

    .venv/bin/python benchmarks/bench_first_use.py --size 1e7
    .venv/bin/python benchmarks/bench_first_use.py --size 5e7 --steps ref_sql,file --kill-above-gb 8
    .venv/bin/python benchmarks/bench_first_use.py --data PATH --memory-limit 3GB
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import _harness as h  # noqa: E402

RESULTS = HERE / "results" / "first_use.csv"
STEPS = ("ref_sql", "file", "table")
FIELDS = [
    "measured_at", "dataset", "shipments", "step", "memory_limit", "ok", "error", "rows_out",
    "pieces", "step_wall_s", "step_cpu_s", "wall_s", "cpu_s", "peak_tree_gb", "maxrss_gb",
    "load_1m_before", "load_1m_after", "commit",
]


# --------------------------------------------------------------------------- child side
def _child(step: str, folder: Path, memory_limit: str | None) -> dict:
    import duckdb
    import pandas  # noqa: F401
    import pyarrow  # noqa: F401

    if step == "ref_sql":
        con = duckdb.connect(config={"memory_limit": memory_limit} if memory_limit else {})
        h.sql_views(con, folder)
        con.execute("SELECT 1").fetchall()
        with h.Timer() as t:
            rows = con.execute(
                "SELECT customer_id, min(sent_at) AS first_sent_at FROM shipments GROUP BY 1"
            ).to_arrow_table().num_rows
        return {"rows_out": rows, "step_wall_s": t.wall, "step_cpu_s": t.cpu}

    from promo_analysis import load_dataset
    from promo_analysis.features import first_use

    ds = load_dataset(folder, **({"memory_limit": memory_limit} if memory_limit else {}))
    ds.table("regions").count().to_pandas()  # the engine connection is up
    out: dict = {}
    with tempfile.TemporaryDirectory(prefix="bench-first-use-") as tmp:
        with h.Timer() as t:
            if step == "file":
                written = first_use.first_use_table(ds, path=Path(tmp) / "first_use.parquet")
                out["rows_out"] = written.rows
            elif step == "table":
                out["rows_out"] = len(first_use.first_use_table(ds))
            else:
                raise ValueError(f"unknown step {step!r}; steps: {', '.join(STEPS)}")
    if step == "file":
        out["pieces"] = len(first_use._pieces(ds, first_use.PIECE_CUSTOMERS))
    out.update(step_wall_s=t.wall, step_cpu_s=t.cpu)
    return out


def _child_main(step: str, folder: str, memory_limit: str) -> None:
    out = _child(step, Path(folder), memory_limit or None)
    out["maxrss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9
    print("\nBENCH-FIRST-USE " + json.dumps(out), flush=True)


# --------------------------------------------------------------------------- parent side
def _tree_peak(pid: int, stop: threading.Event, result: list, kill_above: float) -> None:
    import psutil

    proc = psutil.Process(pid)
    peak = 0
    while not stop.is_set():
        try:
            procs = [proc, *proc.children(recursive=True)]
        except psutil.Error:
            break
        total = 0
        for p in procs:
            try:
                total += p.memory_info().rss
            except psutil.Error:
                pass
        peak = max(peak, total)
        if kill_above and total > kill_above:
            # a shared machine: stop before the kernel's OOM killer picks someone else
            for p in reversed(procs):
                try:
                    p.kill()
                except psutil.Error:
                    pass
            result.append(-peak)
            return
        stop.wait(0.2)
    result.append(peak)


def measure(step: str, folder: Path, memory_limit: str | None, kill_above_gb: float = 0) -> dict:
    code = (f"import sys; sys.path.insert(0, {str(HERE)!r}); import bench_first_use as b; "
            f"b._child_main({step!r}, {str(folder)!r}, {memory_limit or ''!r})")
    load0 = os.getloadavg()[0]
    kids0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=HERE.parent,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stop, peak = threading.Event(), []
    poller = threading.Thread(target=_tree_peak, args=(proc.pid, stop, peak, kill_above_gb * 1e9),
                              daemon=True)
    poller.start()
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - t0
    stop.set()
    poller.join()
    kids1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    result: dict = {}
    for line in stdout.splitlines():
        if line.startswith("BENCH-FIRST-USE "):
            result = json.loads(line.split(" ", 1)[1])
    ok = proc.returncode == 0 and bool(result)
    error = ""
    if peak and peak[0] < 0:
        ok, error, peak[0] = False, f"killed: process tree above {kill_above_gb} GB", -peak[0]
    elif not ok:
        lines = [ln for ln in stderr.strip().splitlines() if ln.strip()]
        error = (lines[-1] if lines else f"exit {proc.returncode}")[:300]
    if not memory_limit and step == "file":
        from promo_analysis.features.first_use import FILE_MEMORY_LIMIT

        memory_limit = f"default {FILE_MEMORY_LIMIT}"
    row = {
        "step": step, "memory_limit": memory_limit or "", "ok": ok, "error": error,
        "wall_s": round(wall, 2),
        "cpu_s": round((kids1.ru_utime + kids1.ru_stime) - (kids0.ru_utime + kids0.ru_stime), 2),
        "peak_tree_gb": round(peak[0] / 1e9, 3) if peak else "",
        "load_1m_before": round(load0, 2), "load_1m_after": round(os.getloadavg()[0], 2),
    }
    for key in ("rows_out", "pieces"):
        row[key] = result.get(key, "")
    for key in ("step_wall_s", "step_cpu_s", "maxrss_gb"):
        row[key] = round(result[key], 3) if key in result else ""
    return row


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", default="1e7", help="shipments: 1e6, 1e7 or 5e7 (default 1e7)")
    p.add_argument("--data", help="a dataset folder instead of the cached simulation")
    p.add_argument("--steps", default="ref_sql,file,table",
                   help=f"comma-separated, of {', '.join(STEPS)} (default: all three)")
    p.add_argument("--memory-limit", default="",
                   help="DuckDB memory_limit of the file and ref_sql steps (default none: "
                        "DuckDB's own, which the file step lowers to first_use."
                        "FILE_MEMORY_LIMIT); the table step runs without one")
    p.add_argument("--kill-above-gb", type=float, default=0,
                   help="kill a step whose process tree exceeds this many GB (0: never)")
    p.add_argument("--out", default=str(RESULTS), help="CSV to append to")
    args = p.parse_args(argv)
    folder = h.dataset_for(int(float(args.size)), args.data)
    shipments = h.count_shipments(folder)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE.parent,
                            capture_output=True, text=True).stdout.strip()
    rows = []
    for step in [s.strip() for s in args.steps.split(",") if s.strip()]:
        if step not in STEPS:
            p.error(f"unknown step {step!r}; steps: {', '.join(STEPS)}")
        limit = None if step == "table" else (args.memory_limit or None)
        row = {"measured_at": h.machine()["measured_at"], "dataset": folder.name,
               "shipments": shipments, "commit": commit, **measure(step, folder, limit, args.kill_above_gb)}
        print(json.dumps(row), flush=True)
        rows.append(row)
        h.append_rows(Path(args.out), [row], FIELDS)


if __name__ == "__main__":
    main()
