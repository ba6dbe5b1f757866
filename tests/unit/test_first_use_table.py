"""first_use_table and experiment_table on tiny hand-made datasets with hand-worked answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from promo_analysis.features.first_use import (
    FIRST_USE_COLUMNS,
    design_code,
    experiment_table,
    first_use_table,
)

T = pd.Timestamp
AS_OF = "2022-01-01"


def make_dataset(frames):
    from promo_analysis.dataset import Dataset

    return Dataset.from_frames(frames)


def _shipments(rows):
    df = pd.DataFrame(
        rows,
        columns=["shipment_id", "customer_id", "sent_at", "list_price", "discount", "coupon_id"],
    )
    df["sent_at"] = pd.to_datetime(df["sent_at"], format="ISO8601")
    df["region_id"] = "guangxi"
    df["channel"] = "counter"
    df["product"] = "express"
    df["payment"] = "cash"
    df["revenue"] = df["list_price"] - df["discount"]
    df["coupon_id"] = df["coupon_id"].astype("string")
    df["campaign_id"] = pd.Series([None] * len(df), dtype="string")
    return df


def tiny_frames():
    ids = ["a", "b", "c", "d", "e", "f", "g", "x", "h"]
    customers = pd.DataFrame(
        {
            "customer_id": ids,
            "region_id": ["guangxi"] * 8 + ["shanxi"],
            "known_since": pd.to_datetime(
                [
                    "2021-01-01",
                    "2021-01-01",
                    "2021-03-01",
                    "2021-01-01",
                    "2021-05-01",
                    "2021-02-01",
                    "2021-01-01",
                    "2021-01-01",
                    "2021-01-01",
                ]
            ),
            "segment": [
                "office",
                "campus",
                "mall",
                "office",
                "other",
                "residential",
                "office",
                "campus",
                "mall",
            ],
            "wechat_contact": [True, False, True, False, True, False, True, False, True],
            "parcels_received": [1, 2, 3, 4, 5, 6, 7, 8, 9],
        }
    )
    shipments = _shipments(
        [
            # a: coupon k1 on 02-01, first parcel 9 days later with it (17 yuan)
            ["s1", "a", "2021-02-10", 20.0, 3.0, "k1"],
            ["s2", "a", "2021-04-10", 20.0, 0.0, None],
            # d: sent on 01-20, BEFORE its coupon k3 (02-01): never a treated prospect
            ["s3", "d", "2021-01-20", 15.0, 0.0, None],
            # e: became known through its first parcel: never a prospect
            ["s4", "e", "2021-05-01 10:00", 12.0, 0.0, None],
            # g: coupon on 12-20 (window runs past as_of), sends 12-25
            ["s5", "g", "2021-12-25", 30.0, 0.0, None],
            # x: experiment participant
            ["s6", "x", "2021-03-01", 30.0, 0.0, None],
            # b: first parcel exactly 30 days after its coupon: OUTSIDE [index, index + 30 d)
            ["s7", "b", "2021-05-01", 25.0, 0.0, None],
            # h (Shanxi): first parcel at 07:00 on the day of its coupon (issued 08:30): the
            # table counts in whole days, so h is a treated prospect who sent on day 0
            ["s8", "h", "2021-06-01 07:00", 18.0, 0.0, None],
        ]
    )
    coupons = pd.DataFrame(
        {
            "coupon_id": ["k1", "k1b", "k2", "k3", "k4", "k5", "k6"],
            "customer_id": ["a", "a", "b", "d", "g", None, "h"],
            "issued_at": pd.to_datetime(
                [
                    "2021-02-01 09:00",
                    "2021-03-01",
                    "2021-04-01",
                    "2021-02-01",
                    "2021-12-20",
                    "2021-06-01",
                    "2021-06-01 08:30",
                ],
                format="ISO8601",
            ),
            "expires_at": T("2022-12-31"),
            "threshold": [12.0, 21.0, 21.0, 12.0, 12.0, 12.0, 12.0],
            "face_value": [3.0, 5.0, 5.0, 3.0, 3.0, 3.0, 3.0],
            "issue_channel": "wechat",
            "campaign_id": pd.Series([None] * 7, dtype="string"),
        }
    )
    assignments = pd.DataFrame(
        {
            "experiment_id": ["gx-test"],
            "customer_id": ["x"],
            "arm": ["12-3"],
            "assigned_at": [T("2021-02-15")],
        }
    )
    return {
        "customers": customers,
        "shipments": shipments,
        "coupons": coupons,
        "assignments": assignments,
    }


@pytest.fixture(scope="module")
def tiny_ds():
    return make_dataset(tiny_frames())


@pytest.fixture(scope="module")
def table(tiny_ds):
    # the "never-treated" design: one row per prospect, hand-checkable
    return first_use_table(tiny_ds, as_of=AS_OF, controls="never-treated").set_index("customer_id")


def test_rows_and_columns(table):
    # treated a, b, h; controls c, f (eligible for a pool date); d, e, g, x are not rows
    assert sorted(table.index) == ["a", "b", "c", "f", "h"]
    assert list(table.reset_index().columns[: len(FIRST_USE_COLUMNS)]) == FIRST_USE_COLUMNS


def test_treated_index_is_first_coupon_while_eligible(table):
    a = table.loc["a"]
    assert a.got_coupon == 1 and a.design == "12-3" and a.coupon_id == "k1"
    assert a.index_date == T("2021-02-01")  # the day of issue (issued at 09:00)
    assert a.sent_within_window == 1
    assert a.first_revenue == 17.0 and a.revenue_within_window == 17.0
    assert a.list_price_within_window == 20.0  # before the 3-yuan coupon
    assert a.days_to_first_send == 9.0
    assert a.tenure_days == 31


def test_same_day_parcel_counts(table):
    h = table.loc["h"]
    assert h.got_coupon == 1 and h.index_date == T("2021-06-01")
    assert h.sent_within_window == 1 and h.days_to_first_send == 0


def test_window_is_half_open(table):
    b = table.loc["b"]
    assert b.design == "21-5" and b.index_date == T("2021-04-01")
    assert b.days_to_first_send == 30.0
    assert b.sent_within_window == 0 and b.revenue_within_window == 0.0
    assert b.list_price_within_window == 0.0
    assert b.first_revenue == 25.0  # still reported: the first parcel, whenever sent


def test_controls_get_a_pool_date_while_eligible(table):
    # the pool (treated index dates whose window fits) is {02-01, 04-01}
    c, f = table.loc["c"], table.loc["f"]
    assert c.got_coupon == 0 and c.design is None and pd.isna(c.coupon_id)
    # c is known from 03-01: only 04-01 is possible
    assert c.index_date == T("2021-04-01") and c.tenure_days == 31
    assert f.index_date in (T("2021-02-01"), T("2021-04-01"))
    assert f.sent_within_window == 0


def test_exclusions_are_counted(table):
    ex = table.attrs["exclusions"]
    assert ex == {
        "experiment_participants": 1,  # x
        "anonymous_coupons": 1,  # k5
        "coupons_to_non_prospects": 2,  # k3 (d had sent on 01-20), k1b (a had sent on 02-10)
        "treated_window_past_as_of": 1,  # g
        "never_prospects": 1,  # e
        "controls_never_eligible": 1,  # d: eligible 01-01..01-20, no pool date then
    }
    assert table.attrs["window_days"] == 30
    assert table.attrs["as_of"] == T(AS_OF)


def test_seed_reproducible_and_changes_the_draw(tiny_ds):
    ds = tiny_ds

    def draw(seed):
        df = first_use_table(ds, as_of=AS_OF, seed=seed, controls="never-treated")
        return df.set_index("customer_id").loc["f", "index_date"]

    draws = {s: draw(s) for s in range(6)}
    again = first_use_table(ds, as_of=AS_OF, seed=3, controls="never-treated")
    again = again.set_index("customer_id")
    assert again.loc["f", "index_date"] == draws[3]
    assert set(draws.values()) == {T("2021-02-01"), T("2021-04-01")}


def test_pseudo_dates_follow_the_regions_issue_date_distribution():
    """Controls eligible all along draw index dates in proportion to treated issue dates."""
    rng = np.random.default_rng(0)
    n_t, n_c = 300, 3000
    days = pd.to_datetime(["2021-02-01", "2021-03-01", "2021-06-01"])
    probs = np.array([0.6, 0.3, 0.1])
    issue = days[rng.choice(3, n_t, p=probs)]
    ids_t = [f"t{i:04d}" for i in range(n_t)]
    ids_c = [f"c{i:04d}" for i in range(n_c)]
    customers = pd.DataFrame(
        {
            "customer_id": ids_t + ids_c,
            "region_id": "guangxi",
            "known_since": T("2021-01-01"),
            "segment": "office",
            "wechat_contact": True,
            "parcels_received": 0,
        }
    )
    coupons = pd.DataFrame(
        {
            "coupon_id": [f"k{i}" for i in range(n_t)],
            "customer_id": ids_t,
            "issued_at": issue,
            "expires_at": T("2022-12-31"),
            "threshold": 12.0,
            "face_value": 3.0,
            "issue_channel": "wechat",
            "campaign_id": pd.Series([None] * n_t, dtype="string"),
        }
    )
    shipments = _shipments([["s0", "t0000", "2021-12-01", 20.0, 0.0, None]])
    ds = make_dataset({"customers": customers, "shipments": shipments, "coupons": coupons})
    df = first_use_table(ds, as_of=AS_OF, seed=5, controls="never-treated")
    ctrl = df[df.got_coupon == 0]
    assert len(ctrl) == n_c
    observed = ctrl.index_date.value_counts().reindex(days, fill_value=0).to_numpy()
    pool = pd.Series(issue).value_counts().reindex(days).to_numpy()
    expected = n_c * pool / pool.sum()
    assert stats.chisquare(observed, expected).pvalue > 0.001


def test_design_code():
    assert design_code(12, 3) == "12-3"
    assert design_code(21.0, 5.0) == "21-5"
    assert design_code(9.9, 1.5) == "9.9-1.5"
    assert design_code(None, 3) is None
    s = design_code(pd.Series([12.0, np.nan]), pd.Series([3.0, np.nan]))
    assert s.tolist() == ["12-3", None]


def _scalar_design(t, f):
    # the formula design_code's element-wise path must reproduce row by row
    if t is None or f is None or pd.isna(t) or pd.isna(f):
        return None
    return f"{float(t):g}-{float(f):g}"


@pytest.mark.parametrize("seed", range(5))
def test_design_code_series_equals_the_scalar_formula(seed):
    rng = np.random.default_rng(seed)
    n = 2_000
    values = np.array(
        [12.0, 12.5, 1e-3, 3, 5, 0.0, -0.0, 9.9, 1.5, 2e7, 1 / 3, np.nan, None, pd.NA],
        dtype=object,
    )
    t = pd.Series(values[rng.integers(0, len(values), n)], dtype=object, index=rng.permutation(n))
    f = pd.Series(values[rng.integers(0, len(values), n)], dtype=object, index=t.index)
    got = design_code(t, f)
    assert got.index.equals(t.index) and got.dtype == object
    assert got.tolist() == [_scalar_design(a, b) for a, b in zip(t, f, strict=True)]
    # the engine's dtypes: float64 with NaN, nullable integers / floats with <NA>
    tf = pd.Series(rng.choice([12.0, 21.0, 9.9, np.nan], n))
    fi = pd.Series(rng.choice([3, 5, 0], n)).astype("Int64").mask(rng.random(n) < 0.1)
    got = design_code(tf, fi)
    assert got.tolist() == [_scalar_design(a, b) for a, b in zip(tf, fi, strict=True)]
    assert design_code(tf.astype("Float64"), fi).tolist() == got.tolist()
    assert design_code(tf.iloc[:0], fi.iloc[:0]).tolist() == []


def test_bad_window():
    with pytest.raises(ValueError, match="window_days must be a positive"):
        first_use_table(make_dataset(tiny_frames()), window_days=0)


def test_experiment_table():
    frames = tiny_frames()
    frames["assignments"] = pd.DataFrame(
        {
            "experiment_id": "gx-test",
            "customer_id": ["x", "c", "d"],
            "arm": ["12-3", "control", "21-5"],
            "assigned_at": pd.to_datetime(["2021-02-15", "2021-03-10", "2021-03-10"]),
        }
    )
    df = experiment_table(make_dataset(frames), as_of=AS_OF).set_index("customer_id")
    # d had sent on 01-20, before assignment: not a prospect, excluded and counted
    assert sorted(df.index) == ["c", "x"]
    assert df.attrs["exclusions"]["sent_before_assignment"] == 1
    assert df.loc["x", "sent_within_window"] == 1  # 03-01 is 14 days after 02-15
    assert df.loc["x", "revenue_within_window"] == 30.0
    assert df.loc["x", "list_price_within_window"] == 30.0
    assert df.loc["c", "sent_within_window"] == 0
    assert df.loc["c", "tenure_days"] == 9
    assert df.loc["x", "arm"] == "12-3"
    # and the observational table leaves all three participants out
    obs = first_use_table(make_dataset(frames), as_of=AS_OF, controls="never-treated")
    assert not set(obs.customer_id) & {"x", "c", "d"}
    assert obs.attrs["exclusions"]["experiment_participants"] == 3


def test_experiment_table_needs_assignments():
    frames = tiny_frames()
    del frames["assignments"]
    with pytest.raises(ValueError, match="no 'assignments' table"):
        experiment_table(make_dataset(frames))


# ------------------------------------------------------------ default: not-yet-treated controls
def test_not_yet_treated_rows_use_only_the_history_up_to_the_index(tiny_ds):
    for seed in range(4):
        df = first_use_table(tiny_ds, as_of=AS_OF, seed=seed)
        ctrl = df[df.got_coupon == 0].set_index("customer_id")
        # d and a had sent / been treated by any pool date; e is a walk-in; x is in the test
        assert not set(ctrl.index) & {"a", "d", "e", "x"}
        # c (known 03-01) can only draw 04-01; b only 02-01 (on 04-01 it is already treated)
        assert ctrl.loc["c", "index_date"] == T("2021-04-01")
        if "b" in ctrl.index:
            assert ctrl.loc["b", "index_date"] == T("2021-02-01")
            assert ctrl.loc["b", "sent_within_window"] == 0
        # g's own coupon window runs past as_of, but g was an untreated prospect before it
        assert (ctrl.index == "g").sum() <= 1
        assert (ctrl["first_sent_at"].isna() | (ctrl["first_sent_at"] >= ctrl["index_date"])).all()
        ex = df.attrs["exclusions"]
        n_draws = 9 - 1 - 1  # customers minus the participant x minus the walk-in e
        assert (
            ex["control_draws_without_date"]
            + ex["control_draws_already_sent"]
            + ex["control_draws_already_treated"]
            + len(ctrl)
            == n_draws
        )
        assert df.attrs["controls"] == "not-yet-treated"


def test_unknown_control_design_is_an_error(tiny_ds):
    with pytest.raises(ValueError, match="controls must be"):
        first_use_table(tiny_ds, controls="matched")


def _null_world(n: int, seed: int):
    """Prospects known on 2021-01-01; first parcel after Exp(150) days, coupons after Exp(200)
    days to those who have not sent yet. Coupons have NO effect."""
    rng = np.random.default_rng(seed)
    start = T("2021-01-01")
    t0 = np.floor(rng.exponential(150, n)).astype(int)
    c = np.floor(rng.exponential(200, n)).astype(int)
    treated = (c <= t0) & (c <= 690)
    sends = t0 < 730
    ids = np.array([f"p{i:05d}" for i in range(n)])
    customers = pd.DataFrame(
        {
            "customer_id": ids,
            "region_id": "guangxi",
            "known_since": start,
            "segment": "office",
            "wechat_contact": True,
            "parcels_received": 1,
        }
    )
    rows = [
        [f"s{i:05d}", cid, start + pd.Timedelta(days=int(d), hours=12), 20.0, 0.0, None]
        for i, (cid, d) in enumerate(zip(ids[sends], t0[sends], strict=True))
    ]
    k = np.flatnonzero(treated)
    coupons = pd.DataFrame(
        {
            "coupon_id": [f"k{i}" for i in k],
            "customer_id": ids[k],
            "issued_at": start + pd.to_timedelta(c[k], unit="D") + pd.Timedelta(hours=8),
            "expires_at": start + pd.to_timedelta(c[k] + 30, unit="D"),
            "threshold": 12.0,
            "face_value": 3.0,
            "issue_channel": "wechat",
            "campaign_id": pd.Series([None] * len(k), dtype="string"),
        }
    )
    return make_dataset({"customers": customers, "shipments": _shipments(rows), "coupons": coupons})


def test_not_yet_treated_controls_are_unbiased_where_never_treated_are_not():
    """With no coupon effect and memoryless sending, P(send within 30 d | prospect) is the same
    for treated and control rows. Never-treated controls are selected on sending EARLY (before
    any coupon could arrive), which makes a useless coupon look harmful."""
    ds = _null_world(6000, seed=11)
    p = 1 - np.exp(-30 / 150)

    def diff(controls):
        df = first_use_table(ds, as_of="2023-01-01", controls=controls)
        g = df.groupby("got_coupon")["sent_within_window"]
        m, n = g.mean(), g.size()
        return m[1] - m[0], np.sqrt((m * (1 - m) / n).sum()), m

    d, se, m = diff("not-yet-treated")
    assert abs(d) < 3.5 * se
    assert m[0] == pytest.approx(p, abs=0.03) and m[1] == pytest.approx(p, abs=0.03)
    d_never, se_never, _ = diff("never-treated")
    assert d_never < -10 * se_never


def test_duckdb_struct_min_path_equals_the_portable_path(tiny_ds, monkeypatch):
    """On DuckDB the first eligible coupon is the smallest (issued_at, coupon_id, ...) struct
    ``FILTER (WHERE eligible)``; other engines rank with a window. Same table and the same
    exclusion counts."""
    from promo_analysis.features import first_use as mod

    fast = first_use_table(tiny_ds, as_of=AS_OF)
    monkeypatch.setattr(mod, "on_duckdb", lambda expr: False)
    slow = first_use_table(tiny_ds, as_of=AS_OF)
    pd.testing.assert_frame_equal(fast, slow)
    assert fast.attrs["exclusions"] == slow.attrs["exclusions"]
    assert fast.attrs["exclusions"]["coupons_to_non_prospects"] == 2


@pytest.mark.parametrize("controls", ["not-yet-treated", "never-treated"])
def test_rows_are_ordered_by_customer_with_the_treated_row_first(controls):
    """The table is assembled by row positions; its order must be that of stacking the treated
    rows on the control rows and sorting stably by customer id, rebuilt here from the rows."""
    df = first_use_table(_null_world(400, seed=3), as_of="2023-01-01", controls=controls)
    assert isinstance(df.index, pd.RangeIndex)
    both = df["customer_id"].duplicated(keep=False)
    if controls == "not-yet-treated":
        assert both.any()  # people who are a control first and treated later
    else:
        assert not both.any()
    rebuilt = pd.concat([df[df["got_coupon"] == 1], df[df["got_coupon"] == 0]])
    rebuilt = rebuilt.sort_values("customer_id", kind="stable").reset_index(drop=True)
    pd.testing.assert_frame_equal(df, rebuilt)
    treated = df[df["got_coupon"] == 1]
    assert treated["design"].eq("12-3").all() and treated["coupon_id"].str.startswith("k").all()
    control = df[df["got_coupon"] == 0]
    assert control["design"].isna().all() and control["coupon_id"].isna().all()
    assert (df.loc[~both, "customer_id"].is_monotonic_increasing)


@pytest.mark.parametrize("duckdb_path", [True, False])
def test_first_coupon_ties_and_customers_without_an_eligible_coupon(monkeypatch, duckdb_path):
    """Two coupons issued at the same instant: the smaller coupon id is the first (whatever
    its design); a coupon issued before the person was known does not count, and a person
    whose every coupon is ineligible has no treated row (NULL first coupon), on the DuckDB
    struct-min path and the portable window path."""
    from promo_analysis.features import first_use as mod

    frames = tiny_frames()
    extra = pd.DataFrame(
        {
            "coupon_id": ["k8", "k7", "k9", "k10"],
            "customer_id": ["c", "c", "c", "f"],
            "issued_at": pd.to_datetime(
                ["2021-04-01 10:00", "2021-04-01 10:00", "2021-02-15", "2021-01-15 12:00"],
                format="ISO8601",
            ),
            "expires_at": T("2022-12-31"),
            "threshold": [12.0, 21.0, 8.0, 12.0],
            "face_value": [3.0, 5.0, 2.0, 3.0],
            "issue_channel": "wechat",
            "campaign_id": pd.Series([None] * 4, dtype="string"),
        }
    )
    frames["coupons"] = pd.concat([frames["coupons"], extra], ignore_index=True)
    if not duckdb_path:
        monkeypatch.setattr(mod, "on_duckdb", lambda expr: False)
    df = first_use_table(make_dataset(frames), as_of=AS_OF, controls="never-treated")
    treated = df[df["got_coupon"] == 1].set_index("customer_id")
    assert treated.loc["c", "coupon_id"] == "k7" and treated.loc["c", "design"] == "21-5"
    assert treated.loc["c", "index_date"] == T("2021-04-01")
    assert "f" not in treated.index
    # k9 (c, before known) and k10 (f, before known) join the two of tiny_frames
    assert df.attrs["exclusions"]["coupons_to_non_prospects"] == 4
