"""Two-way fixed-effects difference-in-differences, event study and placebo periods.

The unit and time effects are swept out by alternating projections (exact in one sweep for a
balanced panel, iterated to 1e-12 otherwise); OLS on the demeaned data gives the same slope as
OLS with unit and time dummies (Frisch-Waugh-Lovell).

Standard errors are cluster-robust (by unit unless ``cluster`` says otherwise) with the
small-sample convention of fixest's default ``ssc(adj = TRUE, fixef.K = "nested",
cluster.adj = TRUE)`` (also reghdfe's):

    V = G/(G-1) * (N-1)/(N-K) * (X'X)^-1 [sum_g X_g' u_g u_g' X_g] (X'X)^-1,

with ``K`` = slopes + fixed-effect parameters not nested in the clusters (unit effects are nested
in unit clusters, so ``K = p + T - 1``), and p-values and intervals from Student's t with
``G - 1`` degrees of freedom.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..results import Estimate, TableResult, normal_interval

__all__ = ["did", "event_study", "placebo_did"]


def _check(data: pd.DataFrame, cols: Sequence[str], what: str) -> pd.DataFrame:
    missing = [c for c in cols if c not in data.columns]
    if missing:
        raise ValueError(f"{what}: data lacks the columns {missing}")
    bad = data[list(cols)].isna().any(axis=1)
    if bad.any():
        ex = data.loc[bad].iloc[0]
        raise ValueError(
            f"{what}: {int(bad.sum())} rows have missing values in {list(cols)}, e.g. "
            f"{ex[list(cols)].to_dict()}; drop or fill them first"
        )
    return data


def _demean(
    values: np.ndarray, unit_codes: np.ndarray, time_codes: np.ndarray, tol: float = 1e-12
) -> np.ndarray:
    """Sweep unit and time means out of each column (alternating projections)."""
    out = values.astype(float).copy()
    nu, nt = unit_codes.max() + 1, time_codes.max() + 1
    cu = np.bincount(unit_codes, minlength=nu).astype(float)
    ct = np.bincount(time_codes, minlength=nt).astype(float)
    for _ in range(10_000):
        change = 0.0
        for codes, counts, n in ((unit_codes, cu, nu), (time_codes, ct, nt)):
            for j in range(out.shape[1]):
                means = np.bincount(codes, weights=out[:, j], minlength=n) / counts
                out[:, j] -= means[codes]
                change = max(change, float(np.abs(means).max()))
        if change < tol * max(1.0, float(np.abs(values).max())):
            break
    return out


def _twfe(
    data: pd.DataFrame,
    outcome: str,
    regressors: list[str],
    unit: str,
    time: str,
    cluster: str | None,
) -> dict[str, Any]:
    u_codes, u_levels = pd.factorize(data[unit], sort=True)
    t_codes, t_levels = pd.factorize(data[time], sort=True)
    cl = data[cluster] if cluster is not None else data[unit]
    g_codes, g_levels = pd.factorize(cl, sort=True)
    Z = _demean(data[[outcome, *regressors]].to_numpy(dtype=float), u_codes, t_codes)
    y, X = Z[:, 0], Z[:, 1:]
    N, p = X.shape
    XtX = X.T @ X
    if np.linalg.matrix_rank(XtX) < p:
        raise ValueError(
            f"did: the regressors {regressors} are collinear with the unit and time effects "
            "(e.g. treatment never varies within units over time)"
        )
    bread = np.linalg.inv(XtX)
    beta = bread @ X.T @ y
    resid = y - X @ beta
    G = len(g_levels)
    if G < 2:
        raise ValueError("did: cluster-robust standard errors need at least 2 clusters")
    scores = np.zeros((G, p))
    np.add.at(scores, g_codes, X * resid[:, None])
    meat = scores.T @ scores
    # unit effects are nested in the clusters when every unit sits in one cluster
    nested = bool((pd.Series(g_codes).groupby(u_codes).nunique() == 1).all())
    K = p + (len(t_levels) - 1) + (0 if nested else len(u_levels))
    c = G / (G - 1) * (N - 1) / (N - K)
    vcov = c * bread @ meat @ bread
    return {
        "beta": beta,
        "vcov": vcov,
        "N": N,
        "K": K,
        "G": G,
        "n_units": len(u_levels),
        "n_periods": len(t_levels),
        "resid": resid,
        "nested": nested,
    }


def did(
    data: pd.DataFrame,
    outcome: str,
    unit: str,
    time: str,
    treated: str,
    cluster: str | None = None,
    covariates: Sequence[str] = (),
    alpha: float = 0.05,
) -> Estimate:
    """Two-way fixed-effects difference-in-differences with cluster-robust standard errors.

    Parameters
    ----------
    data : DataFrame
        A panel, one row per unit and period (unbalanced allowed).
    outcome, unit, time : str
        Columns of the outcome, the unit id and the period.
    treated : str
        0/1 column: 1 for treated units in treated periods.
    cluster : str, optional
        Cluster column; default the unit.
    covariates : sequence of str
        Time-varying controls.
    alpha : float
        1 - confidence level.

    Returns
    -------
    Estimate
        The coefficient of ``treated``; ``extra`` holds ``K``, ``n_clusters``, ``n_units``,
        ``n_periods`` and ``df`` (= G - 1, the t degrees of freedom).

    Notes
    -----
    With staggered adoption and heterogeneous effects TWFE mixes comparisons with
    already-treated units (Goodman-Bacon 2021); use :func:`event_study` with never-treated
    controls to inspect dynamics.
    """
    cols = [outcome, unit, time, treated, *covariates] + ([cluster] if cluster else [])
    d = _check(data, cols, "did")
    fit = _twfe(d, outcome, [treated, *covariates], unit, time, cluster)
    est, se = float(fit["beta"][0]), float(np.sqrt(fit["vcov"][0, 0]))
    df = fit["G"] - 1
    return Estimate.from_normal(
        est,
        se,
        n=fit["N"],
        method="twfe",
        alpha=alpha,
        df=df,
        estimand="difference-in-differences (ATT under parallel trends)",
        label=f"{treated} on {outcome}",
        extra={
            "K": fit["K"],
            "n_clusters": fit["G"],
            "n_units": fit["n_units"],
            "n_periods": fit["n_periods"],
            "df": df,
        },
        diagnostics={"coefficients": dict(zip([treated, *covariates], fit["beta"], strict=True))},
    )


def event_study(
    data: pd.DataFrame,
    outcome: str,
    unit: str,
    time: str,
    first_treated: str,
    window: tuple[int, int] = (-4, 4),
    reference: int = -1,
    cluster: str | None = None,
    alpha: float = 0.05,
) -> TableResult:
    """Dynamic TWFE: one coefficient per period relative to treatment start.

    Parameters
    ----------
    first_treated : str
        Column with the unit's first treated period (same units as ``time``, which must be
        integer-like); missing for never-treated units, which serve as controls.
    window : (int, int)
        Relative periods estimated; earlier and later ones are binned into the end points.
    reference : int
        The omitted relative period (normalised to 0).

    Returns
    -------
    TableResult
        Indexed by ``rel_time``; the reference row has estimate 0 and no standard error.
        ``diagnostics["pretrend_wald"]`` is a joint Wald test that all pre-period coefficients
        are 0 (chi-square, p-value).
    """
    cols = [outcome, unit, time] + ([cluster] if cluster else [])
    d = _check(data, cols, "event_study").copy()
    if first_treated not in d.columns:
        raise ValueError(f"event_study: data lacks the column {first_treated!r}")
    lo, hi = window
    if not lo <= reference <= hi or lo >= hi:
        raise ValueError(f"event_study: reference {reference} must lie inside window {window}")
    rel = (d[time] - d[first_treated]).clip(lower=lo, upper=hi)
    periods = [k for k in range(lo, hi + 1) if k != reference]
    names = []
    for k in periods:
        name = f"rel_{k}".replace("-", "m")
        d[name] = (rel == k).astype(float).fillna(0.0)
        names.append(name)
    if d[first_treated].notna().sum() == 0:
        raise ValueError("event_study: no unit is ever treated")
    fit = _twfe(d, outcome, names, unit, time, cluster)
    se = np.sqrt(np.diag(fit["vcov"]))
    df = fit["G"] - 1
    lo_ci, hi_ci, pv = normal_interval(fit["beta"], se, alpha=alpha, df=df)
    table = pd.DataFrame(
        {
            "estimate": fit["beta"],
            "se": se,
            "ci_low": lo_ci,
            "ci_high": hi_ci,
            "pvalue": pv,
            "n": fit["N"],
        },
        index=pd.Index(periods, name="rel_time"),
    )
    table.loc[reference] = [0.0, np.nan, 0.0, 0.0, np.nan, fit["N"]]
    table = table.sort_index()
    pre = [i for i, k in enumerate(periods) if k < reference]
    diagnostics: dict[str, Any] = {"K": fit["K"], "n_clusters": fit["G"], "df": df}
    if pre:
        from scipy import stats

        b = fit["beta"][pre]
        V = fit["vcov"][np.ix_(pre, pre)]
        wald = float(b @ np.linalg.pinv(V) @ b)
        diagnostics["pretrend_wald"] = (wald, float(stats.chi2.sf(wald, len(pre))))
    return TableResult(
        table=table,
        method="event-study twfe",
        alpha=alpha,
        estimand=f"effect on {outcome} by period relative to treatment",
        label=f"event study of {outcome}",
        diagnostics=diagnostics,
    )


def placebo_did(
    data: pd.DataFrame,
    outcome: str,
    unit: str,
    time: str,
    group: str,
    treatment_start: Any,
    placebo_start: Any,
    cluster: str | None = None,
    alpha: float = 0.05,
) -> Estimate:
    """DiD on pre-treatment data only, pretending treatment began at ``placebo_start``.

    A placebo effect clearly different from zero says the parallel-trends assumption fails
    before the real treatment.

    Parameters
    ----------
    group : str
        0/1 column: 1 for units that are (later) treated.
    treatment_start, placebo_start
        Values of ``time``; only periods before ``treatment_start`` are used and the placebo
        period must lie strictly inside them.
    """
    _check(data, [outcome, unit, time, group], "placebo_did")
    pre = data[data[time] < treatment_start].copy()
    if not (pre[time] < placebo_start).any() or not (pre[time] >= placebo_start).any():
        raise ValueError(
            f"placebo_did: placebo_start {placebo_start!r} must leave periods on both sides "
            f"inside the pre-treatment span (< {treatment_start!r})"
        )
    pre["_placebo"] = ((pre[group] == 1) & (pre[time] >= placebo_start)).astype(float)
    est = did(pre, outcome, unit, time, "_placebo", cluster=cluster, alpha=alpha)
    est.label = f"placebo at {placebo_start} ({outcome})"
    est.estimand = "placebo difference-in-differences (0 under parallel pre-trends)"
    return est
