"""Which campaign designs work? Random-effects meta-regression across campaigns and provinces.

Each campaign ``i`` contributes an effect estimate ``y_i`` (by default its relative lift,
incremental revenue / counterfactual revenue, comparable across regions of different size) with
standard error ``s_i``. The model (Raudenbush 2009; Viechtbauer 2010, metafor's ``rma``):

    y_i = z_i' gamma + u_i + e_i,   u_i ~ N(0, tau^2),   e_i ~ N(0, s_i^2),

with ``z_i`` the design factors (dummies for categorical ones, linear terms for numeric ones).
``tau^2`` (between-campaign heterogeneity beyond sampling error) is estimated by REML (default)
or the DerSimonian-Laird moment estimator generalised to meta-regression; ``gamma`` by weighted
least squares with weights ``1 / (s_i^2 + tau^2)`` and covariance ``(Z' W Z)^-1``.

Per design (each observed combination of the factors) the fitted value ``z_d' gamma`` pools
information across designs sharing factor levels (shrunken relative to the raw cell mean); the
probability that a design is best is the share of draws ``gamma ~ N(gamma_hat, V)`` in which it
has the largest fitted value. Per-campaign empirical-Bayes estimates shrink each ``y_i`` toward
its design's fit by ``tau^2 / (tau^2 + s_i^2)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, stats

from ..results import TableResult, normal_interval

__all__ = ["compare_designs", "meta_regression"]


def _design_matrix(
    data: pd.DataFrame, by: Sequence[str], categorical: Sequence[str] | None
) -> tuple[np.ndarray, list[str], list[str]]:
    cols: list[np.ndarray] = [np.ones(len(data))]
    names = ["intercept"]
    dropped: list[str] = []
    for b in by:
        x = data[b]
        is_cat = (
            b in categorical
            if categorical is not None
            else not pd.api.types.is_numeric_dtype(x) or x.nunique() <= 5
        )
        if is_cat:
            levels = sorted(x.astype(str).unique())
            for lev in levels[1:]:
                cols.append((x.astype(str) == lev).to_numpy(dtype=float))
                names.append(f"{b}[{lev}]")
        else:
            cols.append(x.to_numpy(dtype=float))
            names.append(b)
    # drop columns that add nothing (collinear with earlier ones): keep the model estimable
    keep_cols, keep_names = [cols[0]], [names[0]]
    for c, n in zip(cols[1:], names[1:], strict=True):
        trial = np.column_stack([*keep_cols, c])
        if np.linalg.matrix_rank(trial) > len(keep_cols):
            keep_cols.append(c)
            keep_names.append(n)
        else:
            dropped.append(n)
    return np.column_stack(keep_cols), keep_names, dropped


def _wls(y: np.ndarray, Z: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    w = 1 / v
    ZtW = Z.T * w
    cov = np.linalg.inv(ZtW @ Z)
    return cov @ ZtW @ y, cov


def _tau2_dl(y: np.ndarray, Z: np.ndarray, s2: np.ndarray) -> float:
    n, p = Z.shape
    gamma, _ = _wls(y, Z, s2)
    w = 1 / s2
    q = float(np.sum(w * (y - Z @ gamma) ** 2))
    W = np.diag(w)
    P = W - W @ Z @ np.linalg.inv(Z.T @ W @ Z) @ Z.T @ W
    return max(0.0, (q - (n - p)) / float(np.trace(P)))


def _tau2_reml(y: np.ndarray, Z: np.ndarray, s2: np.ndarray) -> float:
    def negll(log_tau2: float) -> float:
        v = s2 + np.exp(log_tau2)
        gamma, cov = _wls(y, Z, v)
        r = y - Z @ gamma
        return 0.5 * (np.sum(np.log(v)) - np.linalg.slogdet(cov)[1] + np.sum(r**2 / v))

    scale = float(np.var(y)) + float(np.mean(s2))
    grid = np.log(scale) + np.linspace(-20, 3, 47)
    vals = [negll(g) for g in grid]
    best = grid[int(np.argmin(vals))]
    res = optimize.minimize_scalar(negll, bounds=(best - 0.5, best + 0.5), method="bounded")
    tau2 = float(np.exp(res.x))
    # the boundary tau^2 = 0 (no heterogeneity) is reachable only in the limit of the log scale
    v0 = s2.copy()
    g0, c0 = _wls(y, Z, v0)
    ll0 = 0.5 * (np.sum(np.log(v0)) - np.linalg.slogdet(c0)[1] + np.sum((y - Z @ g0) ** 2 / v0))
    return 0.0 if ll0 <= res.fun or tau2 < 1e-12 * scale else tau2


def meta_regression(
    y: np.ndarray, se: np.ndarray, Z: np.ndarray, method: str = "reml"
) -> dict[str, Any]:
    """Random-effects meta-regression of ``y`` (standard errors ``se``) on ``Z``.

    Returns a dict with ``gamma``, ``cov``, ``tau2``, ``Q`` (residual heterogeneity), its
    p-value, ``I2`` and ``weights``.
    """
    y = np.asarray(y, float)
    s2 = np.asarray(se, float) ** 2
    if method == "reml":
        tau2 = _tau2_reml(y, Z, s2)
    elif method == "dl":
        tau2 = _tau2_dl(y, Z, s2)
    else:
        raise ValueError(f"method must be 'reml' or 'dl', got {method!r}")
    gamma, cov = _wls(y, Z, s2 + tau2)
    g_fe, _ = _wls(y, Z, s2)
    q = float(np.sum((y - Z @ g_fe) ** 2 / s2))
    df = len(y) - Z.shape[1]
    i2 = max(0.0, (q - df) / q) if q > 0 else 0.0
    return {
        "gamma": gamma,
        "cov": cov,
        "tau2": tau2,
        "Q": q,
        "Q_df": df,
        "Q_pvalue": float(stats.chi2.sf(q, df)) if df > 0 else np.nan,
        "I2": i2,
        "weights": 1 / (s2 + tau2),
    }


def compare_designs(
    effects: pd.DataFrame | TableResult,
    by: Sequence[str] = ("theme", "coupon_threshold", "coupon_face_value", "duration", "level"),
    *,
    outcome: str = "lift",
    se: str | None = None,
    categorical: Sequence[str] | None = None,
    method: str = "reml",
    n_draws: int = 20_000,
    alpha: float = 0.05,
    seed: int = 0,
) -> TableResult:
    """Random-effects meta-regression of campaign effects on design factors.

    Parameters
    ----------
    effects : DataFrame or TableResult
        One row per campaign (and region), e.g. ``campaign_effects(ds).table``, with the
        outcome, its standard error and the ``by`` columns.
    by : sequence of str
        Design factors. Object columns and numeric ones with at most 5 distinct values are
        categorical (override with ``categorical``); others enter linearly. Factors that are
        collinear with earlier ones (e.g. face value when threshold already fixes it) are dropped
        and listed in ``diagnostics["dropped"]``.
    outcome : str
        ``"lift"`` (relative effect; its SE is ``se / baseline``) or any column with an
        estimate, e.g. ``"estimate"`` (yuan) with ``se="se"``.
    se : str, optional
        Standard-error column (default ``"se"``, divided by ``baseline`` for ``"lift"``).
    method : {"reml", "dl"}
        Estimator of the between-campaign variance.
    n_draws : int
        Draws from the sampling distribution of the coefficients for P(best).

    Returns
    -------
    TableResult
        One row per observed design (combination of ``by``): ``estimate`` (fitted effect),
        ``se``, CI, ``pvalue`` (vs 0), ``n`` (campaigns), ``raw_mean`` (inverse-variance
        weighted mean of the cell), ``prob_best`` and the factor values. ``diagnostics`` has
        ``tau2``, ``I2``, ``Q`` (+p), the coefficient table and per-campaign shrunken
        estimates (``campaigns``).
    """
    data = effects.table.reset_index() if isinstance(effects, TableResult) else effects.copy()
    by = [by] if isinstance(by, str) else list(by)
    missing = [c for c in by if c not in data.columns]
    if missing:
        raise ValueError(f"compare_designs: effects lack the design columns {missing}")
    if outcome == "lift" and se is None:
        for c in ("lift", "se", "baseline"):
            if c not in data.columns:
                raise ValueError(f"compare_designs: effects lack the column {c!r} for the lift")
        y = data["lift"].to_numpy(float)
        s = (data["se"] / data["baseline"]).to_numpy(float)
    else:
        se = se or "se"
        for c in (outcome, se):
            if c not in data.columns:
                raise ValueError(f"compare_designs: effects lack the column {c!r}")
        y = data[outcome].to_numpy(float)
        s = data[se].to_numpy(float)
    ok = np.isfinite(y) & np.isfinite(s) & (s > 0) & data[by].notna().all(axis=1).to_numpy()
    warnings = []
    if not ok.all():
        warnings.append(
            f"{int((~ok).sum())} of {len(ok)} campaigns left out (missing outcome, standard "
            "error or design value)"
        )
    data, y, s = data.loc[ok].reset_index(drop=True), y[ok], s[ok]
    if len(data) < 3:
        raise ValueError(f"compare_designs: only {len(data)} usable campaigns (need >= 3)")
    Z, names, dropped = _design_matrix(data, by, categorical)
    if len(data) <= Z.shape[1]:
        raise ValueError(
            f"compare_designs: {len(data)} campaigns for {Z.shape[1]} coefficients; use fewer "
            "design factors"
        )
    fit = meta_regression(y, s, Z, method=method)
    gamma, cov = fit["gamma"], fit["cov"]
    cell = data[by].astype(str).agg(" | ".join, axis=1)
    designs = cell.drop_duplicates()
    idx = designs.index.to_numpy()
    Zd = Z[idx]
    pred = Zd @ gamma
    pred_se = np.sqrt(np.einsum("ij,jk,ik->i", Zd, cov, Zd))
    lo, hi, p = normal_interval(pred, pred_se, alpha=alpha)
    rng = np.random.default_rng(seed)
    draws = rng.multivariate_normal(gamma, cov, size=n_draws, method="eigh") @ Zd.T
    best = np.bincount(draws.argmax(axis=1), minlength=len(idx)) / n_draws
    w = fit["weights"]
    rows = []
    for j, (i, label) in enumerate(zip(idx, designs, strict=True)):
        m = (cell == label).to_numpy()
        rows.append(
            {
                "design": label,
                "estimate": pred[j],
                "se": pred_se[j],
                "ci_low": lo[j],
                "ci_high": hi[j],
                "pvalue": p[j],
                "n": int(m.sum()),
                "raw_mean": float(np.sum(w[m] * y[m]) / np.sum(w[m])),
                "prob_best": best[j],
                **{b: data.loc[i, b] for b in by},
            }
        )
    table = pd.DataFrame(rows).set_index("design").sort_values("estimate", ascending=False)
    fitted = Z @ gamma
    shrink = fit["tau2"] / (fit["tau2"] + s**2)
    campaigns = data.assign(
        y=y, y_se=s, fitted=fitted, shrunken=fitted + shrink * (y - fitted), design=cell
    )
    coef_se = np.sqrt(np.diag(cov))
    clo, chi, cp = normal_interval(gamma, coef_se, alpha=alpha)
    coefficients = pd.DataFrame(
        {"estimate": gamma, "se": coef_se, "ci_low": clo, "ci_high": chi, "pvalue": cp},
        index=pd.Index(names, name="term"),
    )
    if dropped:
        warnings.append(f"collinear design terms dropped: {dropped}")
    return TableResult(
        table=table,
        method=f"random-effects meta-regression ({method})",
        alpha=alpha,
        estimand=f"campaign {outcome} by design",
        label="campaign design comparison",
        diagnostics={
            "tau2": fit["tau2"],
            "I2": fit["I2"],
            "Q": fit["Q"],
            "Q_pvalue": fit["Q_pvalue"],
            "coefficients": coefficients,
            "campaigns": campaigns,
            "dropped": dropped,
            "by": by,
        },
        warnings=warnings,
    )
