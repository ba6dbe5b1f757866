"""Write a simulated dataset folder region by region, without holding it all in memory.

:func:`write_simulation` is what ``promo-analysis simulate`` and the 10 M-shipment benchmark
use: each region is generated (in parallel worker processes when ``workers > 1``), its rows
appended to one Parquet file per table in region order, and freed before the next region. The folder is the same as ``save_dataset(simulate(...))`` would write
(one file per table, ``dataset.json``, ``truth.json``), and is written next to its target and
moved into place when complete. With ``partitioned=True`` shipments and coupons are instead
folders of hive-partitioned part files (by region and month), which ``load_dataset`` reads as
one table each; ``regions="all"`` simulates all 31 provincial-level regions.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from promo_analysis.contract import CONTRACT_VERSION, coerce_frame
from promo_analysis.regions import regions_frame

from .campaigns import campaigns_frame
from .columns import table_schema
from .parallel import in_region_order
from .scenario import Scenario

__all__ = ["write_simulation", "PARTITIONS"]

#: partitioned layout: table -> (timestamp column the ``month`` partition is derived from,
#: hive partition columns). Coupons have no region_id; their part files are per region.
PARTITIONS = {
    "shipments": ("sent_at", ("region_id", "month")),
    "coupons": ("issued_at", ("month",)),
}


_REGION_TABLES = ("customers", "coupons", "shipments", "survey", "assignments")
_ROW_GROUP = 1 << 20


def _release_free_memory() -> None:
    """Hand freed heap memory back to the OS (glibc keeps it otherwise), so a worker's next
    region starts from a small footprint. A no-op where ``malloc_trim`` does not exist."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
#: staging subfolder of the per-region Arrow files that the parent merges into one Parquet file
_SPOOL = "_regions"


#: partition keys combine into one int64 per row, each key's code in base 2**20
_KEY_BASE = 1 << 20


def _key_codes(column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes of a partition column's values in sorted value order, and the values."""
    enc = column.combine_chunks().dictionary_encode()
    values = enc.dictionary.to_numpy(zero_copy_only=False)
    order = np.argsort(values, kind="stable")
    rank = np.empty(order.size, dtype=np.int64)
    rank[order] = np.arange(order.size)
    return rank[enc.indices.to_numpy(zero_copy_only=False)], values[order]


def _write_parts(folder: Path, table: str, arrow: pa.Table, region: str) -> int:
    """One region's rows as hive part files ``<table>/<key>=<value>/.../part-<region>``;
    returns how many files it wrote.

    The partition columns are in the folder names, not in the files (as Spark and pyarrow
    write them); ``month`` (``YYYY-MM`` of the timestamp) only organises the files. Files
    come in sorted key order, each with its rows in table order.
    """
    stamp, keys = PARTITIONS[table]
    if not arrow.num_rows:
        return 0
    nulls = arrow.column(stamp).null_count
    if nulls:  # the contract makes it non-null; a generator bug otherwise
        raise ValueError(f"{table}.{stamp}: {nulls} null value(s)")
    # month as an integer code (year * 100 + month), not one Python string per row: at
    # millions of rows the strings alone cost ~60 bytes a row
    ym = arrow.column(stamp).to_numpy().astype("datetime64[M]").astype(np.int64)
    month = 1970 * 100 + (ym // 12) * 100 + ym % 12 + 1
    # one sortable integer per row: the other keys' codes (in key order), then the month
    if keys[-1] != "month":
        raise ValueError(f"{table}: month must be the last partition key, got {keys}")
    key = np.zeros(arrow.num_rows, dtype=np.int64)
    labels = []
    for name in keys[:-1]:
        codes, values = _key_codes(arrow.column(name))
        key = key * _KEY_BASE + codes
        labels.append(values)
    key = key * _KEY_BASE + month
    order = np.argsort(key, kind="stable")
    key = key[order]
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    rows = arrow.drop_columns([k for k in keys if k in arrow.column_names])
    for lo, hi in zip(starts, np.r_[starts[1:], key.size], strict=True):
        rest, m = divmod(int(key[lo]), _KEY_BASE)
        parts = [f"month={m // 100:04d}-{m % 100:02d}"]
        for name, values in zip(reversed(keys[:-1]), reversed(labels), strict=True):
            rest, code = divmod(rest, _KEY_BASE)
            parts.insert(0, f"{name}={values[code]}")
        sub = folder.joinpath(table, *parts)
        sub.mkdir(parents=True, exist_ok=True)
        pq.write_table(rows.take(order[lo:hi]), sub / f"part-{region}.parquet",
                       row_group_size=1 << 20)
    return len(starts)


def _region_files(region: str, sc: Scenario, tl, scale: float, seed: int, folder: Path,
                  partitioned: bool) -> dict:
    """Worker task: generate ``region`` and write its rows; return everything else.

    Partitioned tables go straight to their part files (named by region, so workers never
    write the same file); the others to one Arrow IPC file per table in ``folder/_regions``,
    which the parent appends to the table's Parquet file in region order.
    """
    from . import _coerce, _region_parts

    part = _region_parts(sc, tl, region, scale, seed, arrow=True)
    files, schemas, n_parts = {}, {}, {}
    spool = folder / _SPOOL
    spool.mkdir(exist_ok=True)
    for table in _REGION_TABLES:
        arrow = part["tables"][table]
        if isinstance(arrow, pd.DataFrame):  # the survey (small): built in pandas
            df = _coerce(arrow, table, coerce_frame)
            arrow = pa.Table.from_pandas(df, schema=table_schema(table, df),
                                         preserve_index=False).replace_schema_metadata(None)
            del df
        part["tables"][table] = None  # the Arrow table is the only copy of the rows
        schema = schemas[table] = arrow.schema
        if partitioned and table in PARTITIONS:
            n_parts[table] = _write_parts(folder, table, arrow, region)
            del arrow
            continue
        files[table] = str(spool / f"{region}.{table}.arrow")
        # one record batch per row group: the parent appends them as the file's row groups
        with pa.OSFile(files[table], "wb") as sink, pa.ipc.new_file(sink, schema) as w:
            for lo in range(0, max(arrow.num_rows, 1), _ROW_GROUP):
                w.write_table(arrow.slice(lo, _ROW_GROUP))
        del arrow  # free each table once it is spooled
    del part["tables"]
    _release_free_memory()
    return {**part, "files": files, "schemas": schemas, "n_parts": n_parts}


class _Writers:
    def __init__(self, folder: Path, partitioned: bool = False) -> None:
        self.folder = folder
        self.partitioned = partitioned
        self.writers: dict[str, pq.ParquetWriter] = {}
        self.schemas: dict[str, pa.Schema] = {}
        self.n_parts: dict[str, int] = {}

    def write(self, table: str, df: pd.DataFrame) -> None:
        """Append a frame (not a region table) to ``table``'s Parquet file."""
        from . import _coerce

        df = _coerce(df, table, coerce_frame)
        self.schemas.setdefault(table, table_schema(table, df))
        self._append(table, pa.Table.from_pandas(df, schema=self.schemas[table],
                                                 preserve_index=False))

    def _append(self, table: str, arrow: pa.Table) -> None:
        if not arrow.num_rows and table in self.writers:
            return
        if table not in self.writers:
            self.writers[table] = pq.ParquetWriter(
                self.folder / f"{table}.parquet", self.schemas[table]
            )
        self.writers[table].write_table(arrow, row_group_size=_ROW_GROUP)

    def add_region(self, result: dict) -> None:
        """Merge a :func:`_region_files` result: append its spooled tables (then delete the
        spool files), count its part files. The first region's schema is the table's."""
        for table in _REGION_TABLES:
            self.schemas.setdefault(table, result["schemas"][table])
            if table not in result["files"]:
                self.n_parts[table] = self.n_parts.get(table, 0) + result["n_parts"][table]
                continue
            path = Path(result["files"][table])
            # batch by batch (no memory map): the parent holds one row group at a time
            with pa.OSFile(str(path), "rb") as src:
                reader = pa.ipc.open_file(src)
                for i in range(reader.num_record_batches):
                    arrow = pa.Table.from_batches([reader.get_batch(i)])
                    if not arrow.schema.equals(self.schemas[table]):
                        arrow = arrow.cast(self.schemas[table])
                    self._append(table, arrow)
                    del arrow
            path.unlink()

    def finish(self, table: str) -> dict:
        """``dataset.json``'s entry for ``table``."""
        if table in self.n_parts:
            if not self.n_parts[table]:  # no rows at all: one empty file keeps the columns
                (self.folder / table).mkdir(exist_ok=True)
                pq.write_table(self.schemas[table].empty_table(),
                               self.folder / table / "part-empty.parquet")
            stamp, keys = PARTITIONS[table]
            return {"path": f"{table}/", "partition_by": list(keys),
                    "derived_columns": ["month"], "month_from": stamp}
        return {"file": f"{table}.parquet"}

    def close(self) -> None:
        for w in self.writers.values():
            w.close()
        spool = self.folder / _SPOOL
        if spool.exists():
            spool.rmdir()


def write_simulation(
    path: str | Path,
    scenario: str | Path | Scenario = "china-post-2022",
    scale: float = 0.01,
    regions: list[str] | str | None = None,
    seed: int = 0,
    partitioned: bool = False,
    workers: int | None = None,
) -> Path:
    """Simulate and write a dataset folder (Parquet), one region at a time.

    Parameters are those of :func:`promo_analysis.simulate.simulate`, plus:

    regions : list of str, str or None
        As for ``simulate``; ``"all"`` means all 31 provincial-level regions.
    partitioned : bool
        Write ``shipments`` as a hive-partitioned folder
        ``shipments/region_id=<id>/month=<YYYY-MM>/part-<region>.parquet`` (month of
        ``sent_at``) and ``coupons`` as ``coupons/month=<YYYY-MM>/part-<region>.parquet``
        (month of ``issued_at``); ``dataset.json`` marks ``month`` as a derived column, which
        :func:`promo_analysis.load_dataset` drops. Peak memory stays one region's rows either
        way; partitions let engines skip files (a region, a month) and give part files of
        bounded size. The other tables are single files.
    workers : int, optional
        Processes generating regions in parallel (see :func:`~promo_analysis.simulate.simulate`;
        default: the CPUs, capped by the number of regions, 1 for small jobs). Each worker
        writes its region's rows to its own files; the parent appends them in region order,
        so the folder's files are identical for any number of workers. Peak memory is about
        one region's rows per worker; a region starts only while the running regions' expected
        shipments stay within ``parallel.MAX_RUNNING_SHIPMENTS`` (two big regions never run
        at once).

    ``path`` is replaced only if it is empty or a dataset promo-analysis wrote (as
    ``save_dataset`` does).

    Returns
    -------
    Path
        The folder.
    """
    from promo_analysis import __version__
    from promo_analysis.dataset import staged_dataset_folder, write_descriptors

    from . import _check, _meta, _sizes, _truth, _workers

    sc, region_ids, tl = _check(scenario, scale, regions)
    n_workers = _workers(sc, region_ids, scale, workers)
    target = Path(path)
    t0 = time.perf_counter()
    with staged_dataset_folder(target) as staging:
        writers = _Writers(staging, partitioned=partitioned)
        parts, campaigns, calibration = [], [], {"regions": {}}
        writers.write("regions", regions_frame(region_ids))
        for region, part in in_region_order(
            _region_files, region_ids, (sc, tl, scale, seed, staging, partitioned), n_workers,
            sizes=_sizes(sc, region_ids, scale),
        ):
            writers.add_region(part)
            for key in ("files", "schemas", "n_parts"):
                del part[key]
            campaigns += part.pop("campaigns")
            calibration["regions"][region] = part.pop("calibration")
            parts.append(part)
        writers.write("campaigns", campaigns_frame(campaigns, tl, scale))
        writers.close()
        truth = _truth(sc, parts, calibration)
        truth.calibration["seconds"] = round(time.perf_counter() - t0, 3)
        tables = {t: writers.finish(t) for t in writers.schemas}
        meta = {
            **_meta(sc, scale, seed, region_ids),
            "contract_version": CONTRACT_VERSION,
            "created_by": "promo-analysis",
            "package_version": __version__,
            "format": "parquet",
            "tables": tables,
        }
        write_descriptors(staging, meta, truth)
    return target
