"""Uplift learners and Qini/targeting metrics: hand-computed answers and independent fits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from promo_analysis.results import Estimate, TableResult
from promo_analysis.uplift import (
    TLearner,
    XLearner,
    qini_auc,
    qini_curve,
    targeting_value,
    uplift_at_k,
    uplift_by_decile,
)


@pytest.fixture
def tiny():
    # already in score order; hand-worked Qini values in the tests below
    return pd.DataFrame(
        {
            "score": [0.9, 0.8, 0.7, 0.6, 0.5, 0.4],
            "t": [1, 0, 1, 0, 1, 0],
            "y": [1, 0, 1, 1, 0, 1],
            "rev": [20.0, 0.0, 15.0, 12.0, 0.0, 30.0],
        }
    ).sample(frac=1.0, random_state=1)  # shuffled: the functions must sort


def test_qini_curve_by_hand(tiny):
    res = qini_curve(tiny, "score", "t", "y", points=7, n_boot=0)
    assert isinstance(res, TableResult)
    # Qini(k) = Y_t(k) - Y_c(k) N_t(k)/N_c(k), divided by N_t = 3; the fractions k/6 for k = 0..6
    # need points at multiples of 1/6
    res = qini_curve(tiny, "score", "t", "y", points=np.arange(7) / 6, n_boot=0)
    expected = np.array([0, 1, 1, 2, 1, 0.5, 0]) / 3
    np.testing.assert_allclose(res.estimate.to_numpy(), expected)
    np.testing.assert_array_equal(res.n.to_numpy(), np.arange(7))
    np.testing.assert_allclose(res.table["random"], 0.0)  # Qini(N) = 0 here


def test_qini_auc_by_hand(tiny):
    est = qini_auc(tiny, "score", "t", "y", n_boot=0)
    # trapezoid over g = [0, 1/3, 1/3, 2/3, 1/3, 1/6, 0] with step 1/6: 22/12 / 6
    assert est.estimate == pytest.approx(11 / 36)
    assert isinstance(est, Estimate)


def test_qini_auc_random_line_is_subtracted():
    # every treated responds, no control does: Qini(N) = N_t, the random line is the diagonal
    df = pd.DataFrame({"s": [4.0, 3.0, 2.0, 1.0], "t": [1, 1, 0, 0], "y": [1, 1, 0, 0]})
    q = qini_curve(df, "s", "t", "y", points=np.arange(5) / 4, n_boot=0)
    np.testing.assert_allclose(q.estimate.to_numpy(), [0, 0.5, 1, 1, 1])
    np.testing.assert_allclose(q.table["random"].to_numpy(), [0, 0.25, 0.5, 0.75, 1])
    # g = [0, .25, .5, .25, 0] -> trapezoid: (0.125 + 0.375 + 0.375 + 0.125) / 4
    assert qini_auc(df, "s", "t", "y", n_boot=0).estimate == pytest.approx(0.25)


def test_uplift_at_k_by_hand(tiny):
    est = uplift_at_k(tiny, "score", "t", "y", k=0.5, n_boot=200, seed=3)
    assert est.estimate == pytest.approx(1.0)  # top 3: treated 1, 1; control 0
    assert est.n == 3
    assert est.extra["n_treated"] == 2 and est.extra["n_control"] == 1
    assert est.ci_low <= est.estimate <= est.ci_high
    with pytest.raises(ValueError, match="both are needed"):
        uplift_at_k(tiny, "score", "t", "y", k=1 / 6, n_boot=0)


def test_targeting_value_by_hand(tiny):
    res = targeting_value(
        tiny,
        "score",
        "t",
        "y",
        k=0.5,
        face_value=3.0,
        redemption_cost=0.5,
        revenue="rev",
        population=100,
        n_boot=0,
    )
    tab = res.table["estimate"]
    # top 3: treated (y 1, 1; rev 20, 15), control (y 0; rev 0)
    assert tab["incremental_senders_per_person"] == pytest.approx(1.0)
    assert tab["incremental_revenue_per_person"] == pytest.approx(17.5)
    assert tab["coupon_cost_per_person"] == pytest.approx(1.0 * 3.5)
    assert tab["net_revenue_per_person"] == pytest.approx(17.5 - 3.5)
    assert tab["net_revenue"] == pytest.approx(50 * 14.0)  # 50 targeted of 100
    with pytest.raises(ValueError, match="exactly one of revenue"):
        targeting_value(tiny, "score", "t", "y", face_value=3.0)


def test_bad_treatment_is_a_clear_error(tiny):
    bad = tiny.assign(t=["12-3", "control"] * 3)
    with pytest.raises(ValueError, match="must be 0/1"):
        qini_auc(bad, "score", "t", "y")
    with pytest.raises(ValueError, match="both treated and control"):
        qini_auc(tiny.assign(t=1), "score", "t", "y")
    with pytest.raises(ValueError, match="missing value"):
        qini_auc(tiny.assign(y=[np.nan, 1, 0, 1, 0, 1]), "score", "t", "y")


# -------------------------------------------------------------------------------- learners
def _dgp(n: int, seed: int, arms=("12-3",)):
    """Randomised coupons; logistic outcome per arm, so the true uplift is known exactly."""
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=n)
    seg = rng.choice(["office", "campus", "mall"], n)
    segv = pd.Series(seg).map({"office": 0.5, "campus": -0.5, "mall": 0.0}).to_numpy()
    arm = rng.choice(["control", *arms], n)
    lin0 = -1.0 + 0.5 * x1 + segv
    slopes = {"12-3": (0.3, 0.8), "21-5": (0.8, -0.6)}
    sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    p = sig(lin0)
    tau = {}
    for a in arms:
        b0, b1 = slopes[a]
        tau[a] = sig(lin0 + b0 + b1 * x1) - sig(lin0)
        p = np.where(arm == a, sig(lin0 + b0 + b1 * x1), p)
    y = (rng.random(n) < p).astype(int)
    X = pd.DataFrame({"x1": x1, "segment": seg})
    return X, arm, y, tau


def test_tlearner_matches_separate_statsmodels_logits():
    X, arm, y, _ = _dgp(3000, 0)
    model = TLearner().fit(X, arm, y)
    assert model.arms_ == ["12-3"] and model.control_ == "control" and model.binary_
    tau = model.predict_uplift(X)
    # independent: one statsmodels Logit per arm on the same dummy-coded design
    D = sm.add_constant(pd.get_dummies(X, columns=["segment"], drop_first=True, dtype=float))
    preds = {}
    for a in ("12-3", "control"):
        m = arm == a
        preds[a] = sm.Logit(y[m], D[m]).fit(disp=0).predict(D)
    np.testing.assert_allclose(tau, preds["12-3"] - preds["control"], atol=2e-3)
    np.testing.assert_allclose(model.effect(X), tau)


def test_learners_rank_known_heterogeneous_effects():
    X, arm, y, tau = _dgp(10000, 1)
    truth = tau["12-3"]
    for model in (TLearner(), XLearner(propensity=0.5), XLearner()):
        pred = model.fit(X, arm, y).predict_uplift(X)
        assert np.corrcoef(pred, truth)[0, 1] > 0.9, type(model).__name__
        assert abs(pred.mean() - truth.mean()) < 0.02
    # the ranking is worth something on fresh randomised data, and a random one is not
    Xn, armn, yn, _ = _dgp(10000, 2)
    ev = Xn.assign(
        t=(armn == "12-3").astype(int),
        y=yn,
        score=TLearner().fit(X, arm, y).predict_uplift(Xn),
        noise=np.random.default_rng(9).normal(size=len(Xn)),
    )
    good = qini_auc(ev, "score", "t", "y", n_boot=100)
    assert good.ci_low > 0
    rand = qini_auc(ev, "noise", "t", "y", n_boot=100)
    assert rand.ci_low < 0 < rand.ci_high
    top = uplift_at_k(ev, "score", "t", "y", k=0.2, n_boot=100)
    bottom = uplift_at_k(ev.assign(score=-ev.score), "score", "t", "y", k=0.2, n_boot=100)
    assert top.ci_low > bottom.ci_high


def test_multiple_designs():
    X, arm, y, tau = _dgp(30000, 4, arms=("12-3", "21-5"))
    model = TLearner().fit(X, arm, y)
    pred = model.predict_uplift(X)
    assert list(pred.columns) == ["12-3", "21-5"]
    for a in ("12-3", "21-5"):
        assert np.corrcoef(pred[a], tau[a])[0, 1] > 0.85
        np.testing.assert_allclose(model.predict_uplift(X, arm=a), pred[a])
    best = model.best_arm(X)
    true_best = np.where(tau["21-5"] > tau["12-3"], "21-5", "12-3")
    true_best = np.where(np.maximum(tau["21-5"], tau["12-3"]) <= 0, "control", true_best)
    assert (best.to_numpy() == true_best).mean() > 0.9


def test_xlearner_by_hand_with_linear_models():
    """Continuous outcome, known propensity: the X-learner is two least-squares steps."""
    rng = np.random.default_rng(5)
    n = 4000
    x = rng.normal(size=n)
    t = rng.integers(0, 2, n)
    y = 1 + x + t * (2 + 3 * x) + rng.normal(size=n)
    model = XLearner(propensity=0.5).fit(pd.DataFrame({"x": x}), t, y)
    assert not model.binary_
    D = np.column_stack([np.ones(n), x])
    b0 = np.linalg.lstsq(D[t == 0], y[t == 0], rcond=None)[0]
    b1 = np.linalg.lstsq(D[t == 1], y[t == 1], rcond=None)[0]
    d1 = y[t == 1] - D[t == 1] @ b0
    d0 = D[t == 0] @ b1 - y[t == 0]
    g1 = np.linalg.lstsq(D[t == 1], d1, rcond=None)[0]
    g0 = np.linalg.lstsq(D[t == 0], d0, rcond=None)[0]
    expected = 0.5 * (D @ g0) + 0.5 * (D @ g1)
    np.testing.assert_allclose(model.predict_uplift(pd.DataFrame({"x": x})), expected, atol=1e-8)
    assert np.polyfit(x, expected, 1) == pytest.approx([3, 2], abs=0.15)


def test_uplift_by_decile_and_learner_errors():
    X, arm, y, tau = _dgp(5000, 6)
    df = X.assign(t=(arm == "12-3").astype(int), y=y, score=tau["12-3"])
    res = uplift_by_decile(df, "score", "t", "y", bins=5)
    assert list(res.table.index) == [1, 2, 3, 4, 5]
    assert res.table["n"].sum() == len(df)
    # independent: Welch difference in group 1 by hand
    g1 = df.sort_values("score", ascending=False, kind="stable").iloc[:1000]
    yt, yc = g1.y[g1.t == 1], g1.y[g1.t == 0]
    assert res.estimate.loc[1] == pytest.approx(yt.mean() - yc.mean())
    assert res.se.loc[1] == pytest.approx(np.sqrt(yt.var() / len(yt) + yc.var() / len(yc)))
    assert res.estimate.loc[1] > res.estimate.loc[5]

    with pytest.raises(ValueError, match="missing values in column"):
        TLearner().fit(X.assign(x1=np.where(np.arange(len(X)) == 3, np.nan, X.x1)), arm, y)
    with pytest.raises(ValueError, match="cannot tell the control arm"):
        TLearner().fit(X, np.where(arm == "control", "none", arm), y)
    with pytest.raises(ValueError, match="only the control arm"):
        TLearner().fit(X, np.repeat("control", len(X)), y)


def test_tlearner_continuous_outcome_is_difference_of_least_squares_fits():
    """Revenue outcome: the T-learner is two OLS fits (checked with numpy's lstsq)."""
    rng = np.random.default_rng(8)
    n = 3000
    x = rng.normal(size=n)
    arm = rng.choice(["control", "12-3", "21-5"], n)
    y = (
        10
        + 2 * x
        + np.select([arm == "12-3", arm == "21-5"], [3 + x, 1 - x], 0)
        + rng.normal(size=n)
    )
    X = pd.DataFrame({"x": x})
    model = TLearner().fit(X, arm, y)
    assert not model.binary_
    D = np.column_stack([np.ones(n), x])
    coef = {a: np.linalg.lstsq(D[arm == a], y[arm == a], rcond=None)[0] for a in set(arm)}
    pred = model.predict_uplift(X)
    for a in ("12-3", "21-5"):
        np.testing.assert_allclose(pred[a], D @ (coef[a] - coef["control"]), atol=1e-8)
