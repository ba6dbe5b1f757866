"""Generated table columns -> Arrow tables in the contract's types, or pandas frames.

The generator builds a table as a dict of columns: numpy arrays, Arrow string arrays (ids
made from integer codes with pyarrow.compute, never one Python string per row) or scalars
(one value for every row). :func:`to_arrow` turns them into an Arrow table of the contract's
types (what the writer spools and writes as Parquet, without a pandas round-trip);
:func:`to_pandas` into a pandas frame in the contract's dtypes (strings as Python objects).
Both give the same values: a Parquet file written from either is the same file.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pyarrow as pa

from promo_analysis.contract import CONTRACT

__all__ = ["ARROW_TYPES", "table_schema", "to_arrow", "to_pandas", "TableSlices"]

#: contract dtype -> Arrow type of the written files
ARROW_TYPES = {
    "string": pa.string(),
    "float64": pa.float64(),
    "int64": pa.int64(),
    "bool": pa.bool_(),
    "timestamp": pa.timestamp("us"),
    "date": pa.date32(),
}


def table_schema(table: str, df: pd.DataFrame) -> pa.Schema:
    """Contract columns with their contract types, then the extra columns as pandas has them."""
    spec = CONTRACT[table].columns
    fields = []
    for col in df.columns:
        if col in spec:
            fields.append(pa.field(col, ARROW_TYPES[spec[col].dtype]))
        else:
            fields.append(pa.Schema.from_pandas(df[[col]], preserve_index=False).field(col))
    return pa.schema(fields)


def _length(cols: dict) -> int:
    sizes = {len(v) for v in cols.values() if isinstance(v, (pa.Array, np.ndarray))}
    if len(sizes) > 1:
        raise ValueError(f"columns of unequal length: {sorted(sizes)}")
    return sizes.pop() if sizes else 0


def _arrow_column(table: str, name: str, values, n: int) -> pa.Array:
    spec = CONTRACT[table].columns
    target = ARROW_TYPES[spec[name].dtype] if name in spec else None
    if isinstance(values, pa.Array):
        arr = values
    elif isinstance(values, np.ndarray):
        if target == pa.date32() and values.dtype.kind == "M":
            days = values.astype("datetime64[D]")
            off = (values != days) & ~np.isnat(values)
            if off.any():  # Arrow's cast to date would drop the time of day silently
                raise pa.ArrowInvalid(
                    f"{name}: {int(off.sum())} value(s) with a time of day in a date column, "
                    f"e.g. {values[off][0]}"
                )
        # from_pandas: None / NaN / NaT are nulls, as pa.Table.from_pandas makes them
        arr = pa.array(values, from_pandas=True,
                       type=target if values.dtype == object else None)
    elif values is None:
        return pa.nulls(n, target or pa.null())
    else:
        arr = pa.repeat(pa.scalar(values, type=target), n)
    if target is not None and not arr.type.equals(target):
        arr = arr.cast(target)  # safe cast: ns -> us and midnight -> date lose nothing
    return arr


def to_arrow(table: str, cols: dict) -> pa.Table:
    """One Arrow table of ``table``'s contract types (extra columns keep their own type).

    A value that does not fit its column's type (a number in a string column, a time of day
    in a date column) raises: a generator bug, caught here instead of in a later read.
    """
    n = _length(cols)
    try:
        arrays = [_arrow_column(table, name, v, n) for name, v in cols.items()]
    except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
        raise TypeError(f"{table}: a generated column does not fit the contract: {err}") from None
    return pa.Table.from_arrays(arrays, names=list(cols))


def to_pandas(cols: dict) -> pd.DataFrame:
    """A pandas frame of the columns (Arrow strings become object arrays of str / None)."""
    data = {
        name: v.to_numpy(zero_copy_only=False) if isinstance(v, pa.Array) else v
        for name, v in cols.items()
    }
    return pd.DataFrame(data, copy=False)


class TableSlices:
    """A big table handed over in row slices instead of whole: ``build(lo, hi)`` gives the
    column dict of rows ``lo:hi``, so a writer holds one slice of Arrow columns at a time.

    ``stamp`` holds the values of the table's timestamp column for every row of a table
    written in month partitions (the writer derives each row's ``month`` from it).
    """

    def __init__(self, table: str, num_rows: int, build: Callable[[int, int], dict],
                 stamp: np.ndarray | None = None) -> None:
        self.table = table
        self.num_rows = int(num_rows)
        self.build = build
        self.stamp = stamp

    def rows(self, lo: int, hi: int) -> pa.Table:
        """Rows ``lo:hi`` as an Arrow table of the contract's types (see :func:`to_arrow`)."""
        return to_arrow(self.table, self.build(lo, min(hi, self.num_rows)))

    def to_pandas(self) -> pd.DataFrame:
        """All rows as a pandas frame (see :func:`to_pandas`)."""
        return to_pandas(self.build(0, self.num_rows))
