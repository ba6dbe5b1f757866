"""Large engine results into pandas: through Arrow, sorted in Arrow.

Per-customer tables have one row per customer -- millions at national scale. Ibis's
``to_pandas`` converts such a frame column by column in Python-level code, which at 1 M rows
cost four times the query itself (measured: 8.9 vs 2.0 CPU seconds). Arrow's own conversion is
vectorised; this module applies it with the dtypes Ibis would have produced (dates as
``datetime64[s]``, timestamps as ``datetime64[ns]``), and sorts in Arrow (a parallel, stable
sort; cheaper than pandas' object-string sort and than an ``ORDER BY`` in the engine).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
import pyarrow as pa

__all__ = ["to_frame", "arrow_to_frame"]


def _target_type(t: pa.DataType) -> pa.DataType | None:
    if pa.types.is_date(t):
        return pa.timestamp("s")
    if pa.types.is_timestamp(t) and t.unit != "ns":
        return pa.timestamp("ns", tz=t.tz)
    return None


def to_frame(expr: Any, sort_by: Sequence[str] = ()) -> pd.DataFrame:
    """The result of Ibis table expression ``expr`` as a pandas DataFrame.

    Same columns and dtypes as ``expr.to_pandas()`` for flat schemas (strings as objects,
    dates ``datetime64[s]``, timestamps ``datetime64[ns]``), except that integer columns with
    nulls are always float64 (Ibis gives objects for some of them); rows sorted by ``sort_by``
    (ascending, nulls last, stable), with a fresh RangeIndex.
    """
    return arrow_to_frame(expr.to_pyarrow(), sort_by)


def arrow_to_frame(table: pa.Table, sort_by: Sequence[str] = ()) -> pd.DataFrame:
    """Arrow ``table`` (consumed: do not use it afterwards) as pandas, with the dtypes and sort
    of :func:`to_frame`; e.g. for a table the engine wrote to Parquet."""
    if sort_by:
        table = table.sort_by([(c, "ascending") for c in sort_by])
    fields = []
    for f in table.schema:
        target = _target_type(f.type)
        fields.append(pa.field(f.name, target) if target is not None else f)
    schema = pa.schema(fields)
    if schema != table.schema:
        table = table.cast(schema)
    # self_destruct frees each Arrow column once converted (the table is ours alone), so the
    # peak is about one copy of the result, not two; split_blocks keeps pandas from
    # consolidating (copying) same-dtype columns into one block on the way
    return table.to_pandas(split_blocks=True, self_destruct=True)
