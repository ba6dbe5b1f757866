"""Design-based survey estimation, following Lumley's R ``survey`` package.

* :class:`Design` -- weights, strata, clusters (PSUs), finite-population correction;
  :func:`survey_design` builds it from a contract ``survey`` table;
* :func:`mean`, :func:`total`, :func:`proportion` -- estimates with linearization SEs,
  t intervals on the design degrees of freedom and design effects;
* :func:`by` -- domain estimates (linearized over the full design, never subsetting);
* :func:`crosstab` -- weighted table with the Rao-Scott second-order corrected F test;
* :func:`glm` -- design-based linear and logistic regression (pseudo-likelihood, sandwich);
* :func:`rake` -- iterative proportional fitting of weights to population margins;
* :func:`linked_behaviour` -- what respondents say vs. what they later do.
"""

from __future__ import annotations

from promo_analysis.survey.crosstab import CrosstabResult, crosstab
from promo_analysis.survey.design import (
    LONELY_PSU_OPTIONS,
    Design,
    SurveyDesignError,
    survey_design,
)
from promo_analysis.survey.estimators import (
    by,
    linearize,
    mean,
    proportion,
    total,
    weighting_comparison,
)
from promo_analysis.survey.linked import (
    LINKED_OUTCOMES,
    linked_behaviour,
    linked_outcomes,
    survey_table,
)
from promo_analysis.survey.raking import RakeResult, rake
from promo_analysis.survey.regression import SurveyGLMResult, glm

__all__ = [
    "Design",
    "SurveyDesignError",
    "LONELY_PSU_OPTIONS",
    "survey_design",
    "mean",
    "total",
    "proportion",
    "by",
    "linearize",
    "weighting_comparison",
    "crosstab",
    "CrosstabResult",
    "glm",
    "SurveyGLMResult",
    "rake",
    "RakeResult",
    "linked_behaviour",
    "linked_outcomes",
    "survey_table",
    "LINKED_OUTCOMES",
]
