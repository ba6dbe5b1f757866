"""What keeps the simulator's memory bounded at 50 M shipments must not change its output:
tables built and written slice by slice give the same files as whole tables, and the
first-use truth aggregated from compact per-region columns equals a plain pandas groupby of
one concatenated frame."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from promo_analysis.simulate.columns import TableSlices, to_arrow
from promo_analysis.simulate.truth import first_use_truth
from promo_analysis.simulate.writer import _spool, _write_parts


def _shipment_columns(n: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    # in time order across three months, as the generator builds them
    sent = np.sort(rng.integers(0, 86 * 86400, size=n)) * 1_000_000_000
    base = np.datetime64("2022-01-01T00:00:00", "ns")
    return {
        "shipment_id": pa.array([f"r-s{i:08d}" for i in range(n)]),
        "customer_id": pa.array([f"r-c{i % 37:07d}" for i in range(n)]),
        "region_id": "guangxi",
        "sent_at": base + sent.astype("timedelta64[ns]"),
        "channel": pa.array(rng.choice(["station", "counter"], size=n).tolist()),
        "product": pa.array(rng.choice(["express", "economy"], size=n).tolist()),
        "list_price": rng.uniform(8, 30, size=n).round(1),
        "discount": np.where(rng.random(n) < 0.1, 3.0, 0.0),
        "revenue": rng.uniform(5, 30, size=n).round(2),
        "coupon_id": pa.array([None if i % 7 else f"r-k{i:07d}" for i in range(n)],
                              type=pa.string()),
        "campaign_id": pa.array([None] * n, type=pa.string()),
        "payment": pa.array(rng.choice(["cash", "wechat"], size=n).tolist()),
    }


def _slices(cols: dict, stamp: bool = True) -> TableSlices:
    def rows(lo, hi):
        return {k: v if np.ndim(v) == 0 else v[lo:hi] for k, v in cols.items()}

    n = len(cols["shipment_id"])
    return TableSlices("shipments", n, rows, cols["sent_at"] if stamp else None)


def _hashes(folder) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_month_slices_write_the_same_part_files_as_the_whole_table(tmp_path):
    cols = _shipment_columns(5000)
    whole = to_arrow("shipments", cols)
    s1, n1 = _write_parts(tmp_path / "whole", "shipments", whole, "guangxi")
    s2, n2 = _write_parts(tmp_path / "sliced", "shipments", _slices(cols), "guangxi")
    assert n1 == n2 == 3
    assert s1.equals(s2)
    a, b = _hashes(tmp_path / "whole"), _hashes(tmp_path / "sliced")
    assert sorted(a) == [f"shipments/region_id=guangxi/month=2022-0{m}/part-guangxi.parquet"
                         for m in (1, 2, 3)]
    assert a == b


def test_spooled_slices_equal_the_spooled_whole_table(tmp_path, monkeypatch):
    from promo_analysis.simulate import writer

    monkeypatch.setattr(writer, "_ROW_GROUP", 1000)  # several record batches
    cols = _shipment_columns(3500)
    _spool(str(tmp_path / "whole.arrow"), "shipments", to_arrow("shipments", cols))
    _spool(str(tmp_path / "sliced.arrow"), "shipments", _slices(cols, stamp=False))
    whole = pa.ipc.open_file(str(tmp_path / "whole.arrow"))
    sliced = pa.ipc.open_file(str(tmp_path / "sliced.arrow"))
    assert whole.num_record_batches == sliced.num_record_batches == 4
    for i in range(4):
        assert whole.get_batch(i).equals(sliced.get_batch(i))


def test_no_rows_write_no_part_files(tmp_path):
    cols = {k: v if np.ndim(v) == 0 else v[:0] for k, v in _shipment_columns(10).items()}
    schema, n = _write_parts(tmp_path, "shipments", _slices(cols), "guangxi")
    assert n == 0 and not any(tmp_path.iterdir())
    assert schema.names == list(cols)


def test_month_slices_must_be_in_time_order(tmp_path):
    cols = _shipment_columns(100)
    cols["sent_at"] = cols["sent_at"][::-1]
    with pytest.raises(ValueError, match="not in time order"):
        _write_parts(tmp_path, "shipments", _slices(cols), "guangxi")


def _units(n: int, n_treated: int, rng) -> dict[str, np.ndarray]:
    return {
        "segment": rng.integers(0, 3, size=n).astype(np.int8),
        "treated": np.r_[np.ones(n_treated, bool), np.zeros(n - n_treated, bool)],
        "effect_a": rng.normal(0.05, 0.02, size=n),
        "effect_b": rng.normal(0.08, 0.02, size=n),
        "effect_mix": rng.normal(0.06, 0.02, size=n),
        "design": rng.integers(0, 2, size=n_treated).astype(np.int8),
        "effect_own": rng.normal(0.07, 0.02, size=n_treated),
    }


def test_first_use_truth_equals_a_groupby_of_the_concatenated_units():
    rng = np.random.default_rng(3)
    segments, designs = ["young", "old", "student"], ["a", "b"]
    parts = [("shanxi", _units(400, 90, rng)), ("guangxi", _units(300, 0, rng)),
             ("beijing", _units(0, 0, rng)), ("anhui", _units(500, 120, rng))]
    frames = []
    for region, u in parts:
        own = np.full(len(u["treated"]), np.nan)
        own[: len(u["effect_own"])] = u["effect_own"]
        des = np.full(len(u["treated"]), None, dtype=object)
        des[: len(u["design"])] = np.asarray(designs, dtype=object)[u["design"]]
        frames.append(pd.DataFrame({
            "region_id": region, "segment": np.asarray(segments)[u["segment"]],
            "treated": u["treated"], "effect_a": u["effect_a"], "effect_b": u["effect_b"],
            "effect_mix": u["effect_mix"], "design": des, "effect_own": own,
        }))
    units = pd.concat(frames, ignore_index=True)
    t = units[units["treated"]]
    want = [("att", "overall", "all", t["effect_own"]),
            ("ate", "overall", "all", units["effect_mix"])]
    for by, label in (("segment", "segment"), ("region_id", "region")):
        want += [("att", label, g, s["effect_own"]) for g, s in t.groupby(by)]
        want += [("ate", label, g, s["effect_mix"]) for g, s in units.groupby(by)]
    for d in designs:
        want += [("att", "design", d, t.loc[t["design"] == d, "effect_own"]),
                 ("ate", "design", d, units[f"effect_{d}"])]
    got = first_use_truth(parts, designs, segments)
    assert list(zip(got["estimand"], got["by"], got["group"], strict=True)) == [
        w[:3] for w in want]
    assert got["n"].tolist() == [len(w[3]) for w in want]
    assert got["value"].tolist() == [float(w[3].mean()) for w in want]  # bit for bit
    assert "guangxi" not in set(got.query("estimand == 'att'")["group"])  # no treated there
    assert "beijing" not in set(got["group"])  # no units at all
