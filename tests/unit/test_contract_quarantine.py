"""Quarantine and the robustness of validation.

Hand-made cases check where each row goes; hypothesis properties check that validation never
crashes on arbitrary frames with the contract's column names and that the quarantine always
reconciles (input = accepted + rejected, in rows and in yuan) and leaves a clean dataset.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from contract_fixtures import VALID_META, valid_frames
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from promo_analysis import Dataset, load_dataset, validate
from promo_analysis.contract import CONTRACT, DataContractError, quarantine
from promo_analysis.contract.quarantine import RULE_COLUMN


def _broken_frames():
    f = valid_frames()
    f["shipments"].loc[1, "revenue"] = 21.0  # S0002: revenue_formula
    f["customers"].loc[3, "segment"] = "school"  # 0004: category -> S0006 cascades
    f["customers"]["known_since"] = f["customers"]["known_since"].astype(str).astype(object)
    f["customers"].loc[4, "known_since"] = "soon"  # 0005: parse (raw text kept in rejected)
    return f


def test_quarantine_splits_rows_and_reconciles(tmp_path):
    ds = Dataset.from_frames(_broken_frames(), meta=VALID_META)
    result = quarantine(ds, tmp_path / "q")
    rec = result.reconciliation.set_index("table")
    assert result.balanced
    assert rec.loc["customers", ["input_rows", "accepted_rows", "rejected_rows"]].tolist() == [
        5, 3, 2,
    ]
    assert rec.loc["shipments", ["input_rows", "accepted_rows", "rejected_rows"]].tolist() == [
        6, 4, 2,
    ]
    # revenue by hand: S0002 (21) and S0006 (10) rejected, of 15+21+9+20+18+10 = 93
    assert rec.loc["shipments", "input_revenue"] == pytest.approx(93.0)
    assert rec.loc["shipments", "rejected_revenue"] == pytest.approx(31.0)
    assert rec.loc["shipments", "accepted_revenue"] == pytest.approx(62.0)
    assert rec.loc["regions", "rejected_rows"] == 0

    rejected = pd.read_csv(tmp_path / "q" / "rejected" / "shipments.csv", dtype=str)
    assert sorted(rejected["shipment_id"]) == ["S0002", "S0006"]
    rules = dict(zip(rejected["shipment_id"], rejected[RULE_COLUMN], strict=True))
    assert rules["S0002"] == "revenue_formula(revenue)"
    assert rules["S0006"] == "cascade(customer_id -> rejected customers)"
    cust = pd.read_csv(tmp_path / "q" / "rejected" / "customers.csv", dtype=str)
    assert cust.set_index("customer_id").loc["0005", "known_since"] == "soon"
    assert sorted(cust["customer_id"]) == ["0004", "0005"]  # ids keep leading zeros
    by_rule = result.by_rule.set_index(["table", "rule"])["rows"]
    assert by_rule[("customers", "parse(known_since)")] == 1
    assert by_rule[("shipments", "revenue_formula(revenue)")] == 1

    clean = load_dataset(tmp_path / "q")
    assert validate(clean).ok
    assert clean.meta["quarantine"]["rejected_rows"]["shipments"] == 2
    assert sorted(clean.to_pandas("shipments")["shipment_id"]) == ["S0001", "S0003", "S0004",
                                                                  "S0005"]
    assert "= accepted 4 + rejected 2" in result.to_text()


def test_quarantine_refuses_unusable_dataset(tmp_path):
    f = valid_frames()
    f["shipments"] = f["shipments"].drop(columns=["revenue"])
    with pytest.raises(DataContractError, match="revenue"):
        quarantine(Dataset.from_frames(f), tmp_path / "q")
    assert not (tmp_path / "q").exists()


# ------------------------------------------------------------------ hypothesis properties
_POOL = ["0001", "0002", "guangxi", "shanxi", "K001", "C01", "S0001", "E1", "control", "",
         " ", "express", "station", "cash", "wechat", "office", "national", "spring_festival"]


@st.composite
def _column(draw, dtype: str, n: int, finite: bool):
    kind = draw(st.sampled_from(["native", "native", "text", "float", "int", "bool",
                                 "datetime", "null"]))
    if kind == "native":
        kind = {"string": "pool", "float64": "float", "int64": "int", "bool": "bool",
                "timestamp": "datetime", "date": "date"}[dtype]
    elem = {
        "pool": st.sampled_from(_POOL),
        "text": st.text(max_size=6),
        "float": st.one_of(st.floats(-1e6, 1e6), st.just(float("nan"))) if finite
        else st.floats(),
        "int": st.integers(-3, 8),
        "bool": st.booleans(),
        "datetime": st.datetimes(dt.datetime(2020, 1, 1), dt.datetime(2023, 12, 31)),
        "date": st.dates(dt.date(2020, 1, 1), dt.date(2023, 12, 31)),
        "null": st.none(),
    }[kind]
    values = draw(st.lists(st.one_of(st.none(), elem) if kind != "null" else elem,
                           min_size=n, max_size=n))
    return pd.Series(values, dtype=object if kind in ("pool", "text", "date") else None)


@st.composite
def _frames(draw, finite: bool = False):
    optional = draw(st.sets(st.sampled_from(["coupons", "campaigns", "survey", "assignments"])))
    frames = {}
    for table in ["regions", "customers", "shipments", *sorted(optional)]:
        n = draw(st.integers(0, 5))
        cols = {c: draw(_column(col.dtype, n, finite)).reset_index(drop=True)
                for c, col in CONTRACT[table].columns.items()}
        frames[table] = pd.DataFrame(cols, index=range(n))
    return frames


_SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                        HealthCheck.data_too_large])


@settings(max_examples=8, **_SETTINGS)
@given(frames=_frames())
def test_validation_never_crashes_on_arbitrary_frames(frames):
    report = validate(Dataset.from_frames(frames))
    assert list(report.issues.columns) == ["table", "column", "rule", "rows_failing",
                                           "examples", "message"]
    counts = report.issues["rows_failing"].dropna()
    assert (counts > 0).all()
    for t, n in report.rows.items():
        assert (report.issues.loc[report.issues["table"] == t, "rows_failing"].dropna() <= n).all()
    report.to_text()
    report._repr_html_()


@settings(max_examples=5, **_SETTINGS)
@given(frames=_frames(finite=True))
def test_quarantine_always_reconciles(frames, tmp_path_factory):
    out = tmp_path_factory.mktemp("q") / "out"
    ds = Dataset.from_frames(frames)
    result = quarantine(ds, out)
    rec = result.reconciliation
    assert result.balanced, rec
    assert (rec["input_rows"] == rec["accepted_rows"] + rec["rejected_rows"]).all()
    assert dict(zip(rec["table"], rec["input_rows"], strict=True)) == {
        t: len(f) for t, f in frames.items()
    }
    ship = rec.set_index("table").loc["shipments"]
    assert np.isclose(ship["input_revenue"], ship["accepted_revenue"] + ship["rejected_revenue"])
    for t in frames:
        rejected = pd.read_csv(out / "rejected" / f"{t}.csv", dtype=str, keep_default_na=False)
        assert len(rejected) == rec.set_index("table").loc[t, "rejected_rows"]
        assert (rejected[RULE_COLUMN] != "").all()
    # what is accepted satisfies the contract
    clean_report = validate(load_dataset(out))
    assert clean_report.ok, clean_report.to_text()
