"""Tables stored as folders of (hive-partitioned) Parquet part files, and the partitioned writer.

The same simulation is written one-file-per-table and partitioned; both must load to the same
tables and give identical engine-side features.
"""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from promo_analysis import features, load_dataset, validate
from promo_analysis.simulate import write_simulation

ARGS = {"scale": 0.0005, "regions": ["guangxi", "shanxi"], "seed": 3}


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("partitioned")
    flat = write_simulation(root / "flat", **ARGS)
    parts = write_simulation(root / "parts", partitioned=True, **ARGS)
    return flat, parts


def test_writer_layout_is_hive_by_region_and_month(folders):
    _, parts = folders
    ship = parts / "shipments"
    assert ship.is_dir() and not (parts / "shipments.parquet").exists()
    regions = sorted(p.name for p in ship.iterdir())
    assert regions == ["region_id=guangxi", "region_id=shanxi"]
    months = sorted(p.name for p in (ship / "region_id=guangxi").iterdir())
    assert months[0] == "month=2021-01" and months[-1] == "month=2022-12"
    # partition columns live in the folder names only, as Spark and pyarrow write them
    one = next((ship / "region_id=guangxi" / "month=2022-01").glob("*.parquet"))
    names = pq.read_schema(one).names
    assert "region_id" not in names and "month" not in names
    # every row of a part file is of its month
    sent = pq.read_table(one).column("sent_at").to_pandas()
    assert len(sent) and (sent.dt.strftime("%Y-%m") == "2022-01").all()
    assert sorted(p.name for p in (parts / "coupons").iterdir())[0].startswith("month=")
    meta = json.loads((parts / "dataset.json").read_text(encoding="utf-8"))
    assert meta["tables"]["shipments"]["partition_by"] == ["region_id", "month"]
    assert meta["tables"]["shipments"]["derived_columns"] == ["month"]
    assert meta["tables"]["customers"] == {"file": "customers.parquet"}


def test_partitioned_loads_like_flat_and_validates(folders):
    flat, parts = folders
    a, b = load_dataset(flat), load_dataset(parts)
    assert a.tables == b.tables
    for t in a.tables:
        # same columns, same order, same contract types: region_id is text, month is gone
        assert b.raw_table(t).schema() == a.raw_table(t).schema(), t
        assert b.table(t).count().execute() == a.table(t).count().execute(), t
    assert "month" not in b.table("shipments").columns
    report = validate(b)
    assert report.ok and len(report.issues) == 0
    # row content, not just counts
    cols = ["shipment_id", "region_id", "sent_at", "revenue", "coupon_id"]
    x = a.table("shipments").select(cols).to_pandas().sort_values("shipment_id")
    y = b.table("shipments").select(cols).to_pandas().sort_values("shipment_id")
    pd.testing.assert_frame_equal(x.reset_index(drop=True), y.reset_index(drop=True))


def test_features_identical_partitioned_vs_flat(folders):
    a, b = (load_dataset(f) for f in folders)
    ct_a = features.customer_table(a).sort_values("customer_id").reset_index(drop=True)
    ct_b = features.customer_table(b).sort_values("customer_id").reset_index(drop=True)
    assert len(ct_a) > 1000
    # ids, counts, dates exact; float sums to 1e-9 relative (the engine adds a customer's
    # revenues in file order, which differs between layouts: 1e-14 yuan seen at scale 0.002)
    pd.testing.assert_frame_equal(ct_a, ct_b, check_exact=False, rtol=1e-9)
    keys = ["date", "region_id"]
    ds_a = features.daily_series(a).sort_values(keys).reset_index(drop=True)
    ds_b = features.daily_series(b).sort_values(keys).reset_index(drop=True)
    assert ds_a["revenue"].sum() > 0
    pd.testing.assert_frame_equal(ds_a, ds_b, check_exact=False, rtol=1e-9)


def test_fingerprint_covers_every_part_file(folders, tmp_path):
    _, parts = folders
    copy = tmp_path / "copy"
    shutil.copytree(parts, copy)
    before = load_dataset(copy).fingerprint()
    assert load_dataset(copy).fingerprint() == before
    # drop one row from one part file deep in the tree
    part = next((copy / "shipments" / "region_id=shanxi" / "month=2022-06").glob("*.parquet"))
    t = pq.read_table(part)
    pq.write_table(t.slice(1), part)
    changed = load_dataset(copy)
    assert changed.fingerprint() != before
    assert changed.table("shipments").count().execute() == (
        load_dataset(parts).table("shipments").count().execute() - 1
    )


def test_hand_written_hive_folder_keeps_text_ids_and_chinese(folders, tmp_path):
    """A folder as Spark or pyarrow write it: leading zeros, Chinese values and names survive;
    partition columns not declared derived are kept as text; _SUCCESS and hidden files ignored."""
    _, parts = folders
    copy = tmp_path / "copy"
    shutil.copytree(parts, copy)
    stores = copy / "stores"
    rows = {("011", "南宁"): ["007", "0042"], ("011", "柳州"): ["0100"], ("02", "太原"): ["9"]}
    for (region, city), ids in rows.items():
        d = stores / f"region_id={region}" / f"city={city}"
        d.mkdir(parents=True)
        names = [f"{city}邮政网点{i}" for i in ids]
        pq.write_table(pa.table({"store_id": ids, "name_zh": names}), d / "part-0.parquet")
    (stores / "_SUCCESS").write_text("")
    (stores / ".hidden.parquet").write_bytes(b"not parquet")
    ds = load_dataset(copy)
    got = ds.to_pandas("stores").sort_values("store_id").reset_index(drop=True)
    assert sorted(got.columns) == ["city", "name_zh", "region_id", "store_id"]
    assert got["store_id"].tolist() == ["0042", "007", "0100", "9"]
    assert got["region_id"].tolist() == ["011", "011", "011", "02"]
    assert got.loc[got.store_id == "0100", "name_zh"].item() == "柳州邮政网点0100"
    assert set(got["city"]) == {"南宁", "柳州", "太原"}
    # Chinese region names of the single-file regions table are intact next to the folders
    regions = ds.to_pandas("regions").set_index("region_id")
    assert regions.loc["guangxi", "name_zh"] == "广西"


def test_unreadable_part_file_is_a_clear_error(folders, tmp_path):
    from promo_analysis.dataset import DatasetError

    _, parts = folders
    copy = tmp_path / "copy"
    shutil.copytree(parts, copy)
    (copy / "coupons" / "month=2022-01" / "part-broken.parquet").write_bytes(b"junk")
    with pytest.raises(DatasetError, match="coupons"):
        load_dataset(copy).table("coupons").count().execute()


def test_cli_partitioned_and_bad_combination(tmp_path):
    from promo_analysis.cli import app

    out = tmp_path / "cli"
    r = CliRunner().invoke(app, ["simulate", "--scale", "0.0005", "--regions", "shanxi",
                                 "--seed", "1", "--partitioned", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert (out / "shipments" / "region_id=shanxi").is_dir()
    assert validate(load_dataset(out)).ok
    r = CliRunner().invoke(app, ["simulate", "--partitioned", "--format", "csv",
                                 "--out", str(tmp_path / "x")])
    assert r.exit_code == 2 and "--partitioned" in r.output


def test_plain_folder_of_parts_named_like_a_file(folders, tmp_path):
    """Not hive-partitioned, and named ``<table>.parquet/`` as Spark's writer names it: the
    parts are one table, no partition column appears, rows are not lost or duplicated."""
    _, parts = folders
    copy = tmp_path / "copy"
    shutil.copytree(parts, copy)
    regions = pq.read_table(copy / "regions.parquet")
    (copy / "regions.parquet").unlink()
    (copy / "regions.parquet").mkdir()
    pq.write_table(regions.slice(0, 1), copy / "regions.parquet" / "part-00000.parquet")
    pq.write_table(regions.slice(1), copy / "regions.parquet" / "part-00001.parquet")
    ds = load_dataset(copy)
    got = ds.to_pandas("regions").sort_values("region_id").reset_index(drop=True)
    want = regions.to_pandas().sort_values("region_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want)
    assert validate(ds).ok
