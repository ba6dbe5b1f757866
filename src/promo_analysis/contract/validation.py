"""Validation of a dataset against the data contract: :func:`validate` and its report."""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import ibis
import pandas as pd

from promo_analysis.contract.rules import Rule, check_table, failing, table_rules
from promo_analysis.contract.spec import CONTRACT, REQUIRED_TABLES, TABLE_ORDER
from promo_analysis.features.aggregates import bucket

if TYPE_CHECKING:
    from promo_analysis.dataset import Dataset

__all__ = [
    "DataContractError", "ValidationReport", "validate", "ISSUE_COLUMNS", "N_EXAMPLES",
    "PARTITION_ROWS",
]

#: columns of :attr:`ValidationReport.issues`
ISSUE_COLUMNS = ["table", "column", "rule", "rows_failing", "examples", "message"]
#: how many example rows an issue shows
N_EXAMPLES = 5
#: rows a validation query may put into hash tables (group-bys on a key, foreign-key lookups,
#: the coupon join). A rule group over more rows is evaluated in hash partitions of its key,
#: one query each, so that peak memory stays bounded: at 50 M shipments the one-query plan
#: peaked at 12 GB. Measured at 50 M (load ~10): 16 M -> 2.26 GB peak / 288 CPU-s, 24 M ->
#: 2.94 GB / 247 CPU-s (fewer partitions, fewer re-scans); the target is < 4 GB.
PARTITION_ROWS = 24_000_000
#: rules that make a dataset unusable (nothing can be checked or quarantined without them)
STRUCTURAL_RULES = ("missing_table", "missing_column")


class DataContractError(ValueError):
    """A dataset breaks the data contract; the message lists every failing rule."""


@dataclass
class ValidationReport:
    """What :func:`validate` found.

    Attributes
    ----------
    issues : DataFrame
        One row per failing rule: ``table, column, rule, rows_failing, examples, message``;
        ``examples`` is a list of strings ``"<key>: <value>"`` of up to five failing rows.
        Empty when the dataset satisfies the contract.
    rows : dict
        Rows per table checked.
    rules_checked : dict
        Number of rules evaluated per table.
    skipped : DataFrame
        Rules that could not be evaluated (``table, column, rule, reason``), e.g. the
        foreign key of ``shipments.coupon_id`` when the optional ``coupons`` table is absent.
    name : str
        The dataset's name.
    """

    issues: pd.DataFrame
    rows: dict[str, int] = field(default_factory=dict)
    rules_checked: dict[str, int] = field(default_factory=dict)
    skipped: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=["table", "column", "rule", "reason"])
    )
    name: str = ""

    @property
    def ok(self) -> bool:
        """True when no rule fails."""
        return self.issues.empty

    @property
    def unusable(self) -> bool:
        """True when a required table or a contract column is missing."""
        return bool(self.issues["rule"].isin(STRUCTURAL_RULES).any())

    def summary(self) -> pd.DataFrame:
        """Per table: rows, rules checked, rules failing, and the status."""
        tables = [t for t in TABLE_ORDER if t in self.rows or t in set(self.issues["table"])]
        out = []
        for t in tables:
            mine = self.issues[self.issues["table"] == t]
            if t not in self.rows:
                status = "missing"
            else:
                status = "ok" if mine.empty else "violations"
            out.append(
                {
                    "table": t,
                    "rows": self.rows.get(t),
                    "rules_checked": self.rules_checked.get(t, 0),
                    "rules_failing": len(mine),
                    "status": status,
                }
            )
        return pd.DataFrame(out).set_index("table")

    def to_text(self) -> str:
        """The report as readable lines (what the CLI prints)."""
        n_tables = len(self.rows)
        n_rules = sum(self.rules_checked.values())
        head = f"dataset {self.name!r}: {n_tables} table(s), {n_rules} rule(s) checked"
        if self.ok:
            lines = [head + ": OK, the data contract holds."]
        else:
            lines = [head + f": {len(self.issues)} rule(s) failing"]
        for row in self.issues.itertuples(index=False):
            where = f"{row.table}.{row.column}" if row.column else row.table
            count = "" if pd.isna(row.rows_failing) else f": {int(row.rows_failing):,} row(s)"
            lines.append(f"  [{row.rule}] {where}{count} -- {row.message}")
            if row.examples:
                lines.append(f"      e.g. {'; '.join(row.examples)}")
        if not self.skipped.empty:
            lines.append("not checked:")
            for row in self.skipped.itertuples(index=False):
                lines.append(f"  [{row.rule}] {row.table}.{row.column}: {row.reason}")
        return "\n".join(lines)

    def raise_if_failed(self) -> None:
        """Raise :class:`DataContractError` listing every failing rule, if any fails."""
        if not self.ok:
            raise DataContractError(self.to_text())

    def __str__(self) -> str:
        return self.to_text()

    def __repr__(self) -> str:
        if self.ok:
            return f"<ValidationReport {self.name!r}: ok, {len(self.rows)} tables>"
        tables = ", ".join(dict.fromkeys(self.issues["table"]))
        return f"<ValidationReport {self.name!r}: {len(self.issues)} rule(s) failing in {tables}>"

    def _repr_html_(self) -> str:
        title = f"Validation of {html.escape(self.name)}: " + (
            "the data contract holds" if self.ok else f"{len(self.issues)} rule(s) failing"
        )
        parts = [f"<div><strong>{title}</strong>", self.summary().to_html()]
        if not self.ok:
            shown = self.issues.assign(examples=self.issues["examples"].map("; ".join))
            parts.append(shown.to_html(index=False))
        return "".join(parts) + "</div>"


def _fmt_shown(v: Any, quoted: bool) -> str:
    if v is None or (isinstance(v, float) and pd.isna(v)):
        return "missing"
    return repr(v) if quoted else str(v)


def fetch_examples(check, rules: list[Rule], tables, key: tuple[str, ...]) -> dict[int, list]:
    """Up to :data:`N_EXAMPLES` failing rows per rule, for all ``rules`` in one engine query.

    One ``UNION ALL`` of small limited selects: compiling one statement costs far less than
    one per rule, and every part stops after a few rows.
    """
    if not rules:
        return {}
    keys = [k for k in key if k in check.columns]
    parts = []
    for i, rule in enumerate(rules):
        sel = check.filter(failing(rule, check, tables))
        cols = {f"__k{j}": sel[k].cast("string") for j, k in enumerate(keys)}
        if rule.show:
            v = sel[rule.show]
            cols["__v"] = v.cast("string")
            quoted = v.type().is_string()
        else:
            cols["__v"] = ibis.null("string")
            quoted = False
        parts.append(
            sel.select(__i=ibis.literal(i), __q=ibis.literal(quoted), **cols).limit(N_EXAMPLES)
        )
    frame = ibis.union(*parts, distinct=False).to_pandas()
    out: dict[int, list] = {i: [] for i in range(len(rules))}
    for d in frame.to_dict("records"):
        ids = [d[f"__k{j}"] for j in range(len(keys))]
        ident = "/".join("(missing id)" if pd.isna(i) else str(i) for i in ids) or "(row)"
        rule = rules[int(d["__i"])]
        text = f"{ident}: {_fmt_shown(d['__v'], bool(d['__q']))}" if rule.show else ident
        out[int(d["__i"])].append(text)
    return out


def structural_issues(ds: Dataset) -> list[dict[str, Any]]:
    """Missing required tables and missing contract columns."""
    issues = []
    for t in REQUIRED_TABLES:
        if not ds.has(t):
            issues.append(
                {
                    "table": t, "column": "", "rule": "missing_table", "rows_failing": None,
                    "examples": [], "message": f"required table {t} is missing",
                }
            )
    for t in TABLE_ORDER:
        if not ds.has(t):
            continue
        have = set(ds.raw_table(t).columns)
        for c in CONTRACT[t].columns:
            if c not in have:
                issues.append(
                    {
                        "table": t, "column": c, "rule": "missing_column", "rows_failing": None,
                        "examples": [],
                        "message": f"column {c} is missing (columns present: "
                        f"{', '.join(sorted(have))})",
                    }
                )
    return issues


def evaluate(ds: Dataset, table: str, rules: list[Rule], check, tables) -> dict[str, int]:
    """Count the failing rows of every rule of ``table`` in one engine query."""
    if not rules:
        return {}
    aggs = {
        f"r{i}": failing(rule, check, tables).cast("int64").sum() for i, rule in enumerate(rules)
    }
    aggs["__rows"] = check.count()
    row = check.aggregate(**aggs).to_pandas().iloc[0]
    counts = {f"r{i}": int(row[f"r{i}"] or 0) for i in range(len(rules))}
    counts["__rows"] = int(row["__rows"])
    return counts


@dataclass
class _Group:
    """Rules of one table evaluated together: ``n`` queries, one per hash partition of
    ``column`` (``None``: one query over the whole table)."""

    column: str | None
    rules: list[Rule]
    n: int = 1
    size: int = 0


def _hashed_rows(table: str, rule: Rule, rows: dict[str, int]) -> int:
    # a foreign key hashes the referenced table's keys (``table`` only probes them); a
    # count per key of ``table`` hashes ``table``'s keys
    own = rows.get(table, 0) if {"key", "coupon_uses"} & set(rule.uses) else 0
    return max([own] + [rows.get(ref_t, 0) for ref_t, _ in rule.ref_keys])


def plan(table: str, rules: list[Rule], rows: dict[str, int]) -> list[_Group]:
    """How the rules of ``table`` are split into queries.

    A rule's size is the most rows any of its hash tables may hold: the referenced table's
    for a foreign key (a small vocabulary such as ``regions`` costs nothing), ``table``'s
    own for a count per key. Rules that can be partitioned (``partition_by``) are
    grouped by that column; the smallest groups share the query of the row-level rules as
    long as their sizes add up to at most :data:`PARTITION_ROWS` (one scan, as few queries
    as possible on small data); every other group gets queries of its own, in
    ``ceil(size / PARTITION_ROWS)`` hash partitions, so no two big hash tables are alive at
    once.
    """
    base = _Group(None, [r for r in rules if r.partition_by is None])
    keyed: dict[str, _Group] = {}
    for r in rules:
        if r.partition_by is None:
            continue
        g = keyed.setdefault(r.partition_by, _Group(r.partition_by, []))
        g.rules.append(r)
        g.size = max(g.size, _hashed_rows(table, r, rows))
    groups = [base]
    budget = PARTITION_ROWS
    for g in sorted(keyed.values(), key=lambda g: g.size):
        if g.size <= budget:
            base.rules += g.rules
            budget -= g.size
        else:
            g.n = max(1, math.ceil(g.size / PARTITION_ROWS))
            groups.append(g)
    return [g for g in groups if g.rules]


def _partition_tables(tables, group: _Group, p: int) -> dict:
    """``tables`` with every table the group references by key restricted to partition ``p``
    of the referenced column."""
    out = dict(tables)
    refs = {ref_t: ref_c for r in group.rules for ref_t, ref_c in r.ref_keys}
    for ref_t, ref_c in refs.items():
        if ref_t in out:
            ref = out[ref_t]
            out[ref_t] = ref.filter(bucket(ref[ref_c], group.n) == p)
    return out


def _group_checks(ds: Dataset, table: str, group: _Group, tables):
    """``(check table, tables)`` of each query of ``group``, lazily."""
    derived = tuple(dict.fromkeys(u for r in group.rules for u in r.uses))
    raw = ds.raw_table(table)
    for p in range(group.n):
        if group.column is None or group.n == 1:
            yield check_table(raw, table, tables, derived=derived), tables
        else:
            tabs = _partition_tables(tables, group, p)
            part = (group.column, group.n, p)
            yield check_table(raw, table, tabs, derived=derived, partition=part), tabs


def validate(ds: Dataset, strict: bool = False) -> ValidationReport:
    """Check ``ds`` against data contract v1.

    Every rule runs in the engine: failing rows are counted and up to five examples are
    fetched per failing rule; the table itself never leaves the engine. The row-level rules
    of a table are counted in one query; rules that need a big hash table (unique keys,
    foreign keys into big tables, the redeemed coupon) run in queries of their own, split
    into hash partitions of their key when the tables involved exceed
    :data:`PARTITION_ROWS` rows (:func:`plan`), which bounds the engine's memory.

    Parameters
    ----------
    ds : Dataset
    strict : bool
        Raise :class:`DataContractError` (listing every failing rule) instead of returning a
        report with issues.

    Returns
    -------
    ValidationReport
    """
    issues = structural_issues(ds)
    rows: dict[str, int] = {}
    checked: dict[str, int] = {}
    skipped: list[tuple[str, str, str, str]] = []
    tables = {t: ds.table(t) for t in TABLE_ORDER if ds.has(t)}
    # row counts first: they decide how the rules are split into queries (metadata only
    # for Parquet)
    sizes = {t: int(ds.raw_table(t).count().to_pandas()) for t in tables}
    for t in TABLE_ORDER:
        if not ds.has(t):
            continue
        rules, skip = table_rules(t, check_table(ds.raw_table(t), t, tables), tables, sizes)
        skipped += skip
        rows[t] = sizes[t]
        checked[t] = len(rules)
        counts: dict[int, int] = {}
        examples: dict[int, list] = {}
        for group in plan(t, rules, sizes):
            idx = [rules.index(r) for r in group.rules]
            found = dict.fromkeys(idx, 0)
            for check, tabs in _group_checks(ds, t, group, tables):
                got = evaluate(ds, t, group.rules, check, tabs)
                for j, i in enumerate(idx):
                    found[i] += got[f"r{j}"]
            counts.update(found)
            # examples: partition by partition until every failing rule has enough
            todo = [i for i in idx if found[i]]
            for i in todo:
                examples[i] = []
            for check, tabs in _group_checks(ds, t, group, tables) if todo else ():
                need = [i for i in todo if len(examples[i]) < min(N_EXAMPLES, found[i])]
                if not need:
                    break
                got = fetch_examples(check, [rules[i] for i in need], tabs, CONTRACT[t].key)
                for j, i in enumerate(need):
                    examples[i] = (examples[i] + got[j])[:N_EXAMPLES]
        for i, rule in enumerate(rules):
            if counts.get(i):
                issues.append(
                    {
                        "table": t, "column": rule.column, "rule": rule.rule,
                        "rows_failing": counts[i], "examples": examples[i],
                        "message": rule.message,
                    }
                )
    frame = pd.DataFrame(issues, columns=ISSUE_COLUMNS)
    frame["rows_failing"] = frame["rows_failing"].astype("Int64")
    report = ValidationReport(
        issues=frame,
        rows=rows,
        rules_checked=checked,
        skipped=pd.DataFrame(skipped, columns=["table", "column", "rule", "reason"]),
        name=str(ds.meta.get("name") or "unnamed"),
    )
    if strict:
        report.raise_if_failed()
    return report
