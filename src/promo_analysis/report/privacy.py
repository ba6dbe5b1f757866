"""Small-cell suppression and identifier checks for published reports.

A report is read by people outside the analysis team, so nothing in it may describe fewer than
``k`` customers (default 10) and no row-level identifier (customer, shipment, response id) may
appear in it. Suppressed cells are replaced by a visible marker, never silently removed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import pandas as pd

__all__ = [
    "DEFAULT_K",
    "suppressed_marker",
    "IDENTIFIER_COLUMNS",
    "suppress_small_cells",
    "drop_identifiers",
    "find_identifiers",
]

#: Minimum number of customers a published cell or chart group must describe.
DEFAULT_K = 10

#: Row-level identifier columns of the data contract; never copied into report inputs.
IDENTIFIER_COLUMNS = (
    "customer_id",
    "shipment_id",
    "response_id",
    "coupon_id",
    "first_coupon_id",
)


def suppressed_marker(k: int = DEFAULT_K) -> str:
    """The text a suppressed cell shows for threshold ``k`` (both languages, as reports are)."""
    return f"<{k} 已隐藏 suppressed"


def suppress_small_cells(
    table: pd.DataFrame,
    count_column: str,
    k: int = DEFAULT_K,
    columns: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Replace the cells of rows that describe fewer than ``k`` customers by a marker.

    Parameters
    ----------
    table : DataFrame
        A table about to be published; one row per group.
    count_column : str
        The column with the number of customers each row describes.
    k : int, default 10
        The minimum group size that may be shown.
    columns : sequence of str, optional
        The columns to blank in small rows (default: every column except the index, and the
        count column itself, which is blanked too so the small size is not revealed).

    Returns
    -------
    DataFrame
        A copy with object dtype in the blanked columns and a boolean column ``suppressed``.
    """
    if count_column not in table.columns:
        raise KeyError(
            f"suppress_small_cells: count column {count_column!r} not in the table "
            f"(columns: {list(table.columns)})"
        )
    if k < 1:
        raise ValueError(f"suppress_small_cells: k must be >= 1, got {k}")
    out = table.copy()
    counts = pd.to_numeric(out[count_column], errors="coerce")
    # A missing count is treated as small: publishing requires knowing the group size.
    small = counts.isna() | (counts < k)
    targets = list(columns) if columns is not None else list(out.columns)
    if count_column not in targets:
        targets.append(count_column)
    marker = suppressed_marker(k)
    for col in targets:
        if small.any():
            out[col] = out[col].astype(object)
            out.loc[small, col] = marker
    out["suppressed"] = small.to_numpy()
    return out


def drop_identifiers(data: pd.DataFrame) -> pd.DataFrame:
    """``data`` without the row-level identifier columns (:data:`IDENTIFIER_COLUMNS`)."""
    return data.drop(columns=[c for c in IDENTIFIER_COLUMNS if c in data.columns])


_DATA_URI = re.compile(r"data:[a-z]+/[a-z0-9.+-]+;base64,[A-Za-z0-9+/=\s]+", re.IGNORECASE)
_TOKEN = re.compile(r"[A-Za-z0-9_.\-]+")


def find_identifiers(text: str, identifiers: Iterable[str]) -> list[str]:
    """The identifiers that occur as whole tokens in ``text`` (embedded images are skipped).

    Used on every rendered report: a non-empty answer is a privacy breach.
    """
    stripped = _DATA_URI.sub(" ", text)
    tokens = set(_TOKEN.findall(stripped))
    # also look at sub-tokens split on punctuation ids rarely contain
    tokens |= {t for tok in list(tokens) for t in re.split(r"[.]", tok)}
    if hasattr(identifiers, "to_pylist") or hasattr(identifiers, "chunks"):
        # an Arrow array (a region's ids at national scale): the report's few thousand tokens
        # are looked up in it, instead of building a set of millions of Python strings
        import pyarrow as pa
        import pyarrow.compute as pc

        if not tokens:
            return []
        values = identifiers.cast(pa.string())
        found = values.filter(pc.is_in(values, value_set=pa.array(sorted(tokens), pa.string())))
        return sorted({str(i) for i in found.to_pylist() if i})
    ids = {str(i) for i in identifiers if i is not None and str(i)}
    return sorted(ids & tokens)
