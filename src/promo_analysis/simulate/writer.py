"""Write a simulated dataset folder region by region, without holding it all in memory.

:func:`write_simulation` is what ``promo-analysis simulate`` and the benchmarks use: each
region is generated (in parallel worker processes when ``workers > 1``) and each of its tables
written as soon as it is built -- the shipments and customers slice by slice (a month's part
file, or a Parquet row group, at a time) -- before the region's truth is computed. The parent
only appends the spooled rows of unpartitioned tables to one Parquet file per table in region
order; the first-use truth's per-unit columns (~0.7 units per shipment) wait in ``.npz`` files
until all regions are done. The folder is the same as ``save_dataset(simulate(...))`` would
write (one file per table, ``dataset.json``, ``truth.json``), and is written next to its target
and moved into place when complete. With ``partitioned=True`` shipments and coupons are instead
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
from promo_analysis.process_memory import release_free_memory
from promo_analysis.regions import regions_frame

from .campaigns import campaigns_frame
from .columns import TableSlices, table_schema
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


def _months(stamp: np.ndarray) -> np.ndarray:
    """``year * 100 + month`` of each timestamp, as integers (not one Python string per row:
    at millions of rows the strings alone cost ~60 bytes a row)."""
    ym = stamp.astype("datetime64[M]").astype(np.int64)
    return 1970 * 100 + (ym // 12) * 100 + ym % 12 + 1


def _write_parts(folder: Path, table: str, arrow, region: str) -> tuple[pa.Schema, int]:
    """One region's rows as hive part files ``<table>/<key>=<value>/.../part-<region>``;
    returns the table's schema and how many files it wrote.

    The partition columns are in the folder names, not in the files (as Spark and pyarrow
    write them); ``month`` (``YYYY-MM`` of the timestamp) only organises the files. Files
    come in sorted key order, each with its rows in table order. A
    :class:`~promo_analysis.simulate.columns.TableSlices` (rows in time order) is built and
    written one month at a time.
    """
    stamp, keys = PARTITIONS[table]
    if keys[-1] != "month":
        raise ValueError(f"{table}: month must be the last partition key, got {keys}")
    if isinstance(arrow, TableSlices):
        if arrow.stamp is None:
            arrow = arrow.rows(0, arrow.num_rows)
        else:
            return _write_month_slices(folder, table, arrow, region)
    if not arrow.num_rows:
        return arrow.schema, 0
    nulls = arrow.column(stamp).null_count
    if nulls:  # the contract makes it non-null; a generator bug otherwise
        raise ValueError(f"{table}.{stamp}: {nulls} null value(s)")
    month = _months(arrow.column(stamp).to_numpy())
    # one sortable integer per row: the other keys' codes (in key order), then the month
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
    return arrow.schema, len(starts)


def _write_month_slices(folder: Path, table: str, slices: TableSlices,
                        region: str) -> tuple[pa.Schema, int]:
    """:func:`_write_parts` of rows in time order: each month's rows are consecutive, so
    each part file is one slice, built when it is written. The other partition keys must
    be constant within a month (shipments: the region)."""
    _, keys = PARTITIONS[table]
    if not slices.num_rows:
        return slices.rows(0, 0).schema, 0
    month = _months(slices.stamp)
    if np.any(month[1:] < month[:-1]):
        raise ValueError(f"{table}: rows are not in time order")
    starts = np.flatnonzero(np.r_[True, month[1:] != month[:-1]])
    for lo, hi in zip(starts, np.r_[starts[1:], month.size], strict=True):
        arrow = slices.rows(int(lo), int(hi))
        schema = arrow.schema
        parts = []
        for name in keys[:-1]:
            values = arrow.column(name).unique()
            if len(values) != 1:
                raise ValueError(f"{table}.{name}: {len(values)} values in one month's slice")
            parts.append(f"{name}={values[0]}")
        m = int(month[lo])
        parts.append(f"month={m // 100:04d}-{m % 100:02d}")
        sub = folder.joinpath(table, *parts)
        sub.mkdir(parents=True, exist_ok=True)
        rows = arrow.drop_columns([k for k in keys if k in arrow.column_names])
        pq.write_table(rows, sub / f"part-{region}.parquet", row_group_size=1 << 20)
        del arrow, rows
    return schema, len(starts)


def _region_files(region: str, sc: Scenario, tl, scale: float, seed: int, folder: Path,
                  partitioned: bool) -> dict:
    """Worker task: generate ``region`` and write its rows; return everything else.

    Each table is written as soon as it is built, before the truth is computed, and the
    shipments slice by slice (:class:`~promo_analysis.simulate.columns.TableSlices`), so the
    worker never holds the region's model and its whole tables at once. Partitioned tables
    go straight to their part files (named by region, so workers never write the same file);
    the others to one Arrow IPC file per table in ``folder/_regions``, which the parent
    appends to the table's Parquet file in region order.
    """
    from . import _region_parts

    files, schemas, n_parts = {}, {}, {}
    spool = folder / _SPOOL
    spool.mkdir(exist_ok=True)

    def sink(table: str, arrow) -> None:
        if partitioned and table in PARTITIONS:
            schemas[table], n_parts[table] = _write_parts(folder, table, arrow, region)
        else:
            files[table] = str(spool / f"{region}.{table}.arrow")
            schemas[table] = _spool(files[table], table, arrow)
        release_free_memory()

    part = _region_parts(sc, tl, region, scale, seed, arrow=True, sink=sink)
    # the first-use units (~0.7 per shipment) wait on disk, not in the parent, until the truth
    units = files["units"] = str(spool / f"{region}.units.npz")
    np.savez(units, **part["truth"]["units"])
    part["truth"]["units"] = None
    release_free_memory()
    return {**part, "files": files, "schemas": schemas, "n_parts": n_parts}


def _spool(path: str, table: str, arrow) -> pa.Schema:
    """Write a region's table (Arrow, :class:`TableSlices` or the small survey's pandas
    frame) to an Arrow IPC file, one record batch per row group of the final Parquet file
    (the parent appends them as such); returns the schema."""
    from . import _coerce

    if isinstance(arrow, pd.DataFrame):
        df = _coerce(arrow, table, coerce_frame)
        arrow = pa.Table.from_pandas(df, schema=table_schema(table, df),
                                     preserve_index=False).replace_schema_metadata(None)
        del df
    n = arrow.num_rows
    sliced = isinstance(arrow, TableSlices)
    first = arrow.rows(0, _ROW_GROUP) if sliced else arrow.slice(0, _ROW_GROUP)
    with pa.OSFile(path, "wb") as sink, pa.ipc.new_file(sink, first.schema) as w:
        w.write_table(first)
        for lo in range(_ROW_GROUP, n, _ROW_GROUP):
            w.write_table(arrow.rows(lo, lo + _ROW_GROUP) if sliced
                          else arrow.slice(lo, _ROW_GROUP))
    return first.schema


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
        0.7 GB per million shipments of the region a worker generates (its model plus the
        tables being built; the parent stays small); a region starts only while the running
        regions' expected shipments stay within ``parallel.MAX_RUNNING_SHIPMENTS`` (two big
        regions never run at once).

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
        parts, campaigns, calibration, units = [], [], {"regions": {}}, []
        writers.write("regions", regions_frame(region_ids))
        for region, part in in_region_order(
            _region_files, region_ids, (sc, tl, scale, seed, staging, partitioned), n_workers,
            sizes=_sizes(sc, region_ids, scale),
        ):
            units.append(part["files"].pop("units"))
            writers.add_region(part)
            for key in ("files", "schemas", "n_parts"):
                del part[key]
            campaigns += part.pop("campaigns")
            calibration["regions"][region] = part.pop("calibration")
            parts.append(part)
        writers.write("campaigns", campaigns_frame(campaigns, tl, scale))
        for part, file in zip(parts, units, strict=True):
            part["truth"]["units"] = np.load(file)  # loads a column when it is read
        truth = _truth(sc, parts, calibration)
        for part, file in zip(parts, units, strict=True):
            part["truth"]["units"].close()
            Path(file).unlink()
        writers.close()
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
