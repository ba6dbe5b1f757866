"""Figures for notebooks and reports.

Every plotting function takes ``ax=None`` (a new figure when omitted) and returns the ``ax``
it drew on; titles name what is shown, axes carry units (yuan), and estimates show their
uncertainty. Chinese labels render with the bundled Noto Sans CJK font.

One module per analysis: ``plots.causal`` (forest, love and overlap plots), ``plots.uplift``
(Qini curve, uplift by group), ``plots.retention`` (cohort heatmap, Kaplan-Meier with at-risk
table, habit bars, Schoenfeld residuals), ``plots.campaigns`` (calendar heatmap, effects forest,
event study, bunching, design forest), ``plots.survey`` (weighted vs unweighted, domains, says
vs does) and ``plots.report`` (report charts). The cohort and Kaplan-Meier results also have
a ``plot`` method that draws through these.
"""

from __future__ import annotations

from promo_analysis.plots.fonts import cjk_font_name, use_cjk_font

use_cjk_font()

__all__ = ["cjk_font_name", "use_cjk_font"]
