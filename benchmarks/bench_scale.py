#!/usr/bin/env python3
"""The scale ladder (issue 9, item 3): the pipeline at 1 M, 10 M and 50 M shipments.

For each size, on the national scenario (all 31 regions, Parquet partitioned by region and
month, ``write_simulation(..., regions="all", partitioned=True)``), every step runs in a fresh
subprocess and one CSV row is appended to ``benchmarks/results/scale.csv``:

- ``simulate`` -- write the dataset (skipped, not timed, when the folder already holds it);
- ``validate`` -- the data contract, engine side;
- ``ref_sql_customer`` / ``ref_pandas_customer`` -- the two references of the issue: the
  customer-level aggregation as hand-written DuckDB SQL straight on the Parquet files, and as
  plain pandas (read the columns, sort, groupby customer), next to
- ``customer_table`` -- the same aggregation through ``features.customer_table``;
- ``ref_sql_daily`` / ``ref_pandas_daily`` / ``daily_series`` -- the same for the daily series
  per region (revenue, shipments, coupon shipments, discount, new customers);
- ``first_use_table``, ``cohort_matrix`` (monthly, 12 periods), ``campaign_effects`` (every
  campaign in every region);
- ``report_one`` / ``report_all`` -- ``render_reports`` for one region (1 worker) and for all
  31 (``--workers``, default 2).

Per row: the step's own wall and CPU seconds (``step_wall_s``, ``step_cpu_s``: after imports
and, for engine steps, opening the dataset -- as in ``bench_features.py``; the targets compare
these), the subprocess's wall seconds and the CPU seconds of its whole process tree
(``RUSAGE_CHILDREN`` delta: report kernels reaped by the step count too), peak RSS in MB (``rss_method`` says how: the sum of RSS over the
step's process tree polled every 0.2 s with psutil, else ``ru_maxrss`` of the largest single
process), the 1-minute load average before and after, rows in (shipments) and out, the target
and whether it is met (targets that compare steps use the references of the same data in the
CSV; ``--summary`` re-evaluates them all). Wall times on a loaded machine are inflated; compare
ratios to the references measured in the same run, and the CPU seconds.

Targets (issue 9): engine-side features within 1.5x of the hand SQL at 10 M and 50 M; at 50 M
at most 1/2 of the pandas wall time and 1/3 of its peak memory, the daily series >= 5x faster
than pandas; peak memory < 4 GB for every (non-reference) step; all 31 reports from 50 M in
under 10 minutes on 2 cores.

Run::

    .venv/bin/python benchmarks/bench_scale.py --sizes 1e6              # ~5 min on 2 cores
    .venv/bin/python benchmarks/bench_scale.py --sizes 1e7,5e7 --resume # the full ladder
    .venv/bin/python benchmarks/bench_scale.py --steps daily_series,ref_sql_daily --sizes 1e7
    .venv/bin/python benchmarks/bench_scale.py --summary                # markdown table

Datasets are those of the shared harness (``_harness.py``): ``benchmarks/.cache/sim-<n>-seed<s>/``,
the same folders ``bench_features.py``, ``bench_retention.py`` and ``bench_campaigns.py`` use,
so each size is generated once for all of them (``--data-dir`` to keep them elsewhere). When
a size is not there yet, the ``simulate`` step writes (and times) it; the scale giving the
wanted number of shipments comes from the harness's pilot simulation, and the actual count is
recorded. The customer-table references are ``bench_features.py``'s (the same hand SQL and
pandas code). The per-customer tables are timed as engine outputs written to Parquet
(``customer_table(ds, path=..., buckets=k)`` next to the hand SQL's ``COPY`` in the same k hash
buckets, k = 6 from 20 M shipments on; ``first_use_table(ds, path=...)`` under a 3 GB DuckDB
``memory_limit``): at 50 M they hold ~38 M customers, more than a 4 GB process can hold as a
pandas frame. The pandas reference writes its frame to Parquet too; from 20 M shipments on its
address space is capped at 20 GB, and a MemoryError under the cap counts as a lower bound.
``--resume`` skips the steps that already have a successful row for the same data (a key over
``dataset.json`` and the names and sizes of the files).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import hashlib
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results" / "scale.csv"

STEPS = (
    "simulate",
    "validate",
    "ref_sql_customer",
    "ref_pandas_customer",
    "customer_table",
    "ref_sql_daily",
    "ref_pandas_daily",
    "daily_series",
    "first_use_table",
    "cohort_matrix",
    "campaign_effects",
    "report_one",
    "report_all",
)
REFERENCES = {"ref_sql_customer", "ref_pandas_customer", "ref_sql_daily", "ref_pandas_daily"}
#: engine step -> (hand-SQL reference, pandas reference)
COMPARED = {
    "customer_table": ("ref_sql_customer", "ref_pandas_customer"),
    "daily_series": ("ref_sql_daily", "ref_pandas_daily"),
}
#: the region of ``report_one`` (the largest region of the scenario by shipments)
ONE_REGION = "guangdong"
#: "< 4 GB" read strictly as 4e9 bytes; ``peak_rss_mb`` is in MiB (2^20 bytes)
PEAK_LIMIT_MB = 4e9 / 2**20
#: the pandas reference may not fit at national scale: from this many shipments on its child
#: caps its address space (RLIMIT_AS) so that it fails with MemoryError instead of being
#: OOM-killed; a failed run then bounds pandas from below (peak >= the cap, wall >= its time)
PANDAS_CAP_FROM = 2e7
#: the "at 50 M" targets apply to the top rung (its simulation gives 49.9 M, not 5e7, shipments)
AT_50M = 4e7
PANDAS_CAP_BYTES = 20e9
#: rough wall seconds per million shipments on 2 idle cores, for the up-front estimate when
#: the CSV has no earlier measurement of a step (replaced by measured rates when it has)
DEFAULT_RATE = {
    "simulate": 9.0, "validate": 2.5, "ref_sql_customer": 0.8, "ref_pandas_customer": 3.0,
    "customer_table": 1.2, "ref_sql_daily": 0.3, "ref_pandas_daily": 1.5, "daily_series": 0.5,
    "first_use_table": 3.0, "cohort_matrix": 0.5, "campaign_effects": 0.5,
    "report_one": 2.0, "report_all": 8.0,
}
FIXED_SECONDS = {"report_one": 15.0, "report_all": 150.0, "campaign_effects": 20.0}
FIELDS = [
    "run_at", "size_label", "shipments", "scale", "data_key", "step", "ok", "error",
    "step_wall_s", "step_cpu_s", "wall_s", "cpu_s", "peak_rss_mb", "rss_method",
    "load_1m_before", "load_1m_after",
    "rows_in", "rows_out", "target", "target_met", "workers", "machine", "versions", "commit",
]


# --------------------------------------------------------------------------- child side
def _count_shipments(data: Path) -> int:
    import _harness as h

    return h.count_shipments(data)


def _customer_buckets(data: Path) -> int:
    """Hash buckets of the customer-table steps: one query up to 20 M shipments; at 50 M
    six (one query's group-by and join would hold ~38 M customers at once)."""
    return 1 if _count_shipments(data) < 2e7 else 6


def _ref_sql_customer(data: Path, buckets: int) -> int:
    """bench_features' hand-written customer table as DuckDB ``COPY ... TO`` Parquet (the
    engine output of ``customer_table(ds, path=...)``), in the same hash buckets."""
    import _harness as h
    import duckdb
    from bench_features import SQL_CUSTOMER_TABLE_COPY, _bucketed

    con = duckdb.connect()
    con.execute("SET preserve_insertion_order = false")
    con.execute("SET enable_progress_bar = false")
    h.sql_views(con, data)
    with tempfile.TemporaryDirectory(prefix="bench-scale-ref-customers-") as d:
        for i in range(buckets):
            q = SQL_CUSTOMER_TABLE_COPY if buckets == 1 else _bucketed(
                SQL_CUSTOMER_TABLE_COPY, buckets, i)
            con.execute(f"COPY ({q}) TO '{d}/part-{i}.parquet' (FORMAT parquet)")
        return con.execute(f"SELECT count(*) FROM '{d}/*.parquet'").fetchone()[0]


def _ref_pandas_customer(data: Path) -> int:
    """bench_features' pandas customer table (read the columns, sort, groupby customer),
    written to Parquet like the engine steps; address space capped at national scale."""
    from bench_features import _pandas_customer_table

    if _count_shipments(data) >= PANDAS_CAP_FROM:
        cap = int(PANDAS_CAP_BYTES)
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    try:
        df = _pandas_customer_table(data)
    except Exception as e:
        if "cap" in locals() and (isinstance(e, MemoryError) or "failed" in str(e)):
            # pyarrow reports an allocation refused under the cap as e.g. "Wrapping <id> failed"
            raise MemoryError(f"the pandas customer table did not fit in the {cap / 1e9:g} GB "
                              f"address-space cap: {type(e).__name__}: {e}") from e
        raise
    with tempfile.TemporaryDirectory(prefix="bench-scale-pandas-customers-") as d:
        df.to_parquet(f"{d}/customers.parquet", index=False)
    return len(df)


def _ref_sql_daily(data: Path):
    """The daily series per region as hand-written DuckDB SQL on the Parquet files."""
    import _harness as h

    return h.ref_sql_daily(data)


def _ref_pandas_daily(data: Path) -> int:
    import pandas as pd

    cols = ["customer_id", "region_id", "sent_at", "revenue", "discount", "coupon_id"]
    with pd.option_context("future.infer_string", True):  # as bench_features' pandas reference
        s = pd.read_parquet(data / "shipments", columns=cols)
    s["region_id"] = s["region_id"].astype(str)  # a hive partition column comes categorical
    s["date"] = s["sent_at"].dt.normalize()
    s["_coupon"] = s["coupon_id"].notna()
    totals = s.groupby(["date", "region_id"]).agg(
        revenue=("revenue", "sum"), shipments=("revenue", "size"),
        coupon_shipments=("_coupon", "sum"), discount=("discount", "sum"))
    first = s.sort_values(["sent_at"]).drop_duplicates("customer_id")
    new = first.groupby(["date", "region_id"]).size().rename("new_customers")
    out = totals.join(new).fillna({"new_customers": 0}).reset_index()
    return len(out)


class _Clock:
    """Wall and CPU seconds (all threads of this process) from ``start()`` on."""

    def start(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def read(self) -> dict:
        return {"step_wall_s": round(time.perf_counter() - self.wall, 3),
                "step_cpu_s": round(time.process_time() - self.cpu, 3)}


def _warm_up(step: str, data: Path) -> Any:
    """Imports and, for engine steps, the opened dataset: set-up the step's clock excludes
    (as in bench_features), so a 1 M rung is not dominated by importing Ibis and pandas."""
    import duckdb  # noqa: F401
    import pandas  # noqa: F401
    import pyarrow.parquet  # noqa: F401

    if step in REFERENCES or step == "simulate":
        return None
    import promo_analysis.campaigns  # noqa: F401
    import promo_analysis.features  # noqa: F401
    import promo_analysis.retention  # noqa: F401

    if step in ("report_one", "report_all"):
        import promo_analysis.report.render  # noqa: F401

        return None
    from promo_analysis import load_dataset

    # as a user opens it: first_use_table(path=) caps DuckDB itself (FILE_MEMORY_LIMIT)
    ds = load_dataset(data)
    ds.table("regions").count().to_pandas()  # the engine connection is up
    return ds


def _run_step(step: str, data: Path, scale: float, seed: int, workers: int,
              clock: _Clock | None = None) -> dict:
    """Run one step in this (fresh) process; returns rows_out and step details."""
    clock = clock or _Clock()
    ds = _warm_up(step, data)
    buckets = _customer_buckets(data) if step in ("customer_table", "ref_sql_customer") else 1
    clock.start()
    if step == "simulate":
        import inspect

        from promo_analysis.simulate import write_simulation

        kwargs = {}
        if "workers" in inspect.signature(write_simulation).parameters:
            kwargs["workers"] = workers  # the parallel simulator, when it has landed
        write_simulation(data, scale=scale, regions="all", seed=seed, partitioned=True, **kwargs)
        return {"rows_out": _count_shipments(data)}
    if step == "ref_sql_customer":
        return {"rows_out": _ref_sql_customer(data, buckets)}
    if step == "ref_pandas_customer":
        return {"rows_out": _ref_pandas_customer(data)}
    if step == "ref_sql_daily":
        return {"rows_out": len(_ref_sql_daily(data))}
    if step == "ref_pandas_daily":
        return {"rows_out": _ref_pandas_daily(data)}
    if step in ("report_one", "report_all"):
        from promo_analysis.report import render_reports

        with tempfile.TemporaryDirectory(prefix="bench-scale-reports-") as out:
            summary = render_reports(
                data, regions=[ONE_REGION] if step == "report_one" else None, out=out,
                workers=1 if step == "report_one" else workers, progress=None)
            if not summary.ok:
                errors = {r: summary.regions[r].error for r in summary.failed}
                raise RuntimeError(f"{len(errors)} region(s) failed: {errors}")
            return {"rows_out": len(summary.regions)}

    from promo_analysis import features

    if step == "validate":
        from promo_analysis import validate

        report = validate(ds, strict=False)
        issues = getattr(report, "issues", None)
        return {"rows_out": 0 if issues is None else len(issues)}
    if step == "customer_table":
        # the engine output (Parquet, no 38 M-row frame in Python), as the hand SQL's COPY
        with tempfile.TemporaryDirectory(prefix="bench-scale-customers-") as d:
            out = features.customer_table(ds, path=Path(d) / "customers", buckets=buckets)
            return {"rows_out": out.rows}
    if step == "daily_series":
        return {"rows_out": len(features.daily_series(ds))}
    if step == "first_use_table":
        # written piece by piece (the in-memory table is ~35 M rows at 50 M)
        with tempfile.TemporaryDirectory(prefix="bench-scale-first-use-") as d:
            out = features.first_use_table(ds, path=Path(d) / "first_use.parquet")
            return {"rows_out": out.rows}
    if step == "cohort_matrix":
        from promo_analysis.retention import cohort_matrix

        return {"rows_out": len(cohort_matrix(ds, freq="M", periods=12).counts)}
    if step == "campaign_effects":
        import warnings

        from promo_analysis.campaigns import campaign_effects

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # short pre-periods etc.: not what is timed
            # as the report does: campaigns without 28 clean days before them are left out
            return {"rows_out": len(campaign_effects(ds, short_pre="skip").table)}
    raise ValueError(f"unknown step {step!r}; steps: {', '.join(STEPS)}")


def _child_main(step: str, data: str, scale: float, seed: int, workers: int) -> None:
    clock = _Clock()
    out = _run_step(step, Path(data), scale, seed, workers, clock)
    out.update(clock.read())
    self_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    out["maxrss_mb"] = max(self_rss, kids_rss) / 1024
    # on a line of its own: DuckDB's progress bar writes to stdout without a newline
    print("\nBENCH-SCALE-RESULT " + json.dumps(out), flush=True)


# --------------------------------------------------------------------------- parent side
class _TreePeak:
    """Peak of the summed RSS of a process and its descendants, polled in a thread."""

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        import psutil

        self._proc = psutil.Process(pid)
        self._psutil = psutil
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, args=(interval,), daemon=True)
        self._thread.start()

    def _poll(self, interval: float) -> None:
        while not self._stop.is_set():
            try:
                procs = [self._proc, *self._proc.children(recursive=True)]
            except self._psutil.Error:
                return
            total = 0
            for p in procs:
                try:
                    total += p.memory_info().rss
                except self._psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            self._stop.wait(interval)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak / 2**20


def _measure(step: str, data: Path, scale: float, seed: int, workers: int) -> dict:
    code = (f"import sys; sys.path.insert(0, {str(HERE)!r}); import bench_scale; "
            f"bench_scale._child_main({step!r}, {str(data)!r}, {scale!r}, {seed!r}, {workers!r})")
    load0 = os.getloadavg()[0]
    kids0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        poller = _TreePeak(proc.pid)
        method = "psutil tree sum, 0.2 s poll"
    except ImportError:
        poller, method = None, "ru_maxrss (largest single process)"
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - t0
    kids1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (kids1.ru_utime + kids1.ru_stime) - (kids0.ru_utime + kids0.ru_stime)
    tree_peak = poller.stop() if poller is not None else None
    result: dict = {}
    for line in stdout.splitlines():
        if "BENCH-SCALE-RESULT " in line:
            result = json.loads(line.split("BENCH-SCALE-RESULT ", 1)[1])
    ok = proc.returncode == 0 and bool(result)
    peak = result.get("maxrss_mb")
    if tree_peak is not None and tree_peak > 0:
        peak = max(tree_peak, peak or 0.0)
    error = ""
    if not ok:
        lines = [ln for ln in stderr.strip().splitlines() if ln.strip()]
        error = (lines[-1] if lines else f"exit {proc.returncode}")[:300]
    return {
        "ok": ok, "error": error, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
        "peak_rss_mb": None if peak is None else round(peak, 1), "rss_method": method,
        "load_1m_before": round(load0, 2), "load_1m_after": round(os.getloadavg()[0], 2),
        "rows_out": result.get("rows_out"),
        "step_wall_s": result.get("step_wall_s"), "step_cpu_s": result.get("step_cpu_s"),
    }


def _parse_size(text: str) -> int:
    return int(float(text))


def _label(n: int) -> str:
    return f"{n / 1e6:g}M"


def _data_key(data: Path) -> str:
    """A cheap identity of a dataset folder: dataset.json plus every file's name and size."""
    h = hashlib.sha256((data / "dataset.json").read_bytes())
    for f in sorted(p for p in data.rglob("*") if p.is_file()):
        h.update(f"{f.relative_to(data).as_posix()}:{f.stat().st_size}\n".encode())
    return h.hexdigest()[:16]


def _machine() -> dict:
    import psutil

    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = psutil.virtual_memory().total / 2**30
    versions = []
    for mod in ("duckdb", "ibis", "pandas", "pyarrow", "numpy", "promo_analysis"):
        try:
            versions.append(f"{mod} {__import__(mod).__version__}")
        except Exception:  # noqa: BLE001 - a missing module is just not listed
            pass
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip()
    return {
        "machine": f"{model}; {os.cpu_count()} cores; {ram:.0f} GiB RAM; "
                   f"Python {platform.python_version()}",
        "versions": ", ".join(versions),
        "commit": commit,
    }


def _read_rows() -> list[dict]:
    if not RESULTS.exists():
        return []
    with RESULTS.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _append(row: dict) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    old = _read_rows()
    if old and list(old[0]) != FIELDS:
        # written by an earlier version of this script: rewrite under the current columns
        with RESULTS.open("w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=FIELDS)
            w.writeheader()
            w.writerows({k: r.get(k, "") for k in FIELDS} for r in old)
    new = not RESULTS.exists()
    with RESULTS.open("a", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=FIELDS)
        if new:
            w.writeheader()
        w.writerow({k: row.get(k, "") for k in FIELDS})


def _num(v) -> float | None:
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def _wall(row: dict | None) -> float | None:
    """The step's own wall seconds (after imports and opening the dataset), else the
    subprocess's."""
    if row is None:
        return None
    v = _num(row.get("step_wall_s"))
    return v if v is not None else _num(row.get("wall_s"))


def _evaluate(row: dict, same_data: list[dict]) -> tuple[str, str]:
    """(target text, met: "yes"/"no"/"n/a") of a row, given the rows of the same data."""
    step, n = row["step"], _num(row.get("shipments")) or 0
    if step in REFERENCES:
        return "reference", "n/a"
    latest = {}
    for r in same_data:
        capped = (r.get("step") == "ref_pandas_customer"
                  and "MemoryError" in str(r.get("error", "")))  # a bound, see _beats_pandas
        if str(r.get("ok")) in ("True", "true", "1") or capped:
            latest[r["step"]] = r  # later rows win
    texts, met = ["peak < 4 GB"], []
    peak = _num(row.get("peak_rss_mb"))
    met.append(peak is not None and peak < PEAK_LIMIT_MB)
    wall = _wall(row)
    if step in COMPARED:
        sql, pandas = (latest.get(s) for s in COMPARED[step])
        if n >= 1e7:
            texts.append("wall <= 1.5x hand SQL")
            met.append(wall is not None and _wall(sql) is not None and wall <= 1.5 * _wall(sql))
        if n >= AT_50M and step == "customer_table":
            texts.append("<= 1/2 pandas wall, <= 1/3 pandas peak")
            met.append(_beats_pandas(wall, peak, pandas))
        if n >= AT_50M and step == "daily_series":
            texts.append(">= 5x faster than pandas")
            met.append(wall is not None and _wall(pandas) is not None
                       and _wall(pandas) >= 5 * wall)
    if step == "report_all" and n >= AT_50M:
        texts.append("31 reports < 600 s")
        met.append(wall is not None and wall < 600)
    if str(row.get("ok")) not in ("True", "true", "1"):
        return "; ".join(texts), "no (failed)"
    return "; ".join(texts), "yes" if all(met) else "no"


def _beats_pandas(wall: float | None, peak: float | None, pandas: dict | None) -> bool:
    """At most half the pandas reference's wall time and a third of its peak. A pandas run
    that failed with MemoryError under the address-space cap counts as a lower bound: its peak
    was at least the cap, its wall time at least the seconds it ran before failing."""
    if wall is None or peak is None or pandas is None:
        return False
    if str(pandas.get("ok")) in ("True", "true", "1"):
        p_wall, p_peak = _wall(pandas), _num(pandas.get("peak_rss_mb"))
    elif "MemoryError" in str(pandas.get("error", "")):
        p_wall, p_peak = _num(pandas.get("wall_s")), PANDAS_CAP_BYTES / 2**20
    else:
        return False
    return (p_wall is not None and p_peak is not None
            and wall <= 0.5 * p_wall and peak <= p_peak / 3)


def _ratio(a, b) -> str:
    a, b = _num(a), _num(b)
    return f"{a / b:.2f}" if a is not None and b else ""


def summary() -> str:
    """A markdown table of the newest row per (size, step) in the CSV, targets re-evaluated."""
    rows = _read_rows()
    if not rows:
        return "(no rows in benchmarks/results/scale.csv yet)"
    newest: dict[tuple[str, str], dict] = {}
    for r in rows:
        newest[(r["data_key"], r["step"])] = r
    by_key: dict[str, list[dict]] = {}
    for r in rows:
        by_key.setdefault(r["data_key"], []).append(r)
    order = {s: i for i, s in enumerate(STEPS)}
    out = ["| shipments | step | step wall s | step CPU s | process wall s | tree CPU s | "
           "peak MB | load 1m | rows out | vs hand SQL | target | met |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    keyed = sorted(newest.values(), key=lambda r: (float(r["shipments"] or 0),
                                                   order.get(r["step"], 99)))
    for r in keyed:
        target, met = _evaluate(r, by_key[r["data_key"]])
        ref = COMPARED.get(r["step"], (None,))[0]
        ref_row = newest.get((r["data_key"], ref)) if ref else None
        # a failed reference (e.g. killed for memory) has no time to compare with
        ref_ok = ref_row is not None and str(ref_row.get("ok")) in ("True", "true", "1")
        vs = _ratio(_wall(r), _wall(ref_row)) if ref_ok else ""
        load = f"{r['load_1m_before']}/{r['load_1m_after']}"
        out.append(f"| {int(float(r['shipments'] or 0)):,} | {r['step']} | "
                   f"{r.get('step_wall_s', '')} | {r.get('step_cpu_s', '')} | {r['wall_s']} | "
                   f"{r['cpu_s']} | {r['peak_rss_mb']} | {load} | {r['rows_out']} | {vs} | "
                   f"{target} | {met} |")
    machines = sorted({r["machine"] for r in keyed})
    out.append("")
    out.append("Machine: " + " / ".join(machines))
    return "\n".join(out)


def _estimate(steps: list[str], n: int, rows: list[dict]) -> float:
    """Expected wall seconds: measured seconds per shipment of the largest earlier run of each
    step (fixed costs scale with it too, so this overestimates a bigger size), else defaults."""
    total = 0.0
    for step in steps:
        done = [r for r in rows if r["step"] == step and str(r["ok"]) == "True"
                and _num(r["wall_s"]) and _num(r["shipments"])]
        if done:
            best = max(done, key=lambda r: float(r["shipments"]))
            per = float(best["wall_s"]) / float(best["shipments"])
            total += per * n if n >= float(best["shipments"]) else float(best["wall_s"])
        else:
            total += FIXED_SECONDS.get(step, 5.0) + DEFAULT_RATE[step] * n / 1e6
    return total


def main() -> int:
    sys.path.insert(0, str(HERE))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1e6,1e7,5e7", help="shipment counts, e.g. 1e6,1e7")
    ap.add_argument("--data-dir", type=Path, default=None,
                    help="folder of the sim-<n>-seed<s>/ datasets (default benchmarks/.cache)")
    ap.add_argument("--steps", default="", help=f"comma-separated subset of: {', '.join(STEPS)}")
    ap.add_argument("--resume", action="store_true",
                    help="skip steps with a successful row for the same data in the CSV")
    ap.add_argument("--summary", action="store_true", help="print the markdown table and exit")
    ap.add_argument("--workers", type=int, default=2, help="report (and simulator) workers")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--regenerate", action="store_true",
                    help="simulate again even if the dataset folder exists")
    args = ap.parse_args()
    if args.summary:
        print(summary())
        return 0
    import _harness as h

    steps = [s.strip() for s in args.steps.split(",") if s.strip()] or list(STEPS)
    unknown = sorted(set(steps) - set(STEPS))
    if unknown:
        ap.error(f"unknown step(s) {unknown}; steps: {', '.join(STEPS)}")
    steps = [s for s in STEPS if s in steps]
    sizes = [_parse_size(s) for s in args.sizes.split(",") if s.strip()]
    machine = _machine()
    rows = _read_rows()
    est = sum(_estimate(steps, n, rows) for n in sizes)
    print(f"scale ladder: sizes {[_label(n) for n in sizes]}, {len(steps)} steps each; "
          f"estimated total ~{est / 60:.0f} min on an idle 2-core machine "
          f"(load now {os.getloadavg()[0]:.1f})", flush=True)
    failed = 0
    for n in sizes:
        data = (args.data_dir or h.CACHE) / f"sim-{n}-seed{args.seed}"
        have = (data / "dataset.json").exists()
        if args.regenerate and have:
            shutil.rmtree(data)
            have = False
        scale = None
        if have:
            meta = json.loads((data / "dataset.json").read_text())
            scale = float(meta.get("scale", 0) or 0)
        else:
            scale = n / h._shipments_per_scale(args.seed)  # the harness's cached pilot
        todo = [s for s in steps if not (s == "simulate" and have)]
        if have and "simulate" in steps:
            print(f"[{_label(n)}] simulate: {data} exists, reused (not timed; --regenerate "
                  f"to time it)", flush=True)
        if not have and "simulate" not in todo:
            todo.insert(0, "simulate")
        for i, step in enumerate(todo, 1):
            key = _data_key(data) if (data / "dataset.json").exists() else ""
            if args.resume and key and any(
                r["data_key"] == key and r["step"] == step and r["ok"] == "True"
                for r in _read_rows()
            ):
                print(f"[{_label(n)} {i}/{len(todo)}] {step}: already in the CSV, skipped",
                      flush=True)
                continue
            eta = _estimate([step], n, _read_rows())
            print(f"[{_label(n)} {i}/{len(todo)}] {step} (~{eta:.0f} s) ...", end=" ",
                  flush=True)
            m = _measure(step, data, scale, args.seed, args.workers)
            shipments = _count_shipments(data) if (data / "dataset.json").exists() else n
            row = {
                "run_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "size_label": _label(n), "shipments": shipments, "scale": scale,
                "data_key": _data_key(data) if (data / "dataset.json").exists() else "",
                "step": step, "rows_in": shipments if step != "simulate" else 0,
                "workers": args.workers if step in ("report_all", "simulate") else 1,
                **m, **machine,
            }
            same = [r for r in _read_rows() if r["data_key"] == row["data_key"]] + [row]
            row["target"], row["target_met"] = _evaluate(row, same)
            _append(row)
            status = "ok" if m["ok"] else f"FAILED: {m['error']}"
            print(f"{status}: step {m['step_wall_s']} s wall / {m['step_cpu_s']} CPU s; "
                  f"process {m['wall_s']} s wall, tree {m['cpu_s']} CPU s, "
                  f"{m['peak_rss_mb']} MB peak, load {m['load_1m_before']}; "
                  f"target {row['target']}: {row['target_met']}", flush=True)
            failed += not m["ok"]
            if step == "simulate" and not m["ok"]:
                break
    print(summary())
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
