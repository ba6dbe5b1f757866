"""Datasets: a folder of tables (Parquet or CSV) opened on an engine.

A dataset folder holds one file per table (``shipments.parquet`` or ``shipments.csv``, ...), or
for big tables one folder of Parquet part files (``shipments/region_id=.../month=.../``), plus
``dataset.json`` (name, contract version, currency, period; for simulated data the scenario,
scale and seed) and, for simulated data, ``truth.json`` (the ground truth). The tables are
registered in an Ibis backend -- DuckDB in memory by default -- so that table-scale work runs
in the engine and only small aggregated frames reach pandas.

>>> from promo_analysis import load_dataset
>>> ds = load_dataset("data/sample")                    # doctest: +SKIP
>>> ds.table("shipments").group_by("region_id").agg(revenue=lambda t: t.revenue.sum())
...                                                      # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import hashlib
import html
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.types as ir
import pandas as pd

from promo_analysis.contract.spec import CONTRACT, CONTRACT_VERSION, TABLE_ORDER, conform

__all__ = ["Dataset", "DatasetError", "load_dataset", "save_dataset", "ENGINES"]

ENGINES = ("duckdb", "spark")
_FORMATS = ("parquet", "csv")
_CHUNK = 1 << 20


class DatasetError(ValueError):
    """The input cannot be used as a dataset (unreadable file, ambiguous folder, bad encoding)."""


def _connect(engine: str, memory_limit: str | None = None,
             temp_directory: str | os.PathLike | None = None):
    for name, value in (("memory_limit", memory_limit), ("temp_directory", temp_directory)):
        if value is not None and engine != "duckdb":
            raise ValueError(
                f"{name} applies to engine='duckdb' only (got engine={engine!r}); "
                "set Spark's memory and local directories in its session configuration"
            )
    if engine == "duckdb":
        # DuckDB's own default is 80 % of RAM; above the limit its hash tables spill to disk,
        # by default into ./.tmp of the working directory
        config: dict[str, str] = {}
        if memory_limit:
            config["memory_limit"] = memory_limit
        if temp_directory is not None:
            config["temp_directory"] = os.fspath(temp_directory)
        con = ibis.duckdb.connect(**config)
        # DuckDB's Python client draws a progress bar on stdout for every long query (report
        # runs, benchmarks): noise in logs. In a Jupyter kernel it is off already, and DuckDB
        # refuses to change the setting there (it wants ipywidgets), so only switch it off
        if con.con.execute("SELECT current_setting('enable_progress_bar')").fetchall()[0][0]:
            con.con.execute("SET enable_progress_bar = false")
        return con
    if engine == "spark":
        try:
            import pyspark  # noqa: F401
            from pyspark.sql import SparkSession

            backend = ibis.pyspark
        except (ImportError, AttributeError) as err:
            raise ImportError(
                "engine='spark' needs the spark extra: pip install -e .[spark] "
                f"(and Java 17); import failed with: {err}"
            ) from err
        session = SparkSession.builder.appName("promo-analysis").getOrCreate()
        return backend.connect(session)
    raise ValueError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")


def _engine_names(engine: str, names) -> dict[str, str]:
    """Table name -> the name it is registered under in the engine.

    The one place where the engines differ at registration. Each DuckDB dataset has its own
    in-memory connection, so tables keep their names. Spark's temporary views belong to the
    (shared, ``getOrCreate``) session: a second dataset registering ``shipments`` would
    silently replace the first one's view, so on Spark every dataset gets its own suffix.
    """
    if engine != "spark":
        return {n: n for n in names}
    token = uuid.uuid4().hex[:8]
    return {n: f"{n}__{token}" for n in names}


def _register_frame(con, engine: str, name: str, frame: ir.Table) -> ir.Table:
    if engine == "spark":
        # a temporary view, not create_table: Ibis's PySpark create_table writes a managed
        # table into the session's warehouse folder (on disk, kept across sessions)
        return con.create_view(name, frame, overwrite=True)
    return con.create_table(name, frame)


class Dataset:
    """The tables of one dataset, registered in an Ibis backend.

    Create one with :func:`load_dataset` (a folder) or :meth:`Dataset.from_frames` (pandas
    frames, e.g. from the simulator); do not call the constructor directly.

    Attributes
    ----------
    con : ibis backend
        The engine the tables live in (DuckDB in memory by default).
    meta : dict
        The content of ``dataset.json``.
    truth : GroundTruth or None
        The simulator's ground truth; ``None`` for real data.
    engine : str
    path : Path or None
        The folder the dataset was loaded from, ``None`` for one built from frames.
    """

    def __init__(
        self,
        con: Any,
        raw: Mapping[str, ir.Table],
        meta: Mapping[str, Any] | None = None,
        truth: Any = None,
        engine: str = "duckdb",
        path: Path | None = None,
        files: Mapping[str, Path] | None = None,
        tempdir: tempfile.TemporaryDirectory | None = None,
    ) -> None:
        self.con = con
        self._raw = dict(raw)
        self.meta: dict[str, Any] = dict(meta or {})
        self.truth = truth
        self.engine = engine
        self.path = path
        self._files = dict(files or {})
        # transcoded copies of non-UTF-8 CSV files live as long as the dataset
        self._tempdir = tempdir
        self._fingerprint: str | None = None

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_frames(
        cls,
        frames: Mapping[str, pd.DataFrame],
        meta: Mapping[str, Any] | None = None,
        truth: Any = None,
        engine: str = "duckdb",
        memory_limit: str | None = None,
        temp_directory: str | os.PathLike | None = None,
    ) -> Dataset:
        """Build a dataset from pandas frames, one per table.

        The frames are copied into the engine as they are; columns are converted to contract
        types lazily by :meth:`table` (see :func:`promo_analysis.contract.conform`).

        Parameters
        ----------
        frames : dict of str -> DataFrame
            Table name -> frame; contract tables (``regions``, ``customers``, ...) and any
            extra tables.
        meta : dict, optional
            What ``dataset.json`` will hold (name, scenario, scale, seed, ...).
        truth : GroundTruth, optional
            Ground truth of a simulated dataset.
        engine : {"duckdb", "spark"}
        memory_limit : str, optional
            DuckDB only: the engine's memory limit, e.g. ``"3GB"`` (see :func:`load_dataset`).
        temp_directory : str or path, optional
            DuckDB only: where it spills (see :func:`load_dataset`).
        """
        con = _connect(engine, memory_limit, temp_directory)
        engine_names = _engine_names(engine, frames)
        raw = {}
        for name, frame in frames.items():
            if not isinstance(frame, pd.DataFrame):
                raise TypeError(f"frames[{name!r}] must be a pandas DataFrame, got {type(frame)}")
            raw[name] = _register_frame(con, engine, engine_names[name], _memtable(name, frame))
        meta = {"contract_version": CONTRACT_VERSION, **dict(meta or {})}
        return cls(con, raw, meta=meta, truth=truth, engine=engine)

    # ------------------------------------------------------------------ access
    @property
    def tables(self) -> list[str]:
        """Names of the tables present: contract tables in contract order, then extras."""
        known = [t for t in TABLE_ORDER if t in self._raw]
        return known + sorted(t for t in self._raw if t not in CONTRACT)

    def has(self, name: str) -> bool:
        """Whether table ``name`` is present."""
        return name in self._raw

    def _check(self, name: str) -> None:
        if name not in self._raw:
            where = f" in {self.path}" if self.path else ""
            raise KeyError(
                f"table {name!r} is not present{where}; tables: {', '.join(self.tables) or '-'}"
            )

    def raw_table(self, name: str) -> ir.Table:
        """Table ``name`` exactly as read (no type conversion); validation uses it."""
        self._check(name)
        return self._raw[name]

    def table(self, name: str) -> ir.Table:
        """Table ``name`` as an Ibis table with contract column types.

        Values that do not convert to their contract type are null here; ``validate``
        reports them under the rule ``parse``.
        """
        self._check(name)
        raw = self._raw[name]
        return conform(raw, name) if name in CONTRACT else raw

    def to_pandas(self, name: str) -> pd.DataFrame:
        """Table ``name`` as a pandas DataFrame with the contract's pandas dtypes.

        Pulls the whole table into memory: meant for small tables (regions, campaigns,
        survey) or small datasets. Aggregate big tables in the engine with :meth:`table`.
        """
        return _to_pandas_typed(self.table(name).to_pandas(), name)

    # ------------------------------------------------------------------ identity
    def fingerprint(self) -> str:
        """A stable hash of the dataset's content, for report manifests.

        For a dataset loaded from a folder: SHA-256 over the bytes of its table files (every
        part file of a partitioned table) and ``dataset.json`` (file names included). For a dataset built from frames: SHA-256 over
        ``meta`` and, per table, its schema, row count and an engine-side hash of every column.
        """
        if self._fingerprint is None:
            h = hashlib.sha256()
            if self._files:
                for name in sorted(self._files):
                    f = self._files[name]
                    # a partitioned table: every part file, in path order, path included
                    parts = _part_files(f) if f.is_dir() else [f]
                    for part in parts:
                        rel = part.relative_to(f.parent).as_posix()
                        h.update(f"{name}:{rel}\n".encode())
                        with open(part, "rb") as fh:
                            for chunk in iter(lambda fh=fh: fh.read(_CHUNK), b""):
                                h.update(chunk)
            else:
                h.update(json.dumps(self.meta, sort_keys=True, default=str).encode())
                for name in sorted(self._raw):
                    t = self._raw[name]
                    aggs = {"__n": t.count()}
                    for i, col in enumerate(t.columns):
                        aggs[f"__h{i}"] = t[col].hash().sum()
                    row = t.aggregate(**aggs).to_pandas().iloc[0]
                    h.update(f"{name}:{t.schema()!r}:{row.tolist()!r}\n".encode())
            self._fingerprint = "sha256:" + h.hexdigest()
        return self._fingerprint

    # ------------------------------------------------------------------ output
    def save(self, path: str | os.PathLike, format: str = "parquet", overwrite: bool = True) -> Path:
        """Write the dataset to folder ``path``; see :func:`save_dataset`."""
        return save_dataset(self, path, format=format, overwrite=overwrite)

    def __repr__(self) -> str:
        name = self.meta.get("name", "unnamed")
        truth = ", truth" if self.truth is not None else ""
        return f"<Dataset {name!r} engine={self.engine} tables=[{', '.join(self.tables)}]{truth}>"

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{html.escape(t)}</td><td>{'contract' if t in CONTRACT else 'extra'}</td>"
            f"<td>{len(self._raw[t].columns)}</td></tr>"
            for t in self.tables
        )
        name = html.escape(str(self.meta.get("name", "unnamed")))
        return (
            f"<div><strong>Dataset {name}</strong> (engine {self.engine})"
            f"<table><tr><th>table</th><th>kind</th><th>columns</th></tr>{rows}</table></div>"
        )


_EMPTY_DTYPES = {
    "string": "string",
    "float64": "float64",
    "int64": "Int64",
    "bool": "boolean",
    "timestamp": "datetime64[ns]",
    "date": "datetime64[ns]",
}


def _engine_ready(name: str, frame: pd.DataFrame) -> pd.DataFrame:
    """Make object columns storable: all-missing columns get a type, mixed types become text.

    A column of only missing values has no type the engine can store (it gets its contract
    type, or string); an object column mixing e.g. ints and strings (common in Excel
    exports) is stored as text, which ``conform`` then converts like a CSV column.
    """
    spec = CONTRACT.get(name)
    out = None
    for col in frame.columns:
        s = frame[col]
        if s.dtype != object:
            continue
        present = s.dropna()
        if present.empty:
            dtype = spec.columns[col].dtype if spec is not None and col in spec.columns else "string"
            new = pd.Series([None] * len(s), index=s.index, dtype=_EMPTY_DTYPES[dtype])
        elif present.map(type).nunique() > 1:
            new = s.map(lambda v: v if pd.isna(v) else str(v)).astype(object)
            new = new.where(s.notna(), None)
        else:
            continue
        if out is None:
            out = frame.copy()
        out[col] = new
    return frame if out is None else out


def _memtable(name: str, frame: pd.DataFrame) -> ir.Table:
    frame = _engine_ready(name, frame)
    try:
        return ibis.memtable(frame)
    except Exception as err:  # pyarrow raises several types; find the column for the message
        for col in frame.columns:
            try:
                ibis.memtable(frame[[col]])
            except Exception as col_err:
                example = frame[col].dropna().map(type).value_counts().to_dict()
                raise TypeError(
                    f"table {name!r}, column {col!r}: cannot be stored in the engine "
                    f"({col_err}); value types found: {example}"
                ) from err
        raise


def _to_pandas_typed(df: pd.DataFrame, name: str) -> pd.DataFrame:
    spec = CONTRACT.get(name)
    if spec is None:
        return df
    for col, c in spec.columns.items():
        if col not in df.columns:
            continue
        s = df[col]
        if c.dtype in ("timestamp", "date"):
            df[col] = s.astype("datetime64[ns]")
        elif c.dtype == "bool":
            df[col] = s.astype(bool) if not s.isna().any() else s.astype("boolean")
        elif c.dtype == "int64":
            df[col] = s.astype("int64") if not s.isna().any() else s.astype("Int64")
        elif c.dtype == "string":
            df[col] = s.astype(object).where(s.notna(), None)
    return df


# ---------------------------------------------------------------------- CSV helpers
def _check_decodable(path: Path, encoding: str, out: Path | None = None) -> None:
    """Stream ``path`` through ``encoding``; optionally write the text as UTF-8 to ``out``.

    Raises DatasetError naming the file and the byte offset of the first undecodable byte.
    """
    pos = 0  # file offset of the first byte of ``pending``
    pending = b""
    sink = open(out, "w", encoding="utf-8", newline="") if out is not None else None
    try:
        with open(path, "rb") as fh:
            while True:
                chunk = fh.read(_CHUNK)
                final = not chunk
                data = pending + chunk
                if not data:
                    break
                try:
                    text = data.decode(encoding)
                    pending, consumed = b"", len(data)
                except UnicodeDecodeError as err:
                    # a multi-byte character cut by the chunk boundary: carry it over
                    if not final and err.end >= len(data) - 1 and len(data) - err.start < 8:
                        text = data[: err.start].decode(encoding)
                        pending, consumed = data[err.start :], err.start
                    else:
                        offset = pos + err.start
                        bad = data[err.start : err.start + 4]
                        hint = (
                            " Exports from Chinese Excel are often GB18030/GBK: try "
                            "encoding='gb18030'."
                            if encoding.replace("-", "").lower() in ("utf8", "utf8sig")
                            else ""
                        )
                        raise DatasetError(
                            f"{path}: not valid {encoding} at byte offset {offset} "
                            f"(bytes {bad!r}).{hint}"
                        ) from None
                if sink is not None:
                    if pos == 0 and text.startswith("\ufeff"):
                        text = text[1:]
                    sink.write(text)
                pos += consumed
                if final:
                    break
    finally:
        if sink is not None:
            sink.close()


def _is_utf8(encoding: str) -> bool:
    return encoding.replace("-", "").replace("_", "").lower() in ("utf8", "utf8sig")


def _spark_csv_options(con, source: Path, text_columns: set[str]) -> dict[str, Any]:
    """Spark's CSV reader takes one schema for all columns, not DuckDB's per-column ``types``:
    infer it once, then read the contract columns as text (as on DuckDB) and the extra columns
    with their inferred types (whole numbers as 64-bit, as DuckDB infers them)."""
    from pyspark.sql.types import IntegerType, LongType, StringType, StructField, StructType

    def column_type(field):
        if field.name in text_columns:
            return StringType()
        return LongType() if isinstance(field.dataType, IntegerType) else field.dataType

    session = con._session  # the backend's SparkSession (Ibis has no public accessor)
    inferred = session.read.csv(str(source), header=True, inferSchema=True).schema
    schema = StructType([StructField(f.name, column_type(f), True) for f in inferred.fields])
    return {"header": True, "inferSchema": False, "schema": schema}


def _read_csv(
    con, file: Path, table: str, encoding: str, tmp: Path | None, table_name: str | None = None
) -> ir.Table:
    import codecs

    try:
        codecs.lookup(encoding)
    except LookupError:
        raise ValueError(f"unknown encoding {encoding!r}") from None
    source = file
    if _is_utf8(encoding):
        _check_decodable(file, encoding)
    else:
        assert tmp is not None
        source = tmp / file.name
        _check_decodable(file, encoding, out=source)
    # contract columns are read as text and converted by ``conform``, so that one bad value
    # becomes a reported violation instead of a failed load
    with open(source, encoding="utf-8-sig", newline="") as fh:
        header = fh.readline()
    import csv

    names = next(csv.reader([header]), [])
    spec = CONTRACT.get(table)
    types = {c: "VARCHAR" for c in names if spec is not None and c in spec.columns}
    kwargs: dict[str, Any] = {"header": True}
    if types and getattr(con, "name", None) == "pyspark":
        kwargs = _spark_csv_options(con, source, set(types))
    elif types:
        kwargs["types"] = types
    try:
        return con.read_csv(str(source), table_name=table_name or table, **kwargs)
    except Exception as err:
        raise DatasetError(f"{file}: cannot be read as CSV: {err}") from err


# ---------------------------------------------------------------------- Parquet folders
def _part_files(folder: Path) -> list[Path]:
    """The Parquet part files under ``folder``, sorted by path.

    Hidden files and folders and those starting with ``_`` (``_SUCCESS``, ``_temporary``, as
    Spark and Hadoop leave them) are not data, as for Spark and pyarrow.
    """
    out = []
    for f in folder.rglob("*.parquet"):
        rel = f.relative_to(folder).parts
        if any(p.startswith((".", "_")) for p in rel) or not f.is_file():
            continue
        out.append(f)
    return sorted(out, key=lambda f: f.relative_to(folder).as_posix())


def _partition_keys(folder: Path, parts: list[Path]) -> list[str]:
    """Hive partition column names (``key=value`` folder levels), outermost first."""
    keys: list[str] = []
    for f in parts:
        for level in f.relative_to(folder).parts[:-1]:
            if "=" in level and (key := level.split("=", 1)[0]) not in keys:
                keys.append(key)
    return keys


def _derived_partition_columns(meta: Mapping[str, Any], name: str) -> list[str]:
    """Partition columns that only organise the files (e.g. ``month``, derived from
    ``sent_at``): ``dataset.json`` lists them under ``tables.<name>.derived_columns``."""
    info = (meta.get("tables") or {}).get(name)
    if isinstance(info, Mapping):
        return [str(c) for c in info.get("derived_columns", [])]
    return []


def _same_schema(parts: list[Path]) -> bool:
    """Whether every Parquet part file has the same schema (read from the footers once)."""
    import pyarrow.parquet as pq

    first = pq.read_schema(parts[0]) if parts else None
    return all(pq.read_schema(p).equals(first) for p in parts[1:])


def _read_parquet_folder(
    con, engine: str, folder: Path, name: str, engine_name: str, derived: list[str]
) -> ir.Table:
    """Register a table stored as a folder of Parquet part files.

    Hive partition columns (``region_id=guangxi/``) become columns, read as text: a contract
    column keeps its contract type through ``conform`` (text ids keep leading zeros), and the
    derived partition columns (``derived``, e.g. ``month``) are dropped.
    """
    parts = _part_files(folder)
    keys = _partition_keys(folder, parts)
    try:
        if engine == "spark":
            # Spark discovers the partitions itself; partition-type inference off keeps
            # ``region_id=011`` the text "011"
            con._session.conf.set("spark.sql.sources.partitionColumnTypeInference.enabled", "false")
            t = con.read_parquet(str(folder), table_name=f"{engine_name}__parts")
        else:
            t = con.read_parquet(
                [str(f) for f in parts],  # the same files fingerprint() hashes
                table_name=f"{engine_name}__parts",
                hive_partitioning=bool(keys),
                hive_types_autocast=False,
                # union_by_name makes DuckDB open every part's footer each time a query is
                # planned (0.5 s per query over ~750 parts); only needed when schemas differ
                union_by_name=not _same_schema(parts),
            )
    except Exception as err:
        raise DatasetError(f"{folder}: cannot be read as a folder of Parquet files: {err}") from err
    drop = [c for c in derived if c in t.columns and c in keys]
    spec = CONTRACT.get(name)
    # contract columns in contract order (partition columns come last from the reader)
    first = [c for c in spec.columns if c in t.columns] if spec is not None else []
    cols = first + [c for c in t.columns if c not in first and c not in drop]
    return con.create_view(engine_name, t.select(cols), overwrite=True)


# ---------------------------------------------------------------------- load / save
def load_dataset(
    path: str | os.PathLike,
    engine: str = "duckdb",
    encoding: str = "utf-8",
    memory_limit: str | None = None,
    temp_directory: str | os.PathLike | None = None,
) -> Dataset:
    """Open a dataset folder.

    Parameters
    ----------
    path : path
        Folder with one ``<table>.parquet`` or ``<table>.csv`` per table and optionally
        ``dataset.json`` (and ``truth.json`` for simulated data). Files of other tables than
        the contract's are registered too (extra tables are kept). A table may also be a
        folder ``<table>/`` (or ``<table>.parquet/``) of Parquet part files, hive-partitioned
        (``shipments/region_id=guangxi/month=2022-01/part-0.parquet``, as Spark, pyarrow and
        ``write_simulation(..., partitioned=True)`` write them) or not. Partition columns are
        read as text (a contract column such as ``region_id`` keeps its contract type);
        partition columns listed in ``dataset.json`` under
        ``tables.<table>.derived_columns`` (``month``) only organise the files and are dropped;
        other partition columns are kept as extra text columns. Files and folders whose name
        starts with ``.`` or ``_`` (``_SUCCESS``) are ignored.
    engine : {"duckdb", "spark"}
        DuckDB in memory (default), or Spark through Ibis (needs ``pip install -e .[spark]``).
    encoding : str
        Encoding of the CSV files: ``"utf-8"`` (default) or e.g. ``"gb18030"``/``"gbk"`` for
        exports from Chinese Excel. Non-UTF-8 files are transcoded to a temporary UTF-8 copy.
    memory_limit : str, optional
        DuckDB only: the engine's memory limit, e.g. ``"3GB"`` (DuckDB's default: 80 % of
        RAM). Group-bys over more groups than fit (one per customer, say) spill to a temporary
        folder instead of growing; it bounds DuckDB's memory, not the pandas frames a feature
        returns.
    temp_directory : str or path, optional
        DuckDB only: the folder it spills to (DuckDB's default: ``.tmp`` in the working
        directory). At national scale a capped query can write tens of GB there: point it at a
        disk with room.

    Raises
    ------
    FileNotFoundError
        The folder does not exist.
    DatasetError
        The folder holds no table, a table in two formats, an undecodable CSV (the message
        names the file and byte offset) or a file the engine cannot read.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"dataset folder not found: {folder}")
    files: dict[str, Path] = {}
    for f in sorted(folder.iterdir()):
        if f.name.startswith((".", "_")):
            continue
        if f.is_dir():
            # a table stored as a folder of Parquet part files (hive-partitioned or not)
            if not _part_files(f):
                continue
            # ``shipments/`` or ``shipments.parquet/`` (what Spark's writer names it)
            name = f.stem if f.suffix.lower() == ".parquet" else f.name
        elif f.is_file() and f.suffix.lower() in (".parquet", ".csv"):
            name = f.stem
        else:
            continue
        if name in files:
            raise DatasetError(
                f"{folder}: table {name!r} is present twice ({files[name].name}, {f.name}); "
                "keep one file or folder per table"
            )
        files[name] = f
    if not files:
        raise DatasetError(
            f"{folder}: no table files (*.parquet, *.csv or folders of *.parquet parts) found"
        )

    meta: dict[str, Any] = {}
    meta_file = folder / "dataset.json"
    if meta_file.exists():
        try:
            meta = json.loads(meta_file.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise DatasetError(f"{meta_file}: not valid JSON: {err}") from err
    meta.setdefault("name", folder.resolve().name)

    truth = None
    truth_file = folder / "truth.json"
    if truth_file.exists():
        try:
            from promo_analysis.simulate import GroundTruth
        except ImportError as err:
            raise ImportError(
                f"{truth_file} holds a simulator ground truth but promo_analysis.simulate "
                f"cannot be imported: {err}"
            ) from err
        truth = GroundTruth.from_dict(json.loads(truth_file.read_text(encoding="utf-8")))

    con = _connect(engine, memory_limit, temp_directory)
    tmp = None
    if any(f.suffix.lower() == ".csv" for f in files.values()) and not _is_utf8(encoding):
        tmp = tempfile.TemporaryDirectory(prefix="promo-analysis-csv-")
    engine_names = _engine_names(engine, files)
    raw: dict[str, ir.Table] = {}
    for name, f in files.items():
        if f.is_dir():
            derived = _derived_partition_columns(meta, name)
            raw[name] = _read_parquet_folder(con, engine, f, name, engine_names[name], derived)
        elif f.suffix.lower() == ".parquet":
            try:
                raw[name] = con.read_parquet(str(f), table_name=engine_names[name])
            except Exception as err:
                raise DatasetError(f"{f}: cannot be read as Parquet: {err}") from err
        else:
            raw[name] = _read_csv(
                con, f, name, encoding, Path(tmp.name) if tmp else None, engine_names[name]
            )
    hashed = dict(files)
    if meta_file.exists():
        hashed["dataset.json"] = meta_file
    return Dataset(
        con, raw, meta=meta, truth=truth, engine=engine, path=folder, files=hashed, tempdir=tmp
    )


def _created_by_us(folder: Path) -> bool:
    try:
        meta = json.loads((folder / "dataset.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get("created_by") == "promo-analysis"


@contextlib.contextmanager
def staged_dataset_folder(path: str | os.PathLike, overwrite: bool = True) -> Iterator[Path]:
    """Yield an empty staging folder that replaces ``path`` only if the block succeeds.

    Readers never see a half-written dataset: files go to a hidden sibling folder, which is
    renamed into place at the end (the old folder is moved aside first, then removed). On any
    error the staging folder is deleted and ``path`` is left as it was. ``path`` is replaced
    only if it is empty or a dataset promo-analysis wrote (and ``overwrite`` is True).
    """
    target = Path(path)
    if target.exists() and any(target.iterdir()) and not (overwrite and _created_by_us(target)):
        why = "overwrite=False" if not overwrite else "it was not written by promo-analysis"
        raise FileExistsError(f"{target} exists and is not empty; not replacing it ({why})")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        yield staging
        if target.exists():
            old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
            target.rename(old)
            staging.rename(target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def write_descriptors(folder: Path, meta: Mapping[str, Any], truth: Any = None) -> None:
    """Write ``dataset.json`` (and ``truth.json`` when ``truth`` is given) into ``folder``."""
    (folder / "dataset.json").write_text(
        json.dumps(meta, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8"
    )
    if truth is not None:
        (folder / "truth.json").write_text(
            json.dumps(truth.to_dict(), indent=1, ensure_ascii=False, default=str),
            encoding="utf-8",
        )


def save_dataset(
    ds: Dataset,
    path: str | os.PathLike,
    format: str = "parquet",
    overwrite: bool = True,
) -> Path:
    """Write ``ds`` as a dataset folder: one file per table, ``dataset.json``, ``truth.json``.

    Always one file per table; partitioned folders of Parquet parts are written by
    :func:`promo_analysis.simulate.write_simulation` (``partitioned=True``) and read by
    :func:`load_dataset`.

    Tables are written by the engine with contract column types. The folder is written
    next to ``path`` first and moved into place when complete, so a failure leaves no
    half-written dataset.

    Parameters
    ----------
    ds : Dataset
    path : path
        Target folder.
    format : {"parquet", "csv"}
        CSV files are UTF-8 with a header row; timestamps as ``YYYY-MM-DD HH:MM:SS``.
    overwrite : bool
        Replace an existing dataset at ``path`` -- only one that promo-analysis wrote
        (``dataset.json`` with ``"created_by": "promo-analysis"``); raw data folders are never
        overwritten.

    Raises
    ------
    FileExistsError
        ``path`` exists, is not empty and is not a dataset promo-analysis wrote (or
        ``overwrite`` is False).
    DataContractError
        A contract column holds values that do not convert to the contract type (they would
        be written as missing); run ``validate`` / quarantine first.
    """
    from promo_analysis import __version__
    from promo_analysis.contract.rules import parse_failures

    if format not in _FORMATS:
        raise ValueError(f"format must be one of {', '.join(_FORMATS)}, got {format!r}")
    target = Path(path)
    with staged_dataset_folder(target, overwrite=overwrite) as staging:
        failures = parse_failures(ds)
        if failures:
            from promo_analysis.contract.validation import DataContractError

            lines = [f"  {t}.{c}: {n} value(s) not convertible, e.g. {ex}" for t, c, n, ex in failures]
            raise DataContractError(
                "cannot save: values that do not convert to contract types would be lost:\n"
                + "\n".join(lines)
                + "\nrun `promo-analysis validate --quarantine` to separate them first"
            )

        table_info = {}
        for name in ds.tables:
            file = staging / f"{name}.{format}"
            expr = ds.table(name)
            if format == "parquet":
                expr.to_parquet(str(file))
            else:
                expr.to_csv(str(file))
            table_info[name] = {"file": file.name}
        meta = {
            **ds.meta,
            "contract_version": ds.meta.get("contract_version", CONTRACT_VERSION),
            "created_by": "promo-analysis",
            "package_version": __version__,
            "format": format,
            "tables": table_info,
        }
        write_descriptors(staging, meta, ds.truth)
    return target
