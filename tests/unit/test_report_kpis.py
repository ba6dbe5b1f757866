"""KPI, channel-mix and privacy helpers of the regional report, on hand-made frames."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from promo_analysis.report.kpis import channel_mix, kpi_table, monthly_revenue
from promo_analysis.report.params import (
    Period,
    ReportParameterError,
    check_region_ids,
    compare_period,
    parse_period,
    safe_child,
)
from promo_analysis.report.privacy import (
    drop_identifiers,
    find_identifiers,
    suppress_small_cells,
    suppressed_marker,
)

P22 = Period(pd.Timestamp("2022-01-01").date(), pd.Timestamp("2022-12-31").date())
P21 = Period(pd.Timestamp("2021-01-01").date(), pd.Timestamp("2021-12-31").date())


def _daily() -> pd.DataFrame:
    rows = [
        # date, channel, product, shipments, revenue, discount, coupon_shipments, campaign
        ("2021-03-01", "station", "express", 10, 200.0, 0.0, 0, 0),
        ("2021-03-02", "counter", "economy", 5, 50.0, 0.0, 0, 0),
        ("2022-03-01", "station", "express", 12, 270.0, 6.0, 2, 2),
        ("2022-07-01", "counter", "express", 6, 90.0, 3.0, 1, 0),
        ("2022-07-02", "online", "economy", 2, 20.0, 0.0, 0, 0),
        ("2023-01-01", "station", "express", 99, 9999.0, 0.0, 0, 0),  # outside both periods
    ]
    df = pd.DataFrame(rows, columns=["date", "channel", "product", "shipments", "revenue",
                                     "discount", "coupon_shipments", "campaign_shipments"])
    df["date"] = pd.to_datetime(df["date"])
    return df


def _new() -> pd.DataFrame:
    return pd.DataFrame({"date": pd.to_datetime(["2021-03-01", "2022-03-01", "2022-07-02"]),
                         "new_customers": [15, 11, 4]})


def _period_customers(online_2022: int = 12) -> pd.DataFrame:
    return pd.DataFrame({
        "period": ["current"] * 4 + ["previous"] * 3,
        "channel": ["all", "station", "counter", "online", "all", "station", "counter"],
        "customers": [40, 20, 15, online_2022, 30, 20, 12],
    })


def test_kpi_table_hand_computed():
    t = kpi_table(_daily(), _new(), _period_customers(), P22, P21)
    assert t.loc["revenue", "current"] == pytest.approx(380.0)
    assert t.loc["revenue", "previous"] == pytest.approx(250.0)
    assert t.loc["revenue", "growth_pct"] == pytest.approx(100 * (380 / 250 - 1))
    assert t.loc["express_revenue", "current"] == pytest.approx(360.0)
    assert t.loc["shipments", "current"] == 20
    assert t.loc["revenue_per_shipment", "current"] == pytest.approx(19.0)
    assert t.loc["coupons_used", "current"] == 3
    assert t.loc["coupon_share", "current"] == pytest.approx(15.0)
    assert t.loc["discount", "current"] == pytest.approx(9.0)
    assert t.loc["campaign_shipments", "current"] == 2
    assert t.loc["new_customers", "current"] == 15
    assert t.loc["new_customers", "previous"] == 15
    assert t.loc["active_customers", "current"] == 40
    assert t.loc["active_customers", "growth_pct"] == pytest.approx(100 * (40 / 30 - 1))
    assert {"name_zh", "name_en", "unit"} <= set(t.columns)


def test_kpi_table_without_comparison_and_small_counts_suppressed():
    new = _new().assign(new_customers=[15, 3, 4])  # 7 new customers in 2022 < k
    t = kpi_table(_daily(), new, _period_customers(), P22, None)
    assert t["previous"].isna().all()
    assert t.loc["new_customers", "current"] == suppressed_marker(10)
    assert t.loc["revenue", "current"] == pytest.approx(380.0)


def test_kpi_table_suppresses_a_period_with_few_senders():
    pc = _period_customers()
    pc.loc[(pc["period"] == "previous") & (pc["channel"] == "all"), "customers"] = 9
    t = kpi_table(_daily(), _new(), pc, P22, P21)
    assert (t["previous"] == suppressed_marker(10)).all()
    assert (t["growth_pct"] == suppressed_marker(10)).all()
    assert t.loc["revenue", "current"] == pytest.approx(380.0)


def test_channel_mix_shares_growth_and_suppression():
    m = channel_mix(_daily(), _period_customers(online_2022=4), P22, P21)
    assert list(m.index) == ["station", "counter", "online"]
    assert m.loc["station", "revenue_current"] == pytest.approx(270.0)
    assert m.loc["station", "share_current_pct"] == pytest.approx(100 * 270 / 380)
    assert m.loc["counter", "growth_pct"] == pytest.approx(100 * (90 / 50 - 1))
    # online: 4 customers in 2022 -> every figure of that channel-period hidden
    assert m.loc["online", "suppressed_current"]
    assert m.loc["online", "revenue_current"] == suppressed_marker(10)
    assert not m.loc["station", "suppressed_current"]
    assert m.loc["station", "name_zh"] == "揽投部"


def test_monthly_revenue_aligns_months():
    m = monthly_revenue(_daily(), P22, P21)
    assert len(m) == 12
    assert m.loc[3, "current"] == pytest.approx(270.0)
    assert m.loc[3, "previous"] == pytest.approx(250.0)
    assert m.loc[7, "current"] == pytest.approx(110.0)
    assert np.isnan(m.loc[7, "previous"])
    assert m.loc[1, "month"] == "2022-01"


def test_suppress_small_cells_marks_and_keeps_large_rows():
    t = pd.DataFrame({"group": ["a", "b", "c"], "n": [3, 10, None], "rate": [0.5, 0.2, 0.1]})
    out = suppress_small_cells(t, "n", k=10)
    assert out["suppressed"].tolist() == [True, False, True]
    assert out.loc[0, "rate"] == suppressed_marker(10)
    assert out.loc[0, "n"] == suppressed_marker(10)
    assert out.loc[1, "rate"] == 0.2
    with pytest.raises(KeyError, match="count column 'size'"):
        suppress_small_cells(t, "size")


def test_identifiers_dropped_and_found():
    df = pd.DataFrame({"customer_id": ["c1"], "shipment_id": ["s1"], "x": [1]})
    assert list(drop_identifiers(df).columns) == ["x"]
    text = "<td>C000123</td> and <img src='data:image/png;base64,QzAwMDEyNA=='/> C0001"
    assert find_identifiers(text, ["C000123", "C000124", "C00"]) == ["C000123"]
    # an id inside an embedded image's base64 text is not a leak
    assert find_identifiers("data:image/png;base64,AAC000999AA", ["C000999"]) == []


def test_region_checks_refuse_traversal_and_unknown():
    known = ["guangxi", "shanxi"]
    assert check_region_ids(["shanxi", "shanxi"], known) == ["shanxi"]
    assert check_region_ids(["GX-01"], ["GX-01"]) == ["GX-01"]
    for bad in ("../x", "a/b", "", "..", "x.y", " guangxi"):
        with pytest.raises(ReportParameterError, match="not a valid region id"):
            check_region_ids([bad], known)
    with pytest.raises(ReportParameterError, match="unknown region 'beijing'.*guangxi, shanxi"):
        check_region_ids(["beijing"], known)


def test_safe_child_and_periods(tmp_path):
    assert safe_child(tmp_path, "guangxi.html") == (tmp_path / "guangxi.html").resolve()
    with pytest.raises(ReportParameterError, match="outside"):
        safe_child(tmp_path, "../x.html")
    p = parse_period("2022-01-01", "2022-06-30")
    c = compare_period(p, "previous_year")
    assert c.as_strings() == ("2021-01-01", "2021-06-30")
    assert compare_period(p, "none") is None
    assert compare_period(p, "2020-01-01..2020-03-31").days == 91
    with pytest.raises(ReportParameterError, match="before its start"):
        parse_period("2022-02-01", "2022-01-01")
    with pytest.raises(ReportParameterError, match="not a date"):
        parse_period("soon", "2022-01-01")
    with pytest.raises(ReportParameterError, match="compare_to"):
        compare_period(p, "last_decade")


def test_kpi_table_leaves_out_new_customers_of_a_period_at_the_data_start():
    t = kpi_table(_daily(), _new(), _period_customers(), P22, P21, data_start="2021-01-01")
    assert np.isnan(t.loc["new_customers", "previous"])
    assert np.isnan(t.loc["new_customers", "growth_pct"])
    assert t.loc["new_customers", "current"] == 15
    assert t.loc["revenue", "previous"] == pytest.approx(250.0)
