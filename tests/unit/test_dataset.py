"""Dataset: from_frames, table, to_pandas, save/load round trips (Parquet and CSV), encodings."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from contract_fixtures import VALID_META, valid_frames

from promo_analysis import Dataset, load_dataset, save_dataset
from promo_analysis.dataset import DatasetError


@pytest.fixture
def ds():
    return Dataset.from_frames(valid_frames(), meta=VALID_META)


def test_from_frames_tables_and_access(ds):
    assert ds.tables == [
        "regions", "customers", "campaigns", "coupons", "shipments", "survey", "assignments",
    ]
    assert ds.has("shipments") and not ds.has("nope")
    assert ds.meta["name"] == "hand-made"
    assert ds.truth is None
    t = ds.table("shipments")
    assert int(t.revenue.sum().to_pandas()) == 94
    with pytest.raises(KeyError, match="'nope' is not present"):
        ds.table("nope")


def test_to_pandas_matches_input_and_contract_dtypes(ds):
    frames = valid_frames()
    for name, frame in frames.items():
        out = ds.to_pandas(name)
        assert list(out.columns) == list(frame.columns)
        pd.testing.assert_frame_equal(
            out.sort_values(list(out.columns[:1])).reset_index(drop=True),
            frame.reset_index(drop=True),
            check_dtype=False,
        )
    cust = ds.to_pandas("customers")
    assert cust["known_since"].dtype == "datetime64[ns]"
    assert cust["wechat_contact"].dtype == bool
    assert cust["customer_id"].tolist() == ["0001", "0002", "0003", "0004", "0005"]
    survey = ds.to_pandas("survey")
    assert str(survey["coupon_influenced"].dtype) == "boolean"
    assert str(survey["satisfaction"].dtype) == "Int64"


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_round_trip_keeps_ids_chinese_and_types(ds, tmp_path, fmt):
    path = save_dataset(ds, tmp_path / "d", format=fmt)
    meta = json.loads((path / "dataset.json").read_text(encoding="utf-8"))
    assert meta["created_by"] == "promo-analysis" and meta["name"] == "hand-made"
    assert sorted(p.name for p in path.iterdir()) == sorted(
        [f"{t}.{fmt}" for t in ds.tables] + ["dataset.json"]
    )
    back = load_dataset(path)
    for name in ds.tables:
        a = ds.to_pandas(name).sort_values(ds.to_pandas(name).columns[0], ignore_index=True)
        b = back.to_pandas(name).sort_values(a.columns[0], ignore_index=True)
        pd.testing.assert_frame_equal(a, b, check_dtype=False)
        assert list(a.dtypes.astype(str)) == list(b.dtypes.astype(str)), name
    ids = back.to_pandas("customers")["customer_id"].tolist()
    assert ids == ["0001", "0002", "0003", "0004", "0005"]
    assert back.to_pandas("regions")["name_zh"].tolist() == ["广西", "山西"]
    assert back.fingerprint() == load_dataset(path).fingerprint()


def test_fingerprint_is_stable_and_content_sensitive():
    a = Dataset.from_frames(valid_frames(), meta=VALID_META).fingerprint()
    b = Dataset.from_frames(valid_frames(), meta=VALID_META).fingerprint()
    frames = valid_frames()
    frames["shipments"].loc[0, "revenue"] = 15.5
    c = Dataset.from_frames(frames, meta=VALID_META).fingerprint()
    assert a == b != c
    assert a.startswith("sha256:")


def test_save_never_overwrites_foreign_folder(ds, tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "shipments.csv").write_text("x\n1\n")
    with pytest.raises(FileExistsError, match="not written by promo-analysis"):
        save_dataset(ds, raw)
    assert (raw / "shipments.csv").read_text() == "x\n1\n"
    ours = save_dataset(ds, tmp_path / "ours")
    save_dataset(ds, ours, format="csv")  # replacing our own dataset is fine
    assert (ours / "shipments.csv").exists() and not (ours / "shipments.parquet").exists()
    with pytest.raises(FileExistsError, match="overwrite=False"):
        save_dataset(ds, ours, overwrite=False)


def _write_csv_dir(tmp_path, encoding):
    d = tmp_path / f"csv_{encoding}"
    d.mkdir()
    for name, frame in valid_frames().items():
        frame.to_csv(d / f"{name}.csv", index=False, encoding=encoding)
    return d


def test_gbk_csv_loads_with_encoding_and_fails_clearly_without(tmp_path):
    d = _write_csv_dir(tmp_path, "gbk")
    ds = load_dataset(d, encoding="gbk")
    assert ds.to_pandas("regions")["name_zh"].tolist() == ["广西", "山西"]
    assert ds.to_pandas("campaigns")["name"].iloc[0] == "三月三 寄件优惠"
    with pytest.raises(DatasetError) as err:
        load_dataset(d)
    msg = str(err.value)
    # campaigns.csv is the first file (alphabetically) with Chinese text
    assert "campaigns.csv" in msg and "byte offset" in msg and "gb18030" in msg
    offset = int(msg.split("byte offset ")[1].split()[0])
    raw = (d / "campaigns.csv").read_bytes()
    raw[:offset].decode("utf-8")  # everything before the offset is valid UTF-8
    with pytest.raises(UnicodeDecodeError):
        raw[offset : offset + 2].decode("utf-8")


def test_csv_with_excel_bom_and_extra_columns(tmp_path):
    d = _write_csv_dir(tmp_path, "utf-8-sig")
    ds = load_dataset(d)
    cust = ds.to_pandas("customers")
    assert cust.columns[0] == "customer_id"
    assert cust["age_band"].tolist()[:3] == ["18-24", "25-34", "35-44"]


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_dataset(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no table files"):
        load_dataset(tmp_path / "empty")
    d = tmp_path / "twice"
    d.mkdir()
    valid_frames()["regions"].to_csv(d / "regions.csv", index=False)
    valid_frames()["regions"].to_parquet(d / "regions.parquet")
    with pytest.raises(DatasetError, match="present twice"):
        load_dataset(d)


def test_spark_engine_missing_extra_is_a_clear_error():
    try:
        import pyspark  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match=r"pip install -e \.\[spark\]"):
            Dataset.from_frames(valid_frames(), engine="spark")
    else:
        pytest.skip("pyspark installed: the spark engine is exercised by spark-marked tests")


def test_unknown_engine():
    with pytest.raises(ValueError, match="unknown engine"):
        Dataset.from_frames(valid_frames(), engine="oracle")


def test_temp_directory_reaches_the_duckdb_connection(tmp_path):
    """``temp_directory=`` tells DuckDB where to spill (its default is ./.tmp of the working
    directory); refused for Spark, whose local directories are set in its session."""
    spill = tmp_path / "spill"
    ds = Dataset.from_frames(valid_frames(), meta=VALID_META, temp_directory=spill)
    setting = ds.con.con.execute("SELECT current_setting('temp_directory')").fetchall()[0][0]
    assert setting == str(spill)
    ds.save(tmp_path / "d")
    loaded = load_dataset(tmp_path / "d", memory_limit="1GB", temp_directory=spill)
    con = loaded.con.con
    assert con.execute("SELECT current_setting('temp_directory')").fetchall()[0][0] == str(spill)
    assert con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0] == "953.6 MiB"
    default = load_dataset(tmp_path / "d").con.con.execute(
        "SELECT current_setting('temp_directory')").fetchall()[0][0]
    assert default != str(spill)
    with pytest.raises(ValueError, match="temp_directory applies to engine='duckdb' only"):
        load_dataset(tmp_path / "d", engine="spark", temp_directory=spill)


def test_duckdb_draws_no_progress_bar():
    """DuckDB's Python client would print a progress bar for every long query (report runs,
    benchmark logs); the dataset's connection has it off."""
    ds = Dataset.from_frames(valid_frames(), meta=VALID_META)
    con = ds.con.con
    assert con.execute("SELECT current_setting('enable_progress_bar')").fetchall()[0][0] is False
