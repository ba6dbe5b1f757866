"""Rao-Scott crosstab, survey GLM and raking against independent computations
(scipy's Pearson test, the log odds-ratio linearization, statsmodels' cluster-robust fits,
the closed forms of post-stratification and of raking's multiplicative structure)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats

from promo_analysis import survey as sv
from promo_analysis.survey import SurveyDesignError


@pytest.fixture
def clustered():
    rng = np.random.default_rng(5)
    n_psu, m = 30, 12
    psu = np.repeat(np.arange(n_psu), m)
    u = rng.normal(0, 1, n_psu)[psu]
    x = rng.normal(size=n_psu * m) + 0.5 * u
    a = rng.random(n_psu * m) < 0.5 + 0.1 * np.tanh(u)
    b = rng.random(n_psu * m) < 1 / (1 + np.exp(-(0.4 * x + u - 0.3 * a)))
    w = rng.uniform(1, 6, n_psu * m)
    h = psu % 3
    return pd.DataFrame({"psu": psu, "h": h, "x": x, "a": a, "b": b, "w": w,
                         "y": 2 + x + u + rng.normal(size=n_psu * m),
                         "k": rng.choice(["p", "q", "r"], n_psu * m)})


# ---------------------------------------------------------------- crosstab
def test_crosstab_equal_weights_srs_matches_pearson(clustered):
    d = clustered.assign(w=1.0)
    design = sv.Design(d, weights="w")
    res = sv.crosstab(design, "a", "k")
    obs = pd.crosstab(d.a, d.k).to_numpy()
    chi2 = stats.chi2_contingency(obs, correction=False)[0]
    n = len(d)
    assert res.chisq == pytest.approx(chi2)
    # under SRS Delta = n/(n-1) I, so F = X2 (n-1) / (n (r-1)(c-1)) on (r-1)(c-1), df(r-1)(c-1)
    assert np.allclose(res.delta, n / (n - 1) * np.eye(2))
    assert res.statistic == pytest.approx(chi2 * (n - 1) / (n * 2))
    assert res.ndf == pytest.approx(2)
    assert res.ddf == pytest.approx(2 * (n - 1))
    assert res.pvalue == pytest.approx(stats.f.sf(res.statistic, 2, 2 * (n - 1)))
    assert res.counts.to_numpy().sum() == pytest.approx(n)


def test_crosstab_2x2_design_effect_is_that_of_the_log_odds_ratio(clustered):
    d = clustered
    design = sv.Design(d, weights="w", strata="h", cluster="psu", nest=True)
    res = sv.crosstab(design, "a", "b")
    w, n = d.w.to_numpy(), len(d)
    cells = [(d.a == i) & (d.b == j) for i in (False, True) for j in (False, True)]
    p = np.array([(w * c).sum() / w.sum() for c in cells])
    # linearized log odds ratio: sum_k s_k dp_k / p_k, dp_k having z = w (1_k - p_k) / W
    sign = np.array([1, -1, -1, 1])
    z = sum(s * w * (c.to_numpy() - pk) / w.sum() / pk
            for s, c, pk in zip(sign, cells, p, strict=True))
    v = 0.0
    for h in range(3):
        t = pd.Series(z[d.h == h]).groupby(d.psu[d.h == h].to_numpy()).sum().to_numpy()
        v += len(t) / (len(t) - 1) * ((t - t.mean()) ** 2).sum()
    v_srs = (1 / p).sum() / n  # Woolf's variance of the log odds ratio under SRS
    delta = v / v_srs
    pm = p.reshape(2, 2)
    exp = np.outer(pm.sum(1), pm.sum(0))
    x2 = n * ((pm - exp) ** 2 / exp).sum()
    assert res.delta[0, 0] == pytest.approx(delta)
    assert res.statistic == pytest.approx(x2 / delta)
    assert res.ndf == pytest.approx(1.0)
    assert res.ddf == pytest.approx(design.df)
    assert res.row_proportions.sum(axis=1).to_numpy() == pytest.approx([1, 1])


def test_crosstab_counts_missing_rows(clustered):
    d = clustered.astype({"k": object})
    d.loc[:4, "k"] = None
    res = sv.crosstab(sv.Design(d, weights="w"), "a", "k")
    assert res.n == len(d) - 5
    assert any("5 of 360 rows miss" in w for w in res.warnings)


# ---------------------------------------------------------------- glm
def test_logistic_glm_matches_cluster_robust_statsmodels(clustered):
    d = clustered.assign(w=1.0)
    design = sv.Design(d, weights="w", cluster="psu")
    res = sv.glm(design, "b ~ x + a", family="binomial")
    x = sm.add_constant(d[["x"]].assign(a=d.a.astype(float)))
    ref = sm.GLM(d.b.astype(float), x, family=sm.families.Binomial()).fit(
        cov_type="cluster", cov_kwds={"groups": d.psu, "use_correction": False})
    g = d.psu.nunique()
    names = {"const": "Intercept", "a": "a[T.True]", "x": "x"}
    params, bse = ref.params.rename(names), ref.bse.rename(names)
    assert res.params.to_numpy() == pytest.approx(params[res.params.index].to_numpy(), rel=1e-6)
    # the design variance has the with-replacement factor G/(G-1)
    assert res.se.to_numpy() == pytest.approx(
        bse[res.params.index].to_numpy() * np.sqrt(g / (g - 1)), rel=1e-5)
    assert res.df_resid == design.df + 1 - 3
    q = stats.t.ppf(0.975, res.df_resid)
    assert res.ci_high.to_numpy() == pytest.approx(res.params + q * res.se)


def test_weighted_linear_glm_matches_wls_cluster(clustered):
    d = clustered
    design = sv.Design(d, weights="w", cluster="psu")
    res = sv.glm(design, "y ~ x + C(k)", family="gaussian")
    x = pd.get_dummies(d[["x", "k"]], columns=["k"], drop_first=True, dtype=float)
    ref = sm.WLS(d.y, sm.add_constant(x), weights=d.w).fit(
        cov_type="cluster", cov_kwds={"groups": d.psu, "use_correction": False})
    g = d.psu.nunique()
    names = {"const": "Intercept", "x": "x", "k_q": "C(k)[T.q]", "k_r": "C(k)[T.r]"}
    params, bse = ref.params.rename(names), ref.bse.rename(names)
    assert res.params.to_numpy() == pytest.approx(params[res.params.index].to_numpy(), rel=1e-8)
    assert res.se.to_numpy() == pytest.approx(
        bse[res.params.index].to_numpy() * np.sqrt(g / (g - 1)), rel=1e-6)


def test_glm_intercept_only_reproduces_the_proportion(clustered):
    design = sv.Design(clustered, weights="w", strata="h", cluster="psu", nest=True)
    p = sv.proportion(design, "b")
    fit = sv.glm(design, "b ~ 1")
    assert 1 / (1 + np.exp(-fit.params["Intercept"])) == pytest.approx(p.estimate)
    # delta method: se(logit p) = se(p) / (p (1 - p))
    assert fit.se["Intercept"] == pytest.approx(p.se / (p.estimate * (1 - p.estimate)),
                                                rel=1e-6)


def test_glm_missing_rows_counted_and_bad_outcome_rejected(clustered):
    d = clustered.copy()
    d.loc[:2, "x"] = np.nan
    res = sv.glm(sv.Design(d, weights="w"), "b ~ x")
    assert res.n.iloc[0] == len(d) - 3
    assert any("3 of 360 rows miss" in w for w in res.warnings)
    with pytest.raises(SurveyDesignError, match=r"binomial outcome must lie in \[0, 1\]"):
        sv.glm(sv.Design(d, weights="w"), "y ~ x")


# ---------------------------------------------------------------- raking
def test_rake_one_margin_is_post_stratification(clustered):
    d = clustered
    target = {"p": 500.0, "q": 300.0, "r": 200.0}
    res = sv.rake(d, "w", {"k": target})
    expect = d.w * d.k.map(target) / d.k.map(d.groupby("k").w.sum())
    assert res.weights.to_numpy() == pytest.approx(expect.to_numpy())
    assert res.converged and res.iterations == 1


def test_rake_two_margins_matches_targets_with_multiplicative_adjustment(clustered):
    d = clustered
    margins = {"k": {"p": 500.0, "q": 300.0, "r": 200.0}, ("a", "h"): {
        (False, 0): 150.0, (False, 1): 200.0, (False, 2): 150.0,
        (True, 0): 200.0, (True, 1): 100.0, (True, 2): 200.0}}
    res = sv.rake(d, "w", margins, tol=1e-10, max_iter=500)
    assert res.converged and res.max_rel_error < 1e-10
    w = res.weights
    for lev, t in margins["k"].items():
        assert w[d.k == lev].sum() == pytest.approx(t)
    for (a, h), t in margins[("a", "h")].items():
        assert w[(d.a == a) & (d.h == h)].sum() == pytest.approx(t)
    # raking's solution: log(w / w0) = alpha_k + beta_(a,h), exactly additive
    cell = d.a.astype(str) + "_" + d.h.astype(str)
    x = pd.get_dummies(pd.DataFrame({"k": d.k, "c": cell}), drop_first=True, dtype=float)
    fit = sm.OLS(np.log(w / d.w), sm.add_constant(x)).fit()
    assert np.abs(fit.resid).max() < 1e-8
    assert res.margins.shape[0] == 9


def test_rake_incompatible_margins_are_errors(clustered):
    d = clustered
    with pytest.raises(SurveyDesignError, match="incompatible margins: their population totals"):
        sv.rake(d, "w", {"k": {"p": 1.0, "q": 1.0, "r": 1.0}, "a": {False: 1.0, True: 5.0}})
    with pytest.raises(SurveyDesignError, match="no population total for 1 sample"):
        sv.rake(d, "w", {"k": {"p": 1.0, "q": 1.0}})
    with pytest.raises(SurveyDesignError, match="positive population total but no sample unit"):
        sv.rake(d, "w", {"k": {"p": 1.0, "q": 1.0, "r": 1.0, "s": 1.0}})
    bad = d.assign(w=d.w.where(d.index != 7, -1.0))
    with pytest.raises(SurveyDesignError, match="1 of 360 rows break the rule"):
        sv.rake(bad, "w", {"k": {"p": 1.0, "q": 1.0, "r": 1.0}})


def test_rake_reports_non_convergence():
    # the only unit of cell (x, u) must carry both margins: impossible jointly
    d = pd.DataFrame({"r": ["x", "x", "y"], "c": ["u", "v", "v"], "w": 1.0})
    res = sv.rake(d, "w", {"r": {"x": 1.0, "y": 9.0}, "c": {"u": 5.0, "v": 5.0}}, max_iter=20)
    assert not res.converged
    assert res.iterations == 20
    assert any("did not converge" in w for w in res.warnings)


def test_crosstab_rxc_generalized_deffs_do_not_depend_on_the_contrast_basis(clustered):
    """3 x 3 clustered table: the eigenvalues of Delta (Rao-Scott's generalized design
    effects) recomputed by hand with Helmert-coded interaction contrasts."""
    d = clustered
    design = sv.Design(d, weights="w", cluster="psu")
    res = sv.crosstab(design, "k", "h")
    rows, cols = ["p", "q", "r"], [0, 1, 2]
    w, n = d.w.to_numpy(), len(d)
    ind = np.column_stack([((d.k == r) & (d.h == c)).to_numpy(float)
                           for c in cols for r in rows])  # row level fastest
    p = w @ ind / w.sum()
    z = w[:, None] * (ind - p) / w.sum()
    totals = pd.DataFrame(z).groupby(d.psu.to_numpy()).sum().to_numpy()
    g = len(totals)
    v = g / (g - 1) * (totals - totals.mean(0)).T @ (totals - totals.mean(0))
    helmert = np.array([[-1.0, -1.0], [1.0, -1.0], [0.0, 2.0]])  # 3 levels -> 2 contrasts
    c = np.kron(helmert, helmert)  # interaction contrasts, orthogonal to main effects
    dinv = np.diag(1 / p)
    a = c.T @ dinv @ c / n
    b = c.T @ dinv @ v @ dinv @ c
    eig = np.sort(np.linalg.eigvals(np.linalg.solve(a, b)).real)
    assert np.sort(np.linalg.eigvals(res.delta).real) == pytest.approx(eig, rel=1e-8)
    assert res.ndf == pytest.approx(eig.sum() ** 2 / (eig**2).sum())
    x2 = stats.chi2_contingency(res.proportions.to_numpy() * n, correction=False)[0]
    assert res.statistic == pytest.approx(x2 / eig.sum())
