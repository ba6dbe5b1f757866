"""Engine-side retention counts (features.cohorts) on a tiny dataset worked out by hand."""

from __future__ import annotations

import pandas as pd
import pytest

from promo_analysis.features.cohorts import (
    assignment_outcomes,
    cohort_counts,
    repeat_windows,
    survival_table,
)

T = pd.Timestamp


def tiny_dataset():
    from promo_analysis.dataset import Dataset

    customers = pd.DataFrame(
        {
            "customer_id": ["c1", "c2", "c3", "c4"],
            "region_id": ["guangxi", "guangxi", "shanxi", "shanxi"],
            "known_since": pd.to_datetime(["2021-01-01"] * 4),
            "segment": ["office", "campus", "office", "mall"],
            "wechat_contact": [True, False, True, False],
        }
    )
    shipments = pd.DataFrame(
        {
            "shipment_id": ["s1", "s2", "s3", "s4", "s5", "s6", "s7"],
            "customer_id": ["c1", "c1", "c1", "c2", "c3", "c3", "c3"],
            "region_id": ["guangxi"] * 4 + ["shanxi"] * 3,
            "sent_at": [
                T("2021-01-15 08:30"),  # c1 first, with a coupon
                T("2021-02-01 10:00"),  # 17 d 1.5 h later, full price
                T("2021-03-20 09:00"),  # 64 d later, coupon
                T("2021-02-05 12:00"),  # c2's only parcel
                T("2021-01-31 23:00"),  # c3: two parcels at the same minute, s5 first
                T("2021-01-31 23:00"),
                T("2021-06-10 10:00"),  # c3, coupon, 130 d later
            ],
            "channel": ["station"] * 7,
            "product": ["express"] * 7,
            "list_price": [15.0, 20.0, 21.0, 12.0, 10.0, 10.0, 25.0],
            "discount": [3.0, 0.0, 5.0, 0.0, 0.0, 0.0, 3.0],
            "coupon_id": ["k1", None, "k2", None, None, None, "k3"],
            "campaign_id": [None] * 7,
            "payment": ["cash"] * 7,
        }
    )
    shipments["revenue"] = shipments["list_price"] - shipments["discount"]
    assignments = pd.DataFrame(
        {
            "experiment_id": ["e1", "e1", "e1"],
            "customer_id": ["c1", "c2", "c4"],
            "arm": ["control", "control", "12-3"],
            "assigned_at": [T("2021-01-10"), T("2021-02-01"), T("2021-03-01")],
        }
    )
    return Dataset.from_frames(
        {"customers": customers, "shipments": shipments, "assignments": assignments},
        meta={"period": ["2021-01-01", "2021-06-30"]},
    )


@pytest.fixture(scope="module")
def ds():
    return tiny_dataset()


def test_cohort_counts_by_hand(ds):
    c = cohort_counts(ds, freq="M", periods=6).set_index(["cohort", "k"])
    jan, feb = T("2021-01-01"), T("2021-02-01")
    # January cohort: c1 (active Jan, Feb, Mar) and c3 (Jan, Jun); February: c2 (Feb)
    assert c.loc[(jan, 0), "size"] == 2 and c.loc[(feb, 0), "size"] == 1
    assert [c.loc[(jan, k), "active"] for k in range(6)] == [2, 1, 1, 0, 0, 1]
    assert [c.loc[(feb, k), "active"] for k in range(6)] == [1, 0, 0, 0, 0, 0]
    # the last shipment is in June: February + 5 = July is not observed yet
    assert c.loc[(jan, 5), "observed"] and not c.loc[(feb, 5), "observed"]
    g = cohort_counts(ds, freq="M", periods=3, cohort_by="first_used_coupon")
    coupon = g[g.group == "coupon"].set_index("k")
    assert coupon["size"].iloc[0] == 1 and coupon["active"].tolist() == [1, 1, 1]
    org = g[(g.group == "organic") & (g.cohort == jan)].set_index("k")
    assert org["active"].tolist() == [1, 0, 0]


def test_cohort_matrix_engine_equals_pandas(ds):
    from promo_analysis.retention import cohort_matrix

    eng = cohort_matrix(ds, freq="M", periods=6)
    pdf = cohort_matrix(ds.to_pandas("shipments"), "customer_id", "sent_at", freq="M", periods=6)
    pd.testing.assert_frame_equal(eng.share, pdf.share)
    pd.testing.assert_frame_equal(eng.count, pdf.count)
    assert eng.share.loc[T("2021-01-01"), 1] == 0.5
    assert pd.isna(eng.share.loc[T("2021-02-01"), 5])


def test_survival_table_by_hand(ds):
    s = survival_table(ds).set_index("first_used_coupon")
    # c1 (coupon): second parcel after 17.06 days -> 17, event
    assert s.loc["coupon"].to_dict() == {"duration": 17.0, "event": 1, "count": 1}
    org = s.loc["organic"].sort_values("duration")
    # c3: two parcels in the same minute -> 0 days, event; c2: censored at the period end
    # (2021-06-30 23:59:59): 145 days 12 h -> 145
    assert org[["duration", "event", "count"]].values.tolist() == [[0, 1, 1], [145, 0, 1]]
    by_seg = survival_table(ds, by=("segment",), resolution_days=7)
    assert sorted(by_seg.duration) == [0.0, 14.0, 140.0]


def test_repeat_windows_by_hand(ds):
    r = repeat_windows(ds, window_days=(30, 90)).set_index("customer_id")
    assert r.loc["c1", ["later_30", "later_nocoupon_30", "later_90", "later_nocoupon_90",
                        "later_all", "later_nocoupon_all"]].tolist() == [1, 1, 2, 1, 2, 1]
    assert r.loc["c3", ["later_30", "later_nocoupon_30", "later_90", "later_all",
                        "later_nocoupon_all"]].tolist() == [1, 1, 1, 2, 1]
    assert r.loc["c2", "later_all"] == 0
    assert r["first_used_coupon"].tolist() == [True, False, False]
    # first parcel 2021-01-31 23:00 to 2021-06-30 23:59:59
    assert r.loc["c3", "observed_days"] == pytest.approx(150 + (3599 / 86400))


def test_assignment_outcomes_by_hand(ds):
    a = assignment_outcomes(ds, window_days=(30,)).set_index("customer_id")
    assert a.loc["c1", ["parcels_30", "nocoupon_30"]].tolist() == [2, 1]
    assert a.loc["c2", ["parcels_30", "nocoupon_30"]].tolist() == [1, 1]
    assert a.loc["c4", ["parcels_30", "nocoupon_30"]].tolist() == [0, 0]
    assert a.loc["c4", "arm"] == "12-3"


def test_bad_arguments(ds):
    with pytest.raises(ValueError, match="freq must be one of"):
        cohort_counts(ds, freq="H")
    with pytest.raises(ValueError, match="neither 'first_used_coupon' nor a column"):
        cohort_counts(ds, cohort_by="nope")
    with pytest.raises(ValueError, match="has no rows with region_id == 'tibet'"):
        cohort_counts(ds, region="tibet")
    with pytest.raises(ValueError, match=r"by=\['nope'\]: not columns of table 'customers'"):
        survival_table(ds, by=("nope",))


def test_cohort_counts_by_customer_column(ds):
    c = cohort_counts(ds, freq="M", periods=2, cohort_by="segment")
    sizes = c[c.k == 0].set_index(["group", "cohort"])["size"].to_dict()
    # c1 and c3 (office) start in January, c2 (campus) in February
    assert sizes == {("campus", T("2021-02-01")): 1, ("office", T("2021-01-01")): 2}


# --------------------------------------------------------------------------------------------
# The engine counts against an independent pandas computation on simulated data with
# injected ties, both engine paths (DuckDB's one-pass aggregate and the portable window path
# that Spark takes), monthly cohorts and spans longer than one 63-bit activity mask.


@pytest.fixture(scope="module")
def tied_ds(small_ds):
    """``small_ds`` plus (a) 40 customers whose first parcel has a twin at the same instant with
    the opposite coupon use, (b) 10 customers with two parcels at one later instant and (c) a
    sender missing from ``customers``."""
    from promo_analysis.dataset import Dataset

    sh = small_ds.to_pandas("shipments")
    first = sh.sort_values(["sent_at", "shipment_id"]).drop_duplicates("customer_id")
    twins = first.sample(40, random_state=1).copy()
    had = twins["coupon_id"].notna()
    twins["coupon_id"] = [None if h else "tie-coupon" for h in had]
    # "a..." sorts before the original ids: the twin is the shipment_id-first parcel
    twins["shipment_id"] = "a-twin-" + twins["shipment_id"]
    later = sh[~sh["customer_id"].isin(twins["customer_id"])].sort_values("sent_at")
    later = later[later.duplicated("customer_id")].drop_duplicates("customer_id").head(10).copy()
    later["shipment_id"] = "z-twin-" + later["shipment_id"]
    stray = sh.head(3).copy()
    stray["customer_id"] = "not-a-customer"
    stray["shipment_id"] = "stray-" + stray["shipment_id"]
    stray["sent_at"] = [T("2021-03-02 10:00"), T("2021-03-02 10:00"), T("2022-07-01 09:00")]
    stray["coupon_id"] = [None, "k-stray", None]
    shipments = pd.concat([sh, twins, later, stray], ignore_index=True)
    frames = {name: small_ds.to_pandas(name) for name in ("customers",)}
    return Dataset.from_frames({**frames, "shipments": shipments}, meta=small_ds.meta)


def _reference_first(sh: pd.DataFrame) -> pd.DataFrame:
    """Per customer: first and second sent_at, coupon use at the first instant (any parcel)."""
    sh = sh.sort_values(["customer_id", "sent_at"], kind="stable")
    rank = sh.groupby("customer_id").cumcount()
    out = pd.DataFrame({"first": sh[rank == 0].set_index("customer_id")["sent_at"]})
    out["second"] = sh[rank == 1].set_index("customer_id")["sent_at"].reindex(out.index)
    at_first = sh["coupon_id"].notna() & (sh["sent_at"] == sh["customer_id"].map(out["first"]))
    out["coupon"] = at_first.groupby(sh["customer_id"]).any()
    return out


def _reference_cohorts(ds, freq: str, periods: int, cohort_by: str | None) -> pd.DataFrame:
    sh = ds.to_pandas("shipments")
    p = sh["sent_at"].dt.to_period(freq).array.asi8
    act = pd.DataFrame({"customer_id": sh["customer_id"], "p": p}).drop_duplicates()
    cohort = act.groupby("customer_id")["p"].min().rename("cp")
    if cohort_by is None:
        group = pd.Series("all", index=cohort.index)
    elif cohort_by == "first_used_coupon":
        group = _reference_first(sh)["coupon"].map({True: "coupon", False: "organic"})
    else:
        cust = ds.to_pandas("customers").set_index("customer_id")[cohort_by].astype(str)
        group = cohort.index.to_series().map(cust).fillna("(not in customers)")
    act = act.join(cohort, on="customer_id")
    act["k"] = act["p"] - act["cp"]
    act["group"] = act["customer_id"].map(group)
    cells = act[act["k"] < periods].groupby(["group", "cp", "k"]).size().rename("active")
    sizes = pd.DataFrame({"cp": cohort, "group": group}).groupby(["group", "cp"]).size()
    grid = pd.MultiIndex.from_tuples(
        [(g, c, k) for (g, c) in sizes.index for k in range(periods)], names=["group", "cp", "k"])
    out = cells.reindex(grid, fill_value=0).reset_index()
    out = out.merge(sizes.rename("size").reset_index(), on=["group", "cp"])
    out["observed"] = out["cp"] + out["k"] <= p.max()
    start = {c: pd.Period(ordinal=c, freq=freq).start_time for c in out["cp"].unique()}
    out["cohort"] = out["cp"].map(start)
    out = out.sort_values(["group", "cohort", "k"]).reset_index(drop=True)
    return out[["group", "cohort", "k", "active", "size", "observed"]]


def _reference_survival(ds, resolution_days: float) -> pd.DataFrame:
    f = _reference_first(ds.to_pandas("shipments"))
    end = T("2022-12-31 23:59:59")  # the declared period end, whole day observed
    f = f[f["first"] <= end]
    event = f["second"].notna() & (f["second"] <= end)
    stop = f["second"].where(event, end)
    secs = (stop - f["first"]).dt.total_seconds()
    t = pd.DataFrame({
        "first_used_coupon": f["coupon"].map({True: "coupon", False: "organic"}),
        "duration": (secs // (resolution_days * 86400)) * resolution_days,
        "event": event.astype("int8"),
    })
    out = t.groupby(["first_used_coupon", "duration", "event"]).size().rename("count")
    return out.reset_index()


@pytest.fixture(params=["duckdb-one-pass", "window"])
def engine_path(request, monkeypatch):
    """Run the engine functions on their DuckDB path or on the portable path Spark takes."""
    if request.param == "window":
        from promo_analysis.features import cohorts as mod

        monkeypatch.setattr(mod, "on_duckdb", lambda expr: False)
    return request.param


@pytest.mark.parametrize(
    ("freq", "periods", "cohort_by"),
    [("M", 12, None), ("M", 6, "segment"),
     ("M", 45, "first_used_coupon"),  # one mask, but cohort + k reaches past bit 62
     ("W", 70, "first_used_coupon"),  # 105 weeks: two masks, k crosses the mask boundary
     ("D", 9, None),  # 730 days: 12 masks
     ("Q", 8, "segment"), ("Y", 2, "first_used_coupon")],
)
def test_cohort_counts_equal_pandas_reference(tied_ds, engine_path, freq, periods, cohort_by):
    got = cohort_counts(tied_ds, freq=freq, periods=periods, cohort_by=cohort_by)
    want = _reference_cohorts(tied_ds, freq, periods, cohort_by)
    pd.testing.assert_frame_equal(got, want, check_dtype=False)
    assert got["active"].sum() > got.loc[got["k"] == 0, "size"].sum()  # not just k = 0
    if cohort_by == "segment":
        assert "(not in customers)" in set(got["group"])


def test_survival_table_equals_pandas_reference(tied_ds, engine_path):
    for res in (1.0, 7.0):
        got = survival_table(tied_ds, resolution_days=res)
        want = _reference_survival(tied_ds, res)
        pd.testing.assert_frame_equal(got, want, check_dtype=False)
    # the twins decide the group: any coupon at the first instant makes the customer "coupon"
    assert got["count"].sum() == tied_ds.to_pandas("shipments")["customer_id"].nunique()


def test_first_parcel_tie_rule(tied_ds, engine_path):
    """A coupon at the customer's first instant counts, whichever shipment_id sorts first."""
    from promo_analysis.features.cohorts import _first_two

    f = _first_two(tied_ds.table("shipments")).to_pandas().set_index("customer_id")
    assert f.loc["not-a-customer", "first_used_coupon"] == 1
    assert f.loc["not-a-customer", "second_sent_at"] == T("2021-03-02 10:00")
    want = _reference_first(tied_ds.to_pandas("shipments"))
    assert (f["first_used_coupon"].astype(bool) == want["coupon"].reindex(f.index)).all()


def test_repeat_windows_equal_pandas_reference(tied_ds, engine_path):
    got = repeat_windows(tied_ds, window_days=(1, 30)).set_index("customer_id")
    sh = tied_ds.to_pandas("shipments")
    sh = sh[sh["sent_at"] <= T("2022-12-31 23:59:59")]
    # the first parcel is the earliest, a coupon parcel before a no-coupon one at the same
    # instant; drop it and count the rest
    sh = sh.assign(_nc=sh["coupon_id"].isna()).sort_values(["customer_id", "sent_at", "_nc"])
    first = sh.drop_duplicates("customer_id").set_index("customer_id")
    later = sh[sh.duplicated("customer_id")]
    days = (later["sent_at"] - later["customer_id"].map(first["sent_at"])).dt.total_seconds()
    days = days / 86400
    want = pd.DataFrame(index=first.index)
    for w, inside in ((1, days <= 1), (30, days <= 30), ("all", days >= 0)):
        want[f"later_{w}"] = inside.groupby(later["customer_id"]).sum()
        want[f"later_nocoupon_{w}"] = (inside & later["_nc"]).groupby(later["customer_id"]).sum()
    want = want.fillna(0).astype("int64")
    assert (got["first_used_coupon"] == ~first["_nc"].reindex(got.index)).all()
    pd.testing.assert_frame_equal(got[want.columns], want.reindex(got.index),
                                  check_names=False, check_dtype=False)
    assert want["later_1"].sum() > 0  # the injected same-instant parcels are counted
