"""Figures for notebooks and reports.

Every plotting function takes ``ax=None`` (a new figure when omitted) and returns the ``ax``
it drew on; titles name what is shown, axes carry units (yuan), and estimates show their
uncertainty. Chinese labels render with the bundled Noto Sans CJK font.
"""

from __future__ import annotations

from promo_analysis.plots.fonts import cjk_font_name, use_cjk_font

use_cjk_font()

__all__ = ["cjk_font_name", "use_cjk_font"]
