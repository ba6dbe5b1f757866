"""Report machinery: inputs, HTML export, sections, and render_reports' reliability rules.

Runs on a small random contract-valid dataset (``report_frames``); the machinery tests use a
two-cell template so that a kernel start is the only slow part.
"""

from __future__ import annotations

import json
import re
import sys
import warnings
from pathlib import Path

import nbformat
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from report_frames import report_frames  # noqa: E402

from promo_analysis.report.html import export_html, external_references  # noqa: E402
from promo_analysis.report.inputs import build_inputs, load_inputs  # noqa: E402
from promo_analysis.report.params import ReportParameterError, parse_period  # noqa: E402

pytestmark = pytest.mark.xdist_group("report")


@pytest.fixture(scope="module")
def frames():
    return report_frames(seed=3)


@pytest.fixture(scope="module")
def dataset_dir(frames, tmp_path_factory):
    from promo_analysis import Dataset, save_dataset

    folder = tmp_path_factory.mktemp("report-data") / "tiny"
    save_dataset(Dataset.from_frames(frames, meta={"name": "tiny"}), folder)
    return folder


@pytest.fixture(scope="module")
def inputs(dataset_dir, tmp_path_factory):
    from promo_analysis import load_dataset, validate

    ds = load_dataset(dataset_dir)
    period = parse_period("2022-01-01", "2022-12-31")
    compare = parse_period("2021-01-01", "2021-12-31")
    out = tmp_path_factory.mktemp("inputs")
    paths = build_inputs(ds, ["guangxi", "shanxi"], period, compare, out,
                         validation=validate(ds), extra_meta={"fingerprint": ds.fingerprint()})
    return {r: load_inputs(p) for r, p in paths.items()}


_TEMPLATE_BODY = ("from promo_analysis.report.inputs import load_inputs\n"
                  "inp = load_inputs(inputs)\n"
                  "print(inp.meta['name_zh'], inp.meta['name_en'], '收入', "
                  "round(inp.daily['revenue'].sum(), 2))")


def _template(path: Path, fail: str | None = None, body: str = _TEMPLATE_BODY) -> Path:
    """A minimal report template: the parameters cell, ``body``, and optionally a cell that
    fails for the region ``fail``."""
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('region = "x"\ninputs = ""')
    params.metadata["tags"] = ["parameters"]
    cells = [params, nbformat.v4.new_code_cell(body)]
    if fail:
        cells.append(nbformat.v4.new_code_cell(
            f"if region == {fail!r}:\n    raise RuntimeError('deliberate failure')"))
    nb.cells = cells
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, str(path))
    return path


# ------------------------------------------------------------------ inputs
def test_inputs_match_pandas_and_hold_no_identifiers(frames, inputs):
    s = frames["shipments"].copy()
    s["date"] = s["sent_at"].dt.normalize()
    for region, inp in inputs.items():
        mine = s[s["region_id"] == region]
        cur = mine[mine["date"].dt.year == 2022]
        assert inp.daily["revenue"].sum() == pytest.approx(mine["revenue"].sum())
        d = inp.daily
        assert d.loc[d["date"].dt.year == 2022, "coupon_shipments"].sum() == cur[
            "coupon_id"].notna().sum()
        pc = inp.period_customers.set_index(["period", "channel"])["customers"]
        assert pc[("current", "all")] == cur["customer_id"].nunique()
        by_ch = cur.groupby("channel")["customer_id"].nunique()
        for ch, n in by_ch.items():
            assert pc[("current", ch)] == n
        firsts = s.groupby("customer_id")["date"].min()
        firsts = firsts[firsts.index.isin(mine["customer_id"])]
        assert inp.new_customers["new_customers"].sum() == len(firsts)
        # national campaigns belong to every region's inputs
        assert "N-SF-2022" in set(inp.campaigns["campaign_id"])
        assert inp.meta["row_counts"]["customers"] == (frames["customers"]["region_id"]
                                                       == region).sum()
        for name, df in inp.frames.items():
            assert not {"customer_id", "shipment_id", "response_id", "coupon_id"} & set(
                df.columns), name


# ------------------------------------------------------------------ sections
def test_sections_render_with_cjk_glyphs_and_no_ids(frames, inputs):
    from promo_analysis.report import sections

    inp = inputs["guangxi"]
    with warnings.catch_warnings():
        # a CJK character without a glyph must fail the test, not print a box
        warnings.filterwarnings("error", message=r".*[Gg]lyph.*missing.*")
        warnings.filterwarnings("error", message=r".*missing from (current )?font.*")
        parts = [
            sections.title_html(inp, lang="zh"),
            sections.headline(inp, lang="zh")._repr_html_(),
            sections.campaign_calendar(inp, lang="en")._repr_html_(),
            sections.campaign_effects(inp, lang="zh")._repr_html_(),
            sections.first_use(inp, lang="zh")._repr_html_(),
            sections.retention(inp, lang="zh")._repr_html_(),
            sections.survey(inp, lang="zh")._repr_html_(),
            sections.data_quality(inp, lang="zh")._repr_html_(),
            sections.provenance(inp, {"region": "guangxi"}, lang="en")._repr_html_(),
        ]
    text = "".join(parts)
    for key in sections.SECTION_KEYS:
        assert f'id="section-{key}"' in text, key
    assert "广西 Guangxi" in text
    assert "Traceback" not in text
    from promo_analysis.report.privacy import find_identifiers

    assert find_identifiers(text, frames["customers"]["customer_id"]) == []
    head = sections.headline(inp, lang="en")
    kpis = head.tables["kpis_raw"]
    s = frames["shipments"]
    gx = s[(s["region_id"] == "guangxi") & (s["sent_at"].dt.year == 2022)]
    assert kpis.loc["revenue", "current"] == pytest.approx(gx["revenue"].sum())
    assert kpis.loc["coupons_used", "current"] == gx["coupon_id"].notna().sum()


# ------------------------------------------------------------------ html export
def test_export_html_is_offline_code_free_and_utf8():
    nb = nbformat.v4.new_notebook()
    code = nbformat.v4.new_code_cell("secret_code_line = 1\nprint('hi')")
    code.outputs = [
        nbformat.v4.new_output("stream", name="stdout", text="可见 visible\n"),
        nbformat.v4.new_output("stream", name="stderr", text="FutureWarning: noise\n"),
        nbformat.v4.new_output("display_data", data={"text/html": "<b>广西 Guangxi</b>"}),
    ]
    nb.cells = [nbformat.v4.new_markdown_cell("# 标题 $x$"), code]
    html, dropped = export_html(nb, title="广西 report")
    assert dropped == 1
    assert "secret_code_line" not in html
    assert "FutureWarning" not in html
    assert "可见 visible" in html and "<b>广西 Guangxi</b>" in html
    assert re.search(r'<meta charset="utf-8"', html, re.IGNORECASE)
    assert external_references(html) == []
    assert not re.search(r"<script[^>]+src=", html)
    # the checker itself finds CDN references
    assert external_references('<script src="https://cdn.x/require.js"></script>')
    assert external_references("<link rel=stylesheet href='//fonts.example/css'>")


# ------------------------------------------------------------------ render_reports
@pytest.mark.notebooks
def test_failing_region_isolated_and_cli_exit_code(dataset_dir, tmp_path):
    from typer.testing import CliRunner

    from promo_analysis.cli import app

    tpl = _template(tmp_path / "t.ipynb", fail="shanxi")
    out = tmp_path / "reports"
    result = CliRunner().invoke(app, ["report", "--data", str(dataset_dir), "--out", str(out),
                                      "--template", str(tpl), "--workers", "2"])
    assert result.exit_code == 1, result.output
    assert "guangxi: ok" in result.output and "shanxi: failed" in result.output
    run = (out / "latest").resolve()
    assert (run / "guangxi.html").exists()
    assert "广西 Guangxi 收入" in (run / "guangxi.html").read_text(encoding="utf-8")
    assert not (run / "shanxi.html").exists()
    assert not list(run.glob(".*tmp*")) and not (run / ".work").exists()
    manifest = json.loads((run / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["status"] == "failed"
    assert manifest["regions"]["guangxi"]["status"] == "ok"
    assert manifest["regions"]["shanxi"]["status"] == "failed"
    assert "deliberate failure" in manifest["regions"]["shanxi"]["error"]
    assert manifest["dataset"]["fingerprint"].startswith("sha256:")
    assert manifest["package"]["version"]
    index = (run / "index.html").read_text(encoding="utf-8")
    assert "deliberate failure" in index and "guangxi.html" in index
    assert f"index: {run / 'index.html'}" in result.output.replace(str(out.resolve()), str(out))


def test_bad_parameters_refused_before_any_run(dataset_dir, tmp_path):
    from promo_analysis.report import render_reports

    out = tmp_path / "reports"
    tpl = _template(tmp_path / "t.ipynb")
    with pytest.raises(ReportParameterError, match="not a valid region id"):
        render_reports(dataset_dir, regions=["../x"], out=out, template=tpl)
    with pytest.raises(ReportParameterError, match="unknown region 'tibet'.*guangxi, shanxi"):
        render_reports(dataset_dir, regions="guangxi,tibet", out=out, template=tpl)
    with pytest.raises(ReportParameterError, match="lang"):
        render_reports(dataset_dir, out=out, template=tpl, lang="fr")
    with pytest.raises(ReportParameterError, match="before its start"):
        render_reports(dataset_dir, out=out, template=tpl, period_start="2022-12-31",
                       period_end="2022-01-01")
    assert not out.exists() or not any(out.iterdir())
    assert not (tmp_path / "x").exists()


@pytest.mark.notebooks
def test_rerun_makes_a_new_run_and_moves_latest(dataset_dir, tmp_path):
    from promo_analysis.report import render_reports

    out = tmp_path / "reports"
    tpl = _template(tmp_path / "t.ipynb")
    first = render_reports(dataset_dir, regions="guangxi", out=out, template=tpl, progress=None)
    second = render_reports(dataset_dir, regions="guangxi", out=out, template=tpl, progress=None)
    assert first.ok and second.ok
    assert first.folder != second.folder and first.folder.exists()
    assert (out / "latest").resolve() == second.folder.resolve()
    a = (first.folder / "guangxi.html").read_text(encoding="utf-8")
    b = (second.folder / "guangxi.html").read_text(encoding="utf-8")
    assert a == b  # same data and parameters: same report
    m1 = json.loads(first.manifest.read_text(encoding="utf-8"))
    m2 = json.loads(second.manifest.read_text(encoding="utf-8"))
    assert m1["dataset"]["fingerprint"] == m2["dataset"]["fingerprint"]
    assert m1["parameters"] == m2["parameters"]
    assert pd.Timestamp(m2["started_at"]) >= pd.Timestamp(m1["started_at"])


def test_open_inputs_builds_one_region_from_the_dataset(dataset_dir, inputs):
    from promo_analysis.report.inputs import open_inputs

    inp = open_inputs("", data=dataset_dir, region="shanxi", period_start="2022-01-01",
                      period_end="2022-12-31")
    ref = inputs["shanxi"]
    assert inp.region == "shanxi" and inp.meta["name_zh"] == "山西"
    pd.testing.assert_frame_equal(inp.daily.reset_index(drop=True),
                                  ref.daily.reset_index(drop=True))
    with pytest.raises(ValueError, match="not 'guangxi'"):
        open_inputs(ref.folder, region="guangxi")
    with pytest.raises(ReportParameterError, match="unknown region"):
        open_inputs("", data=dataset_dir, region="beijing", period_start="2022-01-01",
                    period_end="2022-12-31")


def test_latest_is_a_symlink_or_a_file_with_the_run_id(tmp_path, monkeypatch):
    import os

    from promo_analysis.report import render

    (tmp_path / "run-a").mkdir()
    (tmp_path / "run-b").mkdir()
    render._point_latest(tmp_path, "run-a")
    render._point_latest(tmp_path, "run-b")
    assert (tmp_path / "latest").is_symlink()
    assert (tmp_path / "latest").resolve() == (tmp_path / "run-b").resolve()

    def no_symlinks(*args, **kwargs):
        raise OSError("symlinks not supported here")

    monkeypatch.setattr(os, "symlink", no_symlinks)
    render._point_latest(tmp_path, "run-a")
    latest = tmp_path / "latest"
    assert latest.is_file() and not latest.is_symlink()
    assert latest.read_text().strip() == "run-a"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".latest")]


def test_dispatch_keeps_the_kernels_row_limit_and_does_not_spin():
    """Built regions go to at most ``workers`` kernels and at most ``rows_limit`` first-use
    rows at once; a region above the limit runs alone; a small one that fits runs beside a big
    one instead of waiting behind it; waiting blocks (no CPU spent while the kernels run)."""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    from promo_analysis.report import render

    rows = {"big": 900, "huge": 1500, "mid": 500, "small1": 50, "small2": 60, "small3": 70}
    lock = threading.Lock()
    running: dict[str, int] = {}
    seen: list[tuple[str, dict[str, int]]] = []
    done: list[render.RegionStatus] = []

    def job(region, seconds):
        with lock:
            running[region] = rows[region]
            seen.append((region, dict(running)))
        time.sleep(seconds)
        with lock:
            del running[region]
        return render.RegionStatus(region, "ok", seconds)

    with ThreadPoolExecutor(max_workers=2) as pool:
        d = render._Dispatch(pool, 2, 1000, job, done.append)
        for region in ("big", "mid", "huge", "small1", "small2", "small3"):
            d.add((region, 0.05 if region.startswith("small") else 0.25), rows[region])
        c0 = time.process_time()
        t0 = time.perf_counter()
        d.join()
        waited, cpu = time.perf_counter() - t0, time.process_time() - c0
    assert sorted(s.region for s in done) == sorted(rows)
    for region, together in seen:
        assert len(together) <= 2
        assert sum(together.values()) <= 1000 or together == {region: rows[region]}
    starts = [r for r, _ in seen]
    # "mid" does not fit beside "big": the small regions behind it run first
    assert starts.index("small1") < starts.index("mid")
    assert waited > 0.3 and cpu < 0.1 * waited


@pytest.mark.notebooks
def test_a_given_validation_report_is_used_not_recomputed(dataset_dir, tmp_path, monkeypatch):
    import dataclasses

    import promo_analysis
    from promo_analysis import load_dataset, validate
    from promo_analysis.report import render_reports

    ds = load_dataset(dataset_dir)
    report = validate(ds, strict=False)
    expected = report.issues.drop(columns=[c for c in ("example", "examples")
                                           if c in report.issues.columns])
    expected = expected[expected["region_id"].isna() | (expected["region_id"] == "guangxi")] \
        if "region_id" in expected.columns else expected

    def no_validation(*a, **kw):
        raise AssertionError("validate() ran although a validation report was given")

    monkeypatch.setattr(promo_analysis, "validate", no_validation)
    tpl = _template(tmp_path / "t.ipynb")
    summary = render_reports(ds, regions="guangxi", out=tmp_path / "r", template=tpl,
                             progress=None, validation=report)
    assert summary.ok
    got = pd.read_parquet(summary.folder / "inputs" / "guangxi" / "validation.parquet")
    assert len(got) == len(expected) and list(got.columns) == list(expected.columns)
    # a report of other data (a table's row count differs) is refused before any run
    other = dataclasses.replace(report, rows={**report.rows,
                                              "shipments": report.rows["shipments"] + 1})
    with pytest.raises(ReportParameterError, match="shipments"):
        render_reports(ds, regions="guangxi", out=tmp_path / "r2", template=tpl,
                       progress=None, validation=other)
    assert not (tmp_path / "r2").exists()


def _state_template(path: Path, fail: str | None = None) -> Path:
    """A template that fails when a previous region's variables are still defined, prints its
    kernel's pid and raises the same warning in every region."""
    body = ("import os\nimport warnings\n"
            "assert 'leftover' not in globals(), f'state of {leftover} leaked into ' + region\n"
            "print('pid', os.getpid())\n"
            "warnings.warn('the same warning in every region', UserWarning, stacklevel=1)\n"
            "leftover = region")
    return _template(path, fail, body=body)


def _pid_and_warning(nb_path: Path) -> tuple[str, bool]:
    nb = nbformat.read(str(nb_path), as_version=4)
    texts = [o.get("text", "") for c in nb.cells if c.cell_type == "code"
             for o in c.get("outputs", [])]
    pid = next(m.group(1) for t in texts for m in [re.search(r"pid (\d+)", t)] if m)
    return pid, any("the same warning in every region" in t for t in texts)


@pytest.mark.notebooks
def test_a_reused_kernel_runs_each_region_as_a_fresh_one(dataset_dir, tmp_path):
    """One worker renders both regions in one kernel (same pid), yet the second notebook sees
    none of the first's variables, shows the warning again, and is saved without the reset
    cell with execution counts from 1 -- as with a new kernel per region."""
    from promo_analysis.report import render_reports
    from promo_analysis.report.render import RESET_CELL_ID, RESET_END_ID

    tpl = _state_template(tmp_path / "t.ipynb")
    run = render_reports(dataset_dir, out=tmp_path / "r", template=tpl, workers=1,
                         progress=None, validate=False)
    assert run.ok, {r: s.error for r, s in run.regions.items()}
    (pid_a, warned_a), (pid_b, warned_b) = (
        _pid_and_warning(run.folder / f"{r}.ipynb") for r in ("guangxi", "shanxi"))
    assert pid_a == pid_b and warned_a and warned_b
    nb = nbformat.read(str(run.folder / "shanxi.ipynb"), as_version=4)
    assert all(c.get("id") not in (RESET_CELL_ID, RESET_END_ID) for c in nb.cells)
    assert [c.execution_count for c in nb.cells if c.cell_type == "code"] == [1, 2, 3]
    assert nb.metadata["papermill"]["input_path"] == str(tpl)
    # the same notebooks, one kernel per region: identical outputs but for the pid
    fresh = render_reports(dataset_dir, out=tmp_path / "f", template=tpl, workers=1,
                           progress=None, validate=False, reuse_kernels=False)
    pids = {_pid_and_warning(fresh.folder / f"{r}.ipynb")[0] for r in ("guangxi", "shanxi")}
    assert len(pids) == 2
    def strip(html: str, folder: Path) -> str:
        return re.sub(r"pid \d+", "pid N", html.replace(folder.name, "RUN"))

    for r in ("guangxi", "shanxi"):
        a = (run.folder / f"{r}.html").read_text(encoding="utf-8")
        b = (fresh.folder / f"{r}.html").read_text(encoding="utf-8")
        assert strip(a, run.folder) == strip(b, fresh.folder)


@pytest.mark.notebooks
def test_after_a_failed_region_the_worker_gets_a_new_kernel(dataset_dir, tmp_path):
    from promo_analysis.report import render_reports

    tpl = _state_template(tmp_path / "t.ipynb", fail="guangxi")
    run = render_reports(dataset_dir, out=tmp_path / "r", template=tpl, workers=1,
                         progress=None, validate=False)
    assert run.regions["guangxi"].status == "failed" and run.regions["shanxi"].status == "ok"
    failed = run.folder / "guangxi.failed.ipynb"
    assert "deliberate failure" in run.regions["guangxi"].error
    assert _pid_and_warning(failed)[0] != _pid_and_warning(run.folder / "shanxi.ipynb")[0]
