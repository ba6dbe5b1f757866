"""The project itself: conda environment agrees with pyproject, notebooks are committed
without outputs, and the command line answers ``--help``."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_agrees_with_pyproject():
    env = yaml.safe_load((ROOT / "environment.yml").read_text(encoding="utf-8"))
    project = _pyproject()["project"]
    deps = env["dependencies"]
    conda = [d for d in deps if isinstance(d, str)]
    pip = next(d["pip"] for d in deps if isinstance(d, dict) and "pip" in d)
    # the same Python floor
    python = next(d for d in conda if _name(d) == "python")
    assert python.replace("python", "").strip() == project["requires-python"].strip()
    assert any(_name(d) == "pip" for d in conda)
    # pip installs this package with its dev extra, so the dependency lists cannot drift ...
    assert "-e.[dev]" in [p.replace(" ", "") for p in pip]
    # ... and anything conda installs besides must be a declared dependency
    declared = {_name(r) for r in project["dependencies"]}
    declared |= {_name(r) for extra in project["optional-dependencies"].values() for r in extra}
    extra_conda = {_name(d) for d in conda} - {"python", "pip"}
    assert extra_conda <= declared, extra_conda - declared
    for p in pip:
        if not p.startswith("-e"):
            assert _name(p) in declared, p


def _committed_notebooks() -> list[tuple[str, str]]:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        return [(str(p.relative_to(ROOT)), p.read_text(encoding="utf-8"))
                for p in ROOT.glob("notebooks/**/*.ipynb")]
    names = subprocess.run(
        ["git", "ls-files", "-z", "--", "*.ipynb"], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode().split("\0")
    out = []
    for name in filter(None, names):
        # the committed content, not the working copy (the nbstripout filter cleans on add)
        shown = subprocess.run(["git", "show", f"HEAD:{name}"], cwd=ROOT, capture_output=True)
        if shown.returncode == 0:
            out.append((name, shown.stdout.decode("utf-8")))
    return out


def test_no_committed_notebook_has_outputs():
    dirty = []
    for name, text in _committed_notebooks():
        nb = json.loads(text)
        for i, cell in enumerate(nb.get("cells", [])):
            if cell.get("cell_type") != "code":
                continue
            if cell.get("outputs") or cell.get("execution_count") is not None:
                dirty.append(f"{name} cell {i}")
    assert not dirty, "notebooks committed with outputs (run nbstripout): " + ", ".join(dirty)


def test_gitattributes_strip_notebook_outputs():
    text = (ROOT / ".gitattributes").read_text(encoding="utf-8")
    assert re.search(r"^\*\.ipynb\s+filter=nbstripout", text, flags=re.M)


def test_command_line_help():
    script = Path(sys.executable).parent / "promo-analysis"
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "promo_analysis.cli"]
    if not script.exists():
        pytest.skip("console script not installed in this environment")
    result = subprocess.run([*cmd, "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "validate" in result.stdout
    sub = subprocess.run([*cmd, "validate", "--help"], capture_output=True, text=True,
                         timeout=120)
    assert sub.returncode == 0 and "--quarantine" in sub.stdout


def test_ruff_passes_on_package_tests_notebooks_and_scripts():
    """`make lint` as a test: notebooks are linted like code (ruff reads .ipynb)."""
    ruff = Path(sys.executable).with_name("ruff")
    if not ruff.exists():
        pytest.skip("ruff is not installed next to this interpreter")
    paths = [p for p in ("src", "tests", "notebooks", "benchmarks", "scripts") if (ROOT / p).exists()]
    result = subprocess.run(
        [str(ruff), "check", "--no-cache", *paths], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
