"""Partitioned Parquet folders on Spark: the same tables and features as on DuckDB.

A simulation written with ``write_simulation(..., partitioned=True)`` (shipments as
``region_id=<id>/month=<YYYY-MM>/`` part files, coupons by month) plus a hand-written hive
folder with leading-zero and Chinese partition values is loaded with both engines.

    SPARK_LOCAL_IP=127.0.0.1 python -m pytest tests/spark/test_spark_partitioned.py -m spark -q
"""

from __future__ import annotations

import pandas as pd
import pytest

pytestmark = [pytest.mark.spark, pytest.mark.xdist_group("spark")]

RTOL = 1e-9  # float sums depend on the order of addition, which differs between engines


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from promo_analysis.simulate import write_simulation

    path = write_simulation(tmp_path_factory.mktemp("sparkparts") / "ds", scale=0.0005,
                            regions=["guangxi", "shanxi"], seed=3, partitioned=True)
    for region, city, ids in [("011", "南宁", ["007", "0042"]), ("02", "太原", ["9"])]:
        d = path / "stores" / f"region_id={region}" / f"city={city}"
        d.mkdir(parents=True)
        pq.write_table(pa.table({"store_id": ids, "name_zh": [f"{city}网点" for _ in ids]}),
                       d / "part-0.parquet")
    return path


def _sorted(df: pd.DataFrame, keys) -> pd.DataFrame:
    return df.sort_values(list(keys)).reset_index(drop=True)


def test_partitioned_folder_same_on_spark(spark, folder):
    from promo_analysis import features, load_dataset, validate

    duck = load_dataset(folder)
    sp = load_dataset(folder, engine="spark")
    assert sp.tables == duck.tables
    for t in ("shipments", "coupons"):
        assert sp.table(t).columns == duck.table(t).columns, t
        assert "month" not in sp.table(t).columns
        assert sp.table(t).count().execute() == duck.table(t).count().execute()
    assert validate(sp).ok
    stores_d = _sorted(duck.to_pandas("stores"), ["store_id"])
    stores_s = _sorted(sp.to_pandas("stores"), ["store_id"])
    pd.testing.assert_frame_equal(stores_s[stores_d.columns], stores_d)
    assert stores_s["region_id"].tolist() == ["011", "011", "02"]
    ct_d = _sorted(features.customer_table(duck), ["customer_id"])
    ct_s = _sorted(features.customer_table(sp), ["customer_id"])
    pd.testing.assert_frame_equal(ct_s[ct_d.columns], ct_d, check_dtype=False, rtol=RTOL)
    keys = ["date", "region_id"]
    dd = _sorted(features.daily_series(duck), keys)
    dsp = _sorted(features.daily_series(sp), keys)
    pd.testing.assert_frame_equal(dsp[dd.columns], dd, check_dtype=False, rtol=RTOL)


def test_save_from_spark_loads_back(spark, folder, tmp_path):
    """``save_dataset`` of a Spark dataset writes each table as a ``<table>.parquet/`` folder
    of part files (Spark's writer); it loads back on DuckDB with the same rows and types."""
    from promo_analysis import load_dataset, save_dataset, validate

    out = save_dataset(load_dataset(folder, engine="spark"), tmp_path / "from_spark")
    assert (out / "shipments.parquet").is_dir()
    back, duck = load_dataset(out), load_dataset(folder)
    assert back.tables == duck.tables
    assert validate(back).ok
    for t in ("shipments", "coupons", "stores"):
        # same names and types (the extra table's column order is the reader's)
        assert dict(back.table(t).schema().items()) == dict(duck.table(t).schema().items()), t
        x = duck.to_pandas(t)
        y = back.to_pandas(t)[list(x.columns)]
        key = list(x.columns[:1])
        pd.testing.assert_frame_equal(_sorted(y, key), _sorted(x, key), rtol=RTOL)
