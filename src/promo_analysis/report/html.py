"""Export an executed report notebook to one self-contained, offline-readable HTML file.

nbconvert's stock ``lab`` template references require.js, MathJax and mermaid on a CDN; the
report template (``report_assets/report.html.j2``) empties those blocks. Code cells, prompts and
stderr streams (library warnings meant for developers) are left out; the number of stderr
outputs dropped is returned so the orchestrator can record it.
"""

from __future__ import annotations

import os
import re
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = ["export_html", "external_references", "write_atomic"]


def _assets_dir() -> str:
    return str(resources.files("promo_analysis") / "report_assets")


def _drop_stderr(nb: Any) -> int:
    dropped = 0
    for cell in nb.cells:
        if cell.get("cell_type") != "code":
            continue
        keep = []
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream" and out.get("name") == "stderr":
                dropped += 1
                continue
            keep.append(out)
        cell["outputs"] = keep
    return dropped


def export_html(nb: Any, title: str | None = None) -> tuple[str, int]:
    """HTML of an executed notebook without code, self-contained.

    Parameters
    ----------
    nb : NotebookNode or path
        The executed notebook.
    title : str, optional
        The page title (default: the notebook's name).

    Returns
    -------
    (html, n_stderr_dropped)
    """
    import nbformat
    from nbconvert import HTMLExporter

    if not isinstance(nb, nbformat.NotebookNode):
        nb = nbformat.read(str(nb), as_version=4)
    else:
        nb = nbformat.from_dict(nb)  # a copy: the executed notebook keeps its stderr
    dropped = _drop_stderr(nb)
    # papermill gives its injected cell a random id; positional ids make reruns byte-identical
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i}"
    if title:
        nb.metadata["title"] = title
    exporter = HTMLExporter(
        template_name="lab",
        template_file="report.html.j2",
        extra_template_basedirs=[_assets_dir()],
        extra_template_paths=[_assets_dir()],
        exclude_input=True,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
        embed_images=True,
        language_code="zh",
    )
    body, _ = exporter.from_notebook_node(nb)
    return body, dropped


# <script src=...>, <link href=...>, <img src=...>, CSS @import and url(...) pointing at a host
_EXTERNAL = re.compile(
    r"""(?:<script[^>]*\ssrc\s*=\s*["']?\s*(?:https?:)?//[^"'\s>]+"""
    r"""|<link[^>]*\shref\s*=\s*["']?\s*(?:https?:)?//[^"'\s>]+"""
    r"""|<(?:img|iframe|source|video|audio)[^>]*\ssrc\s*=\s*["']?\s*(?:https?:)?//[^"'\s>]+"""
    r"""|@import\s+(?:url\()?\s*["']?\s*(?:https?:)?//[^"'\s)]+"""
    r"""|url\(\s*["']?\s*(?:https?:)?//[^"'\s)]+"""
    r"""|import\s*\(\s*["'](?:https?:)?//[^"']+)""",
    re.IGNORECASE,
)


def external_references(html: str) -> list[str]:
    """Every resource the page would fetch from the network (should be empty)."""
    return [m.group(0) for m in _EXTERNAL.finditer(html)]


def write_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary name and a rename, never half-written."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path
