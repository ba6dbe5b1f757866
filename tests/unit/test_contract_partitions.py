"""Validation split into hash partitions gives exactly the report of the one-query plan.

``validate`` evaluates rules that need a big hash table (unique keys, foreign keys, the
redeemed coupon) in hash partitions of their key once the tables exceed
``PARTITION_ROWS``. Here the threshold is lowered to a couple of rows so that the tiny
hand-made dataset goes through that path, with every injected violation of
``test_contract`` at once, and the two reports must agree in every count and example.
"""

from __future__ import annotations

import pandas as pd
import pytest
from contract_fixtures import VALID_META, valid_frames
from test_contract import CASES, MORE_CASES, _dup_row

from promo_analysis import Dataset, validate
from promo_analysis.contract import validation
from promo_analysis.contract.rules import bucket, check_table, table_rules

STRUCTURAL = ("missing_table", "missing_column")


def _broken_everywhere() -> dict[str, pd.DataFrame]:
    frames = valid_frames()
    for case in CASES:
        if case[4] not in STRUCTURAL:
            case[1](frames)
    for case in MORE_CASES:
        case[1](frames)
    return frames


def _comparable(report) -> list[tuple]:
    return sorted(
        (r.table, r.column, r.rule, int(r.rows_failing), tuple(sorted(r.examples)), r.message)
        for r in report.issues.itertuples()
    )


def _validate_partitioned(frames, monkeypatch, rows=2):
    with monkeypatch.context() as m:
        m.setattr(validation, "PARTITION_ROWS", rows)
        return validate(Dataset.from_frames(frames, meta=VALID_META))


def test_plan_partitions_the_keyed_rules_of_big_tables(monkeypatch):
    ds = Dataset.from_frames(valid_frames(), meta=VALID_META)
    tables = {t: ds.table(t) for t in ds.tables}
    rules, _ = table_rules("shipments", check_table(ds.raw_table("shipments"), "shipments",
                                                    tables), tables)
    sizes = {"shipments": 6, "customers": 5, "coupons": 4, "regions": 2, "campaigns": 2}
    # default budget: everything in one query, as before
    [one] = validation.plan("shipments", rules, sizes)
    assert one.column is None and one.n == 1 and len(one.rules) == len(rules)
    monkeypatch.setattr(validation, "PARTITION_ROWS", 2)
    groups = validation.plan("shipments", rules, sizes)
    by_col = {g.column: g for g in groups}
    # shipment_id (unique key), customer_id and coupon_id (foreign keys, the coupon rules)
    assert by_col["shipment_id"].n == 3 and by_col["customer_id"].n == 3
    assert by_col["coupon_id"].n == 3
    assert {r.rule for r in by_col["coupon_id"].rules} == {
        "foreign_key", "coupon_redeemed_once", "coupon_validity", "coupon_threshold",
        "coupon_discount",
    }
    # each rule is evaluated exactly once
    assert sorted(r.rule + r.column for g in groups for r in g.rules) == sorted(
        r.rule + r.column for r in rules
    )


@pytest.mark.parametrize("rows", [1, 5])
def test_partitioned_report_equals_one_query_report(monkeypatch, rows):
    frames = _broken_everywhere()
    whole = validate(Dataset.from_frames(frames, meta=VALID_META))
    # the combined breakage really exercises the keyed rules
    assert {"unique_key", "foreign_key", "coupon_redeemed_once", "coupon_validity"} <= set(
        whole.issues["rule"]
    )
    parted = _validate_partitioned(frames, monkeypatch, rows)
    assert _comparable(parted) == _comparable(whole)
    assert parted.rows == whole.rows and parted.rules_checked == whole.rules_checked


def test_valid_dataset_passes_partitioned(monkeypatch):
    report = _validate_partitioned(valid_frames(), monkeypatch)
    assert report.ok, report.to_text()


def test_examples_are_collected_across_partitions(monkeypatch):
    # 7 duplicated shipments: 14 failing rows spread over the partitions, 5 examples shown
    frames = valid_frames()
    for i in range(7):
        _dup_row("shipments", i % 6, shipment_id=f"X{i}", customer_id=f"9{i:03d}")(frames)
        _dup_row("shipments", i % 6, shipment_id=f"X{i}", customer_id=f"9{i:03d}")(frames)
    frames["shipments"]["coupon_id"] = None
    parted = _validate_partitioned(frames, monkeypatch, rows=3)
    whole = validate(Dataset.from_frames(frames, meta=VALID_META))
    for report in (parted, whole):
        got = {(r.rule, r.column): r for r in report.issues.itertuples()}
        dup = got[("unique_key", "shipment_id")]
        assert dup.rows_failing == 14 and len(dup.examples) == 5
        assert {e.split(":")[0] for e in dup.examples} <= {f"X{i}" for i in range(7)}
        fk = got[("foreign_key", "customer_id")]
        assert fk.rows_failing == 14 and len(fk.examples) == 5
    assert [r.rows_failing for r in parted.issues.itertuples()] == [
        r.rows_failing for r in whole.issues.itertuples()
    ]


def test_buckets_cover_every_value_once():
    ds = Dataset.from_frames(
        {"regions": pd.DataFrame({"region_id": [f"r{i}" for i in range(200)] + [None]})}
    )
    t = ds.raw_table("regions")
    n = 7
    counts = t.filter(t.region_id.notnull()).group_by(b=bucket(t.region_id, n)).agg(
        k=lambda s: s.count()
    ).to_pandas()
    assert set(counts["b"]) <= set(range(n)) and counts["k"].sum() == 200
    assert len(counts) > 1


def test_foreign_keys_from_the_small_side_give_the_same_report(monkeypatch):
    from promo_analysis.contract import rules

    frames = _broken_everywhere()
    whole = validate(Dataset.from_frames(frames, meta=VALID_META))
    # every referencing table counts as small: each foreign key takes the other lookup
    monkeypatch.setattr(rules, "SMALL_CHILD", 10**9)
    small_side = validate(Dataset.from_frames(frames, meta=VALID_META))
    assert (whole.issues["rule"] == "foreign_key").sum() >= 5
    assert _comparable(small_side) == _comparable(whole)
