"""Linear learners for cross-fitting at scale: Newton logistic regression and least squares.

Cross-fitting fits the same model on five heavily overlapping training sets (and, for the
outcome, once per arm). scikit-learn's solvers validate, rescale and copy the design in every
fit and start from zero each time; at a million rows that is most of the cost of AIPW. These
learners do the Newton iterations directly in numpy -- ``X'WX`` through BLAS ``syrk`` over
blocks of rows, and index, loss and gradient of a step in one blocked pass, so the design is
read from memory once per step -- and a fit can start from a previous fit (``init=``):
coefficients and the factored Hessian of the previous fold are an excellent start for the
next, so later folds converge in a few gradient evaluations instead of five to eight
Hessians. The optimum is the same; results
agree with scikit-learn's ``LogisticRegression`` (``newton-cholesky``, standardized features)
and ``LinearRegression`` to solver tolerance.

Both are scikit-learn estimators (``get_params``, ``clone``, fitted attributes end in ``_``).
The design should be roughly centred (``causal.estimate_effect`` centres it): the Hessian is
equilibrated, not orthogonalized, so columns with a mean thousands of SDs from zero lose
precision.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import linalg
from scipy.linalg import blas
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin

__all__ = ["LogisticIRLS", "LeastSquares", "weighted_gram", "solve_psd"]


#: rows per block of the blocked passes over a design: a block of ~60 float64 columns
#: (2 MB) stays in cache while it is scaled and multiplied, so the design is read once
_ROWS = 4096


def weighted_gram(X: np.ndarray, w: np.ndarray | None) -> np.ndarray:
    """``[1, X]' diag(w) [1, X]`` (full symmetric matrix) without forming ``[1, X]``."""
    n, p = X.shape
    G = np.empty((p + 1, p + 1))
    G[0, 0] = n if w is None else w.sum()
    col = np.zeros(p)
    # syrk on the transposed (Fortran-ordered) view of a block computes its A'A in one BLAS
    # call, half the flops of A.T @ A; in row blocks, the design is read from memory once
    # and never copied whole
    fn = blas.dsyrk if X.dtype == np.float64 else blas.ssyrk
    C = np.zeros((p, p), dtype=X.dtype)
    sw = None if w is None else np.sqrt(w)
    for b0 in range(0, n, _ROWS):
        A = X[b0:b0 + _ROWS]
        if sw is None:
            col += A.sum(axis=0)
        else:
            col += w[b0:b0 + _ROWS] @ A
            A = A * sw[b0:b0 + _ROWS, None]
        C = fn(1.0, A.T, beta=1.0, c=C, trans=0, overwrite_c=1)
    G[1:, 0] = col
    iu = np.triu_indices(p, 1)
    C[iu[1], iu[0]] = C[iu]
    G[1:, 1:] = C
    G[0, 1:] = G[1:, 0]
    return G


class _Solver:
    """Solve ``H s = g`` for a symmetric positive (semi)definite ``H``, equilibrated.

    Cholesky when ``H`` is positive definite; a minimum-norm least-squares solve when it is
    singular (collinear covariates: coefficients are then not unique, predictions are).
    """

    def __init__(self, H: np.ndarray):
        d = np.sqrt(np.clip(np.diag(H), np.finfo(float).tiny, None))
        self.d = 1 / d
        Hs = H * self.d[:, None] * self.d[None, :]
        try:
            self.chol = linalg.cho_factor(Hs, check_finite=False)
            self.pinv = None
            # cho_factor does not flag near-singular matrices; fall back when ill-conditioned
            diag = np.diag(self.chol[0])
            if diag.min() ** 2 < 1e-12 * diag.max() ** 2:
                raise linalg.LinAlgError("ill-conditioned")
        except linalg.LinAlgError:
            self.chol = None
            self.pinv = np.linalg.pinv(Hs, rcond=1e-12, hermitian=True)

    def solve(self, g: np.ndarray) -> np.ndarray:
        gs = g * self.d
        z = linalg.cho_solve(self.chol, gs) if self.chol is not None else self.pinv @ gs
        return z * self.d


def solve_psd(H: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Solve ``H s = g`` for symmetric positive semi-definite ``H`` (minimum norm if singular)."""
    return _Solver(H).solve(g)


def _as_2d(X: Any) -> np.ndarray:
    A = np.asarray(X)
    if A.ndim != 2:
        raise ValueError(f"X must be 2-dimensional, got shape {A.shape}")
    if A.dtype not in (np.float64, np.float32):
        A = A.astype(np.float64)
    return A


class LogisticIRLS(ClassifierMixin, BaseEstimator):
    """Binary logistic regression by Newton's method (IRLS), with optional ridge penalty.

    Parameters
    ----------
    C : float
        Inverse penalty strength, as in scikit-learn's ``LogisticRegression`` on standardized
        features: the objective is ``sum(log-loss) + sum_j (sd_j * beta_j)**2 / (2 C)`` with
        ``sd_j`` the (ddof=0) SD of column j; the intercept is not penalized. ``np.inf``
        (default) is maximum likelihood.
    tol : float
        Stop when the Newton decrement per row, ``sqrt(g' H^-1 g / n)``, is below ``tol``
        (coefficients are then within about ``tol`` SD-units of the optimum).
    max_iter : int
        Maximum number of Newton (or reused-Hessian) steps.

    Attributes
    ----------
    coef_ : ndarray of shape (1, n_features)
    intercept_ : ndarray of shape (1,)
    classes_ : ndarray ``[0, 1]``
    n_iter_ : int
        Steps taken; ``n_hessians_`` of them computed a new Hessian.
    converged_ : bool
    """

    def __init__(self, C: float = np.inf, tol: float = 1e-10, max_iter: int = 100):
        self.C = C
        self.tol = tol
        self.max_iter = max_iter

    def fit(self, X: Any, y: Any, init: LogisticIRLS | None = None) -> LogisticIRLS:
        """Fit; ``init``, a fitted ``LogisticIRLS`` on similar data, supplies the start.

        Its coefficients are the starting point and its Hessian (rescaled to this row count)
        is reused until the steps stop shrinking fast -- a chord Newton method, which
        converges to the same optimum.
        """
        return self.fit_blocks([X], y, init=init)

    def fit_blocks(
        self, blocks: list[Any], y: Any, init: LogisticIRLS | None = None
    ) -> LogisticIRLS:
        """Fit on the row-wise stack of ``blocks`` (e.g. views of one array) without forming
        it; ``y`` is the stacked target. Otherwise as :meth:`fit`."""
        Bs = [_as_2d(B) for B in blocks]
        p = Bs[0].shape[1]
        if any(B.shape[1] != p for B in Bs):
            raise ValueError("all blocks must have the same number of columns")
        yv = np.asarray(y).astype(np.float64).ravel()
        n = sum(len(B) for B in Bs)
        if len(yv) != n:
            raise ValueError(f"X has {n} rows but y has {len(yv)}")
        if not np.isin(yv, (0.0, 1.0)).all():
            raise ValueError("y must be binary 0/1")
        cuts = np.cumsum([len(B) for B in Bs])[:-1]

        def index(b: np.ndarray) -> np.ndarray:
            parts = [B @ b[1:] for B in Bs]
            return (parts[0] if len(parts) == 1 else np.concatenate(parts)) + b[0]

        def at(b: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
            """Index, penalized loss and gradient at ``b`` in one pass over the design: in
            blocks of rows, each read from memory once for both products."""
            eta = np.empty(n)
            g = np.zeros(p + 1)
            loss = 0.0
            off = 0
            for B in Bs:
                for b0 in range(0, len(B), _ROWS):
                    Xb = B[b0:b0 + _ROWS]
                    sl = slice(off + b0, off + b0 + len(Xb))
                    e = np.matmul(Xb, b[1:], out=eta[sl])
                    e += b[0]
                    yb = yv[sl]
                    loss += float(np.sum(np.logaddexp(0.0, e)) - yb @ e)
                    r = yb - expit(e)
                    g[0] += r.sum()
                    g[1:] += r @ Xb
                off += len(B)
            g -= lam * b
            return eta, loss + 0.5 * float(np.sum(lam * b**2)), g

        lam = np.zeros(p + 1)
        if np.isfinite(self.C):
            mean = sum(B.sum(axis=0) for B in Bs) / n
            sq = sum(np.einsum("ij,ij->j", B, B) for B in Bs) / n
            lam[1:] = np.clip(sq - mean**2, 0, None) / self.C
        if init is not None and getattr(init, "coef_", None) is not None:
            if init.coef_.shape[1] != p:
                raise ValueError(f"init was fitted on {init.coef_.shape[1]} columns, X has {p}")
            beta = np.concatenate([init.intercept_, init.coef_.ravel()]).astype(np.float64)
            H = init._hessian * (n / init._hessian_n)
            solver = _Solver(H)
            # a Hessian from a much smaller sample (a subsample start) is a poor chord: one
            # fresh Hessian on all rows makes every later step, and the next fits, contract
            # several times faster
            need_h = init._hessian_n * 4 < n
        else:
            beta = np.zeros(p + 1)
            H = solver = None
            need_h = True
        eta, loss, g = at(beta)
        prev_dec = np.inf
        self.n_iter_ = self.n_hessians_ = 0
        self.converged_ = False
        for _ in range(int(self.max_iter)):
            if need_h:
                mu = expit(eta)
                w = mu * (1 - mu)
                H = sum(weighted_gram(B, wk) for B, wk in zip(Bs, np.split(w, cuts),
                                                                strict=True))
                H[np.diag_indices(p + 1)] += lam
                solver = _Solver(H)
                self.n_hessians_ += 1
            step = solver.solve(g)
            dec = float(np.sqrt(max(g @ step, 0.0) / n))
            self.n_iter_ += 1
            if dec < self.tol:
                beta = beta + step  # a last, tiny step: free and makes agreement tighter
                self.converged_ = True
                break
            # the full step nearly always decreases the loss: evaluate it together with the
            # gradient there, and backtrack (loss only) in the rare case it does not
            nb = beta + step
            neta, nloss, ng = at(nb)
            t = 1.0
            while not (nloss <= loss + 1e-12 * abs(loss) or t < 1e-10):
                t /= 2
                nb = beta + t * step
                neta = index(nb)
                nloss = self._loss(neta, yv, nb, lam)
            if t < 1.0:
                neta, nloss, ng = at(nb)
            # refresh the Hessian when the reused one stops contracting fast (or overshot)
            need_h = t < 1.0 or dec > 0.2 * prev_dec
            prev_dec = dec
            beta, eta, loss, g = nb, neta, nloss, ng
        self.intercept_ = beta[:1].copy()
        self.coef_ = beta[None, 1:].copy()
        self.classes_ = np.array([0, 1])
        self._hessian, self._hessian_n = H, n
        return self

    @staticmethod
    def _loss(eta: np.ndarray, y: np.ndarray, beta: np.ndarray, lam: np.ndarray) -> float:
        return float(np.sum(np.logaddexp(0.0, eta) - y * eta) + 0.5 * np.sum(lam * beta**2))

    def decision_function(self, X: Any) -> np.ndarray:
        return _as_2d(X) @ self.coef_.ravel() + self.intercept_[0]

    def predict_proba(self, X: Any) -> np.ndarray:
        p1 = expit(self.decision_function(X))
        return np.column_stack([1 - p1, p1])

    def predict(self, X: Any) -> np.ndarray:
        return (self.decision_function(X) > 0).astype(int)


class LeastSquares(RegressorMixin, BaseEstimator):
    """Ordinary least squares with intercept through the normal equations.

    The design is centred (one copy) before the Gram matrix is formed, which keeps the normal
    equations as well conditioned as a QR of the centred design; singular designs get the
    minimum-norm solution (predictions are unique).

    Attributes
    ----------
    coef_ : ndarray of shape (n_features,)
    intercept_ : float
    """

    def fit(self, X: Any, y: Any) -> LeastSquares:
        return self.fit_blocks([X], y)

    def fit_blocks(self, blocks: list[Any], y: Any) -> LeastSquares:
        """Fit on the row-wise stack of ``blocks`` without forming it."""
        Bs = [_as_2d(B) for B in blocks]
        yv = np.asarray(y, dtype=np.float64).ravel()
        n, p = sum(len(B) for B in Bs), Bs[0].shape[1]
        if len(yv) != n:
            raise ValueError(f"X has {n} rows but y has {len(yv)}")
        mean = sum(B.sum(axis=0) for B in Bs) / n
        ym = yv.mean()
        G = np.zeros((p, p))
        b = np.zeros(p)
        for B, yk in zip(Bs, np.split(yv, np.cumsum([len(B) for B in Bs])[:-1]), strict=True):
            Bc = B - mean  # one block at a time: centred normal equations stay well conditioned
            if p:
                G += weighted_gram(Bc, None)[1:, 1:]
            b += (yk - ym) @ Bc
        coef = _Solver(G).solve(b) if p else np.zeros(0)
        self.coef_ = coef
        self.intercept_ = float(ym - mean @ coef)
        return self

    def predict(self, X: Any) -> np.ndarray:
        return _as_2d(X) @ self.coef_ + self.intercept_
