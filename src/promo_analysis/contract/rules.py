"""The rules of data contract v1, each an engine (Ibis) predicate over one table's rows.

A rule belongs to the table whose rows break it (a shipment that redeems an expired coupon
breaks a ``shipments`` rule). Rules are evaluated on a *check table*: the raw table with its
contract columns converted (:func:`~promo_analysis.contract.spec.conform`), the raw text of
converted columns kept as ``__raw_<column>``, the number of rows sharing the key
(``__n_key``) and, for shipments, the attributes of the redeemed coupon (``__coupon_*``). All
predicates of a table are counted in one engine query; nothing pulls a whole table into pandas.

Rule names (the ``rule`` column of a validation report):

========================  ================================================================
``missing_table``         a required table (regions, customers, shipments) is absent
``missing_column``        a contract column is absent from a table that is present
``parse``                 a value does not convert to the column's contract type
``not_null``              a value is missing in a column that must not have missing values
``category``              a value outside the column's vocabulary
``unique_key``            rows sharing a key (every row of a duplicated key fails)
``foreign_key``           a value with no matching row in the referenced table
(table-specific)          see :data:`ROW_RULES`
========================  ================================================================
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import ibis
import ibis.expr.types as ir

from promo_analysis.contract.spec import CONTRACT, MISSING_TOKENS, _same_type, cast_column
from promo_analysis.features.aggregates import bucket

if TYPE_CHECKING:
    from promo_analysis.dataset import Dataset

__all__ = [
    "Rule",
    "ROW_RULES",
    "MONEY_TOLERANCE",
    "MISSING_TOKENS",
    "check_table",
    "table_rules",
    "parse_failures",
    "key_values",
    "failing",
    "bucket",
    "DERIVED",
]

#: ``revenue = list_price - discount`` and ``discount = face_value`` hold within this (yuan).
MONEY_TOLERANCE = 0.01
_EPS = 1e-9  # float noise: 0.1 + 0.2 != 0.3
#: the characters Ibis's ``strip()`` removes on DuckDB and Spark (literal, not regex escapes:
#: ``\v`` means a different class in Java's regexes)
_BLANK = " \t\n\r\x0b\x0c"

Predicate = Callable[[ir.Table, Mapping[str, ir.Table]], ir.BooleanValue]


@dataclass(frozen=True)
class Rule:
    """One contract rule of one table.

    ``predicate(check, tables)`` is True on the rows of ``check`` (the table's check table)
    that break the rule; ``tables`` are the dataset's conformed tables (for foreign keys).
    ``show`` names the check-table column whose value is shown in examples.

    ``partition_by`` names a column of ``table`` on which the rule can be evaluated hash
    partition by hash partition (see :func:`bucket`): rows whose values differ in it never
    affect each other's result, and the rule never fails on a row where it is missing.
    ``ref_keys`` are the ``(table, column)`` pairs of referenced tables that must be
    partitioned on the same values, and ``uses`` the derived check-table columns the rule
    reads (names in :data:`DERIVED`).
    """

    table: str
    rule: str
    column: str
    message: str
    needs: tuple[str, ...]
    predicate: Predicate
    show: str | None = None
    refs: tuple[str, ...] = ()
    partition_by: str | None = None
    ref_keys: tuple[tuple[str, str], ...] = ()
    uses: tuple[str, ...] = ()


def _missing(value: ir.Column, dtype: str) -> ir.BooleanValue:
    """Missing: null, blank text, NaN, or (in a non-text column) a token such as 'NA'."""
    out = value.isnull()
    t = value.type()
    if t.is_string():
        if dtype == "string":
            # blank = nothing but the characters strip() removes; one regex match costs a
            # sixth of lower(trim(x)) = '' (two string copies per row; measured on DuckDB).
            # Every blank text sorts below "!" (all of _BLANK are below it, and "" is too),
            # so the regex runs only on those rows: a comparison of the inlined prefix
            # instead of a regex call per row (3x less CPU per column at 10 M rows).
            out = out | (value < "!").ifelse(value.re_search(f"^[{_BLANK}]*$"), False)
        else:
            out = out | value.strip().lower().isin(MISSING_TOKENS)
    elif t.is_floating():
        out = out | value.isnan()
    return out


def _fails(expr: ir.BooleanValue) -> ir.BooleanValue:
    # a comparison with a missing value is not a failure of that rule (not_null/parse cover it)
    return expr.fill_null(False)


# ----------------------------------------------------------------------- table-specific rules
def _r(table, rule, column, message, needs, predicate, refs=(), show=None, *,
       partition_by=None, ref_keys=(), uses=()) -> Rule:
    return Rule(table, rule, column, message, tuple(needs), predicate, show, tuple(refs),
                partition_by, tuple(ref_keys), tuple(uses))


# rules on the redeemed coupon: all shipments of one coupon id and that coupon's row
_BY_COUPON = {"partition_by": "coupon_id", "ref_keys": (("coupons", "coupon_id"),),
              "uses": ("coupon",)}


ROW_RULES: tuple[Rule, ...] = (
    _r("shipments", "list_price_nonnegative", "list_price", "list_price must be >= 0 yuan",
       ["list_price"], lambda t, _: t.list_price < 0, show="list_price"),
    _r("shipments", "discount_range", "discount", "discount must be in [0, list_price]",
       ["discount", "list_price"],
       # a negative list_price is its own rule; don't report it twice
       lambda t, _: (t.discount < 0) | ((t.list_price >= 0) & (t.discount > t.list_price + _EPS)),
       show="discount"),
    _r("shipments", "revenue_formula", "revenue",
       f"revenue must equal list_price - discount (within {MONEY_TOLERANCE} yuan)",
       ["revenue", "list_price", "discount"],
       lambda t, _: (t.revenue - (t.list_price - t.discount)).abs() > MONEY_TOLERANCE + _EPS,
       show="revenue"),
    _r("shipments", "coupon_redeemed_once", "coupon_id",
       "a coupon is redeemed at most once (every shipment of a reused coupon fails)",
       ["coupon_id"], lambda t, _: t.__coupon_uses > 1, show="coupon_id",
       partition_by="coupon_id", uses=("coupon_uses",)),
    _r("shipments", "coupon_validity", "sent_at",
       "a coupon is redeemed inside its validity (issued_at <= sent_at <= expires_at)",
       ["sent_at", "coupon_id"],
       lambda t, _: (t.sent_at < t.__coupon_issued_at) | (t.sent_at > t.__coupon_expires_at),
       refs=["coupons"], show="coupon_id", **_BY_COUPON),
    _r("shipments", "coupon_threshold", "list_price",
       "a coupon is redeemed only on a shipment with list_price >= the coupon's threshold",
       ["list_price", "coupon_id"],
       lambda t, _: t.list_price < t.__coupon_threshold - _EPS, refs=["coupons"],
       show="coupon_id", **_BY_COUPON),
    _r("shipments", "coupon_discount", "discount",
       f"the discount of a coupon shipment equals the coupon's face_value "
       f"(within {MONEY_TOLERANCE} yuan)",
       ["discount", "coupon_id"],
       lambda t, _: (t.discount - t.__coupon_face_value).abs() > MONEY_TOLERANCE + _EPS,
       refs=["coupons"], show="coupon_id", **_BY_COUPON),
    _r("coupons", "validity_order", "expires_at", "expires_at must be >= issued_at",
       ["issued_at", "expires_at"], lambda t, _: t.expires_at < t.issued_at, show="expires_at"),
    _r("coupons", "threshold_nonnegative", "threshold", "threshold must be >= 0 yuan",
       ["threshold"], lambda t, _: t.threshold < 0, show="threshold"),
    _r("coupons", "face_value_positive", "face_value", "face_value must be > 0 yuan",
       ["face_value"], lambda t, _: t.face_value <= 0, show="face_value"),
    _r("campaigns", "date_order", "end_date", "end_date must be >= start_date",
       ["start_date", "end_date"], lambda t, _: t.end_date < t.start_date, show="end_date"),
    _r("campaigns", "coupon_threshold_nonnegative", "coupon_threshold",
       "coupon_threshold must be >= 0 yuan", ["coupon_threshold"],
       lambda t, _: t.coupon_threshold < 0, show="coupon_threshold"),
    _r("campaigns", "coupon_face_value_positive", "coupon_face_value",
       "coupon_face_value must be > 0 yuan", ["coupon_face_value"],
       lambda t, _: t.coupon_face_value <= 0, show="coupon_face_value"),
    _r("campaigns", "fixed_cost_nonnegative", "fixed_cost", "fixed_cost must be >= 0 yuan",
       ["fixed_cost"], lambda t, _: t.fixed_cost < 0, show="fixed_cost"),
    _r("survey", "weight_positive", "weight", "weight must be > 0", ["weight"],
       lambda t, _: t.weight <= 0, show="weight"),
    _r("survey", "satisfaction_range", "satisfaction", "satisfaction must be in 1..5",
       ["satisfaction"], lambda t, _: (t.satisfaction < 1) | (t.satisfaction > 5),
       show="satisfaction"),
)


# ----------------------------------------------------------------------- check tables
def _cast_columns(raw: ir.Table, table: str) -> list[str]:
    spec = CONTRACT[table]
    return [
        c for c, col in spec.columns.items()
        if c in raw.columns and not _same_type(raw[c].type(), col.dtype)
    ]


def _key_counts(t: ir.Table, key: list[str], name: str, base: ir.Table | None = None) -> ir.Table:
    """``t`` with ``name`` = the number of rows of ``base`` (default ``t``) sharing its
    (non-missing) ``key``, or null when the key is unique or missing.

    Only the duplicated keys are joined back: the join's hash table then holds a handful of
    rows instead of one per distinct key (at 10 M shipments, 10 M shipment ids), and ``> 1``
    comparisons treat the nulls as passing. Counting on ``base`` -- the conformed table, not
    ``t`` with an earlier count joined in -- keeps each count a single scan of the table.
    """
    src = t if base is None else base
    keyed = src.filter([src[k].notnull() for k in key])
    if len(key) == 1:
        # pre-filter on a 64-bit hash of the key (DuckDB; 32-bit on Spark): counting
        # integers instead of strings takes 2/3 of the memory and CPU (10 M shipment ids:
        # 0.74 vs 1.14 GB, 3.0 vs 4.9 CPU-s). Rows of a duplicated key share its hash, so
        # counting the exact key on the rows whose hash repeats finds every duplicate; on
        # data with unique keys that set is (up to a rare collision) empty.
        h = keyed[key[0]].hash()
        hashes = keyed.select(__h=h).group_by("__h").agg(__n=lambda s: s.count())
        keyed = keyed.filter(h.isin(hashes.filter(hashes.__n > 1).__h))
    counts = keyed.group_by(key).agg(**{name: keyed.count()})
    counts = counts.filter(counts[name] > 1)
    counts = counts.rename({f"__k_{k}": k for k in key})
    joined = t.left_join(counts, [t[k] == counts[f"__k_{k}"] for k in key])
    return joined.drop(*[f"__k_{k}" for k in key])


def _coupon_attributes(coupons: ir.Table) -> ir.Table | None:
    needed = {"coupon_id", "issued_at", "expires_at", "threshold", "face_value"}
    if not needed <= set(coupons.columns):
        return None
    c = coupons.filter(coupons.coupon_id.notnull())
    attrs = c.group_by("coupon_id").agg(
        __coupon_rows=c.count(),
        __coupon_issued_at=c.issued_at.min(),
        __coupon_expires_at=c.expires_at.max(),
        __coupon_threshold=c.threshold.max(),
        __coupon_face_value=c.face_value.min(),
    )
    # attributes only of coupons with a unique id (for them min = max = the value): a
    # duplicated coupon id is the coupons table's unique_key violation, and its attributes
    # are ambiguous. Every id is kept: ``__coupon_rows`` is the foreign key of
    # shipments.coupon_id (null = no such coupon), so one hash table over the coupons
    # serves both instead of a second one for ``isin``.
    one = attrs.__coupon_rows == 1
    attrs = attrs.mutate(**{
        k: one.ifelse(attrs[k], ibis.null(attrs[k].type()))
        for k in ("__coupon_issued_at", "__coupon_expires_at", "__coupon_threshold",
                  "__coupon_face_value")
    })
    return attrs.rename(__coupon_key="coupon_id")


#: the derived columns of a check table, by the name rules list in ``Rule.uses``:
#: ``key`` -> ``__n_key``; ``coupon_uses`` -> ``__coupon_uses``; ``coupon`` -> the redeemed
#: coupon's ``__coupon_*`` attributes and ``__coupon_rows`` (shipments only)
DERIVED = ("key", "coupon_uses", "coupon")


def check_table(
    raw: ir.Table,
    table: str,
    tables: Mapping[str, ir.Table],
    derived: tuple[str, ...] = DERIVED,
    partition: tuple[str, int, int] | None = None,
) -> ir.Table:
    """The table on which ``table``'s rules are evaluated (see the module docstring).

    Parameters
    ----------
    raw : ibis Table
        The table as read (any extra columns, e.g. a quarantine row id, are carried along).
    table : str
    tables : mapping
        The dataset's conformed tables (``coupons`` is joined to ``shipments``).
    derived : tuple of str
        Which derived columns to add (names in :data:`DERIVED`; default all). Each costs a
        group-by or join over the table, so a query that needs none should not build them.
    partition : (column, n, p), optional
        Keep only the rows whose conformed ``column`` is present and in hash partition ``p``
        of ``n`` (:func:`bucket`), before the derived columns are computed. For the rules
        whose ``partition_by`` is ``column``, evaluated with the referenced tables in
        ``tables`` restricted to the same partition, the failing rows of all ``n``
        partitions are exactly the failing rows of the whole table.
    """
    from promo_analysis.contract.spec import conform

    unknown = set(derived) - set(DERIVED)
    if unknown:
        raise ValueError(f"unknown derived column set(s) {sorted(unknown)}; use {DERIVED}")
    spec = CONTRACT[table]
    copies = {f"__raw_{c}": raw[c] for c in _cast_columns(raw, table)}
    t = base = conform(raw.mutate(**copies) if copies else raw, table)
    if partition is not None:
        column, n, p = partition
        t = base = t.filter(t[column].notnull() & (bucket(t[column], n) == p))
    if "key" in derived and all(k in t.columns for k in spec.key):
        t = _key_counts(t, list(spec.key), "__n_key", base)
    if table == "shipments" and "coupon_id" in t.columns:
        if "coupon_uses" in derived:
            t = _key_counts(t, ["coupon_id"], "__coupon_uses", base)
        coupons = tables.get("coupons")
        attrs = _coupon_attributes(coupons) if coupons is not None else None
        if attrs is not None and "coupon" in derived:
            t = t.left_join(attrs, t.coupon_id == attrs.__coupon_key).drop("__coupon_key")
    return t


#: a foreign key into a table more than this many times bigger is looked up from this
#: table's side (see :func:`table_rules`)
SMALL_CHILD = 10
#: foreign keys whose referenced rows the check table joins in: (table, column) -> the
#: joined column that is null when no referenced row matches
_JOINED_REFERENCES = {("shipments", "coupon_id"): "__coupon_rows"}


def table_rules(
    table: str,
    check: ir.Table,
    present: Mapping[str, ir.Table],
    rows: Mapping[str, int] | None = None,
) -> tuple[list[Rule], list[tuple[str, str, str, str]]]:
    """The rules that apply to ``table`` given the columns and tables present.

    Returns ``(rules, skipped)`` where ``skipped`` lists ``(table, column, rule, reason)`` for
    rules that cannot be evaluated (an optional referenced table is absent). ``rows`` (rows
    per table, optional) only chooses how a foreign key is computed: against a referenced
    table over :data:`SMALL_CHILD` times bigger, the lookup is built on ``table``'s values
    (same result).
    """
    spec = CONTRACT[table]
    cols = set(check.columns)
    rules: list[Rule] = []
    skipped: list[tuple[str, str, str, str]] = []
    for c, col in spec.columns.items():
        if c not in cols:
            continue
        raw_c = f"__raw_{c}"
        if raw_c in cols:
            rules.append(_r(
                table, "parse", c, f"{c} must be a {col.dtype} value", [c],
                lambda t, _, c=c, raw_c=raw_c, d=col.dtype: ~_missing(t[raw_c], d)
                & t[c].isnull(),
                show=raw_c,
            ))
        if not col.nullable:
            source = raw_c if raw_c in cols else c
            rules.append(_r(
                table, "not_null", c, f"{c} must not be missing", [c],
                lambda t, _, s=source, d=col.dtype: _missing(t[s], d),
            ))
        if col.categories:
            allowed = ", ".join(col.categories)
            rules.append(_r(
                table, "category", c, f"{c} must be one of: {allowed}", [c],
                lambda t, _, c=c, cats=col.categories: ~t[c].isin(list(cats)), show=c,
            ))
        if col.references:
            ref_t, ref_c = col.references
            if ref_t not in present or ref_c not in present[ref_t].columns:
                skipped.append((table, c, "foreign_key", f"table {ref_t} is not present"))
                continue
            joined = _JOINED_REFERENCES.get((table, c))
            if joined in cols:
                # the referenced table is already joined in: no match = no such row
                predicate, uses = (lambda t, _, c=c, j=joined: t[c].notnull() & t[j].isnull(),
                                   ("coupon",))
            elif rows and rows.get(table, 0) * SMALL_CHILD < rows.get(ref_t, 0):
                # a small table referencing a big one (survey -> 38 M customers): keep only
                # the referenced keys that occur here (one pass over the big table against
                # a hash table of this table's values), then look up in those
                predicate, uses = (lambda t, tabs, c=c, ref_t=ref_t, ref_c=ref_c:
                                   t[c].notnull() & ~t[c].isin(_occurring_keys(tabs[ref_t],
                                                                                ref_c, t[c])),
                                   ())
                rules.append(_r(
                    table, "foreign_key", c, f"every {c} must exist in {ref_t}.{ref_c}", [c],
                    predicate, refs=[ref_t], show=c,
                ))
                continue
            else:
                predicate, uses = (lambda t, tabs, c=c, ref_t=ref_t, ref_c=ref_c:
                                   t[c].notnull() & ~t[c].isin(key_values(tabs[ref_t], ref_c)),
                                   ())
            rules.append(_r(
                table, "foreign_key", c, f"every {c} must exist in {ref_t}.{ref_c}", [c],
                predicate, refs=[ref_t], show=c, partition_by=c, ref_keys=[(ref_t, ref_c)],
                uses=uses,
            ))
    if "__n_key" in cols:
        rules.append(_r(
            table, "unique_key", ", ".join(spec.key),
            f"the key ({', '.join(spec.key)}) must be unique", list(spec.key),
            lambda t, _: t.__n_key > 1, partition_by=spec.key[0], uses=("key",),
        ))
    for rule in ROW_RULES:
        if rule.table != table or not set(rule.needs) <= cols:
            continue
        missing_refs = [r for r in rule.refs if r not in present]
        if missing_refs:
            skipped.append((table, rule.column, rule.rule,
                            f"table {', '.join(missing_refs)} is not present"))
            continue
        if rule.refs == ("coupons",) and "__coupon_issued_at" not in cols:
            skipped.append((table, rule.column, rule.rule, "coupons lacks required columns"))
            continue
        rules.append(rule)
    return rules, skipped


def _occurring_keys(table: ir.Table, column: str, values: ir.Column) -> ir.Column:
    """The non-missing values of ``table.column`` that occur among ``values``."""
    keys = table.filter(table[column].notnull())
    return keys.filter(keys[column].isin(values))[column]


def key_values(table: ir.Table, column: str) -> ir.Column:
    """The non-missing values of ``table.column``, for ``isin`` foreign-key checks.

    SQL's ``x NOT IN (subquery)`` is null, not true, when the subquery holds a null; without
    this filter one missing key in the referenced table would hide every broken reference.
    """
    return table.filter(table[column].notnull())[column]


def failing(rule: Rule, check: ir.Table, tables: Mapping[str, ir.Table]) -> ir.BooleanValue:
    """The rule's predicate on ``check``, with missing comparisons counted as passing."""
    return _fails(rule.predicate(check, tables))


# ----------------------------------------------------------------------- conversions only
def parse_failing_rows(raw: ir.Table, table: str, column: str) -> ir.Table:
    """Rows of ``raw`` whose ``column`` has a value that does not convert to its contract type."""
    dtype = CONTRACT[table].columns[column].dtype
    value = raw[column]
    return raw.filter(~_missing(value, dtype) & cast_column(value, dtype).isnull())


def parse_failures(ds: Dataset) -> list[tuple[str, str, int, object]]:
    """``(table, column, rows, example value)`` for every contract column with unconvertible
    values. Columns already stored with their contract type cost nothing."""
    out = []
    for table in ds.tables:
        if table not in CONTRACT:
            continue
        raw = ds.raw_table(table)
        for column in _cast_columns(raw, table):
            bad = parse_failing_rows(raw, table, column)
            n = int(bad.count().to_pandas())
            if n:
                example = bad[column].limit(1).to_pandas().iloc[0]
                out.append((table, column, n, example))
    return out
