"""Shared benchmark harness: simulated datasets of a given size, steps timed in subprocesses.

Datasets are cached under ``benchmarks/.cache/`` (git-ignored).

Used by ``bench_features.py``, ``bench_retention.py`` and ``bench_campaigns.py``: every step
reads the same simulated Parquet dataset (``promo_analysis.simulate.write_simulation``, all 31
regions, shipments partitioned by region and month), so the numbers of the three scripts are
comparable. A pilot run at a small scale finds the scale that gives the requested number of
shipments (within a few percent); the dataset is written once and reused by later runs.
"""

from __future__ import annotations

import csv
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".cache"
_PILOT_SCALE = 0.001


def append_rows(path: Path, rows: list[dict], fields: list[str] | None = None) -> None:
    """Write ``rows`` to the CSV at ``path`` after the rows already there, so a run at one size
    does not erase the measurements of another. Columns: ``fields``, else the earlier header
    followed by any new keys; values a row lacks are left blank."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    old: list[dict] = []
    header: list[str] = []
    if path.exists():
        with path.open(newline="") as fh:
            reader = csv.DictReader(fh)
            old, header = list(reader), list(reader.fieldnames or [])
    if fields is None:
        fields = header + [k for r in rows for k in r if k not in header]
        fields = list(dict.fromkeys(fields))
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields, restval="", extrasaction="ignore",
                           lineterminator="\n")
        w.writeheader()
        w.writerows(old + rows)


def _make_cache() -> None:
    CACHE.mkdir(parents=True, exist_ok=True)
    # the folder ignores itself: generated datasets never reach git
    (CACHE / ".gitignore").write_text("*\n")


def parse_sizes(text: str) -> list[int]:
    """``"1e6,1e7,5e7"`` -> ``[1000000, 10000000, 50000000]``."""
    return [int(float(x)) for x in text.split(",") if x.strip()]


def _shipments_per_scale(seed: int) -> float:
    pilot = CACHE / f"pilot-seed{seed}.json"
    if pilot.exists():
        return float(json.loads(pilot.read_text())["shipments_per_scale"])
    from promo_analysis.simulate import simulate_frames

    frames, _, _ = simulate_frames(scale=_PILOT_SCALE, regions="all", seed=seed)
    per_scale = len(frames["shipments"]) / _PILOT_SCALE
    _make_cache()
    pilot.write_text(json.dumps({"shipments_per_scale": per_scale}) + "\n")
    return per_scale


def dataset_for(n_shipments: int, data: str | Path | None = None, seed: int = 0) -> Path:
    """The folder of a simulated dataset with about ``n_shipments`` shipments.

    ``data`` (a pre-generated dataset folder) is returned as it is. Otherwise the dataset is
    taken from ``benchmarks/.cache/sim-<n>-seed<seed>/`` or generated there in a subprocess
    (so the generator's memory is not charged to the caller).
    """
    if data is not None:
        folder = Path(data)
        if not folder.is_dir():
            raise FileNotFoundError(f"--data {folder}: not a folder")
        return folder
    folder = CACHE / f"sim-{n_shipments}-seed{seed}"
    if (folder / "dataset.json").exists():
        return folder
    _make_cache()
    scale = n_shipments / _shipments_per_scale(seed)
    print(f"generating {folder} (scale {scale:.5f}) ...", file=sys.stderr, flush=True)
    code = (
        "from promo_analysis.simulate import write_simulation; "
        f"write_simulation({str(folder)!r}, scale={scale!r}, regions='all', seed={seed}, "
        "partitioned=True)"
    )
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    info = {"scale": scale, "seconds": round(time.perf_counter() - t0, 1)}
    (CACHE / f"{folder.name}.json").write_text(json.dumps(info) + "\n")
    return folder


def run_steps(script: str | Path, names: list[str], key: str, sizes: str = "",
              data: str | Path | None = None) -> list[dict]:
    """Run ``script``'s steps ``names`` on each dataset (``data``, else one per size of
    ``sizes``), every step in a fresh subprocess; one result row per step and dataset, the step
    name under ``key``."""
    folders = ([dataset_for(0, data)] if data
               else [dataset_for(n) for n in parse_sizes(sizes)])
    rows = []
    for folder in folders:
        n = count_shipments(folder)
        for name in names:
            row = {"shipments": n, **run_step(script, [name, str(folder)])}
            row.setdefault(key, name)
            print(row, flush=True)
            rows.append({**row, "dataset": folder.name, **machine()})
    return rows


def count_shipments(folder: Path) -> int:
    """Rows of the dataset's shipments table (from the Parquet footers only)."""
    import duckdb

    con = duckdb.connect()
    files = shipment_files(folder)
    return int(con.execute("SELECT sum(num_rows) FROM parquet_file_metadata($1)",
                           [files]).fetchone()[0])


def run_step(script: str | Path, args: list[str], timeout: float | None = None) -> dict:
    """Run ``script --step ARGS`` in a fresh interpreter; return the JSON it prints last.

    The child times only the step itself (wall and CPU seconds of all its threads, after
    imports and opening the dataset) and reports its own peak RSS, so memory is per step. The
    1-minute load average before the step is added (wall times under load are inflated; CPU
    seconds much less so). A failed step gives a row with ``error``.
    """
    load = os.getloadavg()[0]
    proc = subprocess.run(
        [sys.executable, str(script), "--step", *args],
        capture_output=True, text=True, check=False, timeout=timeout,
    )
    if proc.returncode:
        tail = proc.stderr.strip().splitlines()[-1:] or ["?"]
        print(proc.stderr[-3000:], file=sys.stderr)
        return {"error": tail[0][:300], "load_1min": round(load, 2)}
    row = json.loads(proc.stdout.strip().splitlines()[-1])
    row["load_1min"] = round(load, 2)
    return row


class Timer:
    """Context manager measuring wall and process CPU seconds (all threads) of a block."""

    def __enter__(self) -> Timer:
        self._w, self._c = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self._w
        self.cpu = time.process_time() - self._c


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (MB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def machine() -> dict:
    """Where a result was measured: machine, cores, Python, DuckDB, UTC time."""
    import platform

    import duckdb

    return {
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "duckdb": duckdb.__version__,
        "measured_at": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
    }


def shipment_files(folder: Path) -> list[str]:
    """The Parquet files of the dataset's shipments table (a folder of parts or one file)."""
    parts = folder / "shipments"
    if parts.is_dir():
        return sorted(str(f) for f in parts.rglob("*.parquet"))
    return [str(folder / "shipments.parquet")]


def sql_views(con, folder: Path) -> None:
    """Register ``shipments`` and ``customers`` (and ``coupons``) of ``folder`` as views on a
    raw DuckDB connection, reading the Parquet files directly (the hand-SQL references)."""
    files = shipment_files(folder)
    con.execute(
        f"CREATE VIEW shipments AS SELECT * FROM read_parquet({files!r}, "
        "hive_partitioning = true, hive_types_autocast = false, union_by_name = true)"
    )
    con.execute(f"CREATE VIEW customers AS SELECT * FROM read_parquet('{folder}/customers.parquet')")


#: the best exact hand-written DuckDB query found (S3): the totals in one group-by; each
#: customer's first shipment as ONE integer min over a key packing the time (microseconds) and
#: the region's position in the sorted region list -- cheaper than arg_min(region_id, sent_at)
#: (a string value) and than min(sent_at) plus arg_min; ties in time go to the first region.
#: ``shipments`` is a view, not a CTE: DuckDB materializes a CTE that is referenced twice; the
#: region list is a variable (set by _DAILY_SQL_REGIONS), a constant the key folds per vector.
_DAILY_SQL_REGIONS = """
SET VARIABLE names = (SELECT list(DISTINCT region_id ORDER BY region_id) FROM shipments)
"""
_DAILY_SQL = """
WITH totals AS (
  SELECT sent_at::DATE AS date, region_id, sum(revenue) AS revenue, count(*) AS shipments,
         count(coupon_id) AS coupon_shipments, sum(discount) AS discount
  FROM shipments GROUP BY ALL
), firsts AS (
  SELECT min(epoch_us(sent_at) * 64 + list_position(getvariable('names'), region_id)) AS k
  FROM shipments GROUP BY customer_id
), new AS (
  SELECT make_timestamp(k // 64)::DATE AS date, getvariable('names')[k % 64] AS region_id,
         count(*) AS new_customers
  FROM firsts GROUP BY ALL
)
SELECT t.*, coalesce(n.new_customers, 0) AS new_customers
FROM totals t LEFT JOIN new n USING (date, region_id)
ORDER BY date, region_id
"""


def ref_sql_daily(folder: Path):
    """The daily series per region (totals and new customers) as hand-written DuckDB SQL on
    the Parquet files: the one hand-SQL reference of ``features.daily_series``."""
    import duckdb

    con = duckdb.connect()
    con.execute("SET preserve_insertion_order = false")
    con.execute("SET enable_progress_bar = false")
    con.execute("CREATE VIEW shipments AS SELECT customer_id, region_id, sent_at, revenue, "
                f"discount, coupon_id FROM read_parquet({shipment_files(folder)!r}, "
                "hive_partitioning = true)")
    con.execute(_DAILY_SQL_REGIONS)
    return con.sql(_DAILY_SQL).df()
