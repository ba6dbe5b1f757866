"""first_use_table(ds, path=...): the table written piece by piece equals the in-memory table."""

from __future__ import annotations

import pandas as pd
import pytest
from test_first_use_table import AS_OF, make_dataset, tiny_frames

from promo_analysis.features import first_use as mod
from promo_analysis.features.first_use import FirstUseFile, first_use_table


def _same_table(written: FirstUseFile, expected: pd.DataFrame) -> None:
    got = written.read()
    assert len(written) == written.rows == len(expected)
    assert list(got.columns) == list(expected.columns)
    # Parquet has no second-resolution timestamps: known_since comes back in ms
    got["known_since"] = got["known_since"].astype(expected["known_since"].dtype)
    pd.testing.assert_frame_equal(got, expected)
    assert got.attrs == expected.attrs
    assert written.attrs == expected.attrs


def _piece_regions(ds, pieces) -> list[set]:
    c = ds.table("customers")
    return [
        set(c.filter(p.holds(c.customer_id)).select("region_id").distinct().to_pandas()
            ["region_id"])
        for p in pieces
    ]


@pytest.mark.parametrize(
    ("controls", "piece_customers"),
    [("not-yet-treated", 6000), ("never-treated", 6000), ("not-yet-treated", 10**9)],
)
def test_written_table_equals_the_in_memory_table(
    small_ds, tmp_path, monkeypatch, controls, piece_customers
):
    """Piece by piece (each region cut into several id ranges, or everything in one piece)
    the same rows in the same order, the same control draws from the one seeded stream, the
    same exclusion counts."""
    expected = first_use_table(small_ds, controls=controls, seed=5)
    monkeypatch.setattr(mod, "PIECE_CUSTOMERS", piece_customers)
    monkeypatch.setattr(mod, "WRITE_ROWS", 997)  # several row groups per piece
    pieces = mod._pieces(small_ds, piece_customers)
    if piece_customers == 10**9:
        assert pieces == [mod._Piece(None, None)]
    else:
        # both regions span several pieces: a piece's controls draw from their region's whole
        # pool, not from the part of it inside the piece
        regions = _piece_regions(small_ds, pieces)
        assert len(pieces) >= 4 and all(len(r) == 1 for r in regions)
        assert all(sum(r in rs for rs in regions) >= 2 for r in set.union(*regions))
    written = first_use_table(small_ds, controls=controls, seed=5, path=tmp_path / "fu.parquet")
    _same_table(written, expected)
    assert expected.attrs["exclusions"]["coupons_to_non_prospects"] > 0
    assert expected["got_coupon"].sum() > 0


def _regions_frames(regions: dict[str, list[str]]) -> dict:
    """tiny_frames' people spread over regions with the given customer ids."""
    frames = tiny_frames()
    c = frames["customers"]
    ids = [i for region_ids in regions.values() for i in region_ids]
    if len(ids) != len(c):
        raise AssertionError("give one id per customer of tiny_frames")
    rename = dict(zip(c["customer_id"], ids, strict=True))
    region_of = {i: r for r, region_ids in regions.items() for i in region_ids}
    for name in ("customers", "shipments", "coupons", "assignments"):
        f = frames[name].copy()
        f["customer_id"] = f["customer_id"].map(rename).astype(f["customer_id"].dtype)
        if "region_id" in f.columns:
            f["region_id"] = f["customer_id"].map(region_of)
        frames[name] = f
    return frames


def test_pieces_are_id_ranges_that_cut_big_regions():
    # r2's ids lie inside r1's range: one group of 5 (cut into ranks 0, 3 when pieces hold 3
    # or fewer); r3 and r4 come after, in id order, grouped up to the piece size
    ds = make_dataset(
        _regions_frames(
            {"r4": ["z1", "z2"], "r1": ["a", "d", "k"], "r2": ["b", "c"], "r3": ["m", "n"]}
        )
    )
    def pieces(n):
        return [(p.lo, p.hi) for p in mod._pieces(ds, n)]

    assert pieces(1) == [(None, "b"), ("b", "c"), ("c", "d"), ("d", "k"), ("k", "m"),
                         ("m", "n"), ("n", "z1"), ("z1", "z2"), ("z2", None)]
    assert pieces(3) == [(None, "d"), ("d", "m"), ("m", "z1"), ("z1", None)]
    assert pieces(4) == [(None, "d"), ("d", "z1"), ("z1", None)]
    assert pieces(7) == [(None, "z1"), ("z1", None)]
    assert pieces(100) == [(None, None)]
    # every customer in exactly one piece
    c = ds.table("customers")
    for n in (1, 3, 4):
        sizes = [int(c.filter(p.holds(c.customer_id)).count().to_pandas())
                 for p in mod._pieces(ds, n)]
        assert sum(sizes) == int(c.count().to_pandas()) and max(sizes) <= n


@pytest.mark.parametrize("coupons", [True, False])
def test_written_table_with_interleaved_regions(tmp_path, monkeypatch, coupons):
    frames = _regions_frames(
        {"r4": ["z1", "z2"], "r1": ["a", "d", "k"], "r2": ["b", "c"], "r3": ["m", "n"]}
    )
    if not coupons:
        del frames["coupons"]
    ds = make_dataset(frames)
    for n in (1, 3, 4):  # 4: one piece holds the end of r1 and all of r3
        monkeypatch.setattr(mod, "PIECE_CUSTOMERS", n)
        _same_in_pieces(ds, tmp_path)


def _same_in_pieces(ds, tmp_path) -> None:
    for controls in ("not-yet-treated", "never-treated"):
        expected = first_use_table(ds, as_of=AS_OF, controls=controls)
        written = first_use_table(ds, as_of=AS_OF, controls=controls, path=tmp_path / "t.pq")
        _same_table(written, expected)
        assert expected.attrs["exclusions"]["experiment_participants"] == 1


@pytest.mark.parametrize("own_limit", [None, "1GB"])
def test_file_mode_caps_duckdb_memory_then_restores_it(tmp_path, monkeypatch, own_limit):
    """While writing, DuckDB runs under FILE_MEMORY_LIMIT unless the connection's own cap is
    lower (then that one stays); afterwards the connection's setting is back."""
    import ibis

    from promo_analysis.dataset import Dataset

    ds = Dataset.from_frames(tiny_frames(), memory_limit=own_limit)
    raw = ibis.get_backend(ds.table("customers")).con

    def limit() -> float:
        (value,) = raw.execute("SELECT current_setting('memory_limit')").fetchall()[0]
        return mod._size_bytes(value)

    before, seen = limit(), []
    pieces = mod._pieces
    monkeypatch.setattr(mod, "_pieces", lambda d, n: seen.append(limit()) or pieces(d, n))
    first_use_table(ds, as_of=AS_OF, path=tmp_path / "t.pq")
    cap = mod._size_bytes(mod.FILE_MEMORY_LIMIT)
    if own_limit is None:
        assert before > cap and seen == [pytest.approx(cap, rel=0.1)]
    else:
        assert seen == [before] and before < cap
    assert limit() == pytest.approx(before, rel=0.01)


def test_size_bytes():
    assert mod._size_bytes("18.8 GiB") == 18.8 * 2**30
    assert mod._size_bytes("2GB") == 2e9 and mod._size_bytes("953.6 MiB") == 953.6 * 2**20
    with pytest.raises(ValueError, match="DuckDB size"):
        mod._size_bytes("lots")


def test_materialized_appends_parts_in_order(monkeypatch):
    """``materialized(a, b, c)`` (the first-coupon table built piece by piece): one temporary
    table holding the parts' rows in order on DuckDB, dropped afterwards; elsewhere the union."""
    import ibis

    from promo_analysis.features import aggregates

    con = ibis.duckdb.connect()
    # (Ibis 12's create_table from a frame emits SQL DuckDB 2.0 rejects)
    con.con.execute("CREATE TABLE t AS SELECT * FROM (VALUES (5), (1), (4), (2), (3)) v(x)")
    t = con.table("t")
    parts = [t.filter(t.x <= 2).order_by("x"), t.filter(t.x == 3), t.filter(t.x >= 4).order_by("x")]
    with aggregates.materialized(*parts) as m:
        name = m.get_name()
        assert m.to_pandas()["x"].tolist() == [1, 2, 3, 4, 5]
    left = con.con.execute("SELECT table_name FROM duckdb_tables()").fetchall()
    assert (name,) not in left and ("t",) in left
    monkeypatch.setattr(aggregates, "on_duckdb", lambda expr: False)
    with aggregates.materialized(*parts) as m:
        assert sorted(m.to_pandas()["x"]) == [1, 2, 3, 4, 5]
