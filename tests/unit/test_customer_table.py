"""customer_table on a tiny hand-made dataset whose answers are worked out by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from promo_analysis.features.customers import HISTORY_COLUMNS, customer_table

T = pd.Timestamp


def make_dataset(frames: dict[str, pd.DataFrame]):
    from promo_analysis.dataset import Dataset

    return Dataset.from_frames(frames)


def tiny_frames() -> dict[str, pd.DataFrame]:
    customers = pd.DataFrame(
        {
            "customer_id": ["c1", "c2", "c3", "c4"],
            "region_id": ["guangxi", "guangxi", "shanxi", "shanxi"],
            "known_since": pd.to_datetime(["2021-01-01", "2021-01-10", "2021-02-01", "2021-03-01"]),
            "segment": ["office", "campus", "mall", "other"],
            "wechat_contact": [True, False, True, False],
            "parcels_received": [3, 0, 1, 2],
        }
    )
    shipments = pd.DataFrame(
        {
            "shipment_id": ["s1", "s2", "s3", "s4", "s5", "s6", "s7"],
            "customer_id": ["c1", "c1", "c1", "c2", "c4", "c4", "c9"],
            "region_id": ["guangxi", "guangxi", "guangxi", "guangxi", "shanxi", "shanxi", "shanxi"],
            "sent_at": [
                T("2021-02-01 10:00"),
                T("2021-03-01 09:00"),
                T("2021-01-15 08:30"),  # c1's first parcel, listed out of order on purpose
                T("2021-05-05 12:00"),
                T("2021-06-01 11:00"),  # c4: two parcels at the same minute; s5 < s6 breaks the tie
                T("2021-06-01 11:00"),
                T("2021-01-01 10:00"),  # c9 is not a known customer
            ],
            "channel": [
                "station",
                "counter",
                "online",
                "counter",
                "pickup_point",
                "station",
                "counter",
            ],
            "product": ["express"] * 7,
            "list_price": [20.0, 15.0, 12.0, 22.0, 30.0, 18.0, 10.0],
            # s5 has a campaign discount without a coupon: not full price, not a coupon parcel
            "discount": [0.0, 0.0, 3.0, 0.0, 5.0, 0.0, 0.0],
            "coupon_id": [None, None, "k1", None, None, None, None],
            "campaign_id": [None, None, "m1", None, "m2", None, None],
            "payment": ["cash"] * 7,
        }
    )
    shipments["revenue"] = shipments["list_price"] - shipments["discount"]
    return {"customers": customers, "shipments": shipments}


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return customer_table(make_dataset(tiny_frames())).set_index("customer_id")


def test_one_row_per_customer_with_all_columns(table):
    assert list(table.index) == ["c1", "c2", "c3", "c4"]
    for col in ["region_id", "segment", "wechat_contact", "known_since", "parcels_received"]:
        assert col in table.columns
    assert [c for c in table.columns if c in HISTORY_COLUMNS] == HISTORY_COLUMNS
    assert table.loc["c1", "parcels_received"] == 3  # extra customer columns are kept


def test_first_shipment_is_the_earliest(table):
    c1 = table.loc["c1"]
    assert c1.first_sent_at == T("2021-01-15 08:30")
    assert c1.first_channel == "online"
    assert c1.first_list_price == 12.0
    assert c1.first_revenue == 9.0
    assert bool(c1.first_used_coupon) is True
    assert c1.first_coupon_id == "k1"
    assert c1.second_sent_at == T("2021-02-01 10:00")
    assert c1.last_sent_at == T("2021-03-01 09:00")


def test_counts_and_revenue(table):
    # c1: 9 + 20 + 15; one coupon parcel, two at full price
    assert table.loc["c1", "n_shipments"] == 3
    assert table.loc["c1", "revenue"] == pytest.approx(44.0)
    assert table.loc["c1", "n_coupon_shipments"] == 1
    assert table.loc["c1", "n_full_price_shipments"] == 2
    # c2: a single full-price parcel, no second one
    assert table.loc["c2", "n_shipments"] == 1
    assert pd.isna(table.loc["c2", "second_sent_at"])
    assert bool(table.loc["c2", "first_used_coupon"]) is False
    assert pd.isna(table.loc["c2", "first_coupon_id"])


def test_ties_are_broken_by_shipment_id(table):
    c4 = table.loc["c4"]
    assert c4.first_channel == "pickup_point"  # s5 before s6
    assert c4.first_revenue == 25.0
    assert c4.second_sent_at == c4.first_sent_at
    # s5 carries a campaign discount: neither a coupon parcel nor full price
    assert c4.n_coupon_shipments == 0
    assert c4.n_full_price_shipments == 1
    assert c4.revenue == pytest.approx(43.0)


def test_prospect_has_null_firsts_and_zero_counts(table):
    c3 = table.loc["c3"]
    for col in [
        "first_sent_at",
        "first_channel",
        "first_revenue",
        "first_used_coupon",
        "last_sent_at",
        "second_sent_at",
    ]:
        assert pd.isna(c3[col]), col
    assert c3.n_shipments == 0 and c3.revenue == 0.0
    assert c3.n_coupon_shipments == 0 and c3.n_full_price_shipments == 0


def test_dtypes(table):
    assert table["first_used_coupon"].dtype == "boolean"
    assert table["n_shipments"].dtype == "int64"
    assert pd.api.types.is_datetime64_any_dtype(table["first_sent_at"])


def test_orphan_shipments_are_counted_not_silently_dropped(table):
    assert table.attrs["exclusions"] == {"shipments_without_customer": 1}
    assert "1 shipment(s)" in table.attrs["warnings"][0]


def test_orphans_leave_the_customer_columns_types_alone():
    frames = tiny_frames()
    frames["customers"] = frames["customers"].assign(
        parcels_received=np.arange(len(frames["customers"]), dtype="int64"),
        prior_sender=[i % 2 == 0 for i in range(len(frames["customers"]))],
    )
    with_orphan = customer_table(make_dataset(frames))
    assert with_orphan.attrs["exclusions"]["shipments_without_customer"] > 0
    s = frames["shipments"]
    frames["shipments"] = s[s["customer_id"].isin(frames["customers"]["customer_id"])]
    without = customer_table(make_dataset(frames))
    for col in ("wechat_contact", "parcels_received", "prior_sender"):
        assert with_orphan[col].dtype == without[col].dtype, col
    assert with_orphan["parcels_received"].dtype == "int64"
    assert with_orphan["prior_sender"].dtype == bool
    pd.testing.assert_frame_equal(with_orphan, without)


def test_duplicate_customer_is_a_clear_error():
    frames = tiny_frames()
    frames["customers"] = pd.concat([frames["customers"], frames["customers"].iloc[[1]]])
    with pytest.raises(ValueError, match=r"one row per customer_id.*customer_id='c2' appears 2"):
        customer_table(make_dataset(frames))


def test_missing_column_is_a_clear_error():
    frames = tiny_frames()
    frames["shipments"] = frames["shipments"].drop(columns="discount")
    with pytest.raises(ValueError, match=r"'shipments' lacks the column\(s\) \['discount'\]"):
        customer_table(make_dataset(frames))


def test_matches_plain_pandas_on_random_data():
    """Independent check: the same history computed with a pandas sort + groupby."""
    import numpy as np

    rng = np.random.default_rng(3)
    n_c, n_s = 60, 400
    customers = pd.DataFrame(
        {
            "customer_id": [f"c{i:03d}" for i in range(n_c)],
            "region_id": "guangxi",
            "known_since": T("2021-01-01"),
            "segment": "office",
            "wechat_contact": rng.random(n_c) < 0.5,
        }
    )
    lp = rng.choice([12.0, 15.0, 22.0, 30.0], n_s)
    coupon = rng.random(n_s) < 0.3
    disc = np.where(coupon, 3.0, np.where(rng.random(n_s) < 0.1, 1.0, 0.0))
    shipments = pd.DataFrame(
        {
            "shipment_id": [f"s{i:04d}" for i in range(n_s)],
            "customer_id": rng.choice(customers.customer_id[:45], n_s),
            "region_id": "guangxi",
            # whole days, so that ties occur and the shipment_id tie-break is exercised
            "sent_at": T("2021-01-01") + pd.to_timedelta(rng.integers(0, 60, n_s), unit="D"),
            "channel": rng.choice(["station", "counter", "online"], n_s),
            "product": "express",
            "list_price": lp,
            "discount": disc,
            "revenue": lp - disc,
            "coupon_id": np.where(coupon, [f"k{i}" for i in range(n_s)], None),
            # all-null object columns cannot be typed by the engine; give them a string dtype
            "campaign_id": pd.Series([None] * n_s, dtype="string"),
            "payment": "cash",
        }
    )
    got = customer_table(make_dataset({"customers": customers, "shipments": shipments}))
    got = got.set_index("customer_id")

    srt = shipments.sort_values(["customer_id", "sent_at", "shipment_id"])
    g = srt.groupby("customer_id")
    exp = pd.DataFrame(
        {
            "first_sent_at": g.sent_at.first(),
            "first_channel": g.channel.first(),
            "first_revenue": g.revenue.first(),
            "first_used_coupon": g.coupon_id.apply(lambda x: x.iloc[0] is not None),
            "second_sent_at": g.sent_at.nth(1).set_axis(srt.customer_id[g.cumcount() == 1]),
            "n_shipments": g.size(),
            "revenue": g.revenue.sum(),
            "n_coupon_shipments": g.coupon_id.count(),
            "n_full_price_shipments": srt.assign(f=srt.coupon_id.isna() & (srt.discount == 0))
            .groupby("customer_id")
            .f.sum(),
        }
    )
    senders = got.loc[exp.index]
    for col in exp.columns:
        left = senders[col].astype(object) if col == "first_used_coupon" else senders[col]
        right = exp[col].reindex(exp.index)
        pd.testing.assert_series_equal(left, right, check_names=False, check_dtype=False)
    assert (got.drop(exp.index).n_shipments == 0).all()


def _random_frames(seed: int = 5) -> dict[str, pd.DataFrame]:
    """Customers with many same-day ties, orphans, prospects and a date column."""
    import numpy as np

    rng = np.random.default_rng(seed)
    n_c, n_s = 80, 600
    customers = pd.DataFrame(
        {
            "customer_id": [f"c{i:03d}" for i in range(n_c)],
            "region_id": rng.choice(["guangxi", "shanxi"], n_c),
            "known_since": pd.to_datetime("2021-01-01").date(),
            "segment": "office",
            "wechat_contact": rng.random(n_c) < 0.5,
        }
    )
    lp = rng.choice([12.0, 15.0, 22.0], n_s)
    coupon = rng.random(n_s) < 0.3
    shipments = pd.DataFrame(
        {
            "shipment_id": [f"s{i:04d}" for i in range(n_s)],
            # c080..c084 are not in customers: orphans
            "customer_id": [f"c{i:03d}" for i in rng.integers(0, 85, n_s)],
            "region_id": "guangxi",
            "sent_at": T("2021-01-01") + pd.to_timedelta(rng.integers(0, 30, n_s), unit="D"),
            "channel": rng.choice(["station", "counter", "online"], n_s),
            "product": "express",
            "list_price": lp,
            "discount": np.where(coupon, 3.0, 0.0),
            "revenue": lp - np.where(coupon, 3.0, 0.0),
            "coupon_id": np.where(coupon, [f"k{i}" for i in range(n_s)], None),
            "campaign_id": pd.Series([None] * n_s, dtype="string"),
            "payment": "cash",
        }
    )
    return {"customers": customers, "shipments": shipments}


def test_streaming_history_equals_the_window_version(monkeypatch):
    """The DuckDB path (arg_min / min(x, 2), no window) and the portable window path that
    other engines run give the same table, ties and orphans included."""
    from promo_analysis.features import customers as mod

    ds = make_dataset(_random_frames())
    fast = customer_table(ds)
    monkeypatch.setattr(mod, "on_duckdb", lambda expr: False)
    slow = customer_table(ds)
    pd.testing.assert_frame_equal(fast, slow)
    assert fast.attrs == slow.attrs
    orphans = int(_random_frames()["shipments"].customer_id.ge("c080").sum())
    assert fast.attrs["exclusions"]["shipments_without_customer"] == orphans > 0


def test_to_frame_matches_ibis_to_pandas():
    """The Arrow conversion gives the frame (values and dtypes) Ibis's to_pandas gives."""
    import ibis

    from promo_analysis.features.customers import shipment_history
    from promo_analysis.features.frames import to_frame

    ds = make_dataset(_random_frames())
    c = ds.table("customers")
    h = shipment_history(ds.table("shipments")).rename(_cid="customer_id")
    expr = c.left_join(h, c.customer_id == h._cid).mutate(flag=ibis.literal(True))
    got = to_frame(expr, sort_by=["customer_id"])
    exp = expr.to_pandas().sort_values("customer_id", kind="stable", ignore_index=True)
    # integer columns with nulls (counts of the prospects, null after the left join): float64
    # here; Ibis gives float64 or objects depending on the SQL type of the aggregate (what the
    # callers cast to int64 after filling the nulls)
    ints = [c for c in exp.columns if got[c].dtype == "float64" and exp[c].dtype == object]
    exp[ints] = exp[ints].astype("float64")
    assert str(got["n_coupon_shipments"].dtype) == "float64"
    assert got["n_coupon_shipments"].isna().any()
    pd.testing.assert_frame_equal(got, exp)
    assert str(got["known_since"].dtype) == "datetime64[s]"
    assert str(got["first_sent_at"].dtype) == "datetime64[ns]"


def test_customer_without_id_is_a_key_error():
    frames = tiny_frames()
    frames["customers"] = pd.concat(
        [frames["customers"], frames["customers"].iloc[[0]].assign(customer_id=None)]
    )
    with pytest.raises(ValueError, match=r"one row per customer_id.*1 duplicate row"):
        customer_table(make_dataset(frames))


# --------------------------------------------------------------------------- path=: to Parquet
def _file_equals_frame(ds, tmp_path, name="ct.parquet", buckets=1):
    frame = customer_table(ds)
    out = customer_table(ds, path=tmp_path / name, buckets=buckets)
    got = out.read()
    # same values and types (the frame's customer columns come out of a full outer join with
    # the orphans' rows: their types are restored once those rows are dropped)
    pd.testing.assert_frame_equal(got, frame)
    assert out.rows == len(frame)
    assert out.exclusions == frame.attrs["exclusions"]
    assert out.warnings == frame.attrs["warnings"]
    return out, frame


@pytest.mark.parametrize("buckets", [1, 3])
@pytest.mark.parametrize("portable", [False, True], ids=["duckdb", "window"])
def test_parquet_output_equals_the_frame(tmp_path, monkeypatch, portable, buckets):
    """Orphans, prospects, same-day ties, a date column: the engine-written file holds the
    frame's rows and values, on the streaming DuckDB query and on the portable one."""
    import pyarrow.parquet as pq

    from promo_analysis.features import customers as mod

    if portable:
        monkeypatch.setattr(mod, "on_duckdb", lambda expr: False)
    frames = _random_frames()
    out, frame = _file_equals_frame(make_dataset(frames), tmp_path, buckets=buckets)
    if buckets > 1:  # a folder of parts, each non-empty here
        parts = sorted(p.name for p in out.path.iterdir())
        assert parts == [f"part-{i}.parquet" for i in range(buckets)]
    orphans = int(frames["shipments"].customer_id.ge("c080").sum())
    assert out.exclusions == {"shipments_without_customer": orphans} and orphans > 0
    assert (frame.n_shipments == 0).sum() > 0  # prospects are in the file too
    schema = pq.read_schema(out.path / "part-0.parquet" if buckets > 1 else out.path)
    assert schema.names == list(frame.columns)
    assert str(schema.field("first_used_coupon").type) == "bool"
    assert str(schema.field("n_shipments").type) == "int64"
    assert str(schema.field("known_since").type) == "date32[day]"


def test_parquet_output_of_the_tiny_dataset(tmp_path):
    out, frame = _file_equals_frame(make_dataset(tiny_frames()), tmp_path)
    assert out.exclusions == {"shipments_without_customer": 1}  # c9's parcel
    assert len(out.warnings) == 1 and out.warnings[0].startswith("1 shipment(s)")
    assert out.read(["customer_id", "n_shipments"]).n_shipments.tolist() == [3, 1, 0, 2]


def test_parquet_output_keeps_the_connection_settings(tmp_path):
    import ibis

    ds = make_dataset(tiny_frames())
    raw = ibis.get_backend(ds.table("customers")).con
    setting = "SELECT current_setting('preserve_insertion_order')"
    before = raw.execute(setting).fetchall()[0][0]
    customer_table(ds, path=tmp_path / "ct.parquet")
    assert raw.execute(setting).fetchall()[0][0] == before


@pytest.mark.parametrize(
    "dup, message",
    [
        ("repeat", r"one row per customer_id.*1 duplicate row.*customer_id='c2' appears 2 times"),
        ("null", r"one row per customer_id.*2 duplicate row.*customer_id=None appears 2 times"),
    ],
)
@pytest.mark.parametrize("buckets", [1, 3])
def test_parquet_output_checks_the_key_before_writing(tmp_path, dup, message, buckets):
    frames = tiny_frames()
    c = frames["customers"]
    extra = c.iloc[[1]] if dup == "repeat" else c.iloc[[0, 2]].assign(customer_id=None)
    frames["customers"] = pd.concat([c, extra])
    ds = make_dataset(frames)
    with pytest.raises(ValueError, match=message):
        customer_table(ds, path=tmp_path / "ct.parquet", buckets=buckets)
    assert not (tmp_path / "ct.parquet").exists()
    if dup == "repeat":  # the in-memory check says the same
        with pytest.raises(ValueError, match=message):
            customer_table(ds)
