"""Report inputs at scale: one region at a time, from that region's rows only.

``region_dataset`` restricts a dataset to one region without computing anything; the report
inputs are built from it. Checked here on a small partitioned simulation (two regions):
the region's view gives exactly the national features' rows of that region (so a report does
not change when it is built region by region), DuckDB reads only that region's part files
(hive-partition pruning, from ``EXPLAIN ANALYZE``), and the privacy check finds customer ids
whether they come as a Python list or as an Arrow array (how ``render_reports`` passes them).
"""

from __future__ import annotations

import re

import pandas as pd
import pyarrow as pa
import pytest

from promo_analysis import features, load_dataset
from promo_analysis.report.inputs import (
    _daily,
    _new_customers,
    _period_customers,
    build_inputs,
    data_calendar,
    load_inputs,
    open_inputs,
    region_dataset,
)
from promo_analysis.report.params import parse_period
from promo_analysis.report.privacy import drop_identifiers, find_identifiers
from promo_analysis.simulate import write_simulation

pytestmark = pytest.mark.xdist_group("report")

REGIONS = ["guangxi", "shanxi"]
PERIOD = parse_period("2022-01-01", "2022-12-31")
COMPARE = parse_period("2021-01-01", "2021-12-31")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("report-scale")
    return write_simulation(root / "parts", scale=0.0005, regions=REGIONS, seed=5,
                            partitioned=True)


@pytest.fixture(scope="module")
def ds(folder):
    return load_dataset(folder)


def _same(mine: pd.DataFrame, national: pd.DataFrame) -> None:
    # float sums to 1e-9 relative: the region's rows are added in another order
    pd.testing.assert_frame_equal(mine.reset_index(drop=True), national.reset_index(drop=True),
                                  check_exact=False, rtol=1e-9)


def test_region_view_gives_the_national_rows_of_the_region(ds):
    calendar = data_calendar(ds)
    ct_all = features.customer_table(ds)
    daily_all = _daily(ds, REGIONS, calendar)
    new_all = _new_customers(ds, REGIONS, calendar)
    pc_all = _period_customers(ds, REGIONS, PERIOD, COMPARE)
    keys = ["region_id", "period", "channel"]
    for r in REGIONS:
        rds = region_dataset(ds, r)
        ct = features.customer_table(rds)
        assert len(ct) > 100
        _same(ct, ct_all[ct_all["region_id"] == r])
        _same(_daily(rds, [r], calendar), daily_all[daily_all["region_id"] == r])
        _same(_new_customers(rds, [r], calendar), new_all[new_all["region_id"] == r])
        pc = _period_customers(rds, [r], PERIOD, COMPARE).sort_values(keys)
        _same(pc, pc_all[pc_all["region_id"] == r].sort_values(keys))
        # coupons and assignments: those of the region's customers only
        ids = set(ct["customer_id"])
        for name in ("coupons", "assignments"):
            if ds.has(name):
                t = rds.table(name).to_pandas()
                assert set(t["customer_id"].dropna()) <= ids, name
        camps = rds.table("campaigns").to_pandas()
        assert set(camps["region_id"].dropna()) == {r}
        assert camps["region_id"].isna().any()  # national campaigns run in every region


def test_region_query_reads_only_its_partition(ds, folder):
    part_files = {r: len(list((folder / "shipments" / f"region_id={r}").rglob("*.parquet")))
                  for r in REGIONS}
    for r in REGIONS:
        s = region_dataset(ds, r).table("shipments")
        sql = ds.con.compile(s.aggregate(n=s.count(), revenue=s.revenue.sum()))
        plan = "\n".join(str(row[-1]) for row in ds.con.con.sql("EXPLAIN ANALYZE " + sql)
                         .fetchall())
        read = re.findall(r"Total Files Read:\s*(\d+)", plan)
        assert read, f"no file count in DuckDB's plan:\n{plan[:2000]}"
        assert int(read[0]) == part_files[r] < sum(part_files.values())


@pytest.mark.parametrize("piece_customers", [None, 150])
def test_build_inputs_region_by_region(ds, tmp_path, monkeypatch, piece_customers):
    from promo_analysis.features import first_use
    from promo_analysis.report.sections import retention_frame

    if piece_customers is not None:
        # regions above the piece size: their first-use table goes through the file mode
        # (several pieces) and is copied without ids in Arrow
        assert (ds.to_pandas("customers")["region_id"].value_counts() > piece_customers).all()
        monkeypatch.setattr(first_use, "PIECE_CUSTOMERS", piece_customers)
    paths = build_inputs(ds, REGIONS, PERIOD, COMPARE, tmp_path)
    ct = features.customer_table(ds)
    end = pd.Timestamp("2023-01-01")
    for r in REGIONS:
        inp = load_inputs(paths[r])
        mine = ct[ct["region_id"] == r]
        # only the retention cohort is written (customers acquired from the period start on),
        # and the retention section's frame is the same as from the full customer table
        acquired = mine[mine["first_sent_at"] >= pd.Timestamp(PERIOD.start)]
        assert 0 < len(inp.customers) == len(acquired) < len(mine)
        # every column of every written row as in the national customer table (the inputs
        # compute it on a view narrowed to the cohort); Parquet stores seconds as ms
        pd.testing.assert_frame_equal(inp.customers, drop_identifiers(acquired).reset_index(
            drop=True), check_dtype=False, check_exact=False, rtol=1e-9)
        cols = ["days", "event", "acquired", "n_shipments", "n_coupon_shipments"]
        _same(retention_frame(inp.customers, PERIOD.start, end)[cols],
              retention_frame(mine.drop(columns="customer_id"), PERIOD.start, end)[cols])
        assert inp.meta["row_counts"]["customers"] == len(mine)
        # the first-use exclusion counts are the region's own
        assert inp.meta["frame_attrs"]["first_use"]["exclusions"]
        assert set(inp.first_use["region_id"]) == {r}
        # no ids, but an anonymous person code with the same grouping as the ids (a person
        # can be a control and later a recipient: the report clusters its SEs on it)
        fu = features.first_use_table(region_dataset(ds, r))
        assert "customer_id" not in inp.first_use.columns
        assert len(inp.first_use) == len(fu)
        codes = pd.factorize(fu["customer_id"])[0]
        assert (inp.first_use["person"].to_numpy() == codes).all()
        # the table is written piece-wise and copied without ids in Arrow: the same frame,
        # dtypes included, as the in-memory table without the identifier columns
        # (Parquet stores datetimes in s as ms, so those are compared as ns)
        want = drop_identifiers(fu).assign(person=codes)
        want.attrs = {}
        got = inp.first_use.copy()
        for col in want.select_dtypes("datetime").columns:
            want[col], got[col] = want[col].astype("M8[ns]"), got[col].astype("M8[ns]")
        pd.testing.assert_frame_equal(got, want, check_exact=True)
        # a notebook loads only the columns the sections read
        narrow = open_inputs(paths[r])
        assert list(narrow.first_use.columns) == [
            "got_coupon", "sent_within_window", "segment", "wechat_contact",
            "parcels_received", "tenure_days", "person"]
        pd.testing.assert_frame_equal(narrow.first_use, inp.first_use[narrow.first_use.columns])
        small = load_inputs(paths[r], frames=("daily",))
        assert list(small.frames) == ["daily"]
        assert small.daily["date"].min() == data_calendar(ds)[0]


def test_period_customers_counts_distinct_senders(ds):
    """One pass over the shipments (senders per channel, then folded over channels) gives
    pandas' distinct counts, with and without a coupon, per period and channel."""
    s = ds.to_pandas("shipments")
    s["year"] = s["sent_at"].dt.year
    s = s[s["year"].isin([2021, 2022])]
    s["period"] = s["year"].map({2022: "current", 2021: "previous"})
    pc = _period_customers(ds, REGIONS, PERIOD, COMPARE).set_index(
        ["region_id", "period", "channel"])
    coupon = s[s["coupon_id"].notna()]
    want = pd.concat([
        s.groupby(["region_id", "period", "channel"])["customer_id"].nunique(),
        s.groupby(["region_id", "period"])["customer_id"].nunique().to_frame().assign(
            channel="all").set_index("channel", append=True)["customer_id"],
    ])
    want_coupon = pd.concat([
        coupon.groupby(["region_id", "period", "channel"])["customer_id"].nunique(),
        coupon.groupby(["region_id", "period"])["customer_id"].nunique().to_frame().assign(
            channel="all").set_index("channel", append=True)["customer_id"],
    ]).reindex(want.index, fill_value=0)
    assert len(pc) == len(want) > 10
    assert (pc.loc[want.index, "customers"] == want).all()
    assert (pc.loc[want.index, "coupon_customers"] == want_coupon).all()
    assert (pc["coupon_customers"] > 0).any()


def test_build_order_alternates_largest_and_smallest(ds):
    from promo_analysis.report.render import _build_order

    n = ds.to_pandas("shipments")["region_id"].value_counts()
    assert n.iloc[0] != n.iloc[1]
    big, small = n.index[0], n.index[-1]
    # no shipments (tibet): the smallest
    assert _build_order(ds, ["tibet", small, big]) == [big, "tibet", small]
    assert _build_order(ds, [small, big, "tibet"]) == [big, "tibet", small]
    assert _build_order(ds, [small, big]) == [small, big]  # two: as given


def test_find_identifiers_takes_an_arrow_array():
    text = "<p>C000123 sent 3 parcels; C000124.</p><img src='data:image/png;base64,C000999'>"
    ids = ["C000123", "C000124", "C000999", "C00"]
    assert find_identifiers(text, ids) == ["C000123", "C000124"]
    assert find_identifiers(text, pa.array(ids)) == ["C000123", "C000124"]
    assert find_identifiers(text, pa.chunked_array([ids[:2], ids[2:]])) == ["C000123",
                                                                             "C000124"]
    assert find_identifiers("nothing here", pa.array(ids)) == []


def test_first_use_section_clusters_by_person(ds, tmp_path, monkeypatch):
    """The report's AIPW clusters by the anonymous person code of the inputs: its CI equals
    ``estimate_effect`` clustered by the customer ids on the region's first-use table."""
    from promo_analysis import causal
    from promo_analysis.report import sections

    seen = []
    real = causal.estimate_effect

    def spy(*args, **kwargs):
        seen.append(kwargs.get("cluster"))
        return real(*args, **kwargs)

    monkeypatch.setattr(causal, "estimate_effect", spy)
    paths = build_inputs(ds, REGIONS[:1], PERIOD, COMPARE, tmp_path)
    inp = load_inputs(paths[REGIONS[0]])
    sec = sections.first_use(inp, lang="en", k=1)
    assert seen and set(seen) == {"person"}
    fu = features.first_use_table(region_dataset(ds, REGIONS[0]))
    covs = [c for c in sections._FIRST_USE_COVARIATES if c in fu.columns and fu[c].nunique() > 1]
    ref = real(fu, treatment="got_coupon", outcome="sent_within_window", covariates=covs,
               method="aipw", estimand="att", cluster="customer_id")
    mine = real(inp.first_use, treatment="got_coupon", outcome="sent_within_window",
                covariates=covs, method="aipw", estimand="att", cluster="person")
    assert mine.ci_low == pytest.approx(ref.ci_low, rel=1e-9)
    assert mine.ci_high == pytest.approx(ref.ci_high, rel=1e-9)
    assert sec is not None

