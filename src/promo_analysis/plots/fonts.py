"""A CJK-capable matplotlib setup: charts must show Chinese names, never missing-glyph boxes.

The Noto Sans CJK collection comes from PyPI (``noto-cjk[sans]``) and is registered with
matplotlib's font manager by file path, so no system font is needed.
"""

from __future__ import annotations

import functools

import matplotlib as mpl
from matplotlib import font_manager

__all__ = ["use_cjk_font", "cjk_font_name"]


@functools.cache
def cjk_font_name() -> str:
    """Register the bundled Noto Sans CJK font and return its family name."""
    import noto_cjk

    path = noto_cjk.otc_path("sans")
    font_manager.fontManager.addfont(str(path))
    return font_manager.FontProperties(fname=str(path)).get_name()


def use_cjk_font() -> str:
    """Make the bundled CJK font matplotlib's first sans-serif font; returns the family name.

    Safe to call repeatedly. Latin text keeps DejaVu Sans as the fallback after the CJK font.
    """
    name = cjk_font_name()
    families = [name] + [f for f in mpl.rcParams["font.sans-serif"] if f != name]
    mpl.rcParams["font.family"] = "sans-serif"
    mpl.rcParams["font.sans-serif"] = families
    mpl.rcParams["axes.unicode_minus"] = False
    return name
