"""Report parameters: parsing and validation, done before any kernel starts.

A bad parameter must fail in the orchestrating process with a message that says what is wrong,
not as a traceback in one region's notebook after a kernel has started.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd

__all__ = [
    "Period",
    "ReportParameterError",
    "LANGS",
    "parse_period",
    "compare_period",
    "check_region_ids",
    "safe_child",
]

#: Label languages a report can be rendered in (names always show both).
LANGS = ("zh", "en")

#: A region id that can safely name a file: letters, digits, '_' and '-' (no dots, no slashes).
_REGION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


class ReportParameterError(ValueError):
    """A report parameter is invalid; raised before any notebook kernel starts."""


@dataclass(frozen=True)
class Period:
    """An inclusive date range ``start .. end``."""

    start: date
    end: date

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ReportParameterError(
                f"period end {self.end} is before its start {self.start}"
            )

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def label(self) -> str:
        return f"{self.start:%Y-%m-%d} – {self.end:%Y-%m-%d}"

    def as_strings(self) -> tuple[str, str]:
        return (f"{self.start:%Y-%m-%d}", f"{self.end:%Y-%m-%d}")


def _to_date(value: object, name: str) -> date:
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError) as err:
        raise ReportParameterError(f"{name}={value!r} is not a date (use YYYY-MM-DD)") from err
    if pd.isna(ts):
        raise ReportParameterError(f"{name}={value!r} is not a date (use YYYY-MM-DD)")
    return ts.date()


def parse_period(start: object, end: object) -> Period:
    """A :class:`Period` from two date-like values (``"2022-01-01"``, ``date``, ``Timestamp``)."""
    return Period(_to_date(start, "period_start"), _to_date(end, "period_end"))


def compare_period(period: Period, compare_to: str | None) -> Period | None:
    """The period a report compares with.

    ``"previous_year"`` (default) is the same dates one year earlier; ``"none"`` or None means
    no comparison; ``"YYYY-MM-DD..YYYY-MM-DD"`` is an explicit range.
    """
    if compare_to is None or str(compare_to).lower() in ("none", ""):
        return None
    text = str(compare_to)
    if text == "previous_year":
        one_year = pd.DateOffset(years=1)
        return Period(
            (pd.Timestamp(period.start) - one_year).date(),
            (pd.Timestamp(period.end) - one_year).date(),
        )
    if ".." in text:
        a, b = text.split("..", 1)
        return parse_period(a, b)
    raise ReportParameterError(
        f"compare_to={compare_to!r} is not understood; use 'previous_year', 'none' or "
        "'YYYY-MM-DD..YYYY-MM-DD'"
    )


def check_region_ids(requested: list[str], known: list[str]) -> list[str]:
    """Validate requested region ids against the dataset's regions; returns them de-duplicated.

    Raises
    ------
    ReportParameterError
        For an id that is not a plain region id (e.g. ``../x``) or that the dataset lacks,
        listing the known ones.
    """
    out: list[str] = []
    for region in requested:
        if not isinstance(region, str) or not _REGION_ID.match(region):
            raise ReportParameterError(
                f"region {region!r} is not a valid region id (letters, digits, '_' and '-' "
                f"only); known regions: {', '.join(known)}"
            )
        if region not in known:
            raise ReportParameterError(
                f"unknown region {region!r}; the dataset has: {', '.join(known)}"
            )
        if region not in out:
            out.append(region)
    if not out:
        raise ReportParameterError(f"no region to report on; the dataset has: {', '.join(known)}")
    return out


def safe_child(folder: Path, name: str) -> Path:
    """``folder / name``, refusing any name that would resolve outside ``folder``."""
    base = Path(folder).resolve()
    target = (base / name).resolve()
    if target.parent != base:
        raise ReportParameterError(f"{name!r} would write outside {base}; refused")
    return target
