"""Every notebook in ``notebooks/`` executes through papermill on a small simulated dataset,
and the regional report template renders for two regions through ``render_reports``.

Kernels run the venv's interpreter: the ``python3`` kernelspec's ``python`` resolves to
``sys.executable`` in jupyter_client, so no ``ipykernel install`` is needed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
TEMPLATE = NOTEBOOKS / "regional_report.ipynb"
OTHERS = sorted(p for p in NOTEBOOKS.glob("*.ipynb") if p != TEMPLATE)

pytestmark = [pytest.mark.notebooks, pytest.mark.slow, pytest.mark.xdist_group("notebooks")]

#: what matplotlib prints when a character has no glyph in the font it uses
_GLYPH = re.compile(r"Glyph \d+ .*missing from (current )?font|missing from font", re.I)


def _stderr(nb: nbformat.NotebookNode) -> str:
    return "".join(
        o.get("text", "")
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if o.get("output_type") == "stream" and o.get("name") == "stderr"
    )


#: text an executed notebook must show (its headline result and, on simulated data, the truth)
EXPECTED_TEXT = {
    "survey": ("share coupon_influenced", "covers_truth"),
}


def _text(nb: nbformat.NotebookNode) -> str:
    return "\n".join(
        str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", ""))
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
    )


@pytest.mark.parametrize("path", [*OTHERS, TEMPLATE], ids=lambda p: p.stem)
def test_notebook_has_one_parameters_cell(path):
    nb = nbformat.read(str(path), as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    params = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1 and "data =" in params[0].source


@pytest.mark.parametrize("path", OTHERS, ids=[p.stem for p in OTHERS])
def test_notebook_executes(path, sample_dir, tmp_path):
    import papermill as pm

    wanted = {"data": str(sample_dir), "region": "guangxi"}
    declared = pm.inspect_notebook(str(path))
    params = {k: v for k, v in wanted.items() if k in declared}
    out = tmp_path / path.name
    pm.execute_notebook(str(path), str(out), parameters=params, kernel_name="python3",
                        progress_bar=False, cwd=str(tmp_path))
    nb = nbformat.read(str(out), as_version=4)
    assert not _GLYPH.search(_stderr(nb)), "a chart has characters the font cannot show"
    text = _text(nb)
    for expected in EXPECTED_TEXT.get(path.stem, ()):
        assert expected in text, f"{path.name}: no {expected!r} in the outputs"


def test_regional_report_two_regions(sample_dir, notebook_ds, tmp_path, monkeypatch):
    import os

    from promo_analysis.report import render_reports
    from promo_analysis.report.html import external_references
    from promo_analysis.report.privacy import find_identifiers
    from promo_analysis.report.sections import SECTION_KEYS

    # relative paths, as `make reports` passes them: nothing may change the process's cwd while
    # one region's notebook runs and the next region's inputs are built
    monkeypatch.chdir(tmp_path)
    data = Path(os.path.relpath(sample_dir, tmp_path))
    summary = render_reports(data, regions=["guangxi", "shanxi"], out=Path("reports"),
                             template=TEMPLATE, workers=2, progress=None)
    errors = {r: s.error for r, s in summary.regions.items() if s.status != "ok"}
    assert summary.ok, errors
    ids = notebook_ds.to_pandas("customers")["customer_id"].astype(str)
    for region, name in (("guangxi", "广西 Guangxi"), ("shanxi", "山西 Shanxi")):
        html = (summary.folder / f"{region}.html").read_text(encoding="utf-8")
        for key in SECTION_KEYS:
            assert f'id="section-{key}"' in html, (region, key)
        assert name in html
        assert '<meta charset="utf-8"' in html.lower()
        assert "Traceback" not in html
        assert external_references(html) == []
        assert "<img" in html
        assert find_identifiers(html, ids) == []
        nb = nbformat.read(str(summary.folder / f"{region}.ipynb"), as_version=4)
        assert not _GLYPH.search(_stderr(nb))
    index = summary.index.read_text(encoding="utf-8")
    assert "guangxi.html" in index and "shanxi.html" in index and "<img" in index
    assert external_references(index) == []
    manifest = json.loads(summary.manifest.read_text(encoding="utf-8"))
    assert manifest["status"] == "ok"
    assert set(manifest["regions"]) == {"guangxi", "shanxi"}
    assert all(r["seconds"] > 0 for r in manifest["regions"].values())
    assert manifest["dataset"]["fingerprint"].startswith("sha256:")
    assert (tmp_path / "reports" / "latest").resolve() == summary.folder.resolve()
