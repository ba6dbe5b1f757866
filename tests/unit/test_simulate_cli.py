"""``promo-analysis simulate``: writes a valid dataset folder; bad parameters exit 2."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from promo_analysis.cli import app


def test_simulate_writes_a_dataset(tmp_path):
    out = tmp_path / "sample"
    r = CliRunner().invoke(
        app,
        ["simulate", "--scenario", "china-post-2022", "--scale", "0.0005", "--regions",
         "guangxi", "--seed", "0", "--out", str(out)],
    )
    assert r.exit_code == 0, r.output
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["scenario"] == "china-post-2022" and meta["seed"] == 0
    assert meta["regions"] == ["guangxi"] and meta["scale"] == 0.0005
    assert (out / "truth.json").exists() and (out / "shipments.parquet").exists()
    v = CliRunner().invoke(app, ["validate", str(out)])
    assert v.exit_code == 0, v.output


def test_simulate_bad_region_exits_2(tmp_path):
    r = CliRunner().invoke(app, ["simulate", "--regions", "narnia", "--out", str(tmp_path / "x")])
    assert r.exit_code == 2
    assert "unknown region id" in r.output
    assert not (tmp_path / "x").exists()


def test_simulate_workers_flag(tmp_path):
    # the flag reaches write_simulation (worker pools: tests/unit/test_simulate_parallel.py)
    out = tmp_path / "one"
    r = CliRunner().invoke(
        app,
        ["simulate", "--scale", "0.0005", "--regions", "guangxi,shanxi", "--seed", "0",
         "--workers", "1", "--out", str(out)],
    )
    assert r.exit_code == 0, r.output
    assert json.loads((out / "dataset.json").read_text())["regions"] == ["guangxi", "shanxi"]
    bad = CliRunner().invoke(app, ["simulate", "--workers", "0", "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and not (tmp_path / "x").exists()
