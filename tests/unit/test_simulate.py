"""Unit tests of the simulator: scenarios, determinism, contract, truth structure."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from promo_analysis.simulate import GroundTruth, load_scenario, simulate, simulate_frames
from promo_analysis.simulate.scenario import available_scenarios

TINY = dict(scale=0.001, regions=["guangxi"])


def test_shipped_scenarios_load_and_null_inherits():
    assert {"china-post-2022", "china-post-2022-null"} <= set(available_scenarios())
    base = load_scenario("china-post-2022")
    null = load_scenario("china-post-2022-null")
    assert null.campaigns["effect_scale"] == 0.0
    assert null.people["coupon_tau"] == [0.0] * len(base.people["segments"])
    # everything not overridden comes from the base
    assert null.regions["guangxi"]["revenue_2022"] == base.regions["guangxi"]["revenue_2022"]
    assert base.region("guangxi")["economy_share"] == base.defaults["economy_share"]


def test_scenario_from_a_toml_path_with_base(tmp_path):
    f = tmp_path / "whatif.toml"
    f.write_text('base = "china-post-2022"\nname = "whatif"\n[coupons]\nconfounding = 0.0\n')
    sc = load_scenario(f)
    assert sc.name == "whatif" and sc.coupons["confounding"] == 0.0
    assert sc.coupons["courier_rate"] == load_scenario().coupons["courier_rate"]


def test_bad_inputs_have_clear_errors():
    with pytest.raises(ValueError, match="unknown scenario 'nope'"):
        load_scenario("nope")
    with pytest.raises(ValueError, match="unknown region id"):
        simulate_frames(scale=0.001, regions=["atlantis"])
    with pytest.raises(ValueError, match="scale must be"):
        simulate_frames(scale=0, regions=["guangxi"])


@pytest.fixture(scope="module")
def tiny():
    return simulate_frames("china-post-2022", seed=5, **TINY)


def _digest(folder: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.iterdir()) if p.is_file()
    }


def test_same_seed_byte_identical_files_other_seed_differs(tiny, tmp_path):
    from promo_analysis import save_dataset
    from promo_analysis.dataset import Dataset

    frames, meta, truth = tiny
    a, b = tmp_path / "a", tmp_path / "b"
    save_dataset(Dataset.from_frames(frames, meta=meta, truth=truth), a)
    save_dataset(simulate(seed=5, **TINY), b)
    da, db = _digest(a), _digest(b)
    assert set(da) >= {"shipments.parquet", "truth.json", "dataset.json", "coupons.parquet"}
    # the run time is the only thing allowed to differ (it lives in truth.json's calibration)
    assert {k: v for k, v in da.items() if k != "truth.json"} == {
        k: v for k, v in db.items() if k != "truth.json"
    }
    t_a = GroundTruth.from_dict(json.loads((a / "truth.json").read_text()))
    t_b = GroundTruth.from_dict(json.loads((b / "truth.json").read_text()))
    for name in ("first_use", "experiments", "campaigns", "survey", "bunching"):
        pd.testing.assert_frame_equal(getattr(t_a, name), getattr(t_b, name))
    other, _, _ = simulate_frames("china-post-2022", seed=6, **TINY)
    assert not frames["shipments"]["list_price"].equals(other["shipments"]["list_price"])


def test_region_data_does_not_depend_on_other_regions(tiny):
    frames, _, _ = tiny
    both, _, _ = simulate_frames("china-post-2022", seed=5, scale=0.001,
                                 regions=["shanxi", "guangxi"])
    gx = both["shipments"][both["shipments"].region_id == "guangxi"].reset_index(drop=True)
    pd.testing.assert_frame_equal(frames["shipments"], gx)


def test_meta(tiny):
    _, meta, _ = tiny
    assert meta["contract_version"] == "1" and meta["currency"] == "CNY"
    assert meta["period"] == ["2021-01-01", "2022-12-31"]
    assert meta["scenario"] == "china-post-2022" and meta["scale"] == 0.001
    assert meta["seed"] == 5 and meta["regions"] == ["guangxi"]


def test_tables_follow_the_rules(tiny):
    frames, _, _ = tiny
    s, k, c = frames["shipments"], frames["coupons"], frames["customers"]
    assert set(frames) == {"regions", "customers", "shipments", "coupons", "campaigns",
                           "survey", "assignments"}
    assert (s.revenue - (s.list_price - s.discount)).abs().max() < 1e-6
    used = s[s.coupon_id.notna()].merge(k, on="coupon_id", suffixes=("", "_k"))
    assert len(used) == s.coupon_id.notna().sum()
    assert s.coupon_id.dropna().is_unique
    assert (used.list_price >= used.threshold).all()
    assert (used.discount == used.face_value).all()
    assert ((used.sent_at >= used.issued_at) & (used.sent_at <= used.expires_at)).all()
    assert (used["product"] == "express").all()
    # a personal coupon is the customer's own
    personal = used[used.customer_id_k.notna()]
    assert (personal.customer_id == personal.customer_id_k).all()
    # prospects who never sent are customers too
    assert (~c.customer_id.isin(s.customer_id)).sum() > 0
    assert c.parcels_received.min() >= 0


def test_personal_coupons_of_customers_come_after_their_first_parcel(tiny):
    """Only prospects' coupons (courier, experiment) may precede a first parcel, so the
    first-use table sees exactly the coupons given to prospects."""
    frames, _, _ = tiny
    s, k = frames["shipments"], frames["coupons"]
    first = s.groupby("customer_id").sent_at.min().rename("first")
    kk = k[k.customer_id.notna()].merge(first, left_on="customer_id", right_index=True,
                                        how="left")
    # compared by day: a coupon on the first parcel's day would count as a prospect's coupon
    before = kk[kk["first"].isna() | (kk.issued_at.dt.normalize() <= kk["first"].dt.normalize())]
    assert before.campaign_id.isna().all()
    assert (before.expires_at - before.issued_at).dt.days.max() <= 30


def test_truth_round_trip(tiny):
    _, _, truth = tiny
    again = GroundTruth.from_dict(truth.to_dict())
    pd.testing.assert_frame_equal(
        truth.first_use.reset_index(drop=True), again.first_use, check_dtype=False
    )
    assert again.retention["hazard_ratio"] == truth.retention["hazard_ratio"]
    assert list(again.campaigns.columns[:10]) == [
        "campaign_id", "region_id", "theme", "start_date", "end_date", "incremental_revenue",
        "incremental_shipments", "incremental_new_customers", "discount_cost",
        "pull_forward_revenue",
    ]


def test_truth_contract_columns(tiny):
    _, _, t = tiny
    assert set(t.first_use.estimand) == {"att", "ate"}
    assert set(t.first_use.by) == {"overall", "segment", "design", "region"}
    assert list(t.experiments.columns) == [
        "experiment_id", "region_id", "arm", "threshold", "face_value", "n", "control_rate",
        "effect",
    ]
    assert {"hazard_ratio", "habit_share", "habit_share_organic"} <= set(t.retention)
    assert list(t.bunching.columns) == ["region_id", "threshold", "moved_up_parcels"]
    assert {"region_id", "variable", "value"} == set(t.survey.columns)
    assert np.isfinite(t.first_use.value).all()


def test_write_simulation_streams_the_same_dataset(tiny, tmp_path):
    """The region-by-region folder writer: same tables as simulate(), valid, deterministic,
    and it never replaces a folder promo-analysis did not write."""
    from promo_analysis import load_dataset, validate
    from promo_analysis.simulate import write_simulation

    frames, meta, truth = tiny
    a = write_simulation(tmp_path / "a", "china-post-2022", seed=5, **TINY)
    b = write_simulation(tmp_path / "b", "china-post-2022", seed=5, **TINY)
    da, db = _digest(a), _digest(b)
    assert {k: v for k, v in da.items() if k != "truth.json"} == {
        k: v for k, v in db.items() if k != "truth.json"
    }
    ds = load_dataset(a)
    assert validate(ds).ok
    assert ds.meta["seed"] == 5 and ds.meta["created_by"] == "promo-analysis"
    for name in ("shipments", "coupons", "customers"):
        got = ds.to_pandas(name).sort_values(frames[name].columns[0]).reset_index(drop=True)
        want = frames[name].sort_values(frames[name].columns[0]).reset_index(drop=True)
        pd.testing.assert_frame_equal(got[want.columns], want, check_dtype=False)
    pd.testing.assert_frame_equal(ds.truth.first_use, truth.first_use, check_dtype=False)
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "notes.txt").write_text("not a dataset")
    with pytest.raises(FileExistsError, match="not written by promo-analysis"):
        write_simulation(raw, "china-post-2022", seed=5, **TINY)


def test_generated_columns_become_contract_types_or_fail_clearly():
    """The writer's Arrow tables: contract types (ns timestamps -> us, midnight -> date), nulls
    from None, scalars repeated, the same values as the pandas frame; a value that does not fit
    its column (a number in an id column, a time of day in a date column) raises naming the
    table."""
    import pyarrow as pa

    from promo_analysis.simulate.columns import to_arrow, to_pandas

    ts = np.array(["2022-03-01T08:00:00", "2022-03-02T09:30:00"], dtype="datetime64[ns]")
    cols = {
        "experiment_id": "gx-test",
        "customer_id": pa.array(["guangxi-c0000001", None]),
        "arm": np.array(["control", "12-3"], dtype=object),
        "assigned_at": ts,
    }
    t = to_arrow("assignments", cols)
    assert t.schema.types == [pa.string(), pa.string(), pa.string(), pa.timestamp("us")]
    assert t.column("experiment_id").to_pylist() == ["gx-test", "gx-test"]
    assert t.column("customer_id").null_count == 1
    df = to_pandas(cols)
    assert df.customer_id.tolist() == ["guangxi-c0000001", None]
    assert t.to_pandas()["arm"].tolist() == df.arm.tolist()
    with pytest.raises(TypeError, match="assignments"):
        to_arrow("assignments", {**cols, "arm": np.array(["control", 12.5], dtype=object)})
    customers = {"customer_id": pa.array(["c1"]), "region_id": "guangxi",
                 "known_since": ts[:1], "segment": np.array(["students"], dtype=object),
                 "wechat_contact": np.array([True])}
    with pytest.raises(TypeError, match="customers"):
        to_arrow("customers", customers)  # 08:00 is not a date
    day = to_arrow("customers", {**customers, "known_since": ts[:1].astype("datetime64[D]")})
    assert day.schema.field("known_since").type == pa.date32()
    with pytest.raises(ValueError, match="unequal length"):
        to_arrow("assignments", {**cols, "arm": np.array(["control"], dtype=object)})
