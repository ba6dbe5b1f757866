"""Data contract v1 as code: the tables, their columns, types, keys and vocabularies.

This module is the one place that says what a promo-analysis dataset looks like. Everything
else (loading, validation, quarantine, the simulator) reads these specs instead of repeating
them.

Types
-----
Each column has one *contract dtype*; its representation in the engine (Ibis) and in pandas
(what :meth:`Dataset.to_pandas` returns and what :func:`coerce_frame` produces) is:

============  ==============  ==========================================================
dtype         Ibis            pandas
============  ==============  ==========================================================
``string``    ``string``      ``object`` holding ``str`` (ids keep leading zeros), ``None``
                              for missing
``float64``   ``float64``     ``float64`` (money is yuan), ``NaN`` for missing
``int64``     ``int64``       ``int64``, or ``Int64`` when the column has missing values
``bool``      ``boolean``     ``bool``, or ``boolean`` when the column has missing values
``timestamp`` ``timestamp``   ``datetime64[ns]``, timezone-naive local time
``date``      ``date``        ``datetime64[ns]`` at midnight (pandas has no date dtype)
============  ==============  ==========================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import ibis
import ibis.expr.types as ir
import pandas as pd

from promo_analysis.calendar import THEMES

__all__ = [
    "CONTRACT_VERSION",
    "SEGMENTS",
    "CHANNELS",
    "PRODUCTS",
    "PAYMENTS",
    "ISSUE_CHANNELS",
    "LEVELS",
    "ARM_CONTROL",
    "REQUIRED_TABLES",
    "OPTIONAL_TABLES",
    "TABLE_ORDER",
    "Column",
    "TableSpec",
    "CONTRACT",
    "IBIS_TYPES",
    "MISSING_TOKENS",
    "TRUE_TOKENS",
    "FALSE_TOKENS",
    "cast_column",
    "coerce_frame",
    "conform",
]

CONTRACT_VERSION = "1"

#: the eight target markets of the source article, plus ``other``.
SEGMENTS: tuple[str, ...] = (
    "office",
    "campus",
    "mall",
    "residential",
    "hospital",
    "tourist_site",
    "military",
    "transport_hub",
    "other",
)
#: where a walk-in parcel is collected.
CHANNELS: tuple[str, ...] = ("station", "counter", "pickup_point", "online")
PRODUCTS: tuple[str, ...] = ("express", "economy")
PAYMENTS: tuple[str, ...] = ("cash", "epay", "stored_value")
ISSUE_CHANNELS: tuple[str, ...] = ("wechat", "counter", "door_to_door", "partner", "online")
LEVELS: tuple[str, ...] = ("national", "provincial")
#: the arm name of the control group in ``assignments``; every other arm is a design code.
ARM_CONTROL = "control"

REQUIRED_TABLES: tuple[str, ...] = ("regions", "customers", "shipments")
OPTIONAL_TABLES: tuple[str, ...] = ("coupons", "campaigns", "survey", "assignments")
#: referenced tables first, so that writing and checking follow the foreign keys.
TABLE_ORDER: tuple[str, ...] = (
    "regions",
    "customers",
    "campaigns",
    "coupons",
    "shipments",
    "survey",
    "assignments",
)

#: contract dtype -> Ibis dtype
IBIS_TYPES: dict[str, str] = {
    "string": "string",
    "float64": "float64",
    "int64": "int64",
    "bool": "boolean",
    "timestamp": "timestamp",
    "date": "date",
}


@dataclass(frozen=True)
class Column:
    """One column of a contract table.

    Parameters
    ----------
    dtype : {"string", "float64", "int64", "bool", "timestamp", "date"}
    nullable : bool
        Whether missing values are allowed.
    categories : tuple of str, optional
        The allowed values (checked on non-missing values only).
    references : (table, column), optional
        Foreign key: every non-missing value must exist in that table's column.
    description : str
    """

    dtype: str
    nullable: bool = False
    categories: tuple[str, ...] | None = None
    references: tuple[str, str] | None = None
    description: str = ""

    @property
    def ibis_type(self) -> str:
        return IBIS_TYPES[self.dtype]


@dataclass(frozen=True)
class TableSpec:
    """The contract of one table: its columns (in order), key and whether it is required."""

    name: str
    key: tuple[str, ...]
    columns: Mapping[str, Column]
    required: bool = False
    description: str = ""
    #: column holding money to reconcile in quarantine (input = accepted + rejected)
    money: tuple[str, ...] = field(default_factory=tuple)

    @property
    def column_names(self) -> list[str]:
        return list(self.columns)

    def frame(self) -> pd.DataFrame:
        """The spec as a DataFrame (column, dtype, nullable, categories, references)."""
        rows = [
            {
                "column": name,
                "dtype": col.dtype,
                "nullable": col.nullable,
                "key": name in self.key,
                "categories": ", ".join(col.categories) if col.categories else "",
                "references": ".".join(col.references) if col.references else "",
                "description": col.description,
            }
            for name, col in self.columns.items()
        ]
        return pd.DataFrame(rows)


_C = Column

CONTRACT: dict[str, TableSpec] = {
    "regions": TableSpec(
        "regions",
        key=("region_id",),
        required=True,
        description="One row per region (province-level unit, see promo_analysis.regions).",
        columns={
            "region_id": _C("string", description="region id, e.g. guangxi"),
            "name_zh": _C("string", description="Chinese name, e.g. 广西"),
            "name_en": _C("string", description="English name, e.g. Guangxi"),
        },
    ),
    "customers": TableSpec(
        "customers",
        key=("customer_id",),
        required=True,
        description="Every known walk-in customer, including prospects who never sent.",
        columns={
            "customer_id": _C("string"),
            "region_id": _C("string", references=("regions", "region_id")),
            "known_since": _C(
                "date",
                description="first known: parcel received, WeChat contact or first send",
            ),
            "segment": _C("string", categories=SEGMENTS, description="target market"),
            "wechat_contact": _C("bool", description="courier has the customer on WeChat"),
        },
    ),
    "shipments": TableSpec(
        "shipments",
        key=("shipment_id",),
        required=True,
        money=("list_price", "discount", "revenue"),
        description="One row per parcel sent by a walk-in customer.",
        columns={
            "shipment_id": _C("string"),
            "customer_id": _C("string", references=("customers", "customer_id")),
            "region_id": _C("string", references=("regions", "region_id")),
            "sent_at": _C("timestamp"),
            "channel": _C("string", categories=CHANNELS),
            "product": _C("string", categories=PRODUCTS),
            "list_price": _C("float64", description="tariff price, yuan, >= 0"),
            "discount": _C("float64", description="yuan, in [0, list_price]"),
            "revenue": _C("float64", description="list_price - discount, yuan"),
            "coupon_id": _C(
                "string", nullable=True, references=("coupons", "coupon_id"),
                description="coupon redeemed on this parcel, null if none",
            ),
            "campaign_id": _C(
                "string", nullable=True, references=("campaigns", "campaign_id"),
                description="campaign the parcel was sent under, null if none",
            ),
            "payment": _C("string", categories=PAYMENTS),
        },
    ),
    "coupons": TableSpec(
        "coupons",
        key=("coupon_id",),
        description="Every coupon issued (满 threshold 减 face_value).",
        columns={
            "coupon_id": _C("string"),
            "campaign_id": _C(
                "string", nullable=True, references=("campaigns", "campaign_id")
            ),
            "customer_id": _C(
                "string", nullable=True, references=("customers", "customer_id"),
                description="null = anonymous paper coupon",
            ),
            "issued_at": _C("timestamp"),
            "expires_at": _C("timestamp", description=">= issued_at"),
            "threshold": _C("float64", description="满 X yuan, >= 0"),
            "face_value": _C("float64", description="减 Y yuan, > 0"),
            "issue_channel": _C("string", categories=ISSUE_CHANNELS),
        },
    ),
    "campaigns": TableSpec(
        "campaigns",
        key=("campaign_id",),
        description="Themed promotion campaigns; start_date..end_date inclusive.",
        columns={
            "campaign_id": _C("string"),
            "name": _C("string"),
            "region_id": _C(
                "string", nullable=True, references=("regions", "region_id"),
                description="null = national",
            ),
            "theme": _C("string", categories=tuple(THEMES)),
            "start_date": _C("date"),
            "end_date": _C("date", description="inclusive, >= start_date"),
            "level": _C("string", categories=LEVELS),
            "target_segment": _C("string", nullable=True, categories=SEGMENTS),
            "coupon_threshold": _C("float64", nullable=True, description="yuan, >= 0"),
            "coupon_face_value": _C("float64", nullable=True, description="yuan, > 0"),
            "fixed_cost": _C("float64", nullable=True, description="yuan, >= 0"),
        },
    ),
    "survey": TableSpec(
        "survey",
        key=("response_id",),
        description="Market-survey responses with their design (weight, stratum, cluster).",
        columns={
            "response_id": _C("string"),
            "region_id": _C("string", references=("regions", "region_id")),
            "surveyed_at": _C("timestamp"),
            "customer_id": _C(
                "string", nullable=True, references=("customers", "customer_id")
            ),
            "weight": _C("float64", description="design weight, > 0"),
            "stratum": _C("string", nullable=True),
            "cluster": _C("string", nullable=True),
            "coupon_influenced": _C("bool", nullable=True, description="null = no answer"),
            "first_time_sender": _C("bool"),
            "aware_of_campaign": _C("bool"),
            "satisfaction": _C("int64", nullable=True, description="1..5"),
        },
    ),
    "assignments": TableSpec(
        "assignments",
        key=("experiment_id", "customer_id"),
        description="Randomized coupon tests: one row per experiment and customer.",
        columns={
            "experiment_id": _C("string"),
            "customer_id": _C("string", references=("customers", "customer_id")),
            "arm": _C("string", description=f"'{ARM_CONTROL}' or a design code, e.g. 12-3"),
            "assigned_at": _C("timestamp"),
        },
    ),
}


def _spec(table: str) -> TableSpec:
    try:
        return CONTRACT[table]
    except KeyError:
        raise KeyError(
            f"unknown table {table!r}; the contract has {', '.join(CONTRACT)}"
        ) from None


def coerce_frame(frame: pd.DataFrame, table: str) -> pd.DataFrame:
    """Return a copy of ``frame`` with the contract's pandas dtypes for ``table``.

    For producers of data (the simulator, import scripts): conversion is strict, a value that
    cannot be converted raises ``ValueError`` naming the table, the column, how many values
    failed and an example. Extra columns are kept unchanged; missing contract columns are left
    missing (validation reports them). Timestamps lose any time zone information only if they
    have none (a timezone-aware column is an error: the contract wants local naive time).

    Parameters
    ----------
    frame : DataFrame
    table : str
        A contract table name, e.g. ``"shipments"``.
    """
    spec = _spec(table)
    out = frame.copy()
    for name, col in spec.columns.items():
        if name not in out.columns:
            continue
        s = out[name]
        try:
            out[name] = _coerce_series(s, col.dtype)
        except (ValueError, TypeError) as err:
            raise ValueError(f"{table}.{name}: cannot convert to {col.dtype}: {err}") from None
    return out


def _bad_example(original: pd.Series, converted: pd.Series) -> str:
    bad = original.notna() & converted.isna()
    n = int(bad.sum())
    if n == 0:
        return ""
    return f"{n} value(s) not convertible, e.g. {original[bad].iloc[0]!r}"


def _coerce_series(s: pd.Series, dtype: str) -> pd.Series:
    if dtype == "string":
        if s.dtype == object and s.map(lambda v: v is None or isinstance(v, str)).all():
            return s
        if pd.api.types.is_float_dtype(s.dtype):
            # 1.0 -> "1.0" would silently change an id; ids must arrive as strings or ints
            raise ValueError("ids must be strings or integers, got floats")
        out = s.astype("string").astype(object)
        return out.where(s.notna(), None)
    if dtype == "float64":
        out = pd.to_numeric(s, errors="coerce").astype("float64")
    elif dtype == "int64":
        out = pd.to_numeric(s, errors="coerce")
        frac = out.notna() & (out != out.round())
        if frac.any():
            raise ValueError(f"{int(frac.sum())} non-integer value(s), e.g. {s[frac].iloc[0]!r}")
        out = out.astype("Int64")
        if not out.isna().any():
            out = out.astype("int64")
    elif dtype == "bool":
        if pd.api.types.is_bool_dtype(s.dtype) and s.dtype != object:
            return s
        # 1/0 hash like True/False, so integer flags map too
        mapping = {True: True, False: False, "true": True, "false": False,
                   "True": True, "False": False, "1": True, "0": False}
        out = s.map(lambda v: mapping.get(v, pd.NA) if pd.notna(v) else pd.NA)
        out = out.astype("boolean")
        if not out.isna().any():
            out = out.astype(bool)
    elif dtype in ("timestamp", "date"):
        if isinstance(s.dtype, pd.DatetimeTZDtype):
            raise ValueError("timezone-aware timestamps; the contract wants naive local time")
        out = pd.to_datetime(s, errors="coerce")
        if isinstance(out.dtype, pd.DatetimeTZDtype):
            raise ValueError("timezone-aware timestamps; the contract wants naive local time")
        out = out.astype("datetime64[ns]")
        if dtype == "date":
            out = out.dt.normalize()
    else:  # pragma: no cover - the spec only uses the dtypes above
        raise ValueError(f"unknown contract dtype {dtype!r}")
    msg = _bad_example(s, out)
    if msg:
        raise ValueError(msg)
    return out


def _same_type(actual, dtype: str) -> bool:
    if dtype == "timestamp":
        return actual.is_timestamp() and actual.timezone is None
    if dtype == "date":
        return actual.is_date()
    if dtype == "float64":
        return actual.is_float64()
    if dtype == "int64":
        return actual.is_int64()
    if dtype == "bool":
        return actual.is_boolean()
    return actual.is_string()


#: text that means "missing" in a non-text column of a CSV export (compared case-insensitively)
MISSING_TOKENS: tuple[str, ...] = ("", "nan", "na", "n/a", "null", "none", "#n/a")
#: how yes/no is written in exports (Chinese Excel writes 是/否)
TRUE_TOKENS: tuple[str, ...] = ("true", "t", "yes", "y", "1", "是", "真")
FALSE_TOKENS: tuple[str, ...] = ("false", "f", "no", "n", "0", "否", "假")


def _whole(value: ir.FloatingColumn) -> ir.BooleanColumn:
    # an exact integer within float precision (beyond 2**53 integers are not exact);
    # ``% 1`` rather than ``round()``, which Ibis casts to int64 and can overflow
    return (value % 1.0 == 0) & (value.abs() < 2.0**53)


def cast_column(value: ir.Column, dtype: str) -> ir.Column:
    """``value`` converted in the engine to the contract ``dtype``; unconvertible -> null.

    Text is stripped; in non-text columns the :data:`MISSING_TOKENS` are missing values, yes/no
    are read from :data:`TRUE_TOKENS`/:data:`FALSE_TOKENS`, dates accept a time part
    (``2022-01-05 00:00:00``) and ``/`` separators; NaN in a float column is missing.
    """
    actual = value.type()
    if _same_type(actual, dtype):
        return value
    if dtype == "string":
        if actual.is_floating():
            # an id column read as floats (1.0): integer-valued floats back to "1", NaN missing
            return ibis.ifelse(
                value.isnan(), ibis.null("string"),
                ibis.ifelse(
                    _whole(value), value.try_cast("int64").cast("string"), value.cast("string")
                ),
            )
        return value.cast("string")
    if actual.is_string():
        text = value.strip()
        value = ibis.ifelse(text.lower().isin(MISSING_TOKENS), ibis.null("string"), text)
        if dtype == "bool":
            low = value.lower()
            return ibis.ifelse(
                low.isin(TRUE_TOKENS), True,
                ibis.ifelse(low.isin(FALSE_TOKENS), False, ibis.null("boolean")),
            )
        if dtype == "date":
            # text such as "2022-01-05 00:00:00" is a valid date too
            return value.try_cast("timestamp").date()
    elif dtype == "date" and actual.is_timestamp():
        return value.date()
    elif dtype == "timestamp" and actual.is_date():
        return value.cast("timestamp")
    elif dtype == "int64" and actual.is_floating():
        # 4.0 (an integer column with gaps, stored as float) is 4; 4.5 is not an integer
        return ibis.ifelse(_whole(value), value.try_cast("int64"), ibis.null("int64"))
    out = value.try_cast(IBIS_TYPES[dtype])
    if dtype == "float64":
        out = ibis.ifelse(out.isnan(), ibis.null("float64"), out)
    return out


def conform(raw: ir.Table, table: str) -> ir.Table:
    """The engine table ``raw`` with the contract's column types for ``table``.

    Contract columns are cast in the engine (values that do not convert become null; the
    ``parse`` rule of :func:`promo_analysis.validate` counts them). Extra columns are kept
    unchanged; the column order is the table's.
    """
    spec = _spec(table)
    casts = {
        name: cast_column(raw[name], col.dtype).name(name)
        for name, col in spec.columns.items()
        if name in raw.columns and not _same_type(raw[name].type(), col.dtype)
    }
    if not casts:
        return raw
    return raw.mutate(**casts)
