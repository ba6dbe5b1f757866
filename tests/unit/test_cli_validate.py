"""``promo-analysis validate``: exit codes 0 / 1 / 2, printed report, --quarantine, --encoding."""

from __future__ import annotations

import pytest
from contract_fixtures import VALID_META, valid_frames
from typer.testing import CliRunner

from promo_analysis import Dataset, save_dataset
from promo_analysis.cli import app

runner = CliRunner()


def _folder(tmp_path, frames, fmt="csv", encoding=None):
    path = tmp_path / "data"
    if encoding is None:
        save_dataset(Dataset.from_frames(frames, meta=VALID_META), path, format=fmt)
    else:
        path.mkdir()
        for name, frame in frames.items():
            frame.to_csv(path / f"{name}.csv", index=False, encoding=encoding)
    return path


def test_clean_dataset_exits_0(tmp_path):
    result = runner.invoke(app, ["validate", str(_folder(tmp_path, valid_frames()))])
    assert result.exit_code == 0, result.output
    assert "OK, the data contract holds" in result.output


def test_violations_exit_1_and_are_printed(tmp_path):
    frames = valid_frames()
    frames["shipments"].loc[1, "revenue"] = 21.0
    result = runner.invoke(app, ["validate", str(_folder(tmp_path, frames))])
    assert result.exit_code == 1
    assert "[revenue_formula] shipments.revenue: 1 row(s)" in result.output
    assert "S0002: 21.0" in result.output


def test_quarantine_prints_reconciliation(tmp_path):
    frames = valid_frames()
    frames["shipments"].loc[1, "revenue"] = 21.0
    out = tmp_path / "clean"
    result = runner.invoke(
        app, ["validate", str(_folder(tmp_path, frames)), "--quarantine", str(out)]
    )
    assert result.exit_code == 1, result.output
    assert "shipments: input 6 = accepted 5 + rejected 1; revenue 93.00 = 72.00 + 21.00" in (
        result.output
    )
    assert (out / "rejected" / "shipments.csv").exists()
    again = runner.invoke(app, ["validate", str(out)])
    assert again.exit_code == 0, again.output


@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda p: p / "nowhere", "not found"),
        (lambda p: (p / "empty").mkdir() or p / "empty", "no table files"),
    ],
    ids=["missing-folder", "empty-folder"],
)
def test_unusable_input_exits_2(tmp_path, setup, message):
    result = runner.invoke(app, ["validate", str(setup(tmp_path))])
    assert result.exit_code == 2
    assert message in result.output


def test_missing_required_table_or_column_exits_2(tmp_path):
    frames = valid_frames()
    frames.pop("customers")
    frames["shipments"] = frames["shipments"].drop(columns=["sent_at"])
    result = runner.invoke(app, ["validate", str(_folder(tmp_path, frames))])
    assert result.exit_code == 2
    assert "[missing_table] customers" in result.output
    assert "[missing_column] shipments.sent_at" in result.output


def test_gbk_export_needs_encoding_option(tmp_path):
    path = _folder(tmp_path, valid_frames(), encoding="gbk")
    bad = runner.invoke(app, ["validate", str(path)])
    assert bad.exit_code == 2 and "byte offset" in bad.output
    good = runner.invoke(app, ["validate", str(path), "--encoding", "gbk"])
    assert good.exit_code == 0, good.output


def test_help():
    for args in (["--help"], ["validate", "--help"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0
    assert "--quarantine" in runner.invoke(app, ["validate", "--help"]).output
