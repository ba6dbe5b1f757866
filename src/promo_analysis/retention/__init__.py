"""Retention and habit formation: do coupon-acquired customers stay?

* :func:`cohort_matrix` -- share of each acquisition cohort active k periods later;
* :func:`kaplan_meier`, :func:`logrank` -- survival curves (Greenwood, log-log CIs) and the
  k-group log-rank test;
* :func:`cox` -- Cox regression (statsmodels' PHReg) with concordance and a PH check;
* :func:`rfm_summary`, :func:`fit_bgnbd`, :func:`fit_gamma_gamma`,
  :func:`customer_lifetime_value` -- repeat-purchase (BG/NBD) and spend (Gamma-Gamma) models;
* :func:`habit_formation` -- coupon-acquired vs. organic customers: repeat rates, full-price
  share, time to second parcel, raw, adjusted and experimental.
"""

from __future__ import annotations

from promo_analysis.retention.bgnbd import (
    BGNBD,
    GammaGamma,
    bgnbd_loglik,
    customer_lifetime_value,
    fit_bgnbd,
    fit_gamma_gamma,
    gamma_gamma_loglik,
    rfm_summary,
)
from promo_analysis.retention.cohorts import CohortResult, cohort_matrix
from promo_analysis.retention.cox import CoxResult, concordance_index, cox
from promo_analysis.retention.habit import (
    HabitResult,
    habit_formation,
    ratio_share,
    value_by_acquisition,
)
from promo_analysis.retention.survival import KaplanMeierResult, kaplan_meier, logrank

__all__ = [
    "BGNBD",
    "CohortResult",
    "CoxResult",
    "GammaGamma",
    "HabitResult",
    "KaplanMeierResult",
    "bgnbd_loglik",
    "cohort_matrix",
    "concordance_index",
    "cox",
    "customer_lifetime_value",
    "fit_bgnbd",
    "fit_gamma_gamma",
    "gamma_gamma_loglik",
    "habit_formation",
    "kaplan_meier",
    "logrank",
    "ratio_share",
    "rfm_summary",
    "value_by_acquisition",
]
