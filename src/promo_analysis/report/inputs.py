"""Per-region report inputs: one engine pass over the dataset for all regions, small files out.

The orchestrator calls :func:`build_inputs` once per run. Every query groups by ``region_id``
over all requested regions at once (DESIGN.md §6: no notebook re-scans the raw data), and the
small aggregated frames are written as Parquet into ``<run>/inputs/<region>/``. A notebook
reads them back with :func:`load_inputs`. Row-level identifiers are dropped before writing, so
no report input can leak a customer id.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from promo_analysis.regions import REGIONS
from promo_analysis.report.params import Period
from promo_analysis.report.privacy import drop_identifiers

__all__ = ["RegionInputs", "build_inputs", "load_inputs", "open_inputs", "dataset_regions"]

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


def _daily(ds: Any, regions: list[str]) -> pd.DataFrame:
    """Daily totals per region, channel and product (``features.daily_series``, one pass)."""
    from promo_analysis.features.daily import daily_series

    df = daily_series(
        ds,
        by=("region_id", "channel", "product"),
        metrics=("revenue", "shipments", "coupon_shipments", "discount", "campaign_shipments"),
    )
    return df[df["region_id"].isin(regions)]


def _new_customers(ds: Any, regions: list[str]) -> pd.DataFrame:
    """New customers per region and day (first shipment in the data; one pass)."""
    from promo_analysis.features.daily import daily_series

    df = daily_series(ds, by=("region_id",), metrics=("new_customers",))
    return df.loc[df["region_id"].isin(regions), ["region_id", "date", "new_customers"]]


def _period_customers(
    ds: Any, regions: list[str], period: Period, compare: Period | None
) -> pd.DataFrame:
    """Distinct senders per region, period and channel (``all`` = any channel)."""
    import ibis

    s = ds.table("shipments")
    s = s.filter(s.region_id.isin(regions))
    s = s.mutate(period=_label(s.sent_at.date(), period, compare))
    s = s.filter(s.period.notnull())
    coupon_customer = ibis.ifelse(s.coupon_id.notnull(), s.customer_id, ibis.null("string"))
    by_channel = s.group_by([s.region_id, s.period, s.channel]).aggregate(
        customers=s.customer_id.nunique(), coupon_customers=coupon_customer.nunique()
    )
    overall = s.group_by([s.region_id, s.period]).aggregate(
        customers=s.customer_id.nunique(), coupon_customers=coupon_customer.nunique()
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
    """Aggregate the dataset for every region in one pass per query and write the inputs.

    Parameters
    ----------
    ds : Dataset
        The opened dataset.
    regions : list of str
        Validated region ids.
    period, compare : Period
        The report period and the comparison period (None: no comparison).
    folder : path
        ``<run>/inputs``; one sub-folder per region is created.
    validation : ValidationReport, optional
        The dataset's validation report; its issues are split by region (issues without a
        region go to every region).
    extra_meta : dict, optional
        Merged into every region's ``meta.json`` (e.g. the dataset fingerprint).

    Returns
    -------
    dict
        region -> its input folder.
    """
    from promo_analysis import features

    folder = Path(folder)
    per_region: dict[str, dict[str, pd.DataFrame]] = {r: {} for r in regions}

    def put(name: str, split: dict[str, pd.DataFrame]) -> None:
        for r, df in split.items():
            per_region[r][name] = df

    put("daily", _split(_daily(ds, regions), regions))
    put("new_customers", _split(_new_customers(ds, regions), regions))
    put("period_customers", _split(_period_customers(ds, regions, period, compare), regions))
    put("campaigns", _split(_campaigns(ds, regions), regions, national=True))

    customers = features.customer_table(ds)
    put("customers", _split(customers[customers["region_id"].isin(regions)], regions))
    first_use = features.first_use_table(ds)
    fu_attrs = dict(first_use.attrs)
    put("first_use", _split(first_use[first_use["region_id"].isin(regions)], regions))
    for r in regions:
        per_region[r]["first_use"].attrs = fu_attrs
    if ds.has("assignments"):
        put("experiments", _split(_experiments(ds), regions))
    if ds.has("campaigns"):
        from promo_analysis.campaigns import campaign_discounts

        put("campaign_discounts", _split(campaign_discounts(ds), regions))
    if ds.has("survey"):
        s = ds.table("survey")
        put("survey", _split(s.filter(s.region_id.isin(regions)).to_pandas(), regions))

    issues = _validation_frame(validation) if validation is not None else pd.DataFrame()
    # failing-row examples may quote identifiers; reports show the rule and the count only
    issues = issues.drop(columns=[c for c in ("example", "examples") if c in issues.columns])
    if "region_id" in issues.columns:
        put("validation", _split(issues, regions, national=True))
    else:
        put("validation", {r: issues for r in regions})

    counts = _row_counts(ds, regions)
    # names from the dataset's own regions table (user data may use other ids than ours)
    reg = ds.to_pandas("regions")
    names = {
        str(row.region_id): (str(getattr(row, "name_zh", row.region_id)),
                             str(getattr(row, "name_en", row.region_id)))
        for row in reg.itertuples()
    }
    out: dict[str, Path] = {}
    for r in regions:
        target = folder / r
        target.mkdir(parents=True, exist_ok=False)
        attrs: dict[str, Any] = {}
        for name, df in per_region[r].items():
            df = drop_identifiers(df)
            if df.attrs:
                # e.g. the exclusion counts of first_use_table (dataset-wide): kept in meta
                attrs[name] = json.loads(json.dumps(df.attrs, default=str))
                df.attrs = {}
            df.to_parquet(target / f"{name}.parquet", index=False)
        zh, en = names.get(r, REGIONS.get(r, (r, r, ""))[:2])
        meta = {
            "region": r,
            "name_zh": zh,
            "name_en": en,
            "period": list(period.as_strings()),
            "compare": None if compare is None else list(compare.as_strings()),
            "row_counts": counts[r],
            "frame_attrs": attrs,
            "validation_ok": None if validation is None else bool(getattr(validation, "ok", True)),
            **(extra_meta or {}),
        }
        (target / "meta.json").write_text(
            json.dumps(meta, ensure_ascii=False, indent=2, default=str), encoding="utf-8"
        )
        out[r] = target
    return out


def _experiments(ds: Any) -> pd.DataFrame:
    """Every randomized test's analysis table (``features.first_use.experiment_table``)."""
    from promo_analysis.features.first_use import experiment_table

    a = ds.table("assignments")
    ids = sorted(a.select("experiment_id").distinct().to_pandas()["experiment_id"])
    frames = [experiment_table(ds, experiment_id=e) for e in ids]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def load_inputs(folder: str | Path) -> RegionInputs:
    """Read a region's input folder written by :func:`build_inputs`."""
    folder = Path(folder)
    meta_path = folder / "meta.json"
    if not meta_path.exists():
        raise FileNotFoundError(f"{folder} is not a report input folder (no meta.json)")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    frames = {}
    for name in FRAMES:
        path = folder / f"{name}.parquet"
        if path.exists():
            frames[name] = pd.read_parquet(path)
    return RegionInputs(region=meta["region"], meta=meta, frames=frames, folder=folder)


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
    into a temporary folder, so the notebook also works on its own.
    """
    if inputs:
        inp = load_inputs(inputs)
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
    return load_inputs(paths[region])
