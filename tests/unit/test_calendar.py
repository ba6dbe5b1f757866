"""Calendar against published dates (State Council notices, almanac lunar dates)."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from promo_analysis import calendar as C


def _dates(cal: pd.DataFrame, **eq) -> list[str]:
    mask = pd.Series(True, index=cal.index)
    for col, val in eq.items():
        mask &= cal[col] == val
    return sorted(cal.loc[mask, "date"].dt.strftime("%Y-%m-%d").tolist())


@pytest.fixture(scope="module")
def cal():
    return C.festival_calendar([2021, 2022, 2023], region="guangxi")


def test_columns_and_vocabulary(cal):
    assert list(cal.columns) == ["date", "key", "name_zh", "name_en", "kind"]
    assert set(cal.kind) <= set(C.KINDS)
    assert set(cal.key.dropna()) <= set(C.FESTIVALS)
    assert pd.api.types.is_datetime64_any_dtype(cal.date)


@pytest.mark.parametrize("day", ["2021-02-12", "2022-02-01", "2023-01-22"])
def test_spring_festival(cal, day):
    sf = cal[
        (cal.key == "spring_festival")
        & (cal.kind == "festival")
        & (cal.name_en == "Spring Festival")
    ]
    assert day in sf.date.dt.strftime("%Y-%m-%d").tolist()


def test_spring_festival_eve_and_function():
    assert C.spring_festival_date(2022) == dt.date(2022, 2, 1)
    cal = C.festival_calendar(2022)
    assert _dates(cal, key="spring_festival", kind="festival") == ["2022-01-31", "2022-02-01"]


@pytest.mark.parametrize(
    ("key", "day"),
    [
        ("sanyuesan", "2022-04-03"),
        ("mid_autumn", "2022-09-10"),
        ("dragon_boat", "2022-06-03"),
        ("lantern", "2022-02-15"),
        ("qixi", "2022-08-04"),
        ("qingming", "2022-04-05"),
        ("mothers_day", "2022-05-08"),
        ("fathers_day", "2022-06-19"),
        ("double_11", "2022-11-11"),
        ("shopping_618", "2022-06-18"),
        ("back_to_school", "2022-09-01"),
        ("mid_autumn", "2021-09-21"),
        ("dragon_boat", "2023-06-22"),
    ],
)
def test_festival_days(cal, key, day):
    assert day in _dates(cal, key=key, kind="festival")


def test_sanyuesan_only_guangxi():
    assert "sanyuesan" not in set(C.festival_calendar(2022).key)
    assert "sanyuesan" not in set(C.festival_calendar(2022, region="shanxi").key)
    assert "sanyuesan" in set(C.festival_calendar(2022, region="guangxi").key)


def test_official_2022_schedule(cal):
    # 国务院办公厅关于2022年部分节假日安排的通知
    assert _dates(cal, kind="workday") == [
        "2021-02-07",
        "2021-02-20",
        "2021-04-25",
        "2021-05-08",
        "2021-09-18",
        "2021-09-26",
        "2021-10-09",
        "2022-01-29",
        "2022-01-30",
        "2022-04-02",
        "2022-04-24",
        "2022-05-07",
        "2022-10-08",
        "2022-10-09",
        "2023-01-28",
        "2023-01-29",
        "2023-04-23",
        "2023-05-06",
        "2023-06-25",
        "2023-10-07",
        "2023-10-08",
    ]
    assert _dates(cal, kind="holiday", key="national_day")[7:14] == [
        f"2022-10-0{d}" for d in range(1, 8)
    ]
    assert _dates(cal, kind="holiday", key="spring_festival")[7:14] == [
        "2022-01-31",
        "2022-02-01",
        "2022-02-02",
        "2022-02-03",
        "2022-02-04",
        "2022-02-05",
        "2022-02-06",
    ]
    assert [d for d in _dates(cal, kind="holiday", key="qingming") if d[:4] == "2022"] == [
        "2022-04-03",
        "2022-04-04",
        "2022-04-05",
    ]
    wd = cal[(cal.kind == "workday") & (cal.date == "2022-01-29")]
    assert wd.key.tolist() == ["spring_festival"] and "调休" in wd.name_zh.iloc[0]


def test_slowdown_window():
    cal = C.festival_calendar(2022)
    slow = _dates(cal, kind="slowdown")
    # eve 2022-01-31 minus 7 days .. Lantern 2022-02-15
    assert slow[0] == "2022-01-24" and slow[-1] == "2022-02-15" and len(slow) == 23


def test_unknown_year_warns_or_raises():
    lo, hi = C.official_years()
    assert lo <= 2021 and hi >= 2023
    with pytest.warns(UserWarning, match="unknown"):
        cal = C.festival_calendar(hi + 1)
    assert not (cal.kind.isin(["holiday", "workday"])).any()
    assert "spring_festival" in set(cal.key)
    with pytest.raises(ValueError, match="chinese_calendar"):
        C.festival_calendar(hi + 1, strict=True)


def test_bad_input():
    with pytest.raises(ValueError, match="region"):
        C.festival_calendar(2022, region="atlantis")
    with pytest.raises(ValueError, match="1901-2099"):
        C.festival_calendar(1850)
    with pytest.raises(ValueError, match="unknown campaign theme 'xmas'"):
        C.check_theme("xmas")
    assert C.check_theme("weekend") == "weekend"


def test_calendar_features():
    dates = pd.date_range("2022-01-25", "2022-02-05")
    f = C.calendar_features(dates, region="guangxi")
    assert len(f) == len(dates)
    row = f.set_index("date")
    assert row.loc["2022-01-29", "is_makeup_workday"] == 1
    assert row.loc["2022-01-29", "is_day_off"] == 0  # a Saturday but a workday
    assert row.loc["2022-02-01", "is_holiday"] == 1
    assert row.loc["2022-02-01", "days_from_spring_festival"] == 0
    assert row.loc["2022-01-25", "days_from_spring_festival"] == -7
    assert row.loc["2022-02-05", "days_from_spring_festival"] == 4
    assert row.loc["2022-01-31", "festival_spring_festival"] == 1
    assert row["is_slowdown"].all()
    assert row.loc["2022-01-25", "weekday"] == 1  # Tuesday
    f2 = C.calendar_features(pd.Series(["2022-04-03", "2022-04-03", "2022-07-01"]), "guangxi")
    assert f2["festival_sanyuesan"].tolist() == [1, 1, 0]
    assert (
        f2["days_from_spring_festival"].iloc[2] == (dt.date(2022, 7, 1) - dt.date(2022, 2, 1)).days
    )
    with pytest.raises(ValueError, match="not parseable"):
        C.calendar_features(pd.Series([None, "2022-01-01"]))


def test_pre_slowdown_and_ecommerce_returns():
    f = C.calendar_features(pd.date_range("2022-01-01", "2022-12-31")).set_index("date")
    pre = f.index[f.is_pre_slowdown == 1]
    # slowdown 2022 starts 2022-01-24; 2023's starts 2023-01-14 (eve 2023-01-21)
    assert pre.min() == pd.Timestamp("2022-01-03") and len(pre) == 21 + 8
    assert pre[20] == pd.Timestamp("2022-01-23") and pre[21] == pd.Timestamp("2022-12-24")
    ret = f.index[f.is_ecommerce_returns == 1].strftime("%m-%d").tolist()
    assert ret == [f"06-{d}" for d in range(19, 26)] + [f"11-{d}" for d in range(12, 19)]
