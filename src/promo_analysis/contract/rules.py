"""Contract rules, each an engine (Ibis) expression selecting the rows that break it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import ibis.expr.types as ir

from promo_analysis.contract.spec import CONTRACT, _same_type, cast_column

if TYPE_CHECKING:
    from promo_analysis.dataset import Dataset

__all__ = ["parse_failures", "parse_failing_rows"]


def parse_failing_rows(raw: ir.Table, table: str, column: str) -> ir.Table:
    """Rows of ``raw`` whose ``column`` has a value that does not convert to its contract type."""
    dtype = CONTRACT[table].columns[column].dtype
    value = raw[column]
    cast = cast_column(value, dtype)
    present = value.notnull()
    if value.type().is_string():
        # blank text is a missing value, not a bad one
        present = present & (value.strip() != "")
    return raw.filter(present & cast.isnull())


def _cast_columns(raw: ir.Table, table: str) -> list[str]:
    spec = CONTRACT[table]
    return [
        c for c, col in spec.columns.items()
        if c in raw.columns and not _same_type(raw[c].type(), col.dtype)
    ]


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
