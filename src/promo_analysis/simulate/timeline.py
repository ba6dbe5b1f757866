"""The daily timeline of a simulated world and its calendar-driven sending weights.

Day ``d`` is ``scenario.start + d``. A weight of 1 is an ordinary weekday; the pattern comes
from :func:`promo_analysis.calendar.festival_calendar` (one calendar for the whole package).
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass

import numpy as np
import pandas as pd

from promo_analysis.calendar import festival_calendar

__all__ = ["Timeline", "calendar_weights"]

# weekday pattern of walk-in sending (Mon..Sun)
_WEEKDAY = np.array([1.08, 1.05, 1.04, 1.03, 1.05, 0.90, 0.80])


@dataclass(frozen=True)
class Timeline:
    """Days of the simulated period."""

    start: dt.date
    n_days: int

    @property
    def dates(self) -> pd.DatetimeIndex:
        return pd.date_range(self.start, periods=self.n_days, freq="D")

    def day(self, date: dt.date | str | pd.Timestamp) -> int:
        """Day index of ``date`` (may fall outside ``[0, n_days)``)."""
        return int((pd.Timestamp(date) - pd.Timestamp(self.start)).days)

    def year_of(self, days: np.ndarray) -> np.ndarray:
        return self.dates.year.to_numpy()[np.clip(days, 0, self.n_days - 1)]

    def year_bounds(self, year: int) -> tuple[int, int]:
        """``[first, last]`` day index of ``year`` inside the period."""
        lo = max(0, self.day(dt.date(year, 1, 1)))
        hi = min(self.n_days - 1, self.day(dt.date(year, 12, 31)))
        return lo, hi


@functools.lru_cache(maxsize=64)
def calendar_weights(tl: Timeline, region: str) -> np.ndarray:
    """Relative daily sending weight of established customers in ``region`` (read-only; one
    computation per timeline and region: the campaign normaliser asks for it many times).

    Weekday pattern; a peak in the three weeks before the Spring Festival slowdown (New-Year
    goods), a slump during the slowdown (0.35) and the official holidays (Golden Week 0.7);
    make-up workdays count as weekdays; e-commerce returns after 618 and Double 11 (+25% for a
    week). Normalised to mean 1 over the period.
    """
    dates = tl.dates
    w = _WEEKDAY[dates.weekday].copy()
    years = sorted(set(dates.year) | {dates.year.min() - 1, dates.year.max() + 1})
    import warnings

    with warnings.catch_warnings():
        # years outside chinese_calendar's range only lose official holidays (outside our span)
        warnings.simplefilter("ignore", UserWarning)
        cal = festival_calendar(years, region=region)
    day = ((cal["date"] - pd.Timestamp(tl.start)).dt.days).to_numpy()
    inside = (day >= 0) & (day < tl.n_days)

    def mark(kind: str, key: str | None = None) -> np.ndarray:
        m = inside & (cal["kind"].to_numpy() == kind)
        if key is not None:
            m &= cal["key"].to_numpy() == key
        return np.unique(day[m])

    w[mark("workday")] = 1.0
    w[mark("holiday")] *= 0.7
    slow = mark("slowdown")
    w[slow] = 0.35
    # the slowdown's first day of each year: New-Year goods peak in the 21 days before it
    for s in slow[np.r_[True, np.diff(slow) > 1]] if slow.size else []:
        lo = max(0, s - 21)
        w[lo:s] *= 1.3
    for key in ("shopping_618", "double_11"):
        for d in mark("festival", key):
            w[d + 1 : min(tl.n_days, d + 8)] *= 1.25
    w = w / w.mean()
    w.flags.writeable = False
    return w
