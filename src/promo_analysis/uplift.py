"""Uplift modelling and targeting: who should get a coupon?

* :class:`TLearner` and :class:`XLearner` (Künzel et al. 2019) estimate the conditional average
  treatment effect ``tau(x) = E[Y(1) - Y(0) | X = x]`` of each coupon design against control, as
  scikit-learn estimators: ``fit(X, treatment, y)``, ``predict_uplift(X)`` (alias ``effect``).
  Binary outcomes (first parcel within the window) use classifiers' probabilities, continuous
  ones (revenue) regressors.
* :func:`qini_curve`, :func:`qini_auc`, :func:`uplift_at_k` and :func:`uplift_by_decile`
  evaluate a ranking of units by predicted uplift on data with a treatment indicator (ideally
  randomised), with bootstrap confidence intervals that hold the scores fixed.
* :func:`targeting_value` turns a ranking into money: incremental first senders and net revenue of
  giving coupons to the top ``k`` of the ranked population, given the face value and the cost of
  a redemption.

All evaluation functions take ``data`` plus column names. See ``docs/methods.md`` section 7.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, clone
from sklearn.utils.validation import check_is_fitted

from .results import Estimate, TableResult

__all__ = [
    "TLearner",
    "XLearner",
    "qini_curve",
    "qini_auc",
    "uplift_at_k",
    "uplift_by_decile",
    "targeting_value",
]


# --------------------------------------------------------------------------------------------
# learners
# --------------------------------------------------------------------------------------------
def _is_binary(y: np.ndarray) -> bool:
    values = np.unique(y[~np.isnan(y)])
    return len(values) <= 2 and set(values.tolist()) <= {0.0, 1.0}


def _preprocessor(X: pd.DataFrame) -> Any:
    """One-hot encode text/categorical/bool columns, standardise numeric ones."""
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    cat = [
        c
        for c in X.columns
        if not pd.api.types.is_numeric_dtype(X[c]) or pd.api.types.is_bool_dtype(X[c])
    ]
    num = [c for c in X.columns if c not in cat]
    parts = []
    if num:
        parts.append(("num", StandardScaler(), num))
    if cat:
        parts.append(
            (
                "cat",
                OneHotEncoder(handle_unknown="ignore", drop=None, sparse_output=False),
                cat,
            )
        )
    return ColumnTransformer(parts, remainder="drop")


def _as_frame(X: Any) -> pd.DataFrame:
    if isinstance(X, pd.DataFrame):
        frame = X
    else:
        arr = np.asarray(X)
        if arr.ndim == 1:
            arr = arr.reshape(-1, 1)
        frame = pd.DataFrame(arr, columns=[f"x{i}" for i in range(arr.shape[1])])
    bad = [c for c in frame.columns if frame[c].isna().any()]
    if bad:
        counts = {c: int(frame[c].isna().sum()) for c in bad}
        raise ValueError(
            f"X has missing values in column(s) {counts} (column: rows); impute or drop them "
            "before fitting an uplift model"
        )
    return frame


def _default_outcome_learner(binary: bool) -> Any:
    from sklearn.linear_model import LinearRegression, LogisticRegression

    if binary:
        return LogisticRegression(C=1e4, max_iter=1000)
    return LinearRegression()


def _fit_outcome(learner: Any, pre: Any, X: pd.DataFrame, y: np.ndarray, binary: bool) -> Any:
    from sklearn.pipeline import make_pipeline

    if binary and np.all(y == y[0]):
        # nobody (or everybody) in this arm sent: the model is that constant rate
        return _Constant(float(y[0]))
    model = make_pipeline(clone(pre), clone(learner))
    model.fit(X, y.astype(int) if binary and hasattr(learner, "predict_proba") else y)
    return model


class _Constant:
    def __init__(self, value: float) -> None:
        self.value = value

    def predict(self, X: Any) -> np.ndarray:
        return np.full(len(X), self.value)

    def predict_proba(self, X: Any) -> np.ndarray:
        p = np.full(len(X), self.value)
        return np.column_stack([1 - p, p])


def _predict_outcome(model: Any, X: pd.DataFrame, binary: bool) -> np.ndarray:
    if binary and hasattr(model, "predict_proba"):
        return model.predict_proba(X)[:, 1]
    return np.asarray(model.predict(X), dtype=float)


def _check_treatment(treatment: Any, control: Any, n: int) -> tuple[np.ndarray, Any, list]:
    t = np.asarray(treatment, dtype=object)
    if len(t) != n:
        raise ValueError(f"treatment has {len(t)} rows but X has {n}")
    if pd.isna(pd.Series(t)).any():
        raise ValueError(f"treatment has {int(pd.isna(pd.Series(t)).sum())} missing value(s)")
    labels = pd.unique(pd.Series(t))
    if control is None:
        as_set = {str(v) for v in labels}
        if as_set <= {"0", "1", "True", "False", "0.0", "1.0"}:
            t = np.array([int(float(v)) if not isinstance(v, bool) else int(v) for v in t])
            control = 0
            labels = np.unique(t)
        elif "control" in as_set:
            control = "control"
        else:
            raise ValueError(
                f"cannot tell the control arm among treatment values {sorted(as_set)}; pass "
                "control="
            )
    if control not in set(labels.tolist()):
        raise ValueError(f"control arm {control!r} not among treatment values {list(labels)}")
    arms = sorted((a for a in labels.tolist() if a != control), key=str)
    if not arms:
        raise ValueError("treatment has only the control arm: nothing to compare")
    return t, control, arms


class _MetaLearner(BaseEstimator):
    """Shared plumbing: arms, outcome type, encoding, prediction shape."""

    def _setup(self, X: Any, treatment: Any, y: Any) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
        Xf = _as_frame(X)
        yv = np.asarray(y, dtype=float)
        if len(yv) != len(Xf):
            raise ValueError(f"y has {len(yv)} rows but X has {len(Xf)}")
        if np.isnan(yv).any():
            raise ValueError(f"y has {int(np.isnan(yv).sum())} missing value(s)")
        t, control, arms = _check_treatment(treatment, self.control, len(Xf))
        if self.outcome == "auto":
            binary = _is_binary(yv)
        elif self.outcome in ("binary", "continuous"):
            binary = self.outcome == "binary"
            if binary and not _is_binary(yv):
                raise ValueError("outcome='binary' but y has values other than 0 and 1")
        else:
            raise ValueError(
                f"outcome must be 'auto', 'binary' or 'continuous', got {self.outcome!r}"
            )
        for arm in [control, *arms]:
            if (t == arm).sum() < 2:
                raise ValueError(f"arm {arm!r} has {(t == arm).sum()} row(s); need at least 2")
        self.control_ = control
        self.arms_ = arms
        self.binary_ = binary
        self.feature_names_in_ = np.asarray(Xf.columns, dtype=object)
        self.n_features_in_ = Xf.shape[1]
        self.preprocessor_ = _preprocessor(Xf)
        return Xf, t, yv

    def _outcome_learner(self) -> Any:
        return self.learner if self.learner is not None else _default_outcome_learner(self.binary_)

    def predict_uplift(self, X: Any, arm: Any = None) -> np.ndarray | pd.DataFrame:
        """Predicted uplift ``tau(x)`` of each arm against control.

        Returns a 1-d array when the model has a single treatment arm or ``arm`` is given, else a
        DataFrame with one column per arm.
        """
        check_is_fitted(self, "arms_")
        Xf = _as_frame(X)
        if arm is not None:
            if arm not in self.arms_:
                raise ValueError(f"arm {arm!r} not fitted; arms are {self.arms_}")
            return self._effect_arm(Xf, arm)
        if len(self.arms_) == 1:
            return self._effect_arm(Xf, self.arms_[0])
        return pd.DataFrame({a: self._effect_arm(Xf, a) for a in self.arms_}, index=Xf.index)

    def effect(self, X: Any, arm: Any = None) -> np.ndarray | pd.DataFrame:
        """Alias of :meth:`predict_uplift` (the EconML name)."""
        return self.predict_uplift(X, arm=arm)

    def best_arm(self, X: Any) -> pd.Series:
        """The arm with the largest predicted uplift for each row, or control if none is > 0."""
        tau = self.predict_uplift(X)
        if not isinstance(tau, pd.DataFrame):
            tau = pd.DataFrame({self.arms_[0]: tau}, index=_as_frame(X).index)
        best = tau.idxmax(axis=1).astype(object)
        best[tau.max(axis=1) <= 0] = self.control_
        return best


class TLearner(_MetaLearner):
    """Two-model (T-) learner: one outcome model per arm, ``tau(x) = mu_arm(x) - mu_0(x)``.

    Parameters
    ----------
    learner : scikit-learn estimator, optional
        Outcome model, cloned per arm. A classifier (``predict_proba``) for binary outcomes, a
        regressor for continuous ones. Default: logistic regression (binary) or least squares
        (continuous) on standardised numeric and one-hot encoded categorical columns.
    control : label, optional
        Value of ``treatment`` that marks the control arm. Default: ``0`` for 0/1 treatments,
        ``"control"`` for design labels such as ``"12-3"``.
    outcome : {"auto", "binary", "continuous"}
        Outcome type; ``"auto"`` treats 0/1 outcomes as binary.

    Attributes
    ----------
    arms_ : list
        Treatment arms (designs) other than control.
    models_ : dict
        Fitted outcome pipeline per arm, control included.
    binary_ : bool
    """

    def __init__(self, learner: Any = None, control: Any = None, outcome: str = "auto") -> None:
        self.learner = learner
        self.control = control
        self.outcome = outcome

    def fit(self, X: Any, treatment: Any, y: Any) -> TLearner:
        """Fit one outcome model per arm (control included)."""
        Xf, t, yv = self._setup(X, treatment, y)
        learner = self._outcome_learner()
        self.models_ = {}
        for arm in [self.control_, *self.arms_]:
            m = t == arm
            self.models_[arm] = _fit_outcome(
                learner, self.preprocessor_, Xf.loc[m], yv[m], self.binary_
            )
        return self

    def _effect_arm(self, X: pd.DataFrame, arm: Any) -> np.ndarray:
        mu1 = _predict_outcome(self.models_[arm], X, self.binary_)
        mu0 = _predict_outcome(self.models_[self.control_], X, self.binary_)
        return mu1 - mu0


class XLearner(_MetaLearner):
    """X-learner (Künzel, Sekhon, Bickel & Yu 2019, PNAS 116:4156).

    For each arm ``a`` against control: (1) outcome models ``mu_0``, ``mu_a`` as in the
    T-learner; (2) imputed effects ``D_a = Y - mu_0(X)`` for units of arm ``a`` and
    ``D_0 = mu_a(X) - Y`` for controls; (3) effect models ``tau_a`` fitted on ``D_a`` and
    ``tau_0`` on ``D_0``; (4) ``tau(x) = g(x) tau_0(x) + (1 - g(x)) tau_a(x)`` with ``g`` the
    propensity of arm ``a`` among units of ``a`` or control.

    Parameters
    ----------
    learner : estimator, optional
        Outcome model (as in :class:`TLearner`).
    effect_learner : regressor, optional
        Model for the imputed effects. Default: least squares.
    propensity_learner : classifier, optional
        Model for ``g``. Default: logistic regression. With randomised data a constant
        propensity is also fine; pass ``propensity=float`` to fix it.
    propensity : float, optional
        A known propensity (e.g. 0.5 in a balanced test) instead of a fitted one.
    control, outcome
        As in :class:`TLearner`.
    """

    def __init__(
        self,
        learner: Any = None,
        effect_learner: Any = None,
        propensity_learner: Any = None,
        propensity: float | None = None,
        control: Any = None,
        outcome: str = "auto",
    ) -> None:
        self.learner = learner
        self.effect_learner = effect_learner
        self.propensity_learner = propensity_learner
        self.propensity = propensity
        self.control = control
        self.outcome = outcome

    def fit(self, X: Any, treatment: Any, y: Any) -> XLearner:
        """Fit the outcome, imputed-effect and propensity models of every arm."""
        from sklearn.linear_model import LinearRegression, LogisticRegression
        from sklearn.pipeline import make_pipeline

        Xf, t, yv = self._setup(X, treatment, y)
        learner = self._outcome_learner()
        eff = self.effect_learner if self.effect_learner is not None else LinearRegression()
        ps = (
            self.propensity_learner
            if self.propensity_learner is not None
            else LogisticRegression(max_iter=1000)
        )
        if self.propensity is not None and not 0 < self.propensity < 1:
            raise ValueError(f"propensity must be in (0, 1), got {self.propensity!r}")
        c = t == self.control_
        self.outcome_models_ = {
            self.control_: _fit_outcome(learner, self.preprocessor_, Xf.loc[c], yv[c], self.binary_)
        }
        self.effect_models_ = {}
        self.propensity_models_ = {}
        mu0_all = _predict_outcome(self.outcome_models_[self.control_], Xf, self.binary_)
        for arm in self.arms_:
            a = t == arm
            self.outcome_models_[arm] = _fit_outcome(
                learner, self.preprocessor_, Xf.loc[a], yv[a], self.binary_
            )
            mu_a_c = _predict_outcome(self.outcome_models_[arm], Xf.loc[c], self.binary_)
            d_a = yv[a] - mu0_all[a]
            d_0 = mu_a_c - yv[c]
            tau_a = make_pipeline(clone(self.preprocessor_), clone(eff)).fit(Xf.loc[a], d_a)
            tau_0 = make_pipeline(clone(self.preprocessor_), clone(eff)).fit(Xf.loc[c], d_0)
            self.effect_models_[arm] = (tau_0, tau_a)
            if self.propensity is None:
                both = a | c
                self.propensity_models_[arm] = make_pipeline(
                    clone(self.preprocessor_), clone(ps)
                ).fit(Xf.loc[both], a[both].astype(int))
        return self

    def _effect_arm(self, X: pd.DataFrame, arm: Any) -> np.ndarray:
        tau_0, tau_a = self.effect_models_[arm]
        if self.propensity is None:
            g = self.propensity_models_[arm].predict_proba(X)[:, 1]
        else:
            g = np.full(len(X), float(self.propensity))
        return g * tau_0.predict(X) + (1 - g) * tau_a.predict(X)


# --------------------------------------------------------------------------------------------
# evaluation: Qini, uplift at k, by decile
# --------------------------------------------------------------------------------------------
def _eval_arrays(
    data: pd.DataFrame, score: str, treatment: str, outcome: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows sorted by descending score (stable): treatment 0/1 and outcome arrays."""
    for col in (score, treatment, outcome):
        if col not in data.columns:
            raise ValueError(f"data has no column {col!r} (columns: {list(data.columns)})")
        n_na = int(data[col].isna().sum())
        if n_na:
            raise ValueError(
                f"column {col!r} has {n_na} missing value(s), e.g. row {data.index[data[col].isna()][0]!r}"
            )
    t = data[treatment].to_numpy()
    values = set(pd.unique(t).tolist())
    if not values <= {0, 1}:  # True == 1 and False == 0 in a set
        bad = [v for v in values if v not in (0, 1)][:3]
        raise ValueError(
            f"column {treatment!r} must be 0/1 (coupon or not); found e.g. {bad}. For several "
            "designs, evaluate each design against control on its own subset."
        )
    t = t.astype(int)
    if t.sum() == 0 or t.sum() == len(t):
        raise ValueError(
            f"column {treatment!r} needs both treated and control rows "
            f"({int(t.sum())} treated of {len(t)})"
        )
    order = np.argsort(-data[score].to_numpy(dtype=float), kind="stable")
    return t[order], data[outcome].to_numpy(dtype=float)[order], order


def _cum(t: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, ...]:
    """Cumulative weighted counts and sums along the ranking, with a leading 0 (k = 0..N).

    ``w`` is (B, N) bootstrap frequency weights (or (1, N) ones).
    """
    zero = np.zeros((w.shape[0], 1))
    nt = np.concatenate([zero, np.cumsum(w * t, axis=1)], axis=1)
    nc = np.concatenate([zero, np.cumsum(w * (1 - t), axis=1)], axis=1)
    yt = np.concatenate([zero, np.cumsum(w * t * y, axis=1)], axis=1)
    yc = np.concatenate([zero, np.cumsum(w * (1 - t) * y, axis=1)], axis=1)
    return nt, nc, yt, yc


def _qini_from_cum(nt, nc, yt, yc) -> np.ndarray:
    """Qini(k) / N_t: incremental outcomes in the top k per treated unit (Radcliffe 2007)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        q = yt - np.where(nc > 0, yc * nt / nc, 0.0)
    return q / nt[:, -1:]


def _boot_weights(t: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Stratified bootstrap frequency weights: treated and controls resampled separately."""
    w = np.zeros((n_boot, len(t)))
    for grp in (0, 1):
        idx = np.flatnonzero(t == grp)
        m = len(idx)
        # resample m rows with replacement: the frequency of each row (bincount of draws is
        # the multinomial(m, 1/m) vector, much faster than rng.multinomial for large m)
        draws = rng.integers(0, m, size=(n_boot, m)) + (np.arange(n_boot) * m)[:, None]
        w[:, idx] = np.bincount(draws.ravel(), minlength=n_boot * m).reshape(n_boot, m)
    return w


def _chunks(n_boot: int, n: int) -> list[int]:
    # each (B, N) float block at most ~40 MB; _cum holds about ten of them at once
    size = max(1, min(n_boot, int(5e6 // max(n, 1))))
    out = [size] * (n_boot // size)
    if n_boot % size:
        out.append(n_boot % size)
    return out


def _percentile_estimate(
    point: float, boots: np.ndarray, *, n: int, method: str, alpha: float, **kwargs: Any
) -> Estimate:
    boots = boots[np.isfinite(boots)]
    lo, hi = np.quantile(boots, [alpha / 2, 1 - alpha / 2]) if len(boots) else (np.nan, np.nan)
    se = float(np.std(boots, ddof=1)) if len(boots) > 1 else float("nan")
    return Estimate(
        estimate=float(point),
        se=se,
        ci_low=float(lo),
        ci_high=float(hi),
        n=int(n),
        method=method,
        alpha=alpha,
        **kwargs,
    )


def qini_curve(
    data: pd.DataFrame,
    score: str,
    treatment: str,
    outcome: str,
    *,
    points: int | Sequence[float] = 21,
    n_boot: int = 200,
    alpha: float = 0.05,
    seed: int = 0,
) -> TableResult:
    """The Qini curve of a ranking, with a bootstrap confidence band.

    Rows are ranked by ``score`` (descending; ties keep the data's order). For the top ``k``
    rows, ``Qini(k) = Y_t(k) - Y_c(k) N_t(k) / N_c(k)`` (Radcliffe 2007), where ``Y_t(k)`` and
    ``N_t(k)`` are the summed outcome and the count of treated rows among them (``_c`` for
    controls). The curve reports ``Qini(k) / N_t``: incremental outcomes per treated unit
    obtained by treating the top fraction ``k / N``.

    Parameters
    ----------
    data : DataFrame
    score, treatment, outcome : str
        Column names: predicted uplift, 0/1 treatment, outcome (binary or continuous).
    points : int or sequence of float
        Number of equally spaced fractions in [0, 1], or the fractions themselves.
    n_boot : int
        Bootstrap replicates (stratified by treatment; scores held fixed). 0 disables the band.
    alpha, seed

    Returns
    -------
    TableResult
        Indexed by ``fraction``; ``estimate`` is the Qini value, ``ci_low``/``ci_high`` the
        percentile band, ``random`` the random-targeting line ``fraction * Qini(N) / N_t``,
        ``n`` the number of rows targeted. ``diagnostics["auc"]`` holds :func:`qini_auc`'s
        point value.
    """
    t, y, _ = _eval_arrays(data, score, treatment, outcome)
    n = len(t)
    fr = np.linspace(0, 1, int(points)) if np.isscalar(points) else np.asarray(points, float)
    if np.any((fr < 0) | (fr > 1)):
        raise ValueError("points must be fractions between 0 and 1")
    k = np.ceil(fr * n - 1e-9).astype(int)
    q = _qini_from_cum(*_cum(t, y, np.ones((1, n))))[0]
    boot_rows = []
    rng = np.random.default_rng(seed)
    for b in _chunks(n_boot, n) if n_boot else []:
        qb = _qini_from_cum(*_cum(t, y, _boot_weights(t, b, rng)))
        boot_rows.append(qb[:, k])
    table = pd.DataFrame(
        {
            "estimate": q[k],
            "se": np.nan,
            "ci_low": np.nan,
            "ci_high": np.nan,
            "pvalue": np.nan,
            "n": k,
            "random": fr * q[-1],
        },
        index=pd.Index(fr, name="fraction"),
    )
    if boot_rows:
        qb = np.vstack(boot_rows)
        table["se"] = qb.std(axis=0, ddof=1)
        table["ci_low"] = np.quantile(qb, alpha / 2, axis=0)
        table["ci_high"] = np.quantile(qb, 1 - alpha / 2, axis=0)
    return TableResult(
        table=table,
        method="qini-bootstrap" if n_boot else "qini",
        alpha=alpha,
        estimand=f"Qini curve of {score!r}: incremental {outcome!r} per treated unit",
        label="Qini curve",
        diagnostics={
            "auc": _auc(q),
            "n_treated": int(t.sum()),
            "n_control": int(n - t.sum()),
            "n_boot": n_boot,
        },
    )


def _auc(q: np.ndarray) -> float | np.ndarray:
    """Area between the Qini curve and the random line (trapezoid rule over k / N)."""
    q = np.atleast_2d(q)
    n = q.shape[1] - 1
    g = q - np.linspace(0, 1, n + 1)[None, :] * q[:, -1:]
    area = (g[:, 1:] + g[:, :-1]).sum(axis=1) / (2 * n)
    return float(area[0]) if area.shape[0] == 1 else area


def qini_auc(
    data: pd.DataFrame,
    score: str,
    treatment: str,
    outcome: str,
    *,
    n_boot: int = 200,
    alpha: float = 0.05,
    seed: int = 0,
) -> Estimate:
    """Area between the Qini curve (as in :func:`qini_curve`) and the random-targeting line.

    ``AUC = (1/N) sum_{k=1..N} (g(k-1) + g(k)) / 2`` with ``g(k) = Qini(k)/N_t - (k/N)
    Qini(N)/N_t``. Positive when the ranking puts responders to the coupon first, 0 for a random
    ranking; in outcome units per treated unit. CI: stratified bootstrap percentile interval with
    the scores held fixed (it reflects sampling of the evaluation data, not model fitting).
    """
    t, y, _ = _eval_arrays(data, score, treatment, outcome)
    n = len(t)
    point = _auc(_qini_from_cum(*_cum(t, y, np.ones((1, n))))[0])
    rng = np.random.default_rng(seed)
    boots = (
        [
            np.atleast_1d(_auc(_qini_from_cum(*_cum(t, y, _boot_weights(t, b, rng)))))
            for b in _chunks(n_boot, n)
        ]
        if n_boot
        else []
    )
    return _percentile_estimate(
        point,
        np.concatenate(boots) if boots else np.array([]),
        n=n,
        method="qini-auc-bootstrap",
        alpha=alpha,
        estimand="area between Qini curve and random targeting",
        label=f"Qini AUC of {score!r}",
        diagnostics={"n_boot": n_boot},
    )


def _top_effect(t: np.ndarray, y: np.ndarray, w: np.ndarray, m: int) -> np.ndarray:
    """Difference in mean outcome, treated minus control, among the first ``m`` ranked rows."""
    wt, wc = (w * t)[:, :m], (w * (1 - t))[:, :m]
    with np.errstate(divide="ignore", invalid="ignore"):
        return (wt * y[:m]).sum(1) / wt.sum(1) - (wc * y[:m]).sum(1) / wc.sum(1)


def _top_rows(k: float, n: int) -> int:
    if not 0 < k <= 1:
        raise ValueError(f"k is a fraction of the ranked rows in (0, 1], got {k!r}")
    return max(1, int(math.ceil(k * n - 1e-9)))


def uplift_at_k(
    data: pd.DataFrame,
    score: str,
    treatment: str,
    outcome: str,
    *,
    k: float = 0.1,
    n_boot: int = 500,
    alpha: float = 0.05,
    seed: int = 0,
) -> Estimate:
    """Mean outcome of treated minus control rows among the top ``k`` fraction by ``score``.

    The top ``ceil(k N)`` rows of the ranked data (treated and control together) are taken;
    within them ``rate_t - rate_c``. CI: stratified bootstrap percentile interval (scores fixed).
    """
    t, y, _ = _eval_arrays(data, score, treatment, outcome)
    n = len(t)
    m = _top_rows(k, n)
    tm = t[:m]
    if tm.sum() == 0 or tm.sum() == m:
        raise ValueError(
            f"the top {k:.0%} ({m} rows) holds {int(tm.sum())} treated and {int(m - tm.sum())} "
            "control rows; both are needed: take a larger k"
        )
    point = float(_top_effect(t, y, np.ones((1, n)), m)[0])
    rng = np.random.default_rng(seed)
    boots = [_top_effect(t, y, _boot_weights(t, b, rng), m) for b in _chunks(n_boot, n)]
    est = _percentile_estimate(
        point,
        np.concatenate(boots) if boots else np.array([]),
        n=m,
        method="uplift-at-k-bootstrap",
        alpha=alpha,
        estimand=f"difference in mean {outcome!r}, treated - control, in the top {k:.0%}",
        label=f"uplift at {k:.0%}",
        extra={
            "k": k,
            "rate_treated": float(y[:m][tm == 1].mean()),
            "rate_control": float(y[:m][tm == 0].mean()),
            "n_treated": int(tm.sum()),
            "n_control": int(m - tm.sum()),
        },
    )
    return est


def uplift_by_decile(
    data: pd.DataFrame,
    score: str,
    treatment: str,
    outcome: str,
    *,
    bins: int = 10,
    alpha: float = 0.05,
) -> TableResult:
    """Observed uplift (treated minus control mean) in each of ``bins`` score quantile groups.

    Group 1 holds the highest scores. CIs are Wald intervals for a difference of means (Welch
    standard error); alongside, the mean predicted uplift of the group (``predicted``) for a
    calibration check.
    """
    t, y, order = _eval_arrays(data, score, treatment, outcome)
    s = data[score].to_numpy(dtype=float)[order]
    n = len(t)
    group = np.minimum((np.arange(n) * bins) // n, bins - 1) + 1
    rows = {}
    for g in range(1, bins + 1):
        m = group == g
        yt, yc = y[m & (t == 1)], y[m & (t == 0)]
        if len(yt) < 2 or len(yc) < 2:
            rows[g] = Estimate(
                np.nan,
                np.nan,
                np.nan,
                np.nan,
                int(m.sum()),
                "welch",
                alpha,
                extra={"predicted": float(s[m].mean()), "n_treated": len(yt), "n_control": len(yc)},
            )
            continue
        diff = yt.mean() - yc.mean()
        se = math.sqrt(yt.var(ddof=1) / len(yt) + yc.var(ddof=1) / len(yc))
        rows[g] = Estimate.from_normal(
            diff,
            se if se > 0 else np.nan,
            n=int(m.sum()),
            method="welch",
            alpha=alpha,
            extra={"predicted": float(s[m].mean()), "n_treated": len(yt), "n_control": len(yc)},
        )
    return TableResult.from_estimates(
        rows,
        method="uplift-by-decile",
        index_name="decile",
        alpha=alpha,
        estimand=f"difference in mean {outcome!r}, treated - control, by {score!r} group",
        label="uplift by score group",
    )


def targeting_value(
    data: pd.DataFrame,
    score: str,
    treatment: str,
    outcome: str,
    *,
    k: float = 0.1,
    face_value: float,
    redemption_cost: float = 0.0,
    revenue: str | None = None,
    price: float | None = None,
    population: int | None = None,
    n_boot: int = 500,
    alpha: float = 0.05,
    seed: int = 0,
) -> TableResult:
    """Incremental first senders and net revenue of giving coupons to the top ``k`` by score.

    Among the top ``k`` fraction of the ranked rows, with ``r_t``, ``r_c`` the send rates of
    treated and control rows and ``R_t``, ``R_c`` their mean revenue at list price:

    * incremental senders per targeted person ``d_s = r_t - r_c``;
    * incremental gross revenue per targeted person ``d_R = R_t - R_c`` (from the ``revenue``
      column), or ``d_s * price`` when a typical first-parcel ``price`` is given instead;
    * coupon cost per targeted person ``r_t * (face_value + redemption_cost)``: every treated
      sender redeems, including those who would have sent anyway (the subsidy leak);
    * net revenue per targeted person ``d_R - r_t * (face_value + redemption_cost)``.

    Totals multiply by the number targeted, ``ceil(k * population)`` (``population`` defaults to
    the number of rows).

    Parameters
    ----------
    data : DataFrame
    score, treatment, outcome : str
        Predicted uplift, 0/1 coupon, 0/1 sent within the window.
    k : float
        Fraction targeted.
    face_value : float
        Coupon face value in yuan (e.g. 3 for 满12减3).
    redemption_cost : float
        Handling cost per redeemed coupon, yuan.
    revenue : str, optional
        Column with the gross (list-price) revenue of the first parcel within the window, 0 when
        none. Either ``revenue`` or ``price`` is needed.
    price : float, optional
        Typical list price of a first parcel, yuan.
    population : int, optional
        Size of the population the ranking will be applied to.
    n_boot, alpha, seed
        Stratified bootstrap (scores held fixed), percentile intervals.

    Returns
    -------
    TableResult
        Rows ``incremental_senders``, ``incremental_revenue``, ``coupon_cost``, ``net_revenue``
        (totals for the targeted group, yuan or persons) and the same per targeted person
        (suffix ``_per_person``).
    """
    if (revenue is None) == (price is None):
        raise ValueError("give exactly one of revenue= (a column) or price= (yuan per parcel)")
    if face_value <= 0:
        raise ValueError(f"face_value must be > 0 yuan, got {face_value!r}")
    if redemption_cost < 0:
        raise ValueError(f"redemption_cost must be >= 0 yuan, got {redemption_cost!r}")
    t, y, order = _eval_arrays(data, score, treatment, outcome)
    if not _is_binary(y):
        raise ValueError(f"outcome {outcome!r} must be 0/1 (sent a first parcel or not)")
    n = len(t)
    if revenue is not None:
        if revenue not in data.columns:
            raise ValueError(f"data has no column {revenue!r}")
        rev = data[revenue].to_numpy(dtype=float)[order]
        if np.isnan(rev).any():
            raise ValueError(
                f"column {revenue!r} has {int(np.isnan(rev).sum())} missing value(s); use 0 "
                "for people who did not send"
            )
    else:
        rev = y * float(price)
    m = _top_rows(k, n)
    size = int(math.ceil(k * (population if population is not None else n) - 1e-9))
    unit_cost = face_value + redemption_cost

    def per_person(w: np.ndarray) -> np.ndarray:
        ds = _top_effect(t, y, w, m)
        dr = _top_effect(t, rev, w, m)
        wt = (w * t)[:, :m]
        rt = (wt * y[:m]).sum(1) / wt.sum(1)
        cost = rt * unit_cost
        return np.column_stack([ds, dr, cost, dr - cost])

    point = per_person(np.ones((1, n)))[0]
    rng = np.random.default_rng(seed)
    boots = (
        np.vstack([per_person(_boot_weights(t, b, rng)) for b in _chunks(n_boot, n)])
        if n_boot
        else np.empty((0, 4))
    )
    names = ["incremental_senders", "incremental_revenue", "coupon_cost", "net_revenue"]
    rows = {}
    for j, name in enumerate(names):
        for scale, suffix in ((size, ""), (1, "_per_person")):
            rows[name + suffix] = _percentile_estimate(
                point[j] * scale,
                boots[:, j] * scale,
                n=m,
                method="bootstrap",
                alpha=alpha,
                extra={"targeted": size},
            )
    return TableResult.from_estimates(
        rows,
        method="targeting-value-bootstrap",
        index_name="quantity",
        alpha=alpha,
        estimand=f"value of giving coupons to the top {k:.0%} by {score!r}",
        label=f"targeting the top {k:.0%}",
        diagnostics={
            "k": k,
            "targeted": size,
            "rows_in_top_k": m,
            "face_value": face_value,
            "redemption_cost": redemption_cost,
        },
    )
