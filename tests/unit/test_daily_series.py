"""daily_series: engine aggregation checked against hand counts and a pandas group-by."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from promo_analysis.features.daily import daily_series


class _Tables:
    """The one method daily_series needs from a Dataset: ``table(name)`` -> Ibis table."""

    def __init__(self, frames):
        import ibis

        self._t = {k: ibis.memtable(v) for k, v in frames.items()}

    def table(self, name):
        return self._t[name]


def _shipments():
    return pd.DataFrame(
        {
            "shipment_id": ["s1", "s2", "s3", "s4", "s5", "s6"],
            "customer_id": ["a", "a", "b", "c", "c", "d"],
            "region_id": ["gx", "gx", "gx", "sx", "gx", "sx"],
            "sent_at": pd.to_datetime(
                [
                    "2022-01-01 09:00",
                    "2022-01-03 10:00",
                    "2022-01-01 23:59",
                    "2022-01-02 08:00",
                    "2022-01-01 12:00",  # c's first shipment is in gx
                    "2022-01-04 00:00",
                ]
            ),
            "list_price": [12.0, 20.0, 8.0, 30.0, 15.0, 10.0],
            "discount": [3.0, 0.0, 0.0, 5.0, 3.0, 0.0],
            "coupon_id": ["k1", None, None, "k2", "k3", None],
            "campaign_id": ["c1", None, None, None, "c1", None],
        }
    ).assign(revenue=lambda d: d.list_price - d.discount)


def test_hand_counts():
    out = daily_series(_Tables({"shipments": _shipments()}))
    assert list(out.columns) == [
        "date",
        "region_id",
        "revenue",
        "shipments",
        "new_customers",
        "coupon_shipments",
        "discount",
    ]
    # 2 regions x 4 days, zero-filled
    assert len(out) == 8
    gx = out[out.region_id == "gx"].set_index("date")
    sx = out[out.region_id == "sx"].set_index("date")
    assert gx.loc["2022-01-01", "revenue"] == 9 + 8 + 12
    assert gx.loc["2022-01-01", "shipments"] == 3
    assert gx.loc["2022-01-01", "new_customers"] == 3  # a, b, c (c's first is in gx)
    assert gx.loc["2022-01-01", "coupon_shipments"] == 2
    assert gx.loc["2022-01-01", "discount"] == 6
    assert gx.loc["2022-01-02", "shipments"] == 0 and gx.loc["2022-01-02", "revenue"] == 0
    assert sx.loc["2022-01-02", "new_customers"] == 0  # c was already a customer
    assert sx.loc["2022-01-04", "new_customers"] == 1
    assert sx.loc["2022-01-01", "shipments"] == 0
    assert out.shipments.dtype == np.int64 and out.revenue.dtype == np.float64


def test_matches_pandas_groupby_on_random_data():
    rng = np.random.default_rng(3)
    n = 2000
    df = pd.DataFrame(
        {
            "shipment_id": [f"s{i}" for i in range(n)],
            "customer_id": rng.integers(0, 300, n).astype(str),
            "region_id": rng.choice(["gx", "sx", "bj"], n),
            "channel": rng.choice(["station", "counter"], n),
            "sent_at": pd.Timestamp("2022-03-01")
            + pd.to_timedelta(rng.integers(0, 60 * 24 * 3600, n), unit="s"),
            "list_price": rng.uniform(5, 40, n).round(2),
        }
    )
    df["discount"] = np.where(rng.random(n) < 0.2, 3.0, 0.0)
    df["coupon_id"] = np.where(df.discount > 0, "k", None)
    df["campaign_id"] = None
    df["revenue"] = df.list_price - df.discount
    out = daily_series(
        _Tables({"shipments": df}),
        by=("region_id", "channel"),
        metrics=("revenue", "shipments", "new_customers", "list_price"),
    )
    df["date"] = df.sent_at.dt.normalize()
    exp = df.groupby(["region_id", "channel", "date"]).agg(
        revenue=("revenue", "sum"), shipments=("shipment_id", "size")
    )
    got = out.set_index(["region_id", "channel", "date"])
    assert got.shipments.sum() == n
    pd.testing.assert_series_equal(
        got.loc[exp.index, "revenue"], exp.revenue, check_names=False, rtol=1e-9
    )
    first = df.sort_values("sent_at").groupby("customer_id").head(1)
    assert got.new_customers.sum() == df.customer_id.nunique()
    exp_new = first.groupby(["region_id", "channel", "date"]).size()
    assert (got.loc[exp_new.index, "new_customers"].to_numpy() == exp_new.to_numpy()).all()
    assert len(out) == 6 * out.date.nunique()


def test_national_series_and_window():
    out = daily_series(
        _Tables({"shipments": _shipments()}),
        by=(),
        metrics=("shipments",),
        start="2021-12-31",
        end="2022-01-02",
    )
    assert out.shipments.tolist() == [0, 3, 1]


def test_bad_input():
    ds = _Tables({"shipments": _shipments()})
    with pytest.raises(ValueError, match="unknown metrics"):
        daily_series(ds, metrics=("profit",))
    with pytest.raises(ValueError, match="'shipments' lacks the columns \\['segment'\\]"):
        daily_series(ds, by=("segment",))


def test_with_dataset():
    dataset = pytest.importorskip("promo_analysis.dataset")
    frames = {
        "shipments": _shipments(),
        "customers": pd.DataFrame({"customer_id": list("abcd"), "region_id": ["gx"] * 4}),
        "regions": pd.DataFrame({"region_id": ["gx", "sx"]}),
    }
    ds = dataset.Dataset.from_frames(frames)
    out = daily_series(ds, metrics=("shipments", "new_customers"))
    assert out.shipments.sum() == 6 and out.new_customers.sum() == 4


def test_duckdb_arg_min_path_equals_the_portable_path(monkeypatch):
    """On DuckDB the first shipment's groups come from one streaming arg_min; other engines
    run Ibis's argmin per column. Same series, with two ``by`` columns."""
    from promo_analysis.dataset import Dataset
    from promo_analysis.features import daily as mod

    rng = np.random.default_rng(11)
    n = 500
    s = pd.DataFrame(
        {
            "shipment_id": [f"s{i}" for i in range(n)],
            "customer_id": [f"c{i}" for i in rng.integers(0, 120, n)],
            "region_id": rng.choice(["gx", "sx", "bj"], n),
            "channel": rng.choice(["station", "online"], n),
            # distinct times: the first shipment is unique, so both paths must agree exactly
            "sent_at": pd.Timestamp("2022-01-01")
            + pd.to_timedelta(rng.permutation(40 * 86400)[:n], unit="s"),
            "list_price": 12.0,
            "discount": np.where(rng.random(n) < 0.2, 3.0, 0.0),
            "coupon_id": pd.Series(np.where(rng.random(n) < 0.2, "k", None), dtype="string"),
        }
    ).assign(revenue=lambda d: d.list_price - d.discount)
    ds = Dataset.from_frames({"shipments": s})
    assert mod.on_duckdb(ds.table("shipments"))
    by = ("region_id", "channel")
    fast = daily_series(ds, by=by)
    monkeypatch.setattr(mod, "on_duckdb", lambda expr: False)
    slow = daily_series(ds, by=by)
    pd.testing.assert_frame_equal(fast, slow)
    first = s.sort_values("sent_at").drop_duplicates("customer_id")
    assert fast["new_customers"].sum() == len(first) == s.customer_id.nunique()
    per_group = first.groupby(list(by)).size()
    got = fast.groupby(list(by))["new_customers"].sum()
    pd.testing.assert_series_equal(got, per_group, check_names=False)


@pytest.fixture(params=["packed", "duckdb arg_min", "ibis argmin"])
def path(request, monkeypatch):
    """The three ways daily_series finds first shipments: the packed key (DuckDB), DuckDB's
    arg_min over a struct key (when the packed key does not fit) and Ibis's argmin (other
    engines; on DuckDB an ordered aggregate)."""
    from promo_analysis.features import daily as mod

    if request.param != "packed":
        monkeypatch.setattr(mod, "_new_customers_packed", lambda *a: None)
    if request.param == "ibis argmin":
        monkeypatch.setattr(mod, "on_duckdb", lambda expr: False)
    return request.param


def _pandas_new_customers(df: pd.DataFrame, by: list[str]) -> pd.Series:
    """Independent reference: each customer's first shipment, ties in time broken by the
    smallest ``by`` values (missing first), counted per day and group."""
    key = ["sent_at", *by]
    first = df.sort_values(key, na_position="first", kind="stable").drop_duplicates("customer_id")
    first = first.assign(date=first.sent_at.dt.normalize())
    return first.groupby(["date", *by], dropna=False).size()


def test_first_shipments_tied_in_time_go_to_the_smallest_group(path):
    """A customer whose first two parcels share the exact second in two regions (and, with two
    ``by`` columns, in two channels of one region) is new in the smallest group, and only
    there, on every path; checked against a pandas sort."""
    t = pd.Timestamp("2022-05-01 10:00:00")
    df = pd.DataFrame(
        {
            "shipment_id": [f"s{i}" for i in range(8)],
            "customer_id": ["tie", "tie", "tie", "ch", "ch", "x", "x", "late"],
            "region_id": ["sx", "gx", "bj", "gx", "gx", "sx", "gx", "sx"],
            "channel": ["station", "station", "counter", "station", "counter", "a", "b", "a"],
            "sent_at": [
                t,
                t,
                t + pd.Timedelta("1us"),  # one microsecond later: not a tie
                t + pd.Timedelta("2h"),
                t + pd.Timedelta("2h"),
                t - pd.Timedelta("1D"),
                t,
                t + pd.Timedelta("1D"),
            ],
            "revenue": 1.0,
        }
    )
    ds = _Tables({"shipments": df})
    out = daily_series(ds, metrics=("new_customers",)).set_index(["date", "region_id"])
    assert out.loc[("2022-05-01", "gx"), "new_customers"] == 2  # "tie" and "ch"
    assert out.loc[("2022-05-01", "sx"), "new_customers"] == 0
    assert out.loc[("2022-05-01", "bj"), "new_customers"] == 0
    assert out.loc[("2022-04-30", "sx"), "new_customers"] == 1
    for by in (["region_id"], ["region_id", "channel"], ["channel"]):
        got = daily_series(ds, by=by, metrics=("new_customers",))
        got = got[got.new_customers > 0].set_index(["date", *by]).new_customers
        exp = _pandas_new_customers(df, by)
        pd.testing.assert_series_equal(
            got.sort_index(), exp.sort_index(), check_names=False, check_index_type=False
        )


def test_equals_pandas_with_missing_values_and_ties(path):
    """Random data with many exact ties, missing group values and a missing sent_at, on a
    Dataset: equal to the pandas reference per day and group, on every path."""
    from promo_analysis.dataset import Dataset

    rng = np.random.default_rng(5)
    n = 3000
    df = pd.DataFrame(
        {
            "shipment_id": [f"s{i}" for i in range(n)],
            "customer_id": [f"customer-number-{i:06d}" for i in rng.integers(0, 700, n)],
            "region_id": rng.choice(["gx", "sx", "bj"], n),
            "channel": pd.Series(rng.choice(["station", "counter", None], n), dtype=object),
            # whole hours over 20 days: many customers have tied first parcels
            "sent_at": pd.Timestamp("2022-03-01")
            + pd.to_timedelta(rng.integers(0, 20 * 24, n), unit="h"),
            "revenue": 2.0,
        }
    )
    df.loc[7, "sent_at"] = pd.NaT
    ds = Dataset.from_frames({"shipments": df})
    for by in (["region_id", "channel"], ["channel", "region_id"], []):
        out = daily_series(ds, by=by, metrics=("shipments", "new_customers"))
        got = out[out.new_customers > 0].set_index(["date", *by]).new_customers
        exp = _pandas_new_customers(df[df.sent_at.notna()], by)
        if not by:
            got.index, exp.index = got.index.rename("date"), exp.index.rename("date")
        # missing channels: NaN in pandas' group keys, None in the series
        got = got.rename(index=lambda v: "<na>" if pd.isna(v) else v)
        exp = exp.rename(index=lambda v: "<na>" if pd.isna(v) else v)
        pd.testing.assert_series_equal(
            got.sort_index(), exp.sort_index(), check_names=False, check_index_type=False
        )
        assert out.shipments.sum() == n - 1


def test_key_too_wide_falls_back_to_the_portable_path(monkeypatch):
    """Three ``by`` columns of 200 values each need 24 bits of the packed key, and 24 bits plus
    the microseconds of 60 days exceed 63: the portable path computes the same counts."""
    from promo_analysis.features import daily as mod

    rng = np.random.default_rng(2)
    n = 3000
    g = rng.integers(0, 200, n)
    df = pd.DataFrame(
        {
            "shipment_id": np.arange(n).astype(str),
            "customer_id": rng.integers(0, 800, n).astype(str),
            "a": g,
            "b": g + 1000,
            "c": (g * 7).astype(str),
            "sent_at": pd.Timestamp("2022-01-01")
            + pd.to_timedelta(rng.integers(0, 60 * 86400, n), unit="s"),
            "revenue": 1.0,
        }
    )
    calls = []

    def spy(*args):
        calls.append(packed(*args))
        return calls[-1]

    packed = mod._new_customers_packed
    monkeypatch.setattr(mod, "_new_customers_packed", spy)
    by = ["a", "b", "c"]
    out = daily_series(_Tables({"shipments": df}), by=by, metrics=("new_customers",))
    assert calls == [None]  # the key did not fit
    # a column of more than 256 values is not coded either (list_position scans the list)
    df["d"] = np.arange(n) % 300
    calls.clear()
    daily_series(_Tables({"shipments": df}), by=["d"], metrics=("new_customers",))
    assert calls == [None]
    got = out[out.new_customers > 0].set_index(["date", *by]).new_customers
    exp = _pandas_new_customers(df, by)
    assert got.sum() == df.customer_id.nunique()
    pd.testing.assert_series_equal(
        got.sort_index(), exp.sort_index(), check_names=False, check_index_type=False
    )


def test_memory_limit_reaches_the_duckdb_connection(tmp_path):
    """``memory_limit=`` caps DuckDB (the daily series' per-customer hash table spills beyond
    it); it is refused for Spark, whose memory is set in its session."""
    from promo_analysis.dataset import Dataset, load_dataset

    frames = {"shipments": _shipments()}
    ds = Dataset.from_frames(frames, memory_limit="300MB")
    limit = ds.con.con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
    assert limit.endswith("MiB") and 280 <= float(limit.split()[0]) <= 300
    assert daily_series(ds).new_customers.sum() == 4
    ds.save(tmp_path / "d")
    loaded = load_dataset(tmp_path / "d", memory_limit="1GB")
    limit = loaded.con.con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
    assert limit == "953.6 MiB"
    default = load_dataset(tmp_path / "d").con.con.execute(
        "SELECT current_setting('memory_limit')"
    ).fetchall()[0][0]
    assert default != limit
    with pytest.raises(ValueError, match="memory_limit applies to engine='duckdb' only"):
        load_dataset(tmp_path / "d", engine="spark", memory_limit="1GB")
