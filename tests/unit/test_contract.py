"""Data contract v1: one test per rule.

Each case takes the hand-made valid dataset (``contract_fixtures.valid_frames``), breaks it in
exactly one way and checks that validation reports exactly that rule, on the right table and
column, with the right number of failing rows, a readable message and the failing row's id.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from contract_fixtures import VALID_META, valid_frames

from promo_analysis import Dataset, validate
from promo_analysis.contract import (
    ARM_CONTROL,
    CONTRACT,
    SEGMENTS,
    DataContractError,
    ValidationReport,
)


def _report(frames) -> ValidationReport:
    return validate(Dataset.from_frames(frames, meta=VALID_META))


def _set(table, row, column, value):
    def apply(f):
        f[table][column] = f[table][column].astype(object)
        f[table].loc[row, column] = value
        f[table][column] = f[table][column].infer_objects()

    return apply


def _as_text(table, column, row, value):
    """The column as text (like a CSV export), with one row's text replaced."""

    def apply(f):
        s = f[table][column]
        text = s.astype(str).where(s.notna(), None)
        if pd.api.types.is_datetime64_any_dtype(s):
            text = s.dt.strftime("%Y-%m-%d %H:%M:%S").where(s.notna(), None)
        text = text.astype(object)
        text.iloc[row] = value
        f[table][column] = text

    return apply


def _drop_table(name):
    return lambda f: f.pop(name)


def _drop_column(table, column):
    return lambda f: f.__setitem__(table, f[table].drop(columns=[column]))


def _dup_row(table, row, **changes):
    def apply(f):
        extra = f[table].iloc[[row]].copy()
        for k, v in changes.items():
            extra[k] = v
        f[table] = pd.concat([f[table], extra], ignore_index=True)

    return apply


def _many(*fns):
    def apply(f):
        for fn in fns:
            fn(f)

    return apply


# (id, how to break, table, column, rule, rows failing, example id or None)
CASES = [
    ("missing_table", _drop_table("customers"), "customers", "", "missing_table", None, None),
    ("missing_column", _drop_column("shipments", "payment"), "shipments", "payment",
     "missing_column", None, None),
    ("parse_float", _as_text("shipments", "list_price", 4, "eighteen"), "shipments",
     "list_price", "parse", 1, "S0005"),
    ("parse_timestamp", _as_text("shipments", "sent_at", 1, "yesterday"), "shipments",
     "sent_at", "parse", 1, "S0002"),
    ("parse_date", _as_text("customers", "known_since", 3, "2022-02-30"), "customers",
     "known_since", "parse", 1, "0004"),
    ("parse_bool", _as_text("customers", "wechat_contact", 1, "maybe"), "customers",
     "wechat_contact", "parse", 1, "0002"),
    ("parse_int", _as_text("survey", "satisfaction", 0, "very"), "survey", "satisfaction",
     "parse", 1, "R1"),
    ("not_null_timestamp", _set("shipments", 1, "sent_at", pd.NaT), "shipments", "sent_at",
     "not_null", 1, "S0002"),
    ("not_null_text", _set("regions", 0, "name_zh", None), "regions", "name_zh", "not_null",
     1, "guangxi"),
    ("not_null_key", _set("customers", 4, "customer_id", None), "customers", "customer_id",
     "not_null", 1, "(missing id)"),
    ("not_null_money", _set("shipments", 4, "list_price", np.nan), "shipments", "list_price",
     "not_null", 1, "S0005"),
    ("not_null_bool", _set("survey", 1, "first_time_sender", None), "survey",
     "first_time_sender", "not_null", 1, "R2"),
    ("category_channel", _set("shipments", 1, "channel", "window"), "shipments", "channel",
     "category", 1, "S0002"),
    ("category_segment", _set("customers", 4, "segment", "school"), "customers", "segment",
     "category", 1, "0005"),
    ("category_theme", _set("campaigns", 0, "theme", "halloween"), "campaigns", "theme",
     "category", 1, "C01"),
    ("unique_key", _set("customers", 4, "customer_id", "0004"), "customers", "customer_id",
     "unique_key", 2, "0004"),
    ("unique_key_composite", _dup_row("assignments", 0, arm=ARM_CONTROL), "assignments",
     "experiment_id, customer_id", "unique_key", 2, "E1/0001"),
    ("fk_shipment_customer", _set("shipments", 5, "customer_id", "9999"), "shipments",
     "customer_id", "foreign_key", 1, "S0006"),
    ("fk_shipment_campaign", _set("shipments", 1, "campaign_id", "C99"), "shipments",
     "campaign_id", "foreign_key", 1, "S0002"),
    ("fk_shipment_coupon", _set("shipments", 1, "coupon_id", "K999"), "shipments",
     "coupon_id", "foreign_key", 1, "S0002"),
    ("fk_customer_region", _set("customers", 4, "region_id", "atlantis"), "customers",
     "region_id", "foreign_key", 1, "0005"),
    ("list_price_nonnegative",
     _many(_set("shipments", 4, "list_price", -1.0), _set("shipments", 4, "revenue", -1.0)),
     "shipments", "list_price", "list_price_nonnegative", 1, "S0005"),
    ("discount_range",
     _many(_set("shipments", 4, "discount", 20.0), _set("shipments", 4, "revenue", -2.0)),
     "shipments", "discount", "discount_range", 1, "S0005"),
    ("discount_negative",
     _many(_set("shipments", 4, "discount", -2.0), _set("shipments", 4, "revenue", 20.0)),
     "shipments", "discount", "discount_range", 1, "S0005"),
    ("revenue_formula", _set("shipments", 1, "revenue", 21.0), "shipments", "revenue",
     "revenue_formula", 1, "S0002"),
    ("coupon_redeemed_once", _set("shipments", 2, "coupon_id", "K001"), "shipments",
     "coupon_id", "coupon_redeemed_once", 2, "S0001"),
    ("coupon_validity", _set("shipments", 0, "sent_at", pd.Timestamp("2022-05-02 10:00")),
     "shipments", "sent_at", "coupon_validity", 1, "S0001"),
    ("coupon_before_issue", _set("shipments", 3, "sent_at", pd.Timestamp("2022-01-05 09:59")),
     "shipments", "sent_at", "coupon_validity", 1, "S0004"),
    ("coupon_threshold",
     _many(_set("shipments", 3, "list_price", 20.0), _set("shipments", 3, "revenue", 15.0)),
     "shipments", "list_price", "coupon_threshold", 1, "S0004"),
    ("coupon_discount",
     _many(_set("shipments", 0, "discount", 2.0), _set("shipments", 0, "revenue", 16.0)),
     "shipments", "discount", "coupon_discount", 1, "S0001"),
    ("validity_order", _set("coupons", 3, "expires_at", pd.Timestamp("2022-04-01")), "coupons",
     "expires_at", "validity_order", 1, "K004"),
    ("threshold_nonnegative", _set("coupons", 3, "threshold", -1.0), "coupons", "threshold",
     "threshold_nonnegative", 1, "K004"),
    ("face_value_positive", _set("coupons", 3, "face_value", 0.0), "coupons", "face_value",
     "face_value_positive", 1, "K004"),
    ("date_order", _set("campaigns", 1, "end_date", pd.Timestamp("2022-01-09")), "campaigns",
     "end_date", "date_order", 1, "C02"),
    ("coupon_threshold_nonnegative", _set("campaigns", 0, "coupon_threshold", -12.0),
     "campaigns", "coupon_threshold", "coupon_threshold_nonnegative", 1, "C01"),
    ("coupon_face_value_positive", _set("campaigns", 0, "coupon_face_value", -3.0),
     "campaigns", "coupon_face_value", "coupon_face_value_positive", 1, "C01"),
    ("fixed_cost_nonnegative", _set("campaigns", 0, "fixed_cost", -1.0), "campaigns",
     "fixed_cost", "fixed_cost_nonnegative", 1, "C01"),
    ("weight_positive", _set("survey", 1, "weight", 0.0), "survey", "weight",
     "weight_positive", 1, "R2"),
    ("satisfaction_range", _set("survey", 0, "satisfaction", 6), "survey", "satisfaction",
     "satisfaction_range", 1, "R1"),
]


# the same rules on other tables: checked together, each must be reported exactly once
MORE_CASES = [
    ("category_level", _set("campaigns", 1, "level", "county"), "campaigns", "level",
     "category", 1, "C02"),
    ("category_issue_channel", _set("coupons", 3, "issue_channel", "sms"), "coupons",
     "issue_channel", "category", 1, "K004"),
    ("category_payment", _set("shipments", 5, "payment", "credit"), "shipments", "payment",
     "category", 1, "S0006"),
    ("category_product", _set("shipments", 5, "product", "freight"), "shipments", "product",
     "category", 1, "S0006"),
    ("fk_coupon_campaign", _set("coupons", 3, "campaign_id", "C77"), "coupons", "campaign_id",
     "foreign_key", 1, "K004"),
    ("fk_campaign_region", _set("campaigns", 1, "region_id", "mars"), "campaigns",
     "region_id", "foreign_key", 1, "C02"),
    ("fk_survey_customer", _set("survey", 1, "customer_id", "0099"), "survey", "customer_id",
     "foreign_key", 1, "R2"),
    ("fk_assignment_customer", _set("assignments", 3, "customer_id", "0042"), "assignments",
     "customer_id", "foreign_key", 1, "E2/0042"),
]


def test_more_vocabularies_and_foreign_keys():
    frames = valid_frames()
    for case in MORE_CASES:
        case[1](frames)
    issues = _report(frames).issues
    got = {(r.table, r.column, r.rule): (r.rows_failing, r.examples[0]) for r in issues.itertuples()}
    assert len(issues) == len(MORE_CASES)
    for _, _, table, column, rule, rows, example in MORE_CASES:
        n, first = got[(table, column, rule)]
        assert n == rows and first.startswith(example)


def test_valid_dataset_passes():
    report = _report(valid_frames())
    assert report.ok, report.to_text()
    assert report.issues.empty and not report.unusable
    assert report.rows == {
        "regions": 2, "customers": 5, "campaigns": 2, "coupons": 4, "shipments": 6,
        "survey": 4, "assignments": 4,
    }
    assert report.skipped.empty
    assert "OK" in report.to_text() and "ok" in repr(report)
    assert (report.summary()["status"] == "ok").all()
    validate(Dataset.from_frames(valid_frames()), strict=True)  # does not raise


@pytest.mark.parametrize(
    "breaker, table, column, rule, rows, example", [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_each_rule_is_reported_exactly(breaker, table, column, rule, rows, example):
    frames = valid_frames()
    breaker(frames)
    report = _report(frames)
    issues = report.issues
    assert len(issues) == 1, report.to_text()
    got = issues.iloc[0]
    assert (got.table, got.column, got.rule) == (table, column, rule)
    if rows is None:
        assert pd.isna(got.rows_failing) and report.unusable
    else:
        assert got.rows_failing == rows and not report.unusable
    if example is not None:
        assert got.examples and got.examples[0].startswith(example), got.examples
    text = report.to_text()
    # readable: names the rule, the table.column, the count and what must hold
    assert f"[{rule}]" in text and got.message in text
    assert (f"{table}.{column}" if column else table) in text
    if rows is not None:
        assert f"{rows} row(s)" in text
    assert not report.ok


def test_every_rule_has_a_case():
    from promo_analysis.contract.rules import ROW_RULES

    covered = {c[4] for c in CASES}
    expected = {"missing_table", "missing_column", "parse", "not_null", "category",
                "unique_key", "foreign_key"} | {r.rule for r in ROW_RULES}
    assert expected <= covered, expected - covered


def test_parse_example_shows_the_bad_text():
    frames = valid_frames()
    _as_text("shipments", "list_price", 4, "eighteen")(frames)
    report = _report(frames)
    assert report.issues.iloc[0].examples == ["S0005: 'eighteen'"]


def test_tolerance_and_messy_text_are_accepted():
    frames = valid_frames()
    # within 0.01 yuan
    frames["shipments"].loc[1, "revenue"] = 22.005
    # text the way Excel exports it: padded numbers, 是/否, slashes in dates, NA for missing
    ship = frames["shipments"]
    ship["list_price"] = [" 18 ", "22", "12.0", "25", "18", "10"]
    cust = frames["customers"]
    cust["wechat_contact"] = ["是", "否", "TRUE", "0", "yes"]
    cust["known_since"] = ["2021/12/1", "2022-01-02", "2021-06-30 00:00:00", "2022/2/1",
                           "2022-03-15"]
    frames["campaigns"]["fixed_cost"] = ["5000", "NA"]
    report = _report(frames)
    assert report.ok, report.to_text()
    ds = Dataset.from_frames(frames)
    assert ds.to_pandas("customers")["wechat_contact"].tolist() == [True, False, True, False, True]
    assert ds.to_pandas("customers")["known_since"].iloc[0] == pd.Timestamp("2021-12-01")
    assert ds.to_pandas("campaigns")["fixed_cost"].isna().tolist() == [False, True]


def test_revenue_just_beyond_tolerance_fails():
    frames = valid_frames()
    frames["shipments"].loc[1, "revenue"] = 22.02
    assert _report(frames).issues["rule"].tolist() == ["revenue_formula"]


def test_strict_raises_listing_every_failing_rule():
    frames = valid_frames()
    _set("shipments", 1, "revenue", 21.0)(frames)
    _set("survey", 1, "weight", -5.0)(frames)
    with pytest.raises(DataContractError) as err:
        validate(Dataset.from_frames(frames), strict=True)
    msg = str(err.value)
    assert "[revenue_formula] shipments.revenue: 1 row(s)" in msg
    assert "[weight_positive] survey.weight: 1 row(s)" in msg


def test_optional_tables_absent_skips_their_foreign_keys():
    frames = {k: v for k, v in valid_frames().items() if k in ("regions", "customers",
                                                                "shipments")}
    report = _report(frames)
    assert report.ok, report.to_text()
    skipped = set(zip(report.skipped["column"], report.skipped["rule"], strict=True))
    assert ("coupon_id", "foreign_key") in skipped and ("campaign_id", "foreign_key") in skipped
    assert ("sent_at", "coupon_validity") in skipped
    assert "not checked" in report.to_text()


def test_report_html_and_summary():
    frames = valid_frames()
    _set("shipments", 1, "channel", "window")(frames)
    report = _report(frames)
    html = report._repr_html_()
    assert "1 rule(s) failing" in html and "S0002" in html
    summary = report.summary()
    assert summary.loc["shipments", "status"] == "violations"
    assert summary.loc["regions", "status"] == "ok"
    assert list(report.issues.columns) == [
        "table", "column", "rule", "rows_failing", "examples", "message"
    ]


def test_specs_match_design():
    assert set(CONTRACT) == {"regions", "customers", "shipments", "coupons", "campaigns",
                             "survey", "assignments"}
    assert [t for t, s in CONTRACT.items() if s.required] == ["regions", "customers",
                                                               "shipments"]
    assert len(SEGMENTS) == 9 and SEGMENTS[-1] == "other"
    assert CONTRACT["assignments"].key == ("experiment_id", "customer_id")
    frame = CONTRACT["shipments"].frame()
    assert frame.set_index("column").loc["coupon_id", "references"] == "coupons.coupon_id"


def test_docs_data_contract_matches_code():
    from pathlib import Path

    from promo_analysis.contract.rules import ROW_RULES

    doc = (Path(__file__).resolve().parents[2] / "docs" / "data_contract.md").read_text(
        encoding="utf-8"
    )
    for table, spec in CONTRACT.items():
        section = doc.split(f"### `{table}`")[1].split("###")[0]
        for column, col in spec.columns.items():
            row = next(line for line in section.splitlines() if line.startswith(f"| `{column}`"))
            assert f"| {col.dtype} |" in row, (table, column)
            assert ("| yes |" in row) == col.nullable, (table, column)
    for rule in ["missing_table", "missing_column", "parse", "not_null", "category",
                 "unique_key", "foreign_key", *(r.rule for r in ROW_RULES)]:
        assert f"| `{rule}` |" in doc, rule


@pytest.mark.parametrize(
    "text",
    ["", " ", "\t", "\x0b", "\x0c", " \t\n\r\x0b\x0c ", "x", " x ", "x\n", "\nx", "NA", "\u3000"],
)
def test_blank_text_is_missing_exactly_when_only_strip_characters(text):
    # a text column is missing when nothing but the characters str.strip() of SQL trims is
    # left: spaces, tab, newline, CR, VT, FF -- not an ideographic space, not a token like NA
    expected = int(text.strip(" \t\n\r\x0b\x0c") == "")
    frames = valid_frames()
    _set("regions", 0, "name_zh", text)(frames)
    assert frames["regions"].loc[0, "name_zh"] == text
    report = _report(frames)
    found = report.issues[(report.issues["rule"] == "not_null")
                          & (report.issues["column"] == "name_zh")]
    assert found["rows_failing"].sum() == expected
