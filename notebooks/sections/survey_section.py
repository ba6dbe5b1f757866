"""The survey section of a regional report: tables and figures from ``promo_analysis.survey``.

``survey_section(ds, region)`` returns a dict the report template can display:

* ``"headline"`` -- the design-based share saying coupons influence their choice of courier
  (an :class:`~promo_analysis.results.Estimate`, logit CI);
* ``"weighting"`` -- weighted vs. unweighted estimates of every survey question (DataFrame);
* ``"says_does"`` -- :func:`~promo_analysis.survey.linked_behaviour` (TableResult);
* ``"figures"`` -- ``{"weighting": ax, "says_does": ax}``;
* ``"notes"`` -- design warnings (lonely PSUs, missing answers) to print under the section.
"""

from __future__ import annotations

from typing import Any

from promo_analysis import survey as sv
from promo_analysis.plots import survey as survey_plots

QUESTIONS = ("coupon_influenced", "first_time_sender", "aware_of_campaign", "satisfaction")


def survey_section(ds: Any, region: str, window_days: int = 30) -> dict[str, Any]:
    """Tables and figures of the survey section for ``region`` (see the module docstring)."""
    frame = sv.survey_table(ds, region)
    design = sv.survey_design(frame)
    headline = sv.proportion(design, "coupon_influenced", ci="logit")
    questions = [q for q in QUESTIONS if q in frame.columns and frame[q].notna().any()]
    weighting = sv.weighting_comparison(design, questions)
    says_does = sv.linked_behaviour(ds, window_days=window_days, region=region)
    figures = {
        "weighting": survey_plots.weighting_plot(weighting),
        "says_does": survey_plots.says_does_plot(says_does),
    }
    notes = list(dict.fromkeys(design.warnings + headline.warnings + says_does.warnings))
    return {
        "headline": headline,
        "weighting": weighting,
        "says_does": says_does,
        "figures": figures,
        "notes": notes,
    }
