"""Write a simulated dataset folder region by region, without holding it all in memory.

:func:`write_simulation` is what ``promo-analysis simulate`` and the 10 M-shipment benchmark
use: each region is generated, its rows appended to one Parquet file per table, and freed
before the next region. The folder is the same as ``save_dataset(simulate(...))`` would write
(one file per table, ``dataset.json``, ``truth.json``), and is written next to its target and
moved into place when complete.
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

__all__ = ["write_simulation"]

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


class _Writers:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.writers: dict[str, pq.ParquetWriter] = {}
        self.schemas: dict[str, pa.Schema] = {}

    def write(self, table: str, df: pd.DataFrame) -> None:
        from . import _coerce

        df = _coerce(df, table, coerce_frame)
        if table not in self.schemas:
            self.schemas[table] = _schema(table, df)
        if not len(df) and table in self.writers:
            return
        arrow = pa.Table.from_pandas(df, schema=self.schemas[table], preserve_index=False)
        if table not in self.writers:
            self.writers[table] = pq.ParquetWriter(
                self.folder / f"{table}.parquet", self.schemas[table]
            )
        self.writers[table].write_table(arrow, row_group_size=1 << 20)

    def close(self) -> None:
        for w in self.writers.values():
            w.close()


def write_simulation(
    path: str | Path,
    scenario: str | Path | Scenario = "china-post-2022",
    scale: float = 0.01,
    regions: list[str] | str | None = None,
    seed: int = 0,
) -> Path:
    """Simulate and write a dataset folder (Parquet), one region at a time.

    Parameters are those of :func:`promo_analysis.simulate.simulate`; ``path`` is replaced only
    if it is empty or a dataset promo-analysis wrote (as ``save_dataset`` does).

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
        writers = _Writers(staging)
        parts, campaigns, calibration = [], [], {"regions": {}}
        writers.write("regions", regions_frame(region_ids))
        for region in region_ids:
            part = _region_parts(sc, tl, region, scale, seed)
            for name in ("customers", "coupons", "shipments", "survey", "assignments"):
                writers.write(name, part["tables"][name])
            del part["tables"]  # free the region's rows before the next region
            campaigns += part.pop("campaigns")
            calibration["regions"][region] = part.pop("calibration")
            parts.append(part)
        writers.write("campaigns", campaigns_frame(campaigns, tl, scale))
        writers.close()
        truth = _truth(sc, parts, calibration)
        truth.calibration["seconds"] = round(time.perf_counter() - t0, 3)
        tables = {t: {"file": f"{t}.parquet"} for t in writers.writers}
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
