"""China festival calendar: the one vocabulary of festival keys, campaign themes and holidays.

The keys below are the ``theme`` values of the ``campaigns`` table (data contract v1).

Sources of dates:

* lunar festivals (Spring Festival and its eve, Lantern, 三月三, Dragon Boat, Qixi, Mid-Autumn)
  are computed from the Chinese lunisolar calendar with :mod:`lunardate` (1900-2099);
* Qingming is the 清明 solar term, taken from :mod:`chinese_calendar`'s solar-term tables;
* official public holidays (放假) and make-up workdays (调休) come from the maintained
  :mod:`chinese_calendar` package, which only knows the years the State Council has announced
  (2004-2026 in version 1.11). For other years those rows are left out with a warning
  (or an error with ``strict=True``): the schedule cannot be computed, it is decreed each year;
* fixed-date festivals (元旦, 3.8, 5.1, 618, 国庆, 双十一, 双十二, 开学季 on 1 September) and
  the floating Western ones (Mother's Day = 2nd Sunday of May, Father's Day = 3rd Sunday of June).

The express *slowdown* (春节快递放缓) is the period in which couriers go home and parcel
volumes collapse: we define it as from 7 days before Spring Festival's eve (除夕) to the Lantern
Festival (元宵, lunar 1/15) inclusive -- 23 or 24 days. Industry notices ("春节不打烊") place
the start of reduced service about a week before the eve and full service after 元宵.
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Iterable

import numpy as np
import pandas as pd

__all__ = [
    "FESTIVALS",
    "CAMPAIGN_ONLY_THEMES",
    "THEMES",
    "KINDS",
    "SLOWDOWN_DAYS_BEFORE_EVE",
    "PRE_SLOWDOWN_DAYS",
    "festival_calendar",
    "calendar_features",
    "spring_festival_date",
    "official_years",
    "check_theme",
]

#: festival key -> (name_zh, name_en); festivals that ``festival_calendar`` places on dates.
FESTIVALS: dict[str, tuple[str, str]] = {
    "new_year": ("元旦", "New Year's Day"),
    "spring_festival": ("春节", "Spring Festival"),
    "lantern": ("元宵节", "Lantern Festival"),
    "womens_day": ("三八妇女节", "Women's Day"),
    "sanyuesan": ("壮族三月三", "Sanyuesan folk-song festival"),
    "qingming": ("清明节", "Qingming Festival"),
    "labour_day": ("劳动节", "Labour Day"),
    "mothers_day": ("母亲节", "Mother's Day"),
    "dragon_boat": ("端午节", "Dragon Boat Festival"),
    "shopping_618": ("618购物节", "618 shopping festival"),
    "fathers_day": ("父亲节", "Father's Day"),
    "qixi": ("七夕", "Qixi Festival"),
    "back_to_school": ("开学季", "Back to school"),
    "mid_autumn": ("中秋节", "Mid-Autumn Festival"),
    "national_day": ("国庆节", "National Day"),
    "double_11": ("双十一", "Double 11"),
    "double_12": ("双十二", "Double 12"),
}

#: themes a campaign may have that are not festivals.
CAMPAIGN_ONLY_THEMES: dict[str, tuple[str, str]] = {
    "weekend": ("周末优惠", "Weekend promotion"),
    "fresh_produce": ("生鲜寄递", "Fresh produce sending"),
    "other": ("其他", "Other"),
}

#: every allowed campaign theme -> (name_zh, name_en)
THEMES: dict[str, tuple[str, str]] = {**FESTIVALS, **CAMPAIGN_ONLY_THEMES}

#: the ``kind`` values of :func:`festival_calendar`
KINDS = ("festival", "holiday", "workday", "slowdown")

#: the express slowdown starts this many days before Spring Festival's eve (see module doc).
SLOWDOWN_DAYS_BEFORE_EVE = 7
#: length of the New-Year goods (年货) peak right before the slowdown, in days
PRE_SLOWDOWN_DAYS = 21

# chinese_calendar's holiday names -> our festival keys. Holidays it names otherwise (the
# one-off 2015 Anti-Fascist 70th anniversary day) are kept with key None so nothing is lost.
_OFFICIAL_NAME_TO_KEY = {
    "New Year's Day": "new_year",
    "Spring Festival": "spring_festival",
    "Tomb-sweeping Day": "qingming",
    "Labour Day": "labour_day",
    "Dragon Boat Festival": "dragon_boat",
    "National Day": "national_day",
    "Mid-autumn Festival": "mid_autumn",
}

# key -> (lunar month, lunar day) for lunar festivals placed on one day
_LUNAR = {
    "spring_festival": (1, 1),
    "lantern": (1, 15),
    "sanyuesan": (3, 3),
    "dragon_boat": (5, 5),
    "qixi": (7, 7),
    "mid_autumn": (8, 15),
}
# key -> (month, day) for fixed-date festivals
_FIXED = {
    "new_year": (1, 1),
    "womens_day": (3, 8),
    "labour_day": (5, 1),
    "shopping_618": (6, 18),
    "back_to_school": (9, 1),
    "national_day": (10, 1),
    "double_11": (11, 11),
    "double_12": (12, 12),
}
# festivals observed only in some regions: key -> region ids
_REGIONAL = {"sanyuesan": frozenset({"guangxi"})}

_COLUMNS = ["date", "key", "name_zh", "name_en", "kind"]


def check_theme(theme: str) -> str:
    """Return ``theme`` if it is a known campaign theme, else raise a ``ValueError`` naming it."""
    if theme not in THEMES:
        raise ValueError(
            f"unknown campaign theme {theme!r}; allowed themes (calendar.THEMES): "
            f"{', '.join(THEMES)}"
        )
    return theme


def _lunar_to_solar(year: int, month: int, day: int) -> dt.date:
    from lunardate import LunarDate

    return LunarDate(year, month, day).to_solar_date()


def spring_festival_date(year: int) -> dt.date:
    """Gregorian date of Spring Festival (lunar 1/1) that falls in Gregorian ``year``."""
    return _lunar_to_solar(int(year), 1, 1)


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> dt.date:
    first = dt.date(year, month, 1)
    offset = (weekday - first.weekday()) % 7
    return first + dt.timedelta(days=offset + 7 * (n - 1))


def official_years() -> tuple[int, int]:
    """First and last year whose official holiday schedule ``chinese_calendar`` knows."""
    import chinese_calendar as cc

    years = [d.year for d in cc.holidays]
    return min(years), max(years)


def _years(years: int | Iterable[int]) -> list[int]:
    if isinstance(years, (int, np.integer)):
        out = [int(years)]
    else:
        out = sorted({int(y) for y in years})
    if not out:
        raise ValueError("festival_calendar: `years` is empty")
    bad = [y for y in out if not 1901 <= y <= 2099]
    if bad:
        raise ValueError(
            f"festival_calendar: years {bad} outside 1901-2099, the range of the lunar "
            "calendar tables (lunardate)"
        )
    return out


def _check_region(region: str | None) -> str | None:
    if region is None:
        return None
    from .regions import REGIONS

    if region not in REGIONS:
        raise ValueError(
            f"unknown region {region!r}; expected a region_id from promo_analysis.regions "
            f"(e.g. {', '.join(list(REGIONS)[:4])}, ...)"
        )
    return region


def _festival_rows(year: int, region: str | None) -> list[tuple]:
    import chinese_calendar as cc

    rows: list[tuple] = []

    def add(day: dt.date, key: str, kind: str = "festival", zh=None, en=None) -> None:
        name_zh, name_en = FESTIVALS[key]
        rows.append((day, key, zh or name_zh, en or name_en, kind))

    for key, (m, d) in _LUNAR.items():
        if key in _REGIONAL and region not in _REGIONAL[key]:
            continue
        add(_lunar_to_solar(year, m, d), key)
    spring = spring_festival_date(year)
    eve = spring - dt.timedelta(days=1)
    add(eve, "spring_festival", zh="除夕", en="Spring Festival Eve")
    for key, (m, d) in _FIXED.items():
        add(dt.date(year, m, d), key)
    add(_nth_weekday(year, 5, 6, 2), "mothers_day")
    add(_nth_weekday(year, 6, 6, 3), "fathers_day")
    terms = cc.get_solar_terms(dt.date(year, 4, 1), dt.date(year, 4, 10))
    qingming = [d for d, name in terms if name == "清明"]
    if len(qingming) != 1:
        raise RuntimeError(f"chinese_calendar gave no single 清明 solar term for {year}")
    add(qingming[0], "qingming")
    lantern = _lunar_to_solar(year, 1, 15)
    start = eve - dt.timedelta(days=SLOWDOWN_DAYS_BEFORE_EVE)
    for day in pd.date_range(start, lantern, freq="D").date:
        add(
            day,
            "spring_festival",
            kind="slowdown",
            zh="春节快递放缓",
            en="Spring Festival express slowdown",
        )
    return rows


def _official_rows(year: int) -> list[tuple]:
    import chinese_calendar as cc

    rows: list[tuple] = []
    for table, kind in ((cc.holidays, "holiday"), (cc.workdays, "workday")):
        for day, name in table.items():
            if day.year != year:
                continue
            key = _OFFICIAL_NAME_TO_KEY.get(str(name))
            if key is None:
                zh, en = str(name), str(name)
            else:
                zh, en = FESTIVALS[key]
            if kind == "workday":
                zh, en = f"{zh}调休上班", f"{en} make-up workday"
            rows.append((day, key, zh, en, kind))
    return rows


def festival_calendar(
    years: int | Iterable[int], region: str | None = None, *, strict: bool = False
) -> pd.DataFrame:
    """Festival days, official holidays, make-up workdays and the Spring Festival slowdown.

    Parameters
    ----------
    years : int or iterable of int
        Gregorian years to cover.
    region : str, optional
        A ``region_id``; regional festivals (三月三 ``sanyuesan``: Guangxi only) are included
        only for their region. ``None`` gives the national calendar.
    strict : bool, default False
        Raise instead of warn when a year's official holiday schedule is unknown to
        ``chinese_calendar`` (it is decreed yearly; the package covers 2004-2026 at v1.11).

    Returns
    -------
    pandas.DataFrame
        Columns ``date`` (datetime64), ``key`` (a :data:`FESTIVALS` key; ``None`` only for the
        one-off 2015 Anti-Fascist holiday), ``name_zh``, ``name_en`` and ``kind``:

        * ``festival`` -- the festival day itself (Spring Festival also has its eve, 除夕);
        * ``holiday`` -- an official day off (放假), e.g. 2022-10-01..07 for National Day;
        * ``workday`` -- a make-up workday (调休上班) on a weekend, e.g. 2022-01-29;
        * ``slowdown`` -- the express slowdown, 7 days before the eve to 元宵 inclusive.

        A date may appear in several rows (e.g. 2022-02-01 is a festival, a holiday and a
        slowdown day). Sorted by date, kind and key.

    Examples
    --------
    >>> cal = festival_calendar(2022, region="guangxi")
    >>> cal.query("key == 'sanyuesan'").date.dt.date.tolist()
    [datetime.date(2022, 4, 3)]
    """
    year_list = _years(years)
    region = _check_region(region)
    lo, hi = official_years()
    unknown = [y for y in year_list if not lo <= y <= hi]
    if unknown:
        msg = (
            f"official holidays and make-up workdays are unknown for {unknown}: chinese_calendar "
            f"covers {lo}-{hi}; those years have festival and slowdown rows only"
        )
        if strict:
            raise ValueError(msg)
        warnings.warn(msg, UserWarning, stacklevel=2)
    rows: list[tuple] = []
    for year in year_list:
        rows += _festival_rows(year, region)
        if lo <= year <= hi:
            rows += _official_rows(year)
    df = pd.DataFrame(rows, columns=_COLUMNS)
    df["date"] = pd.to_datetime(df["date"])
    df["kind"] = pd.Categorical(df["kind"], categories=list(KINDS))
    df = df.sort_values(["date", "kind", "key"], kind="stable").reset_index(drop=True)
    df["kind"] = df["kind"].astype(str)
    return df


def calendar_features(
    dates: Iterable | pd.Series | pd.DatetimeIndex,
    region: str | None = None,
    *,
    strict: bool = False,
) -> pd.DataFrame:
    """Per-date calendar regressors for demand models and campaign counterfactuals.

    Parameters
    ----------
    dates : array-like of dates
        Any dates (duplicates allowed; the output has one row per input, in order).
    region : str, optional
        ``region_id`` for regional festivals (三月三 in Guangxi).
    strict : bool, default False
        Passed to :func:`festival_calendar` (years with unknown official schedule).

    Returns
    -------
    pandas.DataFrame
        ``date``, ``weekday`` (0 = Monday), ``is_weekend``, ``is_holiday`` (official day off),
        ``is_makeup_workday`` (调休), ``is_day_off`` (holiday, or weekend that is not a make-up
        workday), ``days_from_spring_festival`` (signed days to the nearest Spring Festival,
        negative before it), ``is_slowdown``, ``is_pre_slowdown`` (the 21 days before the
        slowdown: the New-Year goods 年货 peak), ``is_ecommerce_returns`` (the 7 days after 618
        and Double 11: returns and exchanges) and one 0/1 column ``festival_<key>`` per
        :data:`FESTIVALS` key, 1 on that festival day (``festival_spring_festival`` also on
        the eve). Flags are ``int8``.
    """
    idx = pd.DatetimeIndex(pd.to_datetime(pd.Series(dates).to_numpy())).normalize()
    if idx.isna().any():
        raise ValueError(
            f"calendar_features: {int(idx.isna().sum())} dates are missing or not parseable"
        )
    if len(idx) == 0:
        raise ValueError("calendar_features: `dates` is empty")
    years = range(idx.year.min() - 1, idx.year.max() + 2)
    with warnings.catch_warnings():
        # the padding years are only needed for Spring Festival distances
        warnings.simplefilter("ignore")
        cal = festival_calendar(years, region=region)
    wanted = range(idx.year.min(), idx.year.max() + 1)
    lo, hi = official_years()
    unknown = [y for y in wanted if not lo <= y <= hi]
    if unknown:
        msg = (
            f"calendar_features: official holidays unknown for {unknown} (chinese_calendar "
            f"covers {lo}-{hi}); is_holiday/is_makeup_workday are 0 there"
        )
        if strict:
            raise ValueError(msg)
        warnings.warn(msg, UserWarning, stacklevel=2)
    out = pd.DataFrame({"date": idx})
    out["weekday"] = idx.weekday.astype("int8")
    out["is_weekend"] = (idx.weekday >= 5).astype("int8")

    def flag(mask_dates: pd.Series) -> np.ndarray:
        return idx.isin(pd.DatetimeIndex(mask_dates.unique())).astype("int8")

    out["is_holiday"] = flag(cal.loc[cal.kind == "holiday", "date"])
    out["is_makeup_workday"] = flag(cal.loc[cal.kind == "workday", "date"])
    out["is_day_off"] = (
        (out["is_holiday"] == 1) | ((out["is_weekend"] == 1) & (out["is_makeup_workday"] == 0))
    ).astype("int8")
    springs = np.array(
        [np.datetime64(spring_festival_date(y), "D") for y in years], dtype="datetime64[D]"
    )
    days = idx.values.astype("datetime64[D]")
    diff = (days[:, None] - springs[None, :]).astype(int)
    nearest = np.abs(diff).argmin(axis=1)
    out["days_from_spring_festival"] = diff[np.arange(len(days)), nearest].astype("int16")
    slow = pd.DatetimeIndex(cal.loc[cal.kind == "slowdown", "date"].unique()).sort_values()
    out["is_slowdown"] = idx.isin(slow).astype("int8")
    # 年货 peak: New-Year goods are sent in the weeks before couriers go home
    first_slow = slow[np.r_[True, np.diff(slow.values).astype("timedelta64[D]").astype(int) > 1]]
    pre = [pd.date_range(d - pd.Timedelta(days=PRE_SLOWDOWN_DAYS), periods=PRE_SLOWDOWN_DAYS)
           for d in first_slow]  # fmt: skip
    out["is_pre_slowdown"] = idx.isin(pre[0].append(pre[1:]) if pre else []).astype("int8")
    # e-commerce after-sales: returns and exchanges in the week after 618 and Double 11
    shop = cal.loc[(cal.kind == "festival") & cal.key.isin(["shopping_618", "double_11"]), "date"]
    after = [pd.date_range(d + pd.Timedelta(days=1), periods=7) for d in shop]
    out["is_ecommerce_returns"] = idx.isin(after[0].append(after[1:]) if after else []).astype(
        "int8"
    )
    fest = cal[cal.kind == "festival"]
    for key in FESTIVALS:
        out[f"festival_{key}"] = flag(fest.loc[fest.key == key, "date"])
    return out
