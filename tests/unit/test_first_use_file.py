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


@pytest.mark.parametrize(
    ("controls", "piece_customers"),
    [("not-yet-treated", 1), ("never-treated", 1), ("not-yet-treated", 10**9)],
)
def test_written_table_equals_the_in_memory_table(
    small_ds, tmp_path, monkeypatch, controls, piece_customers
):
    """Piece by piece (one region per piece, or regions grouped) the same rows in the same
    order, the same control draws from the one seeded stream, the same exclusion counts."""
    expected = first_use_table(small_ds, controls=controls, seed=5)
    monkeypatch.setattr(mod, "PIECE_CUSTOMERS", piece_customers)
    monkeypatch.setattr(mod, "WRITE_ROWS", 997)  # several row groups per piece
    assert len(mod._pieces(small_ds, piece_customers)) == (2 if piece_customers == 1 else 1)
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


def test_pieces_keep_regions_with_overlapping_ids_together():
    # r2's ids lie inside r1's range: one piece; r3 and r4 come after, in id order
    ds = make_dataset(
        _regions_frames(
            {"r4": ["z1", "z2"], "r1": ["a", "d", "k"], "r2": ["b", "c"], "r3": ["m", "n"]}
        )
    )
    def pieces(n):
        return [(p.regions, p.lo, p.hi) for p in mod._pieces(ds, n)]

    assert pieces(1) == [(["r1", "r2"], "a", "k"), (["r3"], "m", "n"), (["r4"], "z1", "z2")]
    assert pieces(7) == [(["r1", "r2", "r3"], "a", "n"), (["r4"], "z1", "z2")]
    assert pieces(100) == [(["r1", "r2", "r3", "r4"], "a", "z2")]


@pytest.mark.parametrize("coupons", [True, False])
def test_written_table_with_interleaved_regions(tmp_path, monkeypatch, coupons):
    frames = _regions_frames(
        {"r4": ["z1", "z2"], "r1": ["a", "d", "k"], "r2": ["b", "c"], "r3": ["m", "n"]}
    )
    if not coupons:
        del frames["coupons"]
    ds = make_dataset(frames)
    monkeypatch.setattr(mod, "PIECE_CUSTOMERS", 1)
    for controls in ("not-yet-treated", "never-treated"):
        expected = first_use_table(ds, as_of=AS_OF, controls=controls)
        written = first_use_table(ds, as_of=AS_OF, controls=controls, path=tmp_path / "t.pq")
        _same_table(written, expected)
        assert expected.attrs["exclusions"]["experiment_participants"] == 1
