"""Regions generated in worker processes: the output is bit-identical for any number of
workers (every region draws from its own seeded streams), and the worker count is checked."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest

from promo_analysis.simulate import parallel, simulate_frames, write_simulation
from promo_analysis.simulate.parallel import in_region_order, next_region, resolve_workers

SMALL = dict(scenario="china-post-2022", scale=0.001, regions=["guangxi", "shanxi"], seed=7)


def _files(folder: Path) -> dict[str, str]:
    """sha256 of every file (recursively); truth.json without its wall-clock ``seconds``."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if not p.is_file():
            continue
        data = p.read_bytes()
        if p.name == "truth.json":
            truth = json.loads(data)
            truth["calibration"].pop("seconds")
            data = json.dumps(truth, sort_keys=True).encode()
        out[str(p.relative_to(folder))] = hashlib.sha256(data).hexdigest()
    return out


def test_written_folder_is_identical_for_one_and_two_workers(tmp_path):
    """Partitioned layout: shipments and coupons are part files the workers write themselves,
    customers, survey and assignments go through the spool files the parent merges (the path
    of the flat layout). Each worker start costs ~1 CPU-s (imports), so one layout only."""
    one = write_simulation(tmp_path / "one", workers=1, partitioned=True, **SMALL)
    two = write_simulation(tmp_path / "two", workers=2, partitioned=True, **SMALL)
    a, b = _files(one), _files(two)
    assert a == b
    assert "truth.json" in a and not any("_regions" in k for k in a)  # spool files removed
    assert any(k.startswith("shipments/region_id=shanxi/month=2022-") for k in a)
    assert {"customers.parquet", "survey.parquet", "assignments.parquet"} <= set(a)


def test_frames_and_truth_identical_for_one_and_two_workers():
    f1, m1, t1 = simulate_frames(workers=1, **SMALL)
    f2, m2, t2 = simulate_frames(workers=2, **SMALL)
    assert list(f1) == list(f2) and m1 == m2
    for name in f1:
        pd.testing.assert_frame_equal(f1[name], f2[name], check_exact=True)
    d1, d2 = t1.to_dict(), t2.to_dict()
    d1["calibration"].pop("seconds")
    d2["calibration"].pop("seconds")
    assert d1 == d2
    assert set(f2["shipments"]["region_id"]) == {"guangxi", "shanxi"}


def test_worker_count_rules():
    assert resolve_workers(4, n_regions=2, expected_shipments=1e9) == 2  # capped by regions
    assert resolve_workers(1, n_regions=31, expected_shipments=1e9) == 1
    assert resolve_workers(None, n_regions=31, expected_shipments=1e3) == 1  # too small
    assert 1 <= resolve_workers(None, n_regions=31, expected_shipments=1e9) <= 31
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="workers must be a positive integer"):
            resolve_workers(bad, n_regions=2, expected_shipments=1e6)


def test_next_region_keeps_big_regions_apart():
    sizes = [4.4, 3.2, 0.5, 3.0, 0.2]
    # nothing runs: the first pending region, even if bigger than the budget
    assert next_region([0, 1, 2, 3, 4], 0.0, sizes, budget=4.0) == 0
    # Guangdong runs: Jiangsu and the other big one wait, the small ones may start
    assert next_region([1, 2, 3, 4], 4.4, sizes, budget=5.0) == 1  # position of region 2
    assert next_region([1, 3], 4.4, sizes, budget=5.0) is None
    assert next_region([1, 3, 4], 3.5, sizes, budget=6.5) == 1  # region 3 fits, region 1 not
    assert next_region([], 0.0, sizes, budget=5.0) is None


def test_scheduled_regions_come_back_in_region_order():
    import operator

    regions = ["a", "b", "c", "d", "e"]
    # budget 6: "a" (5) runs with "b" (1); "c" (5) waits for both, "d"/"e" (1) run ahead
    got = list(in_region_order(operator.concat, regions, ("!",), workers=2,
                               sizes=[5, 1, 5, 1, 1], budget=6))
    assert got == [(r, r + "!") for r in regions]


def test_frames_identical_when_the_budget_serialises_regions(monkeypatch):
    """A budget smaller than any region: one region at a time, results unchanged."""
    f1, _, t1 = simulate_frames(workers=1, **SMALL)
    monkeypatch.setattr(parallel, "MAX_RUNNING_SHIPMENTS", 1.0)
    f2, _, t2 = simulate_frames(workers=2, **SMALL)
    for name in f1:
        pd.testing.assert_frame_equal(f1[name], f2[name], check_exact=True)
    pd.testing.assert_frame_equal(t1.campaigns, t2.campaigns, check_exact=True)
