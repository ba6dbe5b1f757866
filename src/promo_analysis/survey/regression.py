"""Design-based generalized linear models (R ``svyglm``): linear and logistic regression.

Point estimates maximise the weighted (pseudo-)likelihood ``sum_i w_i l_i(beta)``. Their
covariance is the linearization sandwich ``A^-1 V(sum_i U_i) A^-1``: ``U_i = w_i x_i (y_i -
mu_i)`` are the unit score contributions (canonical links), ``A = X' W X`` the weighted
information, and ``V`` the design variance of a total over PSUs within strata
(:meth:`Design.variance`). Tests and intervals use Student's t on ``df + 1 - p`` degrees of
freedom, as R's ``summary.svyglm``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from promo_analysis.results import TableResult, normal_interval
from promo_analysis.survey.design import Design, SurveyDesignError

__all__ = ["glm", "SurveyGLMResult"]

_FAMILIES = ("binomial", "gaussian")


@dataclass(repr=False)  # keep TableResult's one-line repr
class SurveyGLMResult(TableResult):
    """Coefficients of a design-based GLM (a :class:`TableResult`, one row per term).

    Attributes
    ----------
    params : Series
        Coefficients (log-odds for ``family="binomial"``).
    cov_params : DataFrame
        Design-based (sandwich) covariance matrix of the coefficients.
    df_resid : int
        Degrees of freedom of the t reference distribution (design df + 1 - #coefficients).
    """

    params: pd.Series = field(default_factory=pd.Series)
    cov_params: pd.DataFrame = field(default_factory=pd.DataFrame)
    df_resid: int = 0

    def odds_ratios(self) -> pd.DataFrame:
        """exp(coefficient) with its t interval (binomial family only)."""
        if "binomial" not in self.method:
            raise ValueError("odds ratios are only defined for family='binomial'")
        return np.exp(self.table[["estimate", "ci_low", "ci_high"]]).rename(
            columns={"estimate": "odds_ratio"}
        )


def _prepare_outcome(data: pd.DataFrame, formula: str) -> pd.DataFrame:
    lhs = formula.split("~", 1)[0].strip()
    if lhs in data.columns and (
        pd.api.types.is_bool_dtype(data[lhs].dtype) or data[lhs].dtype == object
    ):
        data = data.copy()
        data[lhs] = data[lhs].astype(object).map({True: 1.0, False: 0.0}).astype(float)
    return data


def glm(
    design: Design,
    formula: str,
    family: str = "binomial",
    *,
    alpha: float = 0.05,
) -> SurveyGLMResult:
    """Fit a design-based GLM and return coefficients with linearization SEs.

    Parameters
    ----------
    design : Design
    formula : str
        A model formula over the design's columns, e.g. ``"coupon_influenced ~ C(segment)"``.
        A boolean outcome is used as 0/1.
    family : {"binomial", "gaussian"}
        Logistic (logit link) or linear (identity link) regression.
    alpha : float
        One minus the confidence level.

    Returns
    -------
    SurveyGLMResult
        ``table`` with ``estimate, se, ci_low, ci_high, pvalue, n`` per coefficient;
        ``cov_params``; rows excluded for missing values counted in ``warnings``.
    """
    if family not in _FAMILIES:
        raise ValueError(f"family must be one of {_FAMILIES}, got {family!r}")
    # statsmodels is imported here: a survey user who never fits a model does not pay for it
    import statsmodels.api as sm
    import statsmodels.formula.api as smf

    data = _prepare_outcome(design.data.reset_index(drop=True), formula)
    spec = smf.glm(formula, data, missing="drop")
    y, x = np.asarray(spec.endog, float), np.asarray(spec.exog, float)
    names = list(spec.exog_names)
    rows = np.asarray(spec.data.row_labels)  # positions in the design (index was reset)
    n_dropped = design.n - len(rows)
    if family == "binomial" and ((y < 0) | (y > 1)).any():
        raise SurveyDesignError(
            f"survey glm: a binomial outcome must lie in [0, 1]; {int(((y < 0) | (y > 1)).sum())}"
            f" of {len(y)} rows do not (e.g. {y[(y < 0) | (y > 1)][0]!r})"
        )
    w = design.weights[rows]
    fam = sm.families.Binomial() if family == "binomial" else sm.families.Gaussian()
    fit = sm.GLM(y, x, family=fam, var_weights=w).fit()
    beta = np.asarray(fit.params)
    mu = np.asarray(fit.fittedvalues)
    if family == "binomial":
        info_w = w * mu * (1 - mu)
    else:
        info_w = w
    bread = np.linalg.pinv(x.T @ (x * info_w[:, None]))
    scores = x * (w * (y - mu))[:, None]
    z = np.zeros((design.n, len(beta)))
    z[rows] = scores @ bread
    cov = design.variance(z)
    se = np.sqrt(np.clip(np.diag(cov), 0, None))

    notes = list(design.warnings)
    if n_dropped:
        notes.append(
            f"{n_dropped} of {design.n} rows miss a variable of the formula; excluded as a domain"
        )
    p = len(beta)
    df_resid = design.df + 1 - p
    if df_resid < 1:
        notes.append(
            f"design df ({design.df}) too small for {p} coefficients; t on 1 df used"
        )
        df_resid = 1
    lo, hi, pv = normal_interval(beta, se, alpha=alpha, df=df_resid)
    table = pd.DataFrame(
        {"estimate": beta, "se": se, "ci_low": lo, "ci_high": hi, "pvalue": pv, "n": len(rows)},
        index=pd.Index(names, name="term"),
    )
    result = SurveyGLMResult(
        table=table,
        method=f"survey glm ({family}, linearization)",
        alpha=alpha,
        estimand=f"census {family} regression coefficients: {formula}",
        label=formula,
        warnings=notes,
        params=pd.Series(beta, index=names),
        cov_params=pd.DataFrame(cov, index=names, columns=names),
        df_resid=int(df_resid),
    )
    result.diagnostics.update(design.describe())
    result.diagnostics.update({"n_dropped": n_dropped, "converged": bool(fit.converged)})
    return result
