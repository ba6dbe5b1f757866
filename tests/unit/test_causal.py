"""Observational effect estimators: hand-computed answers, statsmodels agreement, bad input."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as smf
from sklearn.linear_model import LinearRegression
from statsmodels.treatment.treatment_effects import TreatmentEffect
from threadpoolctl import threadpool_limits

from promo_analysis import causal
from promo_analysis.plots import causal as cplots


def selection_dgp(n: int, seed: int, effect: float = 0.08) -> tuple[pd.DataFrame, float, float]:
    """Coupons given on observed covariates to likely senders; returns data, true ATE, ATT.

    The effect is heterogeneous (larger for WeChat contacts), so ATE != ATT. Truth is the
    sample average of the individual effect (probability scale).
    """
    rng = np.random.default_rng(seed)
    parcels = rng.poisson(2.0, n)
    wechat = rng.binomial(1, 0.35, n)
    segment = rng.choice(["office", "campus", "residential"], n, p=[0.3, 0.2, 0.5])
    seg_eff = pd.Series(segment).map({"office": 0.4, "campus": 0.2, "residential": -0.3})
    lin = -1.2 + 0.35 * parcels + 0.9 * wechat + seg_eff.to_numpy()
    e = 1 / (1 + np.exp(-lin))
    t = rng.binomial(1, e)
    base = np.clip(0.05 + 0.04 * parcels + 0.10 * wechat + 0.5 * seg_eff.to_numpy() * 0.2, 0, 1)
    tau = effect + 0.06 * wechat
    y = rng.binomial(1, np.clip(base + t * tau, 0, 1))
    df = pd.DataFrame({"got_coupon": t, "sent": y, "parcels": parcels,
                       "wechat": wechat.astype(bool), "segment": segment})
    return df, float(tau.mean()), float(tau[t == 1].mean())


COVS = ["parcels", "wechat", "segment"]


@pytest.fixture(autouse=True, scope="module")
def _one_blas_thread():
    """Single-threaded BLAS/OpenMP: on a shared 2-core machine multithreaded BLAS spins and
    runs these small fits ~10x slower; results do not depend on the thread count."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield


# ---------------------------------------------------------------------------- hand-computed
def tiny() -> pd.DataFrame:
    # one binary confounder: a saturated logit gives the cell shares as propensities
    return pd.DataFrame({
        "t": [1, 1, 0, 0, 0, 0, 1, 1, 1, 0, 0, 0],
        "y": [1, 0, 0, 0, 1, 0, 1, 1, 0, 1, 0, 1],
        "x": [0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1],
    })


def test_tiny_weighted_example_by_hand():
    d = tiny()
    # x=0: 2 treated (mean 1/2), 4 control (mean 1/4) -> diff 1/4, e = 1/3
    # x=1: 3 treated (mean 2/3), 3 control (mean 2/3) -> diff 0,   e = 1/2
    ate_by_hand = 0.5 * 0.25 + 0.5 * 0.0
    att_by_hand = (2 / 5) * 0.25 + (3 / 5) * 0.0
    for method in ("ipw", "aipw"):
        kw = dict(folds=1, trim=None, learner={"outcome": LinearRegression()})
        ate = causal.estimate_effect(d, "t", "y", ["x"], method=method, **kw)
        att = causal.estimate_effect(d, "t", "y", ["x"], method=method, estimand="att", **kw)
        assert ate.estimate == pytest.approx(ate_by_hand, abs=1e-7)
        assert att.estimate == pytest.approx(att_by_hand, abs=1e-7)
    # the weights: ATE controls get 1/(1-e) = 1.5 (x=0) and 2 (x=1); ESS by hand
    est = causal.estimate_effect(d, "t", "y", ["x"], method="ipw", folds=1, trim=None)
    assert est.diagnostics["ess"]["control"] == pytest.approx((4 * 1.5 + 3 * 2) ** 2
                                                              / (4 * 1.5**2 + 3 * 2**2), rel=1e-6)
    bal = est.diagnostics["balance"]
    # weighted means of x: treated (3*2)/(2*3+3*2) = 0.5, control (3*2)/(4*1.5+3*2) = 0.5
    assert bal.loc["x", "mean_treated_weighted"] == pytest.approx(0.5, abs=1e-7)
    assert bal.loc["x", "smd_after"] == pytest.approx(0.0, abs=1e-6)
    # before: 3/5 vs 3/7 with pooled sd from the group variances
    v1, v0 = np.var([0, 0, 1, 1, 1], ddof=1), np.var([0, 0, 0, 0, 1, 1, 1], ddof=1)
    assert bal.loc["x", "smd_before"] == pytest.approx((3 / 5 - 3 / 7) / np.sqrt((v1 + v0) / 2))


def test_naive_is_difference_in_means_with_welch_se():
    d = tiny()
    est = causal.estimate_effect(d, "t", "y", ["x"], method="naive")
    y1, y0 = d.y[d.t == 1], d.y[d.t == 0]
    assert est.estimate == pytest.approx(y1.mean() - y0.mean())
    assert est.se == pytest.approx(np.sqrt(y1.var() / 5 + y0.var() / 7))


def test_no_covariates_every_method_is_the_difference_in_means():
    d = tiny()
    naive = causal.estimate_effect(d, "t", "y", [], method="naive").estimate
    for method in ("regression", "ipw", "aipw"):
        est = causal.estimate_effect(d, "t", "y", [], method=method, folds=2)
        assert est.estimate == pytest.approx(naive, abs=1e-12), method


# ---------------------------------------------------------------------------- statsmodels
@pytest.fixture(scope="module")
def sm_case():
    df, _, _ = selection_dgp(3000, seed=11)
    df["office"] = (df.segment == "office").astype(float)
    df["residential"] = (df.segment == "residential").astype(float)
    df["wechat"] = df.wechat.astype(float)
    cols = ["parcels", "wechat", "office", "residential"]
    X = sm.add_constant(df[cols].to_numpy())
    ps = sm.Logit(df.got_coupon.to_numpy(), X).fit(disp=0, tol=1e-12)
    te = TreatmentEffect(sm.OLS(df.sent.to_numpy(float), X), df.got_coupon.to_numpy(),
                         results_select=ps)
    return df, cols, te


@pytest.mark.parametrize("estimand,group", [("ate", "all"), ("att", 1)])
def test_ipw_matches_statsmodels_treatment_effect(sm_case, estimand, group):
    df, cols, te = sm_case
    mine = causal.estimate_effect(df, "got_coupon", "sent", cols, method="ipw",
                                  estimand=estimand, folds=1, trim=None)
    point = te.ipw(return_results=False, effect_group=group)[0]
    assert mine.estimate == pytest.approx(point, abs=1e-6)
    # same estimator, same M-estimation sandwich (propensity estimation included): same SE
    res = te.ipw(effect_group=group)
    assert mine.se == pytest.approx(res.sd[0], rel=1e-4)


def test_aipw_matches_statsmodels_treatment_effect(sm_case):
    df, cols, te = sm_case
    mine = causal.estimate_effect(df, "got_coupon", "sent", cols, method="aipw", folds=1,
                                  trim=None, learner={"outcome": LinearRegression()})
    assert mine.estimate == pytest.approx(te.aipw(return_results=False)[0], abs=1e-6)
    # statsmodels' GMM SE also propagates the OLS and logit fits; the influence-function SE
    # treats them as known, which is first-order equivalent (documented in methods.md)
    assert mine.se == pytest.approx(te.aipw().sd[0], rel=0.05)


def test_regression_matches_statsmodels_formula():
    df, _, _ = selection_dgp(2000, seed=12)
    df["w"] = df.wechat.astype(float)
    est = causal.estimate_effect(df, "got_coupon", "sent", ["parcels", "w"],
                                 method="regression", estimand="att")
    treated = df[df.got_coupon == 1]
    g = df.assign(pc=df.parcels - treated.parcels.mean(), wc=df.w - treated.w.mean())
    fit = smf.ols("sent ~ got_coupon * (pc + wc)", data=g).fit(cov_type="HC2")
    assert est.estimate == pytest.approx(fit.params["got_coupon"], rel=1e-10)
    # HC2 at a fixed centre, plus the sampling variance of the treated covariate mean
    gam = fit.params[["got_coupon:pc", "got_coupon:wc"]].to_numpy()
    extra = gam @ np.cov(treated[["parcels", "w"]].to_numpy(), rowvar=False) @ gam / len(treated)
    assert est.se == pytest.approx(np.sqrt(fit.bse["got_coupon"] ** 2 + extra), rel=1e-10)
    assert est.se > fit.bse["got_coupon"]


# ---------------------------------------------------------------------------- known truth
@pytest.mark.parametrize("estimand", ["ate", "att"])
def test_aipw_recovers_truth_naive_does_not(estimand):
    df, ate, att = selection_dgp(40_000, seed=13)
    truth = ate if estimand == "ate" else att
    aipw = causal.estimate_effect(df, "got_coupon", "sent", COVS, estimand=estimand, seed=1)
    naive = causal.estimate_effect(df, "got_coupon", "sent", COVS, method="naive")
    assert aipw.covers(truth), (aipw, truth)
    assert not naive.covers(truth)
    assert naive.estimate > truth  # couriers pick likely senders: naive overstates
    assert aipw.diagnostics["max_abs_smd"] < 0.1
    assert aipw.extra["pom1"] - aipw.extra["pom0"] == pytest.approx(aipw.estimate)


def test_hgb_learner_and_bootstrap_run_and_agree():
    df, _, att = selection_dgp(3000, seed=14)
    # one OpenMP thread: on a shared, busy machine HGB's thread pool oversubscribes badly
    with threadpool_limits(limits=1, user_api="openmp"):
        hgb = causal.estimate_effect(df, "got_coupon", "sent", COVS, estimand="att",
                                     learner="hgb", folds=2)
    lin = causal.estimate_effect(df, "got_coupon", "sent", COVS, estimand="att", folds=3,
                                 bootstrap=40, seed=3)
    assert lin.method == "aipw+bootstrap"
    # bootstrap and influence-function SEs agree to sampling error of 40 replicates
    assert lin.se == pytest.approx(lin.extra["se_analytic"], rel=0.35)
    assert abs(hgb.estimate - lin.estimate) < 3 * lin.extra["se_analytic"]


# ---------------------------------------------------------------------------- bad input
def test_bad_input_errors():
    df, _, _ = selection_dgp(500, seed=15)
    with pytest.raises(ValueError, match="binary 0/1: .* rows hold other values"):
        causal.estimate_effect(df.assign(got_coupon=df.got_coupon * 2), "got_coupon", "sent",
                               COVS)
    with pytest.raises(ValueError, match="no control rows"):
        causal.estimate_effect(df.assign(got_coupon=1), "got_coupon", "sent", COVS)
    with pytest.raises(ValueError, match="no treated rows"):
        causal.estimate_effect(df.assign(got_coupon=0), "got_coupon", "sent", COVS)
    nan = df.astype({"parcels": float})
    nan.loc[[3, 7, 9], "parcels"] = np.nan
    with pytest.raises(ValueError, match="covariate column 'parcels' has 3 missing"):
        causal.estimate_effect(nan, "got_coupon", "sent", COVS)
    with pytest.raises(ValueError, match="outcome column 'sent' is constant"):
        causal.estimate_effect(df.assign(sent=0), "got_coupon", "sent", COVS)
    sep = df.assign(score=df.got_coupon * 10 + np.random.default_rng(0).random(len(df)))
    with pytest.raises(ValueError, match="perfect separation: covariate 'score'"):
        causal.estimate_effect(sep, "got_coupon", "sent", [*COVS, "score"])
    with pytest.raises(ValueError, match="must not include the treatment or outcome"):
        causal.estimate_effect(df, "got_coupon", "sent", [*COVS, "sent"])
    with pytest.raises(ValueError, match="only 3 row"):
        causal.estimate_effect(df.head(3).assign(got_coupon=1).pipe(
            lambda h: pd.concat([h, df[df.got_coupon == 0]])), "got_coupon", "sent",
            ["parcels"], folds=5)
    with pytest.raises(ValueError, match="method must be one of"):
        causal.estimate_effect(df, "got_coupon", "sent", COVS, method="psm")


def test_quasi_separation_warns_and_trimming_is_counted():
    df, _, _ = selection_dgp(3000, seed=16)
    df["segment"] = df.segment.where(~((df.segment == "campus") & (df.got_coupon == 0)),
                                     "office")  # every campus prospect got a coupon
    est = causal.estimate_effect(df, "got_coupon", "sent", COVS, method="ipw")
    n_campus = int((df.segment == "campus").sum())
    assert any("quasi-separation" in w and "segment=campus" in w for w in est.warnings)
    assert est.diagnostics["trimmed_by_arm"]["treated"] >= n_campus
    trimmed = est.diagnostics["rows_trimmed"]
    assert est.n == len(df) - trimmed
    assert any(f"{trimmed:,} of {len(df):,} rows" in w for w in est.warnings)
    assert est.diagnostics["propensity"]["trimmed"].sum() == trimmed


# ---------------------------------------------------------------------------- sensitivity
def test_e_value_by_hand():
    # VanderWeele & Ding (2017): RR 3.9 (1.8, 8.7) -> E-values 7.26 and 3.0
    ev = causal.e_value(3.9, (1.8, 8.7), scale="rr")
    assert ev["e_value"] == pytest.approx(3.9 + np.sqrt(3.9 * 2.9))
    assert ev["e_value"] == pytest.approx(7.26, abs=0.01)
    assert ev["e_value_ci"] == pytest.approx(1.8 + np.sqrt(1.8 * 0.8))
    # protective effects invert; a CI across the null gives 1
    assert causal.e_value(0.5, scale="rr")["e_value"] == pytest.approx(2 + np.sqrt(2))
    assert causal.e_value(1.3, (0.9, 1.8), scale="rr")["e_value_ci"] == 1.0
    # risk difference 0.1 over a baseline of 0.2 is RR 1.5
    rd = causal.e_value(0.1, (0.05, 0.15), baseline=0.2)
    assert rd["rr"] == pytest.approx(1.5)
    assert rd["e_value_ci"] == pytest.approx(1.25 + np.sqrt(1.25 * 0.25))


def test_negative_control_passes_when_adjusted_and_fails_when_confounded():
    df, _, _ = selection_dgp(20_000, seed=17)
    rng = np.random.default_rng(0)
    # "sent before the index date": depends on covariates only, not on the coupon
    p = np.clip(0.02 + 0.03 * df.parcels + 0.08 * df.wechat, 0, 1)
    df["sent_before"] = rng.binomial(1, p)
    ok = causal.negative_control(df, "got_coupon", "sent_before", COVS)
    bad = causal.negative_control(df, "got_coupon", "sent_before", ["segment"])
    assert ok.extra["passed"] and not ok.warnings
    assert not bad.extra["passed"]
    assert any("negative control failed" in w for w in bad.warnings)
    assert causal.e_value(ok)["rr"] == pytest.approx((ok.extra["pom0"] + ok.estimate)
                                                     / ok.extra["pom0"])


# ---------------------------------------------------------------------------- plots
def test_plots_draw_and_return_axes():
    df, ate, _ = selection_dgp(3000, seed=18)
    ests = {m: causal.estimate_effect(df, "got_coupon", "sent", COVS, method=m, folds=2)
            for m in causal.METHODS}
    ax = cplots.forest_plot(ests, truth=ate)
    assert len(ax.get_yticklabels()) == 4 and ax.get_title()
    mixed = {"aipw": ests["aipw"], "test 12-3": pd.Series({"estimate": 0.02, "ci_low": 0.0,
                                                           "ci_high": 0.04}),
             "truth band": (0.1, 0.09, 0.11)}
    ax = cplots.forest_plot(mixed)
    assert [t.get_text() for t in ax.get_yticklabels()] == list(mixed)
    with pytest.raises(TypeError, match="expected an Estimate"):
        cplots.forest_plot({"x": 0.3})
    ax = cplots.love_plot(ests["aipw"])
    assert len(ax.collections) == 2
    ax = cplots.overlap_plot(ests["aipw"], trim=(0.01, 0.99))
    assert len(ax.patches) == 80
    plt.close("all")


# ---------------------------------------------------------------------------- clusters
@pytest.mark.parametrize("method", ["naive", "regression", "ipw", "aipw"])
def test_cluster_of_duplicated_rows_recovers_the_original_se(method):
    """Each unit entered twice (one cluster per unit) is no new information: the clustered SE
    of the doubled data equals the clustered SE of the original with one row per cluster,
    while ignoring the clusters shrinks it by sqrt(2)."""
    df, _, _ = selection_dgp(1500, seed=21)
    df["uid"] = np.arange(len(df))
    twice = pd.concat([df, df], ignore_index=True)
    kw = dict(method=method, estimand="att", folds=1, trim=None)
    orig = causal.estimate_effect(df, "got_coupon", "sent", COVS, cluster="uid", **kw)
    dup = causal.estimate_effect(twice, "got_coupon", "sent", COVS, cluster="uid", **kw)
    naive_dup = causal.estimate_effect(twice, "got_coupon", "sent", COVS, **kw)
    assert dup.estimate == pytest.approx(orig.estimate, abs=1e-7)
    assert dup.se == pytest.approx(orig.se, rel=1e-6)
    assert naive_dup.se == pytest.approx(orig.se / np.sqrt(2), rel=0.02)


def test_singleton_clusters_scale_the_influence_function_se_by_g_over_g_minus_1():
    df, _, _ = selection_dgp(1200, seed=22)
    df["uid"] = np.arange(len(df))
    for estimand in ("ate", "att"):
        plain = causal.estimate_effect(df, "got_coupon", "sent", COVS, estimand=estimand)
        clus = causal.estimate_effect(df, "got_coupon", "sent", COVS, estimand=estimand,
                                      cluster="uid")
        assert clus.estimate == plain.estimate
        assert clus.se == pytest.approx(plain.se * np.sqrt(len(df) / (len(df) - 1)), rel=1e-10)


def test_cluster_se_by_hand_for_the_difference_in_means():
    d = tiny().assign(g=[0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5])
    est = causal.estimate_effect(d, "t", "y", [], method="naive", cluster="g")
    t, y = d.t.to_numpy(), d.y.to_numpy(float)
    m1, m0 = y[t == 1].mean(), y[t == 0].mean()
    u = np.where(t == 1, (y - m1) / 5, -(y - m0) / 7)
    sums = np.array([u[d.g == k].sum() for k in range(6)])
    assert est.se == pytest.approx(np.sqrt(6 / 5 * np.sum(sums**2)), rel=1e-12)


def test_cluster_bootstrap_resamples_whole_clusters():
    df, _, _ = selection_dgp(1500, seed=23)
    twice = pd.concat([df, df], ignore_index=True).assign(uid=np.tile(np.arange(len(df)), 2))
    est = causal.estimate_effect(twice, "got_coupon", "sent", COVS, method="ipw", folds=1,
                                 cluster="uid", bootstrap=60, seed=3)
    # row resampling would split pairs and shrink the spread by ~sqrt(2)
    assert est.se == pytest.approx(est.extra["se_analytic"], rel=0.3)


def test_bad_cluster_column_errors():
    d = tiny()
    with pytest.raises(KeyError, match="cluster column 'nope'"):
        causal.estimate_effect(d, "t", "y", ["x"], cluster="nope")
    with pytest.raises(ValueError, match="missing value"):
        causal.estimate_effect(d.assign(g=[1.0] * 11 + [np.nan]), "t", "y", ["x"], cluster="g")
    with pytest.raises(ValueError, match="must not be the treatment"):
        causal.estimate_effect(d, "t", "y", ["x"], cluster="x")


# ---------------------------------------------------------------------------- internals at scale
def test_design_in_fold_order_and_balance_match_pandas():
    # the one-hot design is built straight from the encoding (any row order, centred); the
    # balance table of the diagnostics comes from it without copying the kept rows
    df, _, _ = selection_dgp(3000, seed=21)
    df["region"] = np.random.default_rng(0).choice(["b", "a", "c"], len(df))
    df["const"] = 1.0
    covs = [*COVS, "region", "const"]
    prep = causal._prepare(df, "got_coupon", "sent", covs)
    ref = pd.get_dummies(df[covs[:-1]].astype({"wechat": float}), drop_first=True, dtype=float,
                         prefix_sep="=")
    assert prep.names == list(ref.columns)  # constant column dropped, levels sorted
    np.testing.assert_allclose(prep.design(), ref.to_numpy())
    np.testing.assert_allclose(prep.design_mean(), ref.to_numpy().mean(axis=0), atol=1e-12)
    rows = np.random.default_rng(1).permutation(len(df))[:500]
    centre = ref.to_numpy().mean(axis=0)
    np.testing.assert_allclose(causal._dense_design(prep.encoding, len(df), rows, centre),
                               ref.to_numpy()[rows] - centre, atol=1e-12)
    est = causal.estimate_effect(df, "got_coupon", "sent", covs, trim=(0.2, 0.8))
    keep = ~est.diagnostics["propensity"]["trimmed"].to_numpy()
    assert 0 < (~keep).sum() < len(df) // 2
    e = est.diagnostics["propensity"]["propensity"].to_numpy()[keep]
    t = df.got_coupon.to_numpy()[keep]
    w = np.where(t == 1, 1 / e, 1 / (1 - e))
    A = ref.to_numpy()[keep]
    m1, m0 = A[t == 1].mean(axis=0), A[t == 0].mean(axis=0)
    sd = np.sqrt((A[t == 1].var(axis=0, ddof=1) + A[t == 0].var(axis=0, ddof=1)) / 2)
    mw1 = w[t == 1] @ A[t == 1] / w[t == 1].sum()
    mw0 = w[t == 0] @ A[t == 0] / w[t == 0].sum()
    bal = est.diagnostics["balance"]
    np.testing.assert_allclose(bal.mean_treated, m1, atol=1e-10)
    np.testing.assert_allclose(bal.mean_control_weighted, mw0, atol=1e-10)
    np.testing.assert_allclose(bal.smd_before, (m1 - m0) / sd, atol=1e-9)
    np.testing.assert_allclose(bal.smd_after, (mw1 - mw0) / sd, atol=1e-9)


def test_perfect_separation_by_a_category_level_is_an_error():
    df, _, _ = selection_dgp(500, seed=22)
    df["channel"] = np.where(df.got_coupon == 1, "courier", "counter")
    with pytest.raises(ValueError, match=r"perfect separation: covariate 'channel=courier' "
                                         r"alone separates treated \(range 1..1\) from control "
                                         r"\(0..0\)"):
        causal.estimate_effect(df, "got_coupon", "sent", [*COVS, "channel"])
