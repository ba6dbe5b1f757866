"""compare_designs / meta_regression against statsmodels and a known best design."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import optimize
from statsmodels.stats.meta_analysis import combine_effects

from promo_analysis.campaigns import compare_designs, meta_regression


def _effects(seed=0, n=80, tau=0.08):
    rng = np.random.default_rng(seed)
    design = rng.choice(["12-3", "21-5", "30-8"], n)
    theme = rng.choice(["double_11", "qixi", "weekend"], n)
    true = {"12-3": 0.20, "21-5": 0.35, "30-8": 0.25}
    theme_eff = {"double_11": 0.1, "qixi": 0.0, "weekend": -0.05}
    se = rng.uniform(0.03, 0.1, n)
    mu = np.array([true[d] + theme_eff[t] for d, t in zip(design, theme, strict=True)])
    lift = mu + rng.normal(0, tau, n) + rng.normal(0, se)
    baseline = rng.uniform(1000, 5000, n)
    return pd.DataFrame(
        {
            "design": design,
            "theme": theme,
            "lift": lift,
            "baseline": baseline,
            "se": se * baseline,
            "duration": rng.integers(3, 15, n),
        }  # fmt: skip
    )


def test_dl_tau2_matches_statsmodels_and_wls():
    rng = np.random.default_rng(1)
    y, v = rng.normal(0.3, 0.2, 30), rng.uniform(0.01, 0.05, 30)
    fit = meta_regression(y, np.sqrt(v), np.ones((30, 1)), method="dl")
    sm_fit = combine_effects(y, v, method_re="chi2")
    assert fit["tau2"] == pytest.approx(sm_fit.tau2, rel=1e-9)
    assert fit["gamma"][0] == pytest.approx(sm_fit.mean_effect_re, rel=1e-9)
    # with covariates: WLS at the estimated tau^2, as statsmodels computes it
    x = rng.normal(size=30)
    Z = sm.add_constant(x)
    fit2 = meta_regression(y, np.sqrt(v), Z, method="reml")
    wls = sm.WLS(y, Z, weights=1 / (v + fit2["tau2"])).fit()
    np.testing.assert_allclose(fit2["gamma"], wls.params, rtol=1e-9)
    # the known-variance covariance (Z'WZ)^-1, i.e. WLS's without the residual scale
    np.testing.assert_allclose(fit2["cov"], wls.cov_params() / wls.scale, rtol=1e-9)


def test_reml_maximises_the_restricted_likelihood():
    rng = np.random.default_rng(2)
    y, v = rng.normal(0.3, 0.25, 40), rng.uniform(0.005, 0.03, 40)
    Z = np.column_stack([np.ones(40), rng.normal(size=40)])

    def negll(tau2):
        w = 1 / (v + tau2)
        A = Z.T @ (Z * w[:, None])
        g = np.linalg.solve(A, Z.T @ (w * y))
        r = y - Z @ g
        return 0.5 * (np.sum(np.log(v + tau2)) + np.linalg.slogdet(A)[1] + np.sum(w * r**2))

    best = optimize.minimize_scalar(negll, bounds=(0, 1), method="bounded", options={
        "xatol": 1e-10})  # fmt: skip
    assert meta_regression(y, np.sqrt(v), Z)["tau2"] == pytest.approx(best.x, rel=1e-4)
    # no heterogeneity: tau^2 = 0 on the boundary
    y0 = 0.3 + rng.normal(0, np.sqrt(v)) * 0.2
    assert meta_regression(y0, np.sqrt(v), Z)["tau2"] == 0.0


def test_ranks_truly_best_design_first():
    res = compare_designs(_effects(), by=["design", "theme"])
    t = res.table
    best = t.groupby("design").prob_best.sum()
    assert best.idxmax() == "21-5" and best.max() > 0.9
    assert t.index[0].startswith("21-5")
    coef = res.diagnostics["coefficients"]
    assert coef.loc["design[21-5]", "ci_low"] < 0.15 < coef.loc["design[21-5]", "ci_high"]
    assert 0 < res.diagnostics["tau2"] < 0.03
    assert t.prob_best.sum() == pytest.approx(1.0)
    camp = res.diagnostics["campaigns"]
    # shrinkage pulls every campaign toward its design fit, never past it
    assert ((camp.shrunken - camp.fitted).abs() <= (camp.y - camp.fitted).abs() + 1e-12).all()


def test_collinear_and_bad_input():
    e = _effects()
    e["face"] = e.design.map({"12-3": 3, "21-5": 5, "30-8": 8})
    res = compare_designs(e, by=["design", "face"])
    assert res.diagnostics["dropped"] == ["face[5]", "face[8]"]
    with pytest.raises(ValueError, match="design columns \\['level'\\]"):
        compare_designs(e, by=["level"])
    with pytest.raises(ValueError, match="usable campaigns"):
        compare_designs(e.head(2), by=["design"])
    res2 = compare_designs(e.assign(lift=e.lift.where(e.index != 0)), by=["design"])
    assert any("1 of 80 campaigns left out" in w for w in res2.warnings)
