"""Newton logistic regression and least squares agree with scikit-learn and with themselves."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from promo_analysis.learners import LeastSquares, LogisticIRLS, solve_psd, weighted_gram


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(3)
    n = 4000
    X = np.column_stack([rng.normal(size=(n, 4)), rng.random((n, 3)) < 0.2,
                         rng.poisson(3, n)]).astype(float)
    lin = -0.4 + X @ np.array([0.8, -0.5, 0.2, 0.0, 0.7, -0.3, 0.1, 0.15])
    y = (rng.random(n) < 1 / (1 + np.exp(-lin))).astype(int)
    return X - X.mean(axis=0), y


@pytest.mark.parametrize("C", [np.inf, 1e6, 0.01])
def test_logit_matches_sklearn(data, C):
    X, y = data
    ref = make_pipeline(StandardScaler(), LogisticRegression(
        C=C, solver="newton-cholesky", tol=1e-12, max_iter=500)).fit(X, y)
    mine = LogisticIRLS(C=C).fit(X, y)
    assert mine.converged_
    np.testing.assert_allclose(mine.predict_proba(X), ref.predict_proba(X), atol=1e-9)
    assert (mine.predict(X) == ref.predict(X)).all()


def test_logit_maximizes_the_likelihood(data):
    """The gradient of the log-likelihood is zero at the fit (independent of scikit-learn)."""
    X, y = data
    m = LogisticIRLS().fit(X, y)
    r = y - m.predict_proba(X)[:, 1]
    assert abs(r.sum()) < 1e-8 and np.abs(r @ X).max() < 1e-7


def test_warm_start_reaches_the_same_optimum_with_fewer_hessians(data):
    X, y = data
    first = LogisticIRLS().fit(X[:3200], y[:3200])
    cold = LogisticIRLS().fit(X[800:], y[800:])
    warm = LogisticIRLS().fit(X[800:], y[800:], init=first)
    np.testing.assert_allclose(warm.coef_, cold.coef_, atol=1e-9)
    assert warm.n_hessians_ < cold.n_hessians_
    assert clone(warm).get_params() == {"C": np.inf, "tol": 1e-10, "max_iter": 100}


def test_separated_data_does_not_converge_and_says_so():
    X = np.arange(20, dtype=float)[:, None] - 9.5
    y = (X[:, 0] > 0).astype(int)
    m = LogisticIRLS(max_iter=30).fit(X, y)
    assert not m.converged_
    assert np.all(np.isfinite(m.predict_proba(X)))


def test_least_squares_matches_sklearn_and_handles_collinearity(data):
    X, _ = data
    rng = np.random.default_rng(4)
    y = 2 + X @ rng.normal(size=X.shape[1]) + rng.normal(size=len(X))
    ref = LinearRegression().fit(X, y)
    mine = LeastSquares().fit(X, y)
    np.testing.assert_allclose(mine.coef_, ref.coef_, atol=1e-10)
    np.testing.assert_allclose(mine.predict(X), ref.predict(X), atol=1e-10)
    dup = np.column_stack([X, X[:, 0]])  # singular design: predictions are still unique
    np.testing.assert_allclose(LeastSquares().fit(dup, y).predict(dup), ref.predict(X),
                               atol=1e-8)


def test_weighted_gram_and_solver_by_hand():
    X = np.array([[1.0, 2.0], [0.0, -1.0], [3.0, 0.5]])
    w = np.array([0.5, 2.0, 1.0])
    D = np.column_stack([np.ones(3), X])
    np.testing.assert_allclose(weighted_gram(X, w), D.T @ np.diag(w) @ D, rtol=1e-12)
    H = D.T @ D
    g = np.array([1.0, -2.0, 0.5])
    np.testing.assert_allclose(H @ solve_psd(H, g), g, atol=1e-10)


def test_blocked_passes_span_many_blocks_and_uneven_pieces():
    # more rows than one block of the blocked passes, split into pieces that cut blocks
    # anywhere: the Gram matches the dense product, the fit matches the fit on one array
    import promo_analysis.learners as L

    rng = np.random.default_rng(5)
    n = 3 * L._ROWS + 123
    X = np.column_stack([rng.normal(size=(n, 3)), rng.random((n, 2)) < 0.3]).astype(float)
    X -= X.mean(axis=0)
    y = (rng.random(n) < 1 / (1 + np.exp(-(0.3 + X @ [0.5, -0.4, 0.2, 0.6, -0.2])))).astype(int)
    w = rng.random(n)
    D = np.column_stack([np.ones(n), X])
    # (column sums of a centred X are ~0: absolute tolerance against entries of order n)
    np.testing.assert_allclose(weighted_gram(X, w), (D * w[:, None]).T @ D, atol=1e-8)
    np.testing.assert_allclose(weighted_gram(X, None), D.T @ D, atol=1e-8)
    cuts = [0, 1000, L._ROWS + 7, 2 * L._ROWS + 3000, n]
    pieces = [X[a:b] for a, b in zip(cuts[:-1], cuts[1:], strict=True)]
    whole = LogisticIRLS().fit(X, y)
    split = LogisticIRLS().fit_blocks(pieces, y)
    np.testing.assert_allclose(split.coef_, whole.coef_, atol=1e-10)
    ref = make_pipeline(StandardScaler(), LogisticRegression(
        C=np.inf, solver="newton-cholesky", tol=1e-12, max_iter=500)).fit(X, y)
    np.testing.assert_allclose(split.predict_proba(X), ref.predict_proba(X), atol=1e-9)
    # a warm start from a fit on a small subsample gets one fresh Hessian on all rows
    sub = LogisticIRLS().fit(X[::20], y[::20])
    warm = LogisticIRLS().fit(X, y, init=sub)
    assert warm.n_hessians_ == 1
    np.testing.assert_allclose(warm.coef_, whole.coef_, atol=1e-9)
