"""Design-based means, totals, proportions and domain estimates (Taylor linearization).

Each estimator is written as an estimated total of linearized values ``z_i`` whose design
variance :meth:`Design.variance` computes (R ``survey``: ``svymean``, ``svytotal``,
``svyciprop``, ``svyby``):

* total ``T = sum_i w_i y_i``, ``z_i = w_i y_i``;
* mean (a ratio) ``m = sum_i w_i y_i / sum_i w_i``, ``z_i = w_i (y_i - m) / sum_i w_i``;
* a domain ``d`` (group, answered rows) multiplies ``w_i`` by the indicator ``d_i`` while every
  PSU of the full design stays in the variance (domain estimation, never subsetting).

Intervals use Student's t with the design degrees of freedom (#PSUs - #strata).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import special, stats

from promo_analysis.results import Estimate, TableResult
from promo_analysis.survey.design import Design, SurveyDesignError

__all__ = ["mean", "total", "proportion", "by", "linearize", "weighting_comparison"]

_STATS = ("mean", "total", "proportion")


@dataclass
class _Values:
    y: np.ndarray  # float values, 0 where missing
    observed: np.ndarray  # bool
    n_missing: int
    name: str


def _as_float(series: pd.Series, name: str) -> _Values:
    observed = series.notna().to_numpy()
    if pd.api.types.is_bool_dtype(series.dtype) or series.dtype == object:
        uniq = set(series.dropna().unique().tolist())
        if uniq <= {False, True}:  # 0 and 1 compare equal to False and True
            y = series.astype(object).map({True: 1.0, False: 0.0}).to_numpy(float, na_value=0.0)
            return _Values(np.where(observed, y, 0.0), observed, int((~observed).sum()), name)
        raise SurveyDesignError(
            f"survey: column {name!r} is not numeric or boolean (values like "
            f"{next(iter(uniq))!r}); use proportion(..., level=) for a category"
        )
    y = pd.to_numeric(series, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    bad = ~np.isfinite(y) & observed
    if bad.any():
        raise SurveyDesignError(
            f"survey: column {name!r} has {int(bad.sum())} non-numeric or infinite values "
            f"(e.g. {series[bad].iloc[0]!r})"
        )
    return _Values(np.where(observed, y, 0.0), observed, int((~observed).sum()), name)


def _indicator(series: pd.Series, name: str, level: Any) -> _Values:
    observed = series.notna().to_numpy()
    if level is None:
        uniq = set(series.dropna().unique().tolist())
        if not uniq <= {False, True}:  # 0 and 1 compare equal to False and True
            raise SurveyDesignError(
                f"survey: proportion of {name!r} needs level= (the column has the categories "
                f"{sorted(map(str, uniq))[:10]})"
            )
        level = True
    y = np.where(observed, (series == level).fillna(False).to_numpy(dtype=bool), False)
    return _Values(y.astype(float), observed, int((~observed).sum()), name)


def _missing_note(values: _Values, n: int) -> list[str]:
    if values.n_missing == 0:
        return []
    return [
        f"{values.n_missing} of {n} rows have no value of {values.name!r} (no answer); "
        "excluded as a domain (their PSUs stay in the design)"
    ]


def linearize(
    design: Design, y: np.ndarray, domain: np.ndarray, stat: str
) -> tuple[float, np.ndarray, float]:
    """Point estimate, linearized values ``z`` and domain weight total for one statistic.

    Parameters
    ----------
    design : Design
    y : numpy.ndarray
        Analysis values (any value where ``domain`` is False).
    domain : numpy.ndarray of bool
        Units that belong to the estimate (answered, in the group).
    stat : {"mean", "proportion", "total"}

    Returns
    -------
    (estimate, z, sum of weights in the domain)
    """
    w = design.subset_weights(domain)
    y = np.where(domain, y, 0.0)
    wsum = float(w.sum())
    if stat == "total":
        return float(w @ y), w * y, wsum
    if wsum <= 0:
        return np.nan, np.zeros_like(w), wsum
    est = float(w @ y) / wsum
    return est, w * (y - est) / wsum, wsum


def _deff(design: Design, y: np.ndarray, domain: np.ndarray, stat: str, var: float) -> float:
    """Kish design effect, as R ``deff=TRUE``: design variance over that of an SRS.

    The SRS variance uses the weighted population variance of ``y`` in the domain and the
    same number of units: drawn without replacement from a population of ``sum w`` units when
    the design has an fpc (R's default), with replacement otherwise (R ``deff="replace"``), so
    that a design without fpc is compared with an SRS without fpc.
    """
    w = design.subset_weights(domain)
    n = int(domain.sum())
    wsum = w.sum()
    if n < 2 or wsum <= 0:
        return np.nan
    m = (w @ y) / wsum
    s2 = (w @ (y - m) ** 2) / wsum * n / (n - 1)
    vsrs = s2 / n
    if design.fpc_col is not None and wsum > n:
        vsrs *= (wsum - n) / wsum
    if stat == "total":
        vsrs *= wsum**2
    return float(var / vsrs) if vsrs > 0 else np.nan


def _estimate(
    design: Design,
    values: _Values,
    domain: np.ndarray,
    stat: str,
    *,
    alpha: float,
    label: str,
    estimand: str,
    ci: str = "wald",
    null: float = 0.0,
    warnings: list[str] | None = None,
) -> Estimate:
    est, z, wsum = linearize(design, values.y, domain, stat)
    var = float(design.variance(z)[0, 0])
    se = float(np.sqrt(max(var, 0.0)))
    n = int(domain.sum())
    notes = list(design.warnings) + list(warnings or [])
    if n == 0:
        notes.append(f"no unit with a value of {values.name!r} in this domain")
    df = max(design.df, 1)
    result = Estimate.from_normal(
        est,
        se,
        n=n,
        method=f"survey {stat} (linearization)",
        alpha=alpha,
        null=null,
        df=df,
        estimand=estimand,
        label=label,
        warnings=notes,
    )
    if ci == "logit" and stat == "proportion":
        result.ci_low, result.ci_high = _logit_interval(est, se, alpha, df, notes)
        result.method = "survey proportion (linearization, logit CI)"
    elif ci not in ("wald", "logit"):
        raise ValueError(f"ci must be 'wald' or 'logit', got {ci!r}")
    result.diagnostics.update(design.describe())
    result.diagnostics.update(
        {"n_missing": values.n_missing, "df": df, "sum_weights": wsum, "variance": var}
    )
    result.extra.update({"deff": _deff(design, values.y, domain, stat, var), "df": df})
    return result


def _logit_interval(
    p: float, se: float, alpha: float, df: int, notes: list[str]
) -> tuple[float, float]:
    """R ``svyciprop(method="logit")``: a t interval for logit(p), back-transformed.

    The SE of logit(p) is se(p) / (p (1 - p)) (delta method; equal to the SE of the
    intercept of the design-based logistic regression ``y ~ 1``).
    """
    if not 0 < p < 1:
        notes.append(f"proportion {p:g} is on the boundary: the logit interval is degenerate")
        return p, p
    q = stats.t.ppf(1 - alpha / 2, df)
    eta, s = special.logit(p), se / (p * (1 - p))
    return float(special.expit(eta - q * s)), float(special.expit(eta + q * s))


def mean(design: Design, var: str, *, alpha: float = 0.05) -> Estimate:
    """Design-based mean of ``var`` (a ratio estimator) with linearization SE.

    Missing values are excluded as a domain and counted in ``warnings``/``diagnostics``.
    ``extra["deff"]`` is the design effect versus simple random sampling.
    """
    values = _as_float(design.column(var), var)
    return _estimate(
        design, values, values.observed, "mean", alpha=alpha, label=f"mean of {var}",
        estimand=f"population mean of {var}", warnings=_missing_note(values, design.n),
    )


def total(design: Design, var: str, *, alpha: float = 0.05) -> Estimate:
    """Design-based (Horvitz-Thompson) total of ``var`` with linearization SE."""
    values = _as_float(design.column(var), var)
    return _estimate(
        design, values, values.observed, "total", alpha=alpha, label=f"total of {var}",
        estimand=f"population total of {var}", warnings=_missing_note(values, design.n),
    )


def proportion(
    design: Design,
    var: str,
    level: Any = None,
    ci: str = "wald",
    *,
    alpha: float = 0.05,
) -> Estimate:
    """Design-based share of units with ``var == level`` among those who answered.

    Parameters
    ----------
    design : Design
    var : str
        A boolean/0-1 column (``level`` defaults to True) or a categorical column.
    level : optional
        The category whose share is estimated.
    ci : {"wald", "logit"}
        ``"wald"``: ``p +/- t * se``; ``"logit"``: R ``svyciprop(method="logit")``, which
        stays inside (0, 1) and is better near the boundaries.
    """
    values = _indicator(design.column(var), var, level)
    shown = "" if level is None else f" = {level}"
    return _estimate(
        design, values, values.observed, "proportion", alpha=alpha, ci=ci,
        label=f"share {var}{shown}", estimand=f"population share of {var}{shown}",
        warnings=_missing_note(values, design.n),
    )


def by(
    design: Design,
    var: str,
    group: str,
    stat: str = "mean",
    *,
    level: Any = None,
    ci: str = "wald",
    alpha: float = 0.05,
) -> TableResult:
    """Domain estimates of ``stat`` of ``var`` for each level of ``group`` (R ``svyby``).

    Each domain multiplies the weights by its indicator and is linearized over the full
    design, so PSUs without members of the domain still count and the degrees of freedom are
    those of the whole design. Rows with a missing ``group`` are excluded and counted.
    ``diagnostics["vcov"]`` holds the covariance matrix of the domain estimates (domains
    share PSUs, so they are correlated).
    """
    if stat not in _STATS:
        raise ValueError(f"stat must be one of {_STATS}, got {stat!r}")
    g = design.column(group)
    if stat == "proportion":
        values = _indicator(design.column(var), var, level)
    else:
        values = _as_float(design.column(var), var)
    notes = _missing_note(values, design.n)
    g_missing = int(g.isna().sum())
    if g_missing:
        notes.append(f"{g_missing} of {design.n} rows have no {group!r}; excluded")
    codes, levels = pd.factorize(g, sort=True)  # missing group -> -1
    levels = pd.Index(levels)
    estimates: dict[Any, Estimate] = {}
    zs = []
    for i, lev in enumerate(levels):
        dom = values.observed & (codes == i)
        e = _estimate(
            design, values, dom, stat, alpha=alpha, ci=ci, label=f"{var} | {group}={lev}",
            estimand=f"{stat} of {var} in domain {group}={lev}",
        )
        e.warnings = [w for w in e.warnings if w not in design.warnings]
        estimates[lev] = e
        zs.append(linearize(design, values.y, dom, stat)[1])
    result = TableResult.from_estimates(
        estimates,
        method=f"survey {stat} by domain (linearization)",
        index_name=group,
        alpha=alpha,
        estimand=f"{stat} of {var} by {group}",
        label=f"{var} by {group}",
        warnings=list(design.warnings) + notes + [w for e in estimates.values() for w in e.warnings],
    )
    vcov = design.variance(np.column_stack(zs)) if zs else np.zeros((0, 0))
    result.diagnostics.update(design.describe())
    result.diagnostics["vcov"] = pd.DataFrame(vcov, index=levels, columns=levels)
    result.diagnostics["n_missing"] = values.n_missing
    result.diagnostics["n_missing_group"] = g_missing
    return result


def weighting_comparison(
    design: Design,
    variables: list[str] | tuple[str, ...],
    *,
    group: str | None = None,
    ci: str = "logit",
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Weighted (design-based) next to unweighted (naive SRS) estimates, one row per pair.

    Boolean/0-1 variables are shares (``proportion`` with ``ci``), others means. The
    unweighted estimate is what an analysis ignoring the design reports: equal weights, no
    strata, no clusters. With ``group`` (e.g. ``"region_id"``) both are domain estimates per
    level of ``group`` (:func:`by`). Columns: ``variable, [group,] analysis ("weighted" /
    "unweighted"), statistic, estimate, se, ci_low, ci_high, n, deff, n_missing``.
    """
    naive = Design(design.data.assign(__equal_weight=1.0), weights="__equal_weight")
    rows = []
    for var in variables:
        col = design.column(var)
        binary = set(col.dropna().unique().tolist()) <= {False, True}
        stat = "proportion" if binary else "mean"
        for name, d in (("weighted", design), ("unweighted", naive)):
            if group is None:
                e = (proportion(d, var, ci=ci, alpha=alpha) if binary
                     else mean(d, var, alpha=alpha))
                found = {None: e.to_frame().iloc[0]}
                n_missing = e.diagnostics.get("n_missing", 0)
            else:
                tab = by(d, var, group, stat=stat, ci=ci, alpha=alpha)
                found = {lev: row for lev, row in tab.table.iterrows()}
                n_missing = tab.diagnostics["n_missing"]
            for lev, r in found.items():
                row = {"variable": var}
                if group is not None:
                    row[group] = lev
                row.update(
                    {
                        "analysis": name,
                        "statistic": "share" if binary else "mean",
                        "estimate": r["estimate"],
                        "se": r["se"],
                        "ci_low": r["ci_low"],
                        "ci_high": r["ci_high"],
                        "n": int(r["n"]),
                        "deff": r.get("deff"),
                        "n_missing": n_missing,
                    }
                )
                rows.append(row)
    return pd.DataFrame(rows)
