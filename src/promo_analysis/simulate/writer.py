"""Write a simulated dataset folder region by region, without holding it all in memory.

:func:`write_simulation` is what ``promo-analysis simulate`` and the 10 M-shipment benchmark
use: each region is generated, its rows appended to one Parquet file per table, and freed
before the next region. The folder is the same as ``save_dataset(simulate(...))`` would write
(one file per table, ``dataset.json``, ``truth.json``), and is written next to its target and
moved into place when complete. With ``partitioned=True`` shipments and coupons are instead
folders of hive-partitioned part files (by region and month), which ``load_dataset`` reads as
one table each; ``regions="all"`` simulates all 31 provincial-level regions.
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from promo_analysis.contract import CONTRACT, CONTRACT_VERSION, coerce_frame
from promo_analysis.regions import regions_frame

from .campaigns import campaigns_frame
from .scenario import Scenario

__all__ = ["write_simulation", "PARTITIONS"]

_ARROW = {
    "string": pa.string(),
    "float64": pa.float64(),
    "int64": pa.int64(),
    "bool": pa.bool_(),
    "timestamp": pa.timestamp("us"),
    "date": pa.date32(),
}


def _schema(table: str, df: pd.DataFrame) -> pa.Schema:
    """Contract columns with their contract types, then the extra columns as pandas has them."""
    spec = CONTRACT[table].columns
    fields = []
    for col in df.columns:
        if col in spec:
            fields.append(pa.field(col, _ARROW[spec[col].dtype]))
        else:
            fields.append(pa.Schema.from_pandas(df[[col]], preserve_index=False).field(col))
    return pa.schema(fields)


#: partitioned layout: table -> (timestamp column the ``month`` partition is derived from,
#: hive partition columns). Coupons have no region_id; their part files are per region.
PARTITIONS = {
    "shipments": ("sent_at", ("region_id", "month")),
    "coupons": ("issued_at", ("month",)),
}


class _Writers:
    def __init__(self, folder: Path, partitioned: bool = False) -> None:
        self.folder = folder
        self.partitioned = partitioned
        self.writers: dict[str, pq.ParquetWriter] = {}
        self.schemas: dict[str, pa.Schema] = {}
        self.n_parts: dict[str, int] = {}

    def write(self, table: str, df: pd.DataFrame, region: str | None = None) -> None:
        from . import _coerce

        df = _coerce(df, table, coerce_frame)
        if table not in self.schemas:
            self.schemas[table] = _schema(table, df)
        if self.partitioned and table in PARTITIONS and region is not None:
            self._write_parts(table, df, region)
            return
        if not len(df) and table in self.writers:
            return
        arrow = pa.Table.from_pandas(df, schema=self.schemas[table], preserve_index=False)
        if table not in self.writers:
            self.writers[table] = pq.ParquetWriter(
                self.folder / f"{table}.parquet", self.schemas[table]
            )
        self.writers[table].write_table(arrow, row_group_size=1 << 20)

    def _write_parts(self, table: str, df: pd.DataFrame, region: str) -> None:
        """One region's rows as hive part files ``<table>/<key>=<value>/.../part-<region>``.

        The partition columns are in the folder names, not in the files (as Spark and pyarrow
        write them); ``month`` (``YYYY-MM`` of the timestamp) only organises the files.
        """
        stamp, keys = PARTITIONS[table]
        schema = self.schemas[table]
        file_schema = pa.schema([f for f in schema if f.name not in keys])
        self.n_parts.setdefault(table, 0)
        if not len(df):
            return
        if df[stamp].isna().any():  # the contract makes it non-null; a generator bug otherwise
            raise ValueError(f"{table}.{stamp}: {int(df[stamp].isna().sum())} null value(s)")
        month = df[stamp].dt.strftime("%Y-%m")
        by = [df[k] for k in keys if k != "month"] + [month]
        for values, part in df.groupby(by, sort=True):
            values = values if isinstance(values, tuple) else (values,)
            sub = self.folder / table
            for key, value in zip(keys, values, strict=True):
                sub = sub / f"{key}={value}"
            sub.mkdir(parents=True, exist_ok=True)
            arrow = pa.Table.from_pandas(
                part.drop(columns=[k for k in keys if k in part.columns]),
                schema=file_schema, preserve_index=False,
            )
            pq.write_table(arrow, sub / f"part-{region}.parquet", row_group_size=1 << 20)
            self.n_parts[table] += 1

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


def write_simulation(
    path: str | Path,
    scenario: str | Path | Scenario = "china-post-2022",
    scale: float = 0.01,
    regions: list[str] | str | None = None,
    seed: int = 0,
    partitioned: bool = False,
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

    ``path`` is replaced only if it is empty or a dataset promo-analysis wrote (as
    ``save_dataset`` does).

    Returns
    -------
    Path
        The folder.
    """
    from promo_analysis import __version__
    from promo_analysis.dataset import staged_dataset_folder, write_descriptors

    from . import _check, _meta, _region_parts, _truth

    sc, region_ids, tl = _check(scenario, scale, regions)
    target = Path(path)
    t0 = time.perf_counter()
    with staged_dataset_folder(target) as staging:
        writers = _Writers(staging, partitioned=partitioned)
        parts, campaigns, calibration = [], [], {"regions": {}}
        writers.write("regions", regions_frame(region_ids))
        for region in region_ids:
            part = _region_parts(sc, tl, region, scale, seed)
            for name in ("customers", "coupons", "shipments", "survey", "assignments"):
                writers.write(name, part["tables"][name], region=region)
            del part["tables"]  # free the region's rows before the next region
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
