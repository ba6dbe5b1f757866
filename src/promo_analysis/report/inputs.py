"""Per-region report inputs: each region's rows aggregated in the engine, small files out.

The orchestrator builds one region's inputs at a time (:func:`build_region_inputs`) from a
view of the dataset restricted to that region (:func:`region_dataset`): the region filter is
part of every engine query, so on a dataset partitioned by region (``shipments/region_id=...``)
the engine reads only that region's part files, and the per-customer frames that reach pandas
(customer table, first-use table) are one region's, never the country's. The small frames are
written as Parquet into ``<run>/inputs/<region>/``; a notebook reads them back with
:func:`load_inputs`. Row-level identifiers are dropped before writing, so no report input can
leak a customer id.

A region's report describes that region's rows: its customers, the shipments sent in it,
the coupons and experiment assignments of its customers, its survey responses and its own and
the national campaigns. (In the contract a customer belongs to one region; a parcel a customer
sent while in another region is in that region's report.)
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from promo_analysis.regions import REGIONS
from promo_analysis.report.params import Period
from promo_analysis.report.privacy import drop_identifiers

__all__ = [
    "RegionInputs",
    "build_inputs",
    "build_region_inputs",
    "data_calendar",
    "region_dataset",
    "load_inputs",
    "open_inputs",
    "dataset_regions",
]

#: The frames a region's input folder may hold (``<name>.parquet``).
FRAMES = (
    "daily",
    "new_customers",
    "period_customers",
    "campaigns",
    "customers",
    "first_use",
    "experiments",
    "campaign_discounts",
    "survey",
    "validation",
)


@dataclass
class RegionInputs:
    """The small frames a regional report is built from, plus ``meta`` (a dict)."""

    region: str
    meta: dict[str, Any]
    frames: dict[str, pd.DataFrame] = field(default_factory=dict)
    folder: Path | None = None

    def __getattr__(self, name: str) -> Any:
        frames = self.__dict__.get("frames", {})
        if name in frames:
            return frames[name]
        raise AttributeError(name)

    def get(self, name: str) -> pd.DataFrame | None:
        """The frame ``name``, or None when the dataset had no data for it."""
        return self.frames.get(name)

    @property
    def period(self) -> Period:
        return Period(*(pd.Timestamp(d).date() for d in self.meta["period"]))

    @property
    def compare(self) -> Period | None:
        c = self.meta.get("compare")
        return None if c is None else Period(*(pd.Timestamp(d).date() for d in c))


def dataset_regions(ds: Any) -> list[str]:
    """The region ids of a dataset's ``regions`` table, in table order."""
    return [str(r) for r in ds.to_pandas("regions")["region_id"].tolist()]


def _label(day: Any, period: Period, compare: Period | None) -> Any:
    import ibis
    cases = [(day.between(period.start, period.end), "current")]
    if compare is not None:
        cases.append((day.between(compare.start, compare.end), "previous"))
    return ibis.cases(*cases, else_=ibis.null("string"))


def data_calendar(ds: Any) -> tuple[pd.Timestamp, pd.Timestamp]:
    """First and last shipment day of the whole dataset (one engine query).

    Every region's daily series is filled over this calendar, so a region whose first parcel
    came later than the country's still has its (zero) days from the start.
    """
    s = ds.table("shipments")
    row = s.aggregate(first=s.sent_at.min(), last=s.sent_at.max()).to_pandas().iloc[0]
    return pd.Timestamp(row["first"]).normalize(), pd.Timestamp(row["last"]).normalize()


def _daily(ds: Any, regions: list[str], calendar: tuple | None = None) -> pd.DataFrame:
    """Daily totals per region, channel and product (``features.daily_series``, one pass)."""
    from promo_analysis.features.daily import daily_series

    start, end = calendar if calendar is not None else (None, None)
    df = daily_series(
        ds,
        by=("region_id", "channel", "product"),
        metrics=("revenue", "shipments", "coupon_shipments", "discount", "campaign_shipments"),
        start=start,
        end=end,
    )
    return df[df["region_id"].isin(regions)]


def _new_customers(ds: Any, regions: list[str], calendar: tuple | None = None) -> pd.DataFrame:
    """New customers per region and day (first shipment in the data; one pass)."""
    from promo_analysis.features.daily import daily_series

    start, end = calendar if calendar is not None else (None, None)
    df = daily_series(ds, by=("region_id",), metrics=("new_customers",), start=start, end=end)
    return df.loc[df["region_id"].isin(regions), ["region_id", "date", "new_customers"]]


def _period_customers(
    ds: Any, regions: list[str], period: Period, compare: Period | None
) -> pd.DataFrame:
    """Distinct senders per region, period and channel (``all`` = any channel).

    One pass over the shipments: each sender once per region, period and channel (with
    whether any of those parcels used a coupon), then plain counts of that, per channel and,
    after folding the channels, overall -- instead of two distinct counts over the shipments
    per grouping.
    """
    import ibis

    s = ds.table("shipments")
    s = s.filter(s.region_id.isin(regions))
    s = s.mutate(period=_label(s.sent_at.date(), period, compare))
    s = s.filter(s.period.notnull())
    keys = ["region_id", "period"]
    per = s.group_by([*keys, "channel", "customer_id"]).aggregate(
        coupon=s.coupon_id.notnull().max()
    )
    by_channel = per.group_by([*keys, "channel"]).aggregate(
        customers=per.count(), coupon_customers=per.coupon.sum()
    )
    anyc = per.group_by([*keys, "customer_id"]).aggregate(coupon=per.coupon.max())
    overall = anyc.group_by(keys).aggregate(
        customers=anyc.count(), coupon_customers=anyc.coupon.sum()
    )
    overall = overall.mutate(channel=ibis.literal("all")).select(by_channel.columns)
    return by_channel.union(overall).to_pandas()


def _campaigns(ds: Any, regions: list[str]) -> pd.DataFrame | None:
    if not ds.has("campaigns"):
        return None
    c = ds.table("campaigns")
    df = c.filter(c.region_id.isin(regions) | c.region_id.isnull()).to_pandas()
    for col in ("start_date", "end_date"):
        df[col] = pd.to_datetime(df[col])
    return df


def _split(
    frame: pd.DataFrame | None, regions: list[str], national: bool = False
) -> dict[str, pd.DataFrame]:
    if frame is None:
        return {}
    out = {}
    for r in regions:
        mask = frame["region_id"] == r
        if national:
            # national rows (region_id null) belong to every region's report
            mask = mask | frame["region_id"].isna()
        out[r] = frame.loc[mask].reset_index(drop=True)
    return out


def _validation_frame(report: Any) -> pd.DataFrame:
    """The issues of a ValidationReport as a DataFrame, whatever their record type."""
    issues = getattr(report, "issues", None)
    if issues is None:
        return pd.DataFrame()
    if isinstance(issues, pd.DataFrame):
        return issues.copy()
    rows = []
    for issue in issues:
        if isinstance(issue, dict):
            rows.append(dict(issue))
        elif hasattr(issue, "__dataclass_fields__"):
            rows.append({k: getattr(issue, k) for k in issue.__dataclass_fields__})
        else:
            rows.append({"message": str(issue)})
    return pd.DataFrame(rows)


def _row_counts(ds: Any, regions: list[str]) -> dict[str, dict[str, int]]:
    """Rows per table and region, for tables that carry ``region_id`` (one query per table)."""
    counts: dict[str, dict[str, int]] = {r: {} for r in regions}
    for name in ds.tables:
        t = ds.table(name)
        if "region_id" not in t.columns:
            continue
        f = t.filter(t.region_id.isin(regions))
        df = f.group_by("region_id").aggregate(n=f.count()).to_pandas()
        got = dict(zip(df["region_id"], df["n"], strict=True))
        for r in regions:
            counts[r][name] = int(got.get(r, 0))
    return counts


def _only_region(t: Any, region: str) -> Any:
    """Rows of raw table ``t`` whose ``region_id`` is ``region``.

    The filter is on the raw column, as read, so that DuckDB can prune hive partitions
    (``region_id=<id>/``) and Parquet row groups; a column that is not text (a dataset built
    from frames with other ids) is compared as text, like ``conform`` would convert it.
    """
    return t.filter(_region_text(t) == region)


def _region_text(t: Any) -> Any:
    col = t.region_id
    return col if col.type().is_string() else col.cast("string")


def region_dataset(ds: Any, region: str) -> Any:
    """A view of ``ds`` restricted to one region, on the same engine connection.

    Tables with ``region_id`` keep that region's rows (``campaigns`` also the national ones,
    ``region_id`` null; ``regions`` stays whole); tables without it but with ``customer_id``
    (``coupons``, ``assignments``) keep the rows of the region's customers (anonymous coupons,
    which belong to no customer, are left out). Nothing is computed: the filters become part of
    every query on the returned dataset.
    """
    from promo_analysis.dataset import Dataset

    customers = _only_region(ds.raw_table("customers"), region)
    ids = customers.select(_rid=customers.customer_id)
    raw = {}
    for name in ds.tables:
        t = ds.raw_table(name)
        if name == "regions" or ("region_id" not in t.columns and "customer_id" not in t.columns):
            raw[name] = t
        elif name == "campaigns":
            # national campaigns (region_id null) run in every region
            raw[name] = t.filter((_region_text(t) == region) | t.region_id.isnull())
        elif "region_id" in t.columns:
            raw[name] = _only_region(t, region)
        else:
            raw[name] = t.semi_join(ids, t.customer_id == ids._rid)
    return Dataset(ds.con, raw, meta=getattr(ds, "meta", {}), truth=None,
                   engine=getattr(ds, "engine", "duckdb"), path=getattr(ds, "path", None))


def _acquired_from(ds: Any, start: Any) -> Any:
    """``ds`` with ``customers`` and ``shipments`` narrowed to the senders whose first shipment
    (in ``ds``) is on or after ``start``; nothing is computed.

    A customer's row of ``features.customer_table`` depends on that customer's shipments only,
    so on this view it gives the same rows for these customers, without the prospects and
    earlier cohorts. Its ``attrs["exclusions"]`` then count only the narrowed shipments
    without a customer (the data-quality section reports every such shipment from the
    validation).
    """
    from promo_analysis.dataset import Dataset

    # first shipments from the typed table (as customer_table computes them); the raw tables
    # are narrowed by id, compared as text like the typed ids
    t = ds.table("shipments")
    first = t.group_by("customer_id").aggregate(_first=t.sent_at.min())
    ids = first.filter(first._first >= pd.Timestamp(start)).select(
        _cid=first.customer_id.cast("string"))
    raw = {name: ds.raw_table(name) for name in ds.tables}
    for name in ("customers", "shipments"):
        r = raw[name]
        key = r.customer_id if r.customer_id.type().is_string() else r.customer_id.cast("string")
        raw[name] = r.semi_join(ids, key == ids._cid)
    return Dataset(ds.con, raw, meta=getattr(ds, "meta", {}), truth=None,
                   engine=getattr(ds, "engine", "duckdb"), path=getattr(ds, "path", None))


def _region_frames(ds: Any, region: str, period: Period, compare: Period | None,
                   issues: pd.DataFrame, calendar: tuple) -> dict[str, Any]:
    """The input frames of one region, from ``ds`` already restricted to it (the first-use
    table as a :class:`_FirstUse`, written straight to the folder)."""
    from promo_analysis import features

    regions = [region]
    frames: dict[str, Any] = {
        "daily": _daily(ds, regions, calendar),
        "new_customers": _new_customers(ds, regions, calendar),
        "period_customers": _period_customers(ds, regions, period, compare),
    }
    campaigns = _campaigns(ds, regions)
    if campaigns is not None:
        frames["campaigns"] = _split(campaigns, regions, national=True)[region]
    customers = features.customer_table(_acquired_from(ds, period.start))
    # only the retention section reads it, and only customers acquired from the period start
    # on (``sections.retention_frame``): prospects who never sent and earlier cohorts -- most
    # rows at national scale -- are not written, nor loaded by every kernel, nor (the view
    # above) pulled into pandas; the filter below is the definition, the view only narrows
    acquired = pd.to_datetime(customers["first_sent_at"]) >= pd.Timestamp(period.start)
    keep = (customers["region_id"] == region) & acquired
    frames["customers"] = customers.loc[keep].reset_index(drop=True)
    del customers, acquired, keep
    frames["first_use"] = _FirstUse(ds)
    if ds.has("assignments"):
        experiments = _experiments(ds)
        if not experiments.empty:  # no frame: none of the region's customers took part
            frames["experiments"] = _split(experiments, regions)[region]
    if ds.has("campaigns"):
        from promo_analysis.campaigns import campaign_discounts

        frames["campaign_discounts"] = _split(campaign_discounts(ds), regions)[region]
    if ds.has("survey"):
        s = ds.table("survey")
        frames["survey"] = s.filter(s.region_id == region).to_pandas()
    if "region_id" in issues.columns:
        frames["validation"] = _split(issues, regions, national=True)[region]
    else:
        frames["validation"] = issues
    return frames


class _FirstUse:
    """The region's first-use table, written to the inputs when the folder is.

    At national scale a big region's table has millions of rows (Guangdong at 50 M shipments:
    ~2.6 M); as one pandas frame, plus its copy without the ids and its Arrow copy for
    Parquet, it was most of the main process's peak. A region of more than
    ``first_use.PIECE_CUSTOMERS`` customers is written by ``first_use_table(ds, path=...)``
    (a bounded piece at a time) and copied row group by row group without the identifiers;
    a smaller one, which would be one piece, is built in memory (the file mode's sorted
    temporary tables cost it ~40 % more CPU) and written in slices. Same file either way.
    """

    def __init__(self, ds: Any) -> None:
        self.ds = ds

    def write(self, target: Path, customers: int) -> dict[str, Any]:
        """Write ``first_use.parquet`` into ``target`` (nothing when the region has no
        prospects); the table's attrs (exclusion counts, options). ``customers``: the
        region's customers."""
        from promo_analysis import features
        from promo_analysis.features.first_use import PIECE_CUSTOMERS

        if customers > PIECE_CUSTOMERS:
            return self._copy_file(target)
        fu = features.first_use_table(self.ds)
        attrs = dict(fu.attrs)
        if len(fu):
            # the ids are dropped before the kernel sees the table, but a person can be a
            # control and later a recipient: an anonymous person code keeps SEs clustered by
            # person
            fu["person"] = pd.factorize(fu["customer_id"])[0]
            fu.attrs = {}
            _write_frame(fu, target / "first_use.parquet")
        return attrs

    def _copy_file(self, target: Path) -> dict[str, Any]:
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        from promo_analysis import features
        from promo_analysis.report.privacy import IDENTIFIER_COLUMNS

        raw = target / ".first_use-with-ids.parquet"
        try:
            written = features.first_use_table(self.ds, path=raw)
            if written.rows:
                src = pq.ParquetFile(raw)
                # the person code: the ids' codes in order of first appearance (pd.factorize)
                ids = src.read(columns=["customer_id"])["customer_id"]
                person = pc.cast(ids.combine_chunks().dictionary_encode().indices, pa.int64())
                del ids
                keep = [n for n in src.schema_arrow.names if n not in IDENTIFIER_COLUMNS]
                schema = pa.schema([src.schema_arrow.field(n) for n in keep]
                                   + [pa.field("person", pa.int64())],
                                   metadata=_pandas_metadata(src.schema_arrow, keep, "person"))
                at = 0
                with pq.ParquetWriter(target / "first_use.parquet", schema) as out:
                    for i in range(src.num_row_groups):
                        part = src.read_row_group(i, columns=keep)
                        n = part.num_rows
                        part = part.append_column("person", person.slice(at, n))
                        out.write_table(part.cast(schema))
                        at += n
        finally:
            raw.unlink(missing_ok=True)
        return written.attrs


def _pandas_metadata(schema: Any, keep: list[str], added: str) -> dict[bytes, bytes]:
    """``schema``'s pandas metadata for its columns ``keep`` plus an int64 column ``added``:
    pandas reads the file back with the same dtypes (e.g. nullable ``Int64``)."""
    meta = dict(schema.metadata or {})
    pandas = json.loads(meta.get(b"pandas", b"{}"))
    if pandas:
        cols = [c for c in pandas.get("columns", []) if c.get("field_name") in keep]
        cols.append({"name": added, "field_name": added, "pandas_type": "int64",
                     "numpy_type": "int64", "metadata": None})
        pandas["columns"] = cols
        pandas.pop("attributes", None)
        meta[b"pandas"] = json.dumps(pandas).encode()
    return meta


def _write_frame(df: pd.DataFrame, path: Path, rows: int = 500_000) -> None:
    """``df`` without identifier columns to Parquet, converted to Arrow ``rows`` at a time
    (``drop_identifiers`` then ``to_parquet`` held two more copies of a big frame)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from promo_analysis.report.privacy import IDENTIFIER_COLUMNS

    keep = [c for c in df.columns if c not in IDENTIFIER_COLUMNS]
    if len(df) <= rows:
        df = drop_identifiers(df)
        df.attrs = {}
        df.to_parquet(path, index=False)
        return
    first = pa.Table.from_pandas(df.iloc[:rows][keep], preserve_index=False)
    schema = first.schema
    with pq.ParquetWriter(path, schema) as out:
        out.write_table(first)
        del first
        for start in range(rows, len(df), rows):
            out.write_table(pa.Table.from_pandas(df.iloc[start:start + rows][keep],
                                                 schema=schema, preserve_index=False))


def _issues(validation: Any | None) -> pd.DataFrame:
    issues = _validation_frame(validation) if validation is not None else pd.DataFrame()
    # failing-row examples may quote identifiers; reports show the rule and the count only
    return issues.drop(columns=[c for c in ("example", "examples") if c in issues.columns])


def build_region_inputs(
    ds: Any,
    region: str,
    period: Period,
    compare: Period | None,
    folder: str | Path,
    *,
    validation: Any | None = None,
    extra_meta: dict[str, Any] | None = None,
    calendar: tuple[Any, Any] | None = None,
) -> Path:
    """Aggregate one region's rows in the engine and write its input folder.

    Parameters
    ----------
    ds : Dataset
        The opened dataset (all regions); the region's view is taken here
        (:func:`region_dataset`), so only that region's rows are read.
    region : str
        A validated region id.
    period, compare : Period
        The report period and the comparison period (None: no comparison).
    folder : path
        ``<run>/inputs``; the sub-folder ``<region>`` is created (it must not exist).
    validation : ValidationReport, optional
        The dataset's validation report; the region's issues (and those without a region) are
        kept.
    extra_meta : dict, optional
        Merged into ``meta.json`` (e.g. the dataset fingerprint).
    calendar : (first day, last day), optional
        The days the daily frames span; default :func:`data_calendar` of ``ds`` (pass it when
        building many regions, to query it once).

    Returns
    -------
    Path
        The region's input folder.
    """
    if calendar is None:
        calendar = data_calendar(ds)
    rds = region_dataset(ds, region)
    frames = _region_frames(rds, region, period, compare, _issues(validation), calendar)
    counts = _row_counts(rds, [region])[region]
    # names from the dataset's own regions table (user data may use other ids than ours)
    reg = ds.to_pandas("regions")
    row = reg[reg["region_id"].astype(str) == region]
    if len(row):
        r0 = row.iloc[0]
        zh, en = str(r0.get("name_zh", region)), str(r0.get("name_en", region))
    else:
        zh, en = REGIONS.get(region, (region, region, ""))[:2]
    target = Path(folder) / region
    target.mkdir(parents=True, exist_ok=False)
    attrs: dict[str, Any] = {}
    try:
        for name, df in frames.items():
            if isinstance(df, _FirstUse):
                # the exclusion counts of first_use_table (the region's): kept in meta
                written = df.write(target, counts.get("customers", 0))
                attrs[name] = json.loads(json.dumps(written, default=str))
                continue
            if df.attrs:
                attrs[name] = json.loads(json.dumps(df.attrs, default=str))
                df.attrs = {}  # in meta.json, not in the Parquet file's metadata
            _write_frame(df, target / f"{name}.parquet")
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    meta = {
        "region": region,
        "name_zh": zh,
        "name_en": en,
        "period": list(period.as_strings()),
        "compare": None if compare is None else list(compare.as_strings()),
        "row_counts": counts,
        "frame_attrs": attrs,
        "validation_ok": None if validation is None else bool(getattr(validation, "ok", True)),
        **(extra_meta or {}),
    }
    (target / "meta.json").write_text(
        json.dumps(meta, ensure_ascii=False, indent=2, default=str), encoding="utf-8"
    )
    return target


def build_inputs(
    ds: Any,
    regions: list[str],
    period: Period,
    compare: Period | None,
    folder: str | Path,
    *,
    validation: Any | None = None,
    extra_meta: dict[str, Any] | None = None,
) -> dict[str, Path]:
    """Write the input folder of every region, one region at a time.

    See :func:`build_region_inputs` for the parameters; returns region -> its input folder.
    Peak memory is that of the largest region's frames, whatever the number of regions.
    """
    calendar = data_calendar(ds)
    return {
        r: build_region_inputs(ds, r, period, compare, folder, validation=validation,
                               extra_meta=extra_meta, calendar=calendar)
        for r in regions
    }


def _experiments(ds: Any) -> pd.DataFrame:
    """Every randomized test's analysis table (``features.first_use.experiment_table``)."""
    from promo_analysis.features.first_use import experiment_table

    a = ds.table("assignments")
    ids = sorted(a.select("experiment_id").distinct().to_pandas()["experiment_id"])
    frames = [experiment_table(ds, experiment_id=e) for e in ids]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def load_inputs(
    folder: str | Path,
    frames: tuple[str, ...] | None = None,
    columns: dict[str, tuple[str, ...]] | None = None,
) -> RegionInputs:
    """Read a region's input folder written by :func:`build_region_inputs`.

    ``frames`` limits which frames are read (default: all of :data:`FRAMES`); the index page
    needs only the small daily and customer-count frames, not the per-customer ones.
    ``columns`` limits the columns read of some frames (frame -> columns; those the file does
    not have are skipped; the file's column order is kept).
    """
    folder = Path(folder)
    meta_path = folder / "meta.json"
    if not meta_path.exists():
        raise FileNotFoundError(f"{folder} is not a report input folder (no meta.json)")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    out = {}
    for name in FRAMES if frames is None else frames:
        path = folder / f"{name}.parquet"
        if not path.exists():
            continue
        cols = None
        if columns and name in columns:
            import pyarrow.parquet as pq

            cols = [c for c in pq.read_schema(path).names if c in columns[name]]
        out[name] = pd.read_parquet(path, columns=cols)
    return RegionInputs(region=meta["region"], meta=meta, frames=out, folder=folder)


def open_inputs(
    inputs: str | Path | None,
    *,
    data: str | Path | None = None,
    region: str | None = None,
    period_start: Any = None,
    period_end: Any = None,
    compare_to: str | None = "previous_year",
) -> RegionInputs:
    """What a report notebook reads: ``inputs`` when given, else one region built from ``data``.

    ``render_reports`` always passes ``inputs`` (the dataset was aggregated once for all
    regions). Opening the template by hand with only ``data`` set aggregates that one region
    into a temporary folder, so the notebook also works on its own. Of the per-customer
    frames only the columns the sections read are loaded
    (``sections.INPUT_COLUMNS``; :func:`load_inputs` reads every column).
    """
    from promo_analysis.report.sections import INPUT_COLUMNS

    if inputs:
        inp = load_inputs(inputs, columns=INPUT_COLUMNS)
        if region is not None and inp.region != region:
            raise ValueError(
                f"the inputs in {inputs} are for region {inp.region!r}, not {region!r}"
            )
        return inp
    if not data or not region:
        raise ValueError("open_inputs needs either `inputs` or both `data` and `region`")
    import tempfile

    from promo_analysis import load_dataset, validate
    from promo_analysis.report.params import check_region_ids, compare_period, parse_period

    ds = load_dataset(data)
    regions = check_region_ids([region], dataset_regions(ds))
    period = parse_period(period_start, period_end)
    compare = compare_period(period, compare_to)
    folder = Path(tempfile.mkdtemp(prefix="promo-report-inputs-"))
    paths = build_inputs(
        ds, regions, period, compare, folder, validation=validate(ds, strict=False),
        extra_meta={"fingerprint": ds.fingerprint(), "run_id": "interactive",
                    "dataset_name": ds.meta.get("name", "")},
    )
    return load_inputs(paths[region], columns=INPUT_COLUMNS)
