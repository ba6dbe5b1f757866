"""Campaign effects, ROI, difference-in-differences, threshold bunching and design comparison.

* :func:`campaign_effects` / :func:`estimate_campaign_effects` -- incremental revenue, new
  customers, cost and ROI of each campaign over an interrupted-time-series counterfactual;
* :func:`did`, :func:`event_study`, :func:`placebo_did` -- two-way fixed effects with
  cluster-robust standard errors;
* :func:`threshold_bunching` -- parcels moved up to a coupon threshold (满 X 减 Y) and subsidy
  leakage;
* :func:`compare_designs` -- random-effects meta-regression across campaigns and provinces.
"""

from __future__ import annotations

from .bunching import subsidy_leakage, threshold_bunching
from .designs import compare_designs, meta_regression
from .did import did, event_study, placebo_did
from .effects import (
    DEFAULT_PULL_FORWARD_DAYS,
    ITSFit,
    campaign_discounts,
    campaign_effects,
    estimate_campaign_effects,
    fit_its,
    placebo_campaigns,
)

__all__ = [
    "placebo_campaigns",
    "compare_designs",
    "meta_regression",
    "threshold_bunching",
    "subsidy_leakage",
    "did",
    "event_study",
    "placebo_did",
    "DEFAULT_PULL_FORWARD_DAYS",
    "campaign_discounts",
    "campaign_effects",
    "estimate_campaign_effects",
    "ITSFit",
    "fit_its",
]
