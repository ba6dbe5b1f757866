"""Observational treatment effects: naive, regression, IPW and cross-fitted AIPW, with diagnostics.

The question is the effect of receiving a coupon (``treatment``) on an outcome such as sending a
first parcel within 30 days, when coupons were handed out by couriers on observed covariates.
:func:`estimate_effect` returns an :class:`~promo_analysis.results.Estimate` whose
``diagnostics`` tell when not to trust it: propensity overlap, covariate balance
(standardized mean differences before and after weighting), effective sample sizes and rows
trimmed. :func:`e_value` and :func:`negative_control` probe unmeasured confounding.

Methods, formulas, assumptions and references: ``docs/methods.md`` section 6.
"""

from __future__ import annotations

import warnings as _warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from promo_analysis.results import Estimate

__all__ = [
    "estimate_effect",
    "balance_table",
    "e_value",
    "negative_control",
    "METHODS",
    "SMD_THRESHOLD",
]

METHODS = ("naive", "regression", "ipw", "aipw")
ESTIMANDS = ("ate", "att")
#: |SMD| above which a covariate counts as imbalanced (Austin 2009).
SMD_THRESHOLD = 0.1
#: propensities this close to 0 or 1 signal (quasi-)perfect separation
_EXTREME = 1e-6
#: above this many training rows the first logistic fit starts from a subsample fit
_SUBSAMPLE_START = 200_000
#: Newton decrement per row at which the nuisance logits stop: coefficients within ~1e-8 SD
#: units of the optimum (the last step leaves them closer still), 1e-5 of a standard error
#: even at a million rows; the learners' default, 1e-10, costs two more passes per fit
_NEWTON_TOL = 1e-8
#: shrinkage of the "hgb" learners (scikit-learn's default is 0.1)
_HGB_LEARNING_RATE = 0.2


# --------------------------------------------------------------------------------------------
# input preparation
# --------------------------------------------------------------------------------------------
@dataclass
class _Prepared:
    t: np.ndarray  # 0/1 int
    y: np.ndarray  # float
    names: list[str]  # design columns: encoded covariates (no constant columns)
    binary_outcome: bool
    warnings: list[str]
    groups: np.ndarray | None = None  # cluster codes 0..G-1 (cluster-robust SEs)
    native: np.ndarray | None = None  # one column per covariate, categories as codes (trees)
    cat_mask: np.ndarray | None = None  # which columns of ``native`` are categorical
    # builds the dense design and ``native`` when first needed: the linear learners get their
    # design built directly in fold order (``_FoldLayout``), never in the original order
    encoding: _Encoding | None = None
    dense: np.ndarray | None = None  # the one-hot design in the original row order

    def design(self) -> np.ndarray:
        if self.dense is None:
            self.dense = _dense_design(self.encoding, len(self.t))
        return self.dense

    def design_mean(self) -> np.ndarray:
        if self.dense is None and self.encoding is not None:
            return _design_mean(self.encoding, len(self.t))
        return self.design().mean(axis=0)

    def native_design(self) -> np.ndarray:
        if self.native is None:
            self.native = _native_design(self.encoding, len(self.t))
        return self.native


@dataclass
class _Encoding:
    """How covariates became design columns: numeric ones as floats, categories as codes."""

    names: list[str]  # design column names
    values: list[np.ndarray | None]  # per covariate: float values (numeric) or None
    codes: list[np.ndarray | None]  # per covariate: level codes 0..L-1 (categorical) or None
    levels: list[Any]  # per covariate: the sorted levels (categorical) or None
    keep: list[bool]  # per covariate: has at least one design column

    def take(self, idx: np.ndarray) -> _Encoding:
        """The encoding of the rows ``idx`` (same columns, even if a level is now absent)."""
        return _Encoding(self.names, [None if v is None else v[idx] for v in self.values],
                         [None if c is None else c[idx] for c in self.codes], self.levels,
                         self.keep)


#: rows per block when the dense design is filled: a block of all columns stays in cache
_BLOCK_ROWS = 8192


def _encode(data: pd.DataFrame, covariates: Sequence[str]) -> tuple[np.ndarray, _Encoding]:
    """Numeric/bool covariates as floats; strings and categoricals one-hot, first level dropped.

    Levels are ordered as strings (as ``pd.get_dummies`` does); constant numeric covariates
    are dropped (a one-hot column always varies: its level and the first one both occur).
    Returns the mask of categorical covariates and the encoding -- values and level codes, not
    yet a dense design: :func:`_dense_design` builds that (in any row order, centred) and
    :func:`_native_design` the design of tree learners; the separation checks need neither.
    """
    n = len(data)
    enc = _Encoding([], [], [], [], [])
    for col in covariates:
        s = data[col]
        if s.dtype == bool or pd.api.types.is_numeric_dtype(s):
            v = s.to_numpy(dtype=float)
            varies = bool(n) and bool(v.min() < v.max())
            enc.values.append(v)
            enc.codes.append(None)
            enc.levels.append(None)
            enc.keep.append(varies)
            if varies:
                enc.names.append(col)
        else:
            codes, levels = pd.factorize(s.astype(str), sort=True)
            enc.values.append(None)
            enc.codes.append(codes)
            enc.levels.append(levels)
            enc.keep.append(len(levels) > 1)
            enc.names += [f"{col}={lv}" for lv in levels[1:]]
    cat_mask = np.array([c is not None for c in enc.codes], dtype=bool)
    return cat_mask, enc


def _dense_design(
    enc: _Encoding, n: int, rows: np.ndarray | None = None, centre: np.ndarray | None = None
) -> np.ndarray:
    """The one-hot design, C-ordered, of the rows ``rows`` (all, in order, if None), minus
    ``centre``.

    Filled in blocks of rows, all columns at once: writing one column at a time would stride
    through the whole array once per column.
    """
    m = n if rows is None else len(rows)
    A = np.zeros((m, len(enc.names)))
    for s0 in range(0, m, _BLOCK_ROWS):
        blk = A[s0:s0 + _BLOCK_ROWS]
        sel = slice(s0, s0 + _BLOCK_ROWS) if rows is None else rows[s0:s0 + _BLOCK_ROWS]
        k = 0
        for v, c, lv, kp in zip(enc.values, enc.codes, enc.levels, enc.keep, strict=True):
            if not kp:
                continue
            if c is None:
                blk[:, k] = v[sel]
                k += 1
            else:
                cb = c[sel]
                hit = np.flatnonzero(cb > 0)
                blk[hit, k + cb[hit] - 1] = 1.0
                k += len(lv) - 1
        if centre is not None:
            blk -= centre
    return A


def _design_mean(enc: _Encoding, n: int) -> np.ndarray:
    """Column means of the dense design from the encoding (level shares for one-hot)."""
    out: list[float] = []
    for v, c, lv, kp in zip(enc.values, enc.codes, enc.levels, enc.keep, strict=True):
        if not kp:
            continue
        if c is None:
            out.append(float(v.mean()))
        else:
            out += (np.bincount(c, minlength=len(lv))[1:] / n).tolist()
    return np.asarray(out, dtype=float)


def _native_design(enc: _Encoding, n: int) -> np.ndarray:
    """The design for tree learners: one column per covariate, categories as level codes."""
    native = np.empty((n, len(enc.codes)))
    for b0 in range(0, n, _BLOCK_ROWS):
        blk = native[b0:b0 + _BLOCK_ROWS]
        for j, (v, c) in enumerate(zip(enc.values, enc.codes, strict=True)):
            blk[:, j] = (v if c is None else c)[b0:b0 + _BLOCK_ROWS]
    return native


def _prepare(
    data: pd.DataFrame, treatment: str, outcome: str, covariates: Sequence[str]
) -> _Prepared:
    cols = [treatment, outcome, *covariates]
    missing = [c for c in cols if c not in data.columns]
    if missing:
        raise KeyError(f"data lacks the column(s) {missing}; it has {list(data.columns)[:20]}")
    if len(data) == 0:
        raise ValueError("data has no rows")
    for col in cols:
        bad = data[col].isna().to_numpy()
        if bad.any():
            role = ("treatment" if col == treatment else "outcome" if col == outcome
                    else "covariate")
            raise ValueError(
                f"{role} column {col!r} has {int(bad.sum()):,} missing value(s) of "
                f"{len(data):,} rows (first at index {data.index[bad][0]!r}); impute them or "
                "drop those rows explicitly (and report it) before estimating"
            )
    traw = data[treatment]
    if traw.dtype == bool or str(traw.dtype) == "boolean":
        t = traw.astype(int).to_numpy()
    else:
        if not pd.api.types.is_numeric_dtype(traw):
            raise TypeError(
                f"treatment column {treatment!r} must be 0/1 or boolean, got dtype {traw.dtype} "
                f"(values such as {list(pd.unique(traw))[:5]})"
            )
        nonbin = ~traw.isin([0, 1]).to_numpy()
        if nonbin.any():
            raise ValueError(
                f"treatment column {treatment!r} must be binary 0/1: {int(nonbin.sum()):,} of "
                f"{len(traw):,} rows hold other values (e.g. {traw[nonbin].iloc[0]!r}); for "
                "several coupon designs, compare one design against no coupon at a time"
            )
        t = traw.astype(int).to_numpy()
    n1 = int(t.sum())
    if n1 == 0 or n1 == len(t):
        which = "treated" if n1 == 0 else "control"
        raise ValueError(
            f"treatment column {treatment!r} has no {which} rows ({n1:,} treated of "
            f"{len(t):,}); an effect needs both groups"
        )
    yraw = data[outcome]
    if not (yraw.dtype == bool or pd.api.types.is_numeric_dtype(yraw)):
        raise TypeError(f"outcome column {outcome!r} must be numeric or boolean, got {yraw.dtype}")
    y = yraw.astype(float).to_numpy()
    if np.all(y == y[0]):
        raise ValueError(
            f"outcome column {outcome!r} is constant ({y[0]:g} in all {len(y):,} rows): every "
            "effect estimate would be exactly 0 with no uncertainty; check the outcome window"
        )
    binary = bool(np.isin(np.unique(y), [0.0, 1.0]).all())
    cat_mask, enc = _encode(data, covariates)
    warns = _separation_checks(data, covariates, enc, t)
    return _Prepared(t=t, y=y, names=enc.names, binary_outcome=binary, warnings=warns,
                     cat_mask=cat_mask, encoding=enc)


def _separation_checks(
    data: pd.DataFrame, covariates: Sequence[str], enc: _Encoding, t: np.ndarray
) -> list[str]:
    """Complete separation by one design column is an error; a level seen in one arm a warning.

    Works on the encoding, not the dense design: a numeric column needs its range per arm, a
    one-hot column only its level's counts per arm (one bincount per covariate).
    """
    warns = []
    tb = t.astype(bool)
    n1, n0 = int(tb.sum()), int((~tb).sum())
    lo1: list[float] = []
    hi1: list[float] = []
    lo0: list[float] = []
    hi0: list[float] = []
    counts_of: list[np.ndarray | None] = []
    for v, c, kp in zip(enc.values, enc.codes, enc.keep, strict=True):
        if c is None:
            counts_of.append(None)
            if kp:
                v1, v0 = v[tb], v[~tb]
                lo1.append(v1.min())
                hi1.append(v1.max())
                lo0.append(v0.min())
                hi0.append(v0.max())
            continue
        counts = np.bincount(c * 2 + tb, minlength=2 * (int(c.max()) + 1)).reshape(-1, 2)
        counts_of.append(counts)
        # one-hot column of level j >= 1: among treated it is all 1 (min 1) when every treated
        # row has that level, and somewhere 1 (max 1) when any has
        for c0, c1 in counts[1:]:
            lo1.append(float(c1 == n1))
            hi1.append(float(c1 > 0))
            lo0.append(float(c0 == n0))
            hi0.append(float(c0 > 0))
    if enc.names:
        lo1a, hi1a, lo0a, hi0a = (np.asarray(a) for a in (lo1, hi1, lo0, hi0))
        sep = np.flatnonzero((lo1a > hi0a) | (hi1a < lo0a))
        if len(sep):
            j = sep[0]
            raise ValueError(
                f"perfect separation: covariate {enc.names[j]!r} alone separates treated (range "
                f"{lo1a[j]:g}..{hi1a[j]:g}) from control ({lo0a[j]:g}..{hi0a[j]:g}); "
                "there is no overlap, so no comparison is possible - drop the covariate if it "
                "is a consequence of treatment, or restrict the data to a common range"
            )
    for col, v, counts, levels in zip(covariates, enc.values, counts_of, enc.levels,
                                      strict=True):
        if counts is None:
            if not ((v == 0) | (v == 1)).all():
                continue  # levels only make sense for categories and 0/1 flags
            codes, levels = pd.factorize(data[col], sort=True)
            counts = np.bincount(codes * 2 + tb, minlength=2 * len(levels)).reshape(-1, 2)
        for j in np.flatnonzero((counts == 0).any(axis=1)):
            k0, k1 = int(counts[j, 0]), int(counts[j, 1])
            warns.append(
                f"quasi-separation: all {k1 + k0:,} rows with {col}={levels[j]} are "
                f"{'control' if k1 == 0 else 'treated'}; their propensity is 0 or 1 and "
                "they fall outside the overlap (trimming removes them for ipw/aipw); "
                "consider merging that level with another"
            )
    return warns


# --------------------------------------------------------------------------------------------
# learners
# --------------------------------------------------------------------------------------------
def _default_propensity():
    from promo_analysis.learners import LogisticIRLS

    # unpenalized, so that the fit is the maximum-likelihood logit of statsmodels
    return LogisticIRLS(C=np.inf, tol=_NEWTON_TOL)


def _default_outcome(binary: bool):
    from promo_analysis.learners import LeastSquares, LogisticIRLS

    if binary:
        # a barely-penalized logit: identical to ML in practice, but finite when a small arm
        # of a fold is (quasi-)separated
        return LogisticIRLS(C=1e6, tol=_NEWTON_TOL)
    return LeastSquares()


def _hgb(classifier: bool, cat_mask: np.ndarray | None) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    cls = HistGradientBoostingClassifier if classifier else HistGradientBoostingRegressor
    # native categorical splits on the level codes (no one-hot: 20 columns, not 60, to bin
    # and histogram); early stopping on a 10 % validation split ends the boosting once the
    # held-out loss stops improving. Learning rate 0.2, not 0.1: early stopping then ends
    # after ~40 % fewer trees (cross-fitting fits 15 models) at the same held-out loss
    cats = cat_mask if cat_mask is not None and cat_mask.any() else None
    return cls(categorical_features=cats, early_stopping=True, max_iter=100,
               learning_rate=_HGB_LEARNING_RATE, n_iter_no_change=10, random_state=0)


def _resolve_learners(
    learner: Any, binary: bool, cat_mask: np.ndarray | None = None
) -> tuple[Any, Any, bool, bool]:
    """Return (propensity, outcome, propensity_is_default_logit, uses_native_design)."""
    from sklearn.base import clone

    if learner is None or learner == "linear":
        return _default_propensity(), _default_outcome(binary), True, False
    if isinstance(learner, str):
        if learner == "hgb":
            return _hgb(True, cat_mask), _hgb(binary, cat_mask), False, True
        raise ValueError(f"learner must be None, 'linear', 'hgb', an estimator or a dict; "
                         f"got {learner!r}")
    if isinstance(learner, dict):
        unknown = set(learner) - {"propensity", "outcome"}
        if unknown:
            raise ValueError(f"learner dict keys must be 'propensity' and/or 'outcome', got "
                             f"{sorted(unknown)}")
        ps = learner.get("propensity")
        out = learner.get("outcome")
        default_ps = ps is None
        ps = _default_propensity() if ps is None else clone(ps)
        out = _default_outcome(binary) if out is None else clone(out)
    else:
        ps, out, default_ps = clone(learner), clone(learner), False
        if not binary and hasattr(out, "predict_proba"):
            raise ValueError(
                "a single classifier cannot model a continuous outcome; pass "
                "learner={'propensity': <classifier>, 'outcome': <regressor>}"
            )
    if not hasattr(ps, "predict_proba"):
        raise ValueError("the propensity learner must be a classifier with predict_proba")
    return ps, out, default_ps, False


def _fit(model: Any, blocks: list[np.ndarray], y: np.ndarray, role: str, notes: list[str],
         init: Any = None, record: bool = True) -> Any:
    """Fit a clone of ``model`` on the row-wise stack of ``blocks``; warnings become notes.

    The linear learners fit on the blocks directly and warm-start from ``init``, the previous
    fold's fit (same optimum, fewer Newton steps); other learners get one stacked copy.
    ``record=False`` leaves warnings to a ``catch_warnings`` of the caller (which is not
    thread-safe: fits in worker threads must not enter their own).
    """
    from contextlib import nullcontext

    from sklearn.base import clone

    from promo_analysis.learners import LeastSquares, LogisticIRLS

    m = clone(model)
    ctx = _warnings.catch_warnings(record=True) if record else nullcontext([])
    with ctx as caught:
        if record:
            _warnings.simplefilter("always")
        if isinstance(m, LogisticIRLS):
            if init is None and len(y) > _SUBSAMPLE_START:
                # start the first fold from a fit on a strided subsample: its Newton steps
                # are cheap and leave the full fit a few reused-Hessian steps from the optimum
                step = len(y) // (_SUBSAMPLE_START // 4)
                ys = np.split(y, np.cumsum([len(B) for B in blocks])[:-1])
                init = clone(model).fit(np.concatenate([B[::step] for B in blocks]),
                                        np.concatenate([yk[::step] for yk in ys]))
            m.fit_blocks(blocks, y, init=init)
            if not m.converged_:
                msg = (f"{role} model: the logistic fit did not converge in {m.max_iter} Newton "
                       "steps (separation?); predictions near 0/1 are unreliable")
                if msg not in notes:
                    notes.append(msg)
        elif isinstance(m, LeastSquares):
            m.fit_blocks(blocks, y)
        else:
            m.fit(blocks[0] if len(blocks) == 1 else np.concatenate(blocks), y)
    for w in caught:
        msg = f"{role} model: {w.category.__name__}: {str(w.message).splitlines()[0]}"
        if msg not in notes:
            notes.append(msg)
    return m


def _predict(m: Any, X: np.ndarray, proba: bool) -> np.ndarray:
    return m.predict_proba(X)[:, 1] if proba else m.predict(X)


def _folds(t: np.ndarray, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    n = len(t)
    if folds == 1:
        idx = np.arange(n)
        return [(idx, idx)]
    from sklearn.model_selection import StratifiedKFold

    skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return list(skf.split(np.zeros(n), t))


class _FoldLayout:
    """The design with rows sorted by (arm, fold): every training set of cross-fitting --
    all arms or one arm, all folds but one -- is then at most four contiguous views of one
    array, so a million-row design is copied once, not once per fold and model."""

    def __init__(self, X: np.ndarray | Callable[[np.ndarray], np.ndarray], t: np.ndarray,
                 fold: np.ndarray, nfolds: int, rows: np.ndarray | None = None):
        """``X``: the design in the original row order, or a function building the design
        of the given rows in that order (no copy in the original order first)."""
        rows = np.arange(len(t)) if rows is None else rows
        self.rows = rows[np.lexsort((fold[rows], t[rows]))]  # original row of each position
        self.X = X(self.rows) if callable(X) else X[self.rows]
        key = t[self.rows] * nfolds + fold[self.rows]
        edges = np.searchsorted(key, np.arange(2 * nfolds + 1))
        self.span = {(a, k): (int(edges[a * nfolds + k]), int(edges[a * nfolds + k + 1]))
                     for a in (0, 1) for k in range(nfolds)}
        self.nfolds = nfolds

    def pieces(self, arms: tuple[int, ...], folds: list[int]) -> list[tuple[int, int]]:
        out: list[tuple[int, int]] = []
        for a in arms:
            for k in folds:
                s, e = self.span[a, k]
                if e == s:
                    continue
                if out and out[-1][1] == s:
                    out[-1] = (out[-1][0], e)
                else:
                    out.append((s, e))
        return out

    def train(self, arms: tuple[int, ...], k: int) -> list[tuple[int, int]]:
        others = [j for j in range(self.nfolds) if j != k] or [k]  # folds=1: fit = predict
        return self.pieces(arms, others)


# --------------------------------------------------------------------------------------------
# diagnostics
# --------------------------------------------------------------------------------------------
def _weights(e: np.ndarray, t: np.ndarray, estimand: str) -> np.ndarray:
    if estimand == "ate":
        return np.where(t == 1, 1 / e, 1 / (1 - e))
    return np.where(t == 1, 1.0, e / (1 - e))


def balance_table(
    X: pd.DataFrame, t: np.ndarray, weights: np.ndarray | None = None
) -> pd.DataFrame:
    """Standardized mean differences of covariates before and (optionally) after weighting.

    SMD = (mean_treated - mean_control) / sqrt((var_treated + var_control) / 2), with the
    denominator always the *unweighted* variances so that before and after are on one scale
    (Austin & Stuart 2015). Weighted means use ``weights`` within each group.

    Returns
    -------
    DataFrame
        Index: covariate (one-hot columns named ``col=level``); columns ``mean_treated``,
        ``mean_control``, ``smd_before`` and, with weights, ``mean_treated_weighted``,
        ``mean_control_weighted``, ``smd_after``.
    """
    A = X.to_numpy(dtype=float)
    return _balance(A, X.columns, np.asarray(t), None, weights)


#: rows per block of the balance table's sums (two small matrix products per block)
_BALANCE_ROWS = 32768


def _balance(
    A: np.ndarray, names: Sequence[str], t: np.ndarray, keep: np.ndarray | None,
    weights: np.ndarray | None, offset: np.ndarray | None = None,
) -> pd.DataFrame:
    """:func:`balance_table` of the rows ``keep`` of ``A`` (all if None) without copying them.

    ``weights`` is over all rows of ``A`` (ignored outside ``keep``); ``offset`` is added to
    the reported means (``A`` may be a centred design). Group sums, weighted sums and sums of
    squares come from one pass over ``A`` in blocks of rows, each two small matrix products;
    the squares are taken about the first block's mean, so the variances do not cancel
    catastrophically for columns far from zero.
    """
    n, p = A.shape
    tb = np.asarray(t).astype(bool)
    kp = np.ones(n, dtype=bool) if keep is None else np.asarray(keep, dtype=bool)
    s1, s0 = (tb & kp).astype(float), (~tb & kp).astype(float)
    rows = [s1, s0]
    if weights is not None:
        w = np.asarray(weights, dtype=float)
        rows += [np.where(kp & tb, w, 0.0), np.where(kp & ~tb, w, 0.0)]
    S = np.stack(rows)
    a = A[:_BALANCE_ROWS].mean(axis=0) if n else np.zeros(p)
    M = np.zeros((len(rows), p))
    Q = np.zeros((2, p))
    for b0 in range(0, n, _BALANCE_ROWS):
        B = A[b0:b0 + _BALANCE_ROWS] - a
        M += S[:, b0:b0 + _BALANCE_ROWS] @ B
        B *= B
        Q += S[:2, b0:b0 + _BALANCE_ROWS] @ B
    shift = a if offset is None else a + offset
    k1, k0 = s1.sum(), s0.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        d1, d0 = M[0] / k1, M[1] / k0  # group means about ``a``
        v1 = np.clip(Q[0] - k1 * d1**2, 0, None) / (k1 - 1) if k1 > 1 else np.zeros(p)
        v0 = np.clip(Q[1] - k0 * d0**2, 0, None) / (k0 - 1) if k0 > 1 else np.zeros(p)
        sd = np.sqrt((v1 + v0) / 2)
        out = pd.DataFrame(
            {"mean_treated": d1 + shift, "mean_control": d0 + shift,
             "smd_before": (d1 - d0) / sd},
            index=pd.Index(list(names), name="covariate"),
        )
        if weights is not None:
            dw1, dw0 = M[2] / S[2].sum(), M[3] / S[3].sum()
            out["mean_treated_weighted"] = dw1 + shift
            out["mean_control_weighted"] = dw0 + shift
            out["smd_after"] = (dw1 - dw0) / sd
    return out


def _ess(w: np.ndarray) -> float:
    return float(w.sum() ** 2 / np.sum(w**2)) if len(w) else 0.0


def _overlap_summary(e: np.ndarray, t: np.ndarray) -> pd.DataFrame:
    rows = {}
    for name, mask in (("treated", t == 1), ("control", t == 0)):
        q = np.quantile(e[mask], [0, 0.01, 0.05, 0.5, 0.95, 0.99, 1])
        rows[name] = {"n": int(mask.sum()),
                      **dict(zip(("min", "p01", "p05", "median", "p95", "p99", "max"),
                                 q.tolist(), strict=True))}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("group")


# --------------------------------------------------------------------------------------------
# estimators (on prepared arrays)
# --------------------------------------------------------------------------------------------
def _cluster_se(u: np.ndarray, groups: np.ndarray | None) -> float:
    """SE from per-unit contributions ``u`` (estimate - truth ~ sum(u)).

    With ``groups`` the contributions are summed within each cluster first (Liang & Zeger
    1986), with the small-sample factor ``G / (G - 1)``.
    """
    if groups is None:
        return float(np.sqrt(np.sum(u**2)))
    sums = np.bincount(groups, weights=u)
    G = int(np.count_nonzero(np.bincount(groups)))
    if G < 2:
        raise ValueError(f"cluster-robust SEs need at least 2 clusters, got {G}")
    return float(np.sqrt(G / (G - 1) * np.sum(sums**2)))


def _naive(
    y: np.ndarray, t: np.ndarray, groups: np.ndarray | None = None
) -> tuple[float, float, dict[str, float]]:
    y1, y0 = y[t == 1], y[t == 0]
    est = y1.mean() - y0.mean()
    if groups is None:
        se = np.sqrt(y1.var(ddof=1) / len(y1) + y0.var(ddof=1) / len(y0))
    else:
        u = np.where(t == 1, (y - y1.mean()) / len(y1), -(y - y0.mean()) / len(y0))
        se = _cluster_se(u, groups)
    return float(est), float(se), {"pom1": float(y1.mean()), "pom0": float(y0.mean())}


def _regression(
    y: np.ndarray, t: np.ndarray, X: np.ndarray, estimand: str,
    groups: np.ndarray | None = None,
) -> tuple[float, float, dict[str, float]]:
    """Lin (2013) interacted OLS, covariates centred at the target population's mean.

    The HC2 variance treats the centring point as fixed; the effect averaged over the target
    population also varies with its sample covariate mean, which adds ``g' S g / m`` (``g`` the
    interaction coefficients, ``S`` the covariance of X in the target population of size
    ``m``; Imbens & Wooldridge 2009, sec. 5.3). With ``groups``, both parts enter one
    per-unit influence function (OLS: row of ``(D'D)^-1 d_i e_i``; centre: ``g'(x_i - xbar)/m``)
    summed within clusters.
    """
    import statsmodels.api as sm

    in_target = np.ones(len(y), dtype=bool) if estimand == "ate" else t == 1
    target = X[in_target]
    centre = target.mean(axis=0)
    Xc = X - centre
    k = X.shape[1]
    design = np.column_stack([np.ones(len(y)), t, Xc, t[:, None] * Xc])
    if groups is None:
        res = sm.OLS(y, design).fit(cov_type="HC2")
        est, var = float(res.params[1]), float(res.bse[1]) ** 2
        if k:
            g = np.asarray(res.params[2 + k:])
            S = np.atleast_2d(np.cov(target, rowvar=False))
            var += float(g @ S @ g) / len(target)
        se = float(np.sqrt(var))
        params = np.asarray(res.params)
    else:
        params, *_ = np.linalg.lstsq(design, y, rcond=None)
        est = float(params[1])
        a = np.linalg.pinv(design.T @ design)[1]
        u = (design @ a) * (y - design @ params)
        if k:
            u = u + np.where(in_target, Xc @ params[2 + k:], 0.0) / len(target)
        se = _cluster_se(u, groups)
    return est, se, {"pom0": float(params[0]), "pom1": float(params[0] + est)}


def _ipw(
    y: np.ndarray, t: np.ndarray, e: np.ndarray, estimand: str
) -> tuple[float, np.ndarray, np.ndarray, dict[str, float]]:
    """Normalized (Hajek) IPW.

    Returns the estimate, its influence function ``psi`` (per row), the per-row derivative
    ``f`` of the estimating function with respect to the logit index (for the correction for
    an estimated logistic propensity, see :func:`_logit_correction`) and the potential-outcome
    means.
    """
    if estimand == "ate":
        a1, a0 = t / e, (1 - t) / (1 - e)
        W1, W0 = a1.mean(), a0.mean()
        mu1, mu0 = np.sum(a1 * y) / a1.sum(), np.sum(a0 * y) / a0.sum()
        psi = a1 * (y - mu1) / W1 - a0 * (y - mu0) / W0
        f = -t * (1 - e) / e * (y - mu1) / W1 - (1 - t) * e / (1 - e) * (y - mu0) / W0
    else:
        p = t.mean()
        r = (1 - t) * e / (1 - e)
        W0 = r.mean()
        mu1, mu0 = y[t == 1].mean(), np.sum(r * y) / r.sum()
        psi = t * (y - mu1) / p - r * (y - mu0) / W0
        f = -r * (y - mu0) / W0
    return float(mu1 - mu0), psi, f, {"pom1": float(mu1), "pom0": float(mu0)}


def _aipw(
    y: np.ndarray, t: np.ndarray, e: np.ndarray, m0: np.ndarray, m1: np.ndarray,
    estimand: str,
) -> tuple[float, np.ndarray, np.ndarray, dict[str, float]]:
    """Augmented IPW; returns estimate, influence function, logit-index derivative, POMs."""
    if estimand == "ate":
        phi1 = m1 + t * (y - m1) / e
        phi0 = m0 + (1 - t) * (y - m0) / (1 - e)
        psi = phi1 - phi0
        est = psi.mean()
        pom = {"pom1": float(phi1.mean()), "pom0": float(phi0.mean())}
        infl = psi - est
        f = -t * (1 - e) / e * (y - m1) - (1 - t) * e / (1 - e) * (y - m0)
    else:
        p = t.mean()
        r = (1 - t) * e / (1 - e)
        num = t * (y - m0) - r * (y - m0)
        est = num.sum() / t.sum()
        infl = (num - t * est) / p
        f = -r * (y - m0) / p
        mu1 = y[t == 1].mean()
        pom = {"pom1": float(mu1), "pom0": float(mu1 - est)}
    return float(est), infl, f, pom


def _logit_correction(
    Xl: np.ndarray, t: np.ndarray, e: np.ndarray, f: np.ndarray, nk: int
) -> np.ndarray:
    """Per-unit term that adds the estimation of a logistic propensity (all ``n`` rows).

    The estimate depends on the logit coefficients ``gamma`` through ``e``; to first order
    it moves by ``dpsi' (gamma_hat - gamma)`` with ``dpsi = mean_kept(f_i [1, x_i])`` (``f``
    the derivative of the estimating function with respect to the logit index) and
    ``gamma_hat - gamma = mean_all(H^-1 s_i)``, ``s_i = (t_i - e_i) [1, x_i]``,
    ``H = mean_all(e (1 - e) [1, x] [1, x]')`` (M-estimation stacking; Lunceford & Davidian
    2004). Cross-fitted fold fits share this first-order term. ``f`` is over all ``n`` rows,
    zero for the trimmed ones (no copy of the kept rows of ``Xl``); ``nk`` rows were kept.
    Returns ``s_i' H^-1 dpsi / n``.
    """
    from promo_analysis.learners import solve_psd, weighted_gram

    n = len(t)
    dpsi = np.concatenate([[f.sum()], f @ Xl]) / nk
    v = solve_psd(weighted_gram(Xl, e * (1 - e)) / n, dpsi)
    return (t - e) * (v[0] + Xl @ v[1:]) / n


# --------------------------------------------------------------------------------------------
# the public estimator
# --------------------------------------------------------------------------------------------
def _core(
    prep: _Prepared, method: str, estimand: str, folds: int, learner: Any,
    trim: tuple[float, float] | None, seed: int, with_diagnostics: bool,
) -> tuple[float, float, dict[str, float], dict[str, Any], list[str]]:
    from threadpoolctl import threadpool_limits

    # every BLAS call here is a product of a tall, thin design (in row blocks or whole) with
    # a vector or a small block: memory-bound, so a second BLAS thread buys little, and on a
    # busy machine OpenBLAS threads that wait for each other cost 5-30x the CPU time
    with threadpool_limits(limits=1, user_api="blas"):
        return _core_blas1(prep, method, estimand, folds, learner, trim, seed,
                           with_diagnostics)


def _core_blas1(
    prep: _Prepared, method: str, estimand: str, folds: int, learner: Any,
    trim: tuple[float, float] | None, seed: int, with_diagnostics: bool,
) -> tuple[float, float, dict[str, float], dict[str, Any], list[str]]:
    t, y, names = prep.t, prep.y, prep.names
    p = len(names)
    notes: list[str] = []
    diag: dict[str, Any] = {"n_treated": int(t.sum()), "n_control": int(len(t) - t.sum())}
    groups = prep.groups
    if method == "naive" and not with_diagnostics:
        est, se, pom = _naive(y, t, groups)
        return est, se, pom, diag, notes
    ps_model, out_model, default_ps, native = _resolve_learners(
        learner, prep.binary_outcome, prep.cat_mask)
    splits = _folds(t, folds, seed)
    fold = np.empty(len(t), dtype=np.int64)
    for k, (_, test) in enumerate(splits):
        fold[test] = k
    centre = prep.design_mean() if p else None

    def layout(rows: np.ndarray | None = None) -> _FoldLayout | None:
        if p == 0:
            return None
        if native:  # tree learners split on the raw covariates, categories as level codes
            return _FoldLayout(prep.native_design(), t, fold, len(splits), rows)
        # a centred design conditions the Newton fits of the linear learners; predictions of
        # models with an intercept do not change. Built straight in fold order from the
        # encoding: no design in the original order, no second copy
        if prep.dense is None and prep.encoding is not None:
            return _FoldLayout(lambda r: _dense_design(prep.encoding, len(t), r, centre), t,
                               fold, len(splits), rows)
        lay = _FoldLayout(prep.design(), t, fold, len(splits), rows)
        lay.X -= centre
        return lay

    lay = lay_ps = layout()

    e = np.empty(len(t))
    if lay is None:  # no covariates: the propensity is the treated share
        e[:] = t.mean()
    else:
        tp = t[lay.rows]
        prev = None
        for k in range(len(splits)):
            pcs = lay.train((0, 1), k)
            prev = _fit(ps_model, [lay.X[a:b] for a, b in pcs],
                        np.concatenate([tp[a:b] for a, b in pcs]), "propensity", notes, prev)
            for a, b in lay.pieces((0, 1), [k]):
                e[lay.rows[a:b]] = _predict(prev, lay.X[a:b], True)
    n_extreme = int(((e < _EXTREME) | (e > 1 - _EXTREME)).sum())
    if n_extreme:
        notes.append(
            f"{n_extreme:,} rows have an estimated propensity within {_EXTREME:g} of 0 or 1: "
            "(quasi-)perfect separation - some covariate pattern predicts treatment exactly; "
            "those rows have no comparable counterpart"
        )
    e_fit = e  # the fitted propensities, before any clipping: the logit's own scores use them
    keep = np.ones(len(t), dtype=bool)
    if trim is not None and method in ("ipw", "aipw"):
        lo, hi = trim
        if not 0 <= lo < hi <= 1:
            raise ValueError(f"trim must be (low, high) with 0 <= low < high <= 1, got {trim}")
        keep = (e >= lo) & (e <= hi)
    else:
        # without trimming the weights still need finite propensities
        e = np.clip(e, _EXTREME, 1 - _EXTREME) if method in ("ipw", "aipw") else e
    n_trim = int((~keep).sum())
    trimmed_by_arm = {"treated": int((~keep & (t == 1)).sum()),
                      "control": int((~keep & (t == 0)).sum())}
    diag["rows_trimmed"] = n_trim
    diag["trimmed_by_arm"] = trimmed_by_arm
    if n_trim:
        notes.append(
            f"{n_trim:,} of {len(t):,} rows ({trimmed_by_arm['treated']:,} treated, "
            f"{trimmed_by_arm['control']:,} control) had a propensity outside {tuple(trim)} and "
            "were dropped: the estimate refers to the population with overlap"
        )
    tk, yk, ek = t[keep], y[keep], e[keep]
    if tk.sum() == 0 or tk.sum() == len(tk):
        raise ValueError(
            f"after trimming propensities to {trim}, no {'treated' if tk.sum() == 0 else 'control'} "
            "rows remain: treated and control do not overlap; loosen trim or restrict the "
            "covariates"
        )

    if method == "naive":
        est, se, pom = _naive(y, t, groups)
    elif method == "regression":
        est, se, pom = _regression(y, t.astype(float), prep.design(), estimand, groups)
    elif method == "ipw":
        est, psi, f, pom = _ipw(yk, tk, ek, estimand)
    else:
        m0 = np.empty(len(t))
        m1 = np.empty(len(t))
        # outcome models on the trimmed sample, cross-fitted on the same folds
        proba = prep.binary_outcome and hasattr(out_model, "predict_proba")
        if lay is not None and n_trim:
            lay = None  # free it before building the layout of the kept rows
            lay = layout(np.flatnonzero(keep))
        arms = [(0, m0)] if estimand == "att" else [(0, m0), (1, m1)]

        def cross_fit(arm: int, target: np.ndarray, record: bool) -> list[str]:
            arm_notes: list[str] = []
            if lay is None:
                # nothing to overfit: the full-sample arm mean (AIPW = difference in means)
                target[:] = y[keep & (t == arm)].mean()
                return arm_notes
            yp = y[lay.rows]
            prev = None
            for k in range(len(splits)):
                pcs = lay.train((arm,), k)
                if not pcs:
                    raise ValueError(f"a training fold has no {'treated' if arm else 'control'}"
                                     " rows; use fewer folds")
                yr = np.concatenate([yp[a:b] for a, b in pcs])
                test = lay.pieces((0, 1), [k])
                if np.all(yr == yr[0]):
                    # e.g. nobody in this arm of this fold sent: predict that constant
                    for a, b in test:
                        target[lay.rows[a:b]] = yr[0]
                    continue
                prev = _fit(out_model, [lay.X[a:b] for a, b in pcs],
                            yr.astype(int) if proba else yr, "outcome", arm_notes, prev,
                            record)
                for a, b in test:
                    target[lay.rows[a:b]] = _predict(prev, lay.X[a:b], proba)
            return arm_notes

        from promo_analysis.learners import LeastSquares, LogisticIRLS

        if lay is not None and len(arms) == 2 and isinstance(out_model,
                                                             (LogisticIRLS, LeastSquares)):
            # the two arms' fold chains are independent and numpy/BLAS release the GIL: one
            # thread each uses both cores (tree learners already use them through OpenMP)
            from concurrent.futures import ThreadPoolExecutor

            with _warnings.catch_warnings(record=True) as caught:
                _warnings.simplefilter("always")
                with ThreadPoolExecutor(max_workers=2) as pool:
                    futures = [pool.submit(cross_fit, arm, target, False)
                               for arm, target in arms]
                    per_arm = [fut.result() for fut in futures]
            for w in caught:
                per_arm.append([f"outcome model: {w.category.__name__}: "
                                f"{str(w.message).splitlines()[0]}"])
        else:
            per_arm = [cross_fit(arm, target, True) for arm, target in arms]
        for arm_notes in per_arm:
            notes.extend(m for m in arm_notes if m not in notes)
        est, psi, f, pom = _aipw(yk, tk, ek, m0[keep], m1[keep], estimand)
    if method in ("ipw", "aipw"):
        # per-unit contributions over all n rows (trimmed rows still shaped the propensity)
        u = np.zeros(len(t))
        u[keep] = psi / len(tk)
        if default_ps and lay_ps is not None and not native:
            # in layout order: the centred design is not copied back to the original order
            r = lay_ps.rows
            f_all = np.zeros(len(t))
            f_all[keep] = f
            u[r] += _logit_correction(lay_ps.X, t[r], e_fit[r], f_all[r], len(tk))
        se = _cluster_se(u, groups)

    if with_diagnostics:
        w = _weights(ek, tk, estimand)
        bal = None
        if p:
            w_all = np.zeros(len(t))
            w_all[keep] = w
            if lay_ps is not None and not native:  # the centred design, in layout order
                r = lay_ps.rows
                bal = _balance(lay_ps.X, names, t[r], keep[r], w_all[r], offset=centre)
            else:
                bal = _balance(prep.design(), names, t, keep, w_all)
        diag["balance"] = bal
        diag["ess"] = {"treated": _ess(w[tk == 1]), "control": _ess(w[tk == 0])}
        diag["overlap"] = _overlap_summary(e, t)
        diag["propensity"] = pd.DataFrame({"propensity": e, "treated": t, "trimmed": ~keep})
        if bal is not None:
            col = "smd_after" if method in ("ipw", "aipw") else "smd_before"
            bad = bal.index[np.abs(bal[col].to_numpy()) > SMD_THRESHOLD].tolist()
            diag["max_abs_smd"] = float(np.nanmax(np.abs(bal[col].to_numpy())))
            if bad and method in ("ipw", "aipw"):
                notes.append(
                    f"after weighting, {len(bad)} covariate(s) still differ by |SMD| > "
                    f"{SMD_THRESHOLD}: {bad[:5]}; the propensity model may be misspecified "
                    "(try learner='hgb' or interactions)"
                )
        ess_c = diag["ess"]["control"]
        if ess_c < 0.1 * (len(tk) - tk.sum()):
            notes.append(
                f"the weighted control group is worth only {ess_c:,.0f} of its "
                f"{int(len(tk) - tk.sum()):,} rows (effective sample size): a few rows carry "
                "the estimate; check overlap"
            )
    diag["n_used"] = int(keep.sum()) if method in ("ipw", "aipw") else len(t)
    return est, se, pom, diag, notes


def estimate_effect(
    data: pd.DataFrame,
    treatment: str = "got_coupon",
    outcome: str = "sent_within_window",
    covariates: Sequence[str] = (),
    method: str = "aipw",
    estimand: str = "ate",
    folds: int = 5,
    learner: Any = None,
    trim: tuple[float, float] | None = (0.01, 0.99),
    seed: int = 0,
    alpha: float = 0.05,
    bootstrap: int = 0,
    cluster: str | None = None,
) -> Estimate:
    """Effect of a binary treatment on an outcome under selection on observed covariates.

    Parameters
    ----------
    data : DataFrame
        One row per unit (e.g. ``features.first_use_table(ds)``).
    treatment : str
        0/1 or boolean column (e.g. ``got_coupon``).
    outcome : str
        Numeric or boolean outcome (e.g. ``sent_within_window``, or revenue in yuan).
    covariates : sequence of str
        Pre-treatment confounders. Strings/categories are one-hot encoded (first level
        dropped); booleans become 0/1. Missing values are an error.
    method : {"naive", "regression", "ipw", "aipw"}
        ``naive`` difference in means; ``regression`` Lin-interacted OLS with HC2 SE;
        ``ipw`` normalized inverse-probability weighting; ``aipw`` augmented IPW (doubly
        robust), cross-fitted over ``folds``.
    estimand : {"ate", "att"}
        Average effect over everyone, or over the treated (coupon recipients).
    folds : int
        Cross-fitting folds for the propensity and outcome models (1 = fit and predict on the
        full sample, as statsmodels' ``TreatmentEffect``).
    learner : None, "linear", "hgb", estimator or dict
        ``None``/``"linear"``: unpenalized logistic propensity, logistic (binary outcome) or
        linear outcome models (:mod:`promo_analysis.learners`: Newton fits, warm-started
        across folds). ``"hgb"``: histogram gradient boosting for both, on the covariates
        with native categorical splits and early stopping. A single
        scikit-learn classifier is used for both models (binary outcomes only); a dict
        ``{"propensity": classifier, "outcome": estimator}`` sets each (a missing key keeps
        the default). Outcome models are fitted separately in treated and control.
    trim : (low, high) or None
        Rows with an estimated propensity outside ``[low, high]`` are dropped (``ipw`` and
        ``aipw`` only), counted in ``diagnostics["rows_trimmed"]`` and reported in
        ``warnings``. ``None`` keeps all rows (propensities are then clipped at 1e-6).
    seed : int
        Seed for the fold split and the bootstrap.
    alpha : float
        1 - confidence level.
    bootstrap : int
        If > 0, that many nonparametric bootstrap replicates of the whole procedure; the
        reported SE is the bootstrap SD and the CI the percentile interval (the analytic ones
        stay in ``extra["se_analytic"]``, ``extra["ci_analytic"]``). With ``cluster``, whole
        clusters are resampled.
    cluster : str, optional
        Column identifying clusters of rows that are not independent -- e.g. ``customer_id``
        in ``features.first_use_table``, where one customer can be a not-yet-treated control
        row and later a treated row. The influence-function contributions (for
        ``regression``: of the OLS fit and the target-population mean) are summed within
        clusters before squaring (cluster-robust SE, factor ``G / (G - 1)``); the point
        estimate does not change.

    Returns
    -------
    Estimate
        ``estimate`` is a difference (of probabilities for a 0/1 outcome). ``extra`` holds the
        potential-outcome means ``pom1``, ``pom0`` of the target population. ``diagnostics``:
        ``overlap`` (propensity quantiles by group), ``propensity`` (per-row frame for the
        overlap histogram), ``balance`` (SMD before/after weighting), ``ess``,
        ``rows_trimmed``, ``trimmed_by_arm``, ``n_treated``, ``n_control``, ``n_used``.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if estimand not in ESTIMANDS:
        raise ValueError(f"estimand must be one of {ESTIMANDS}, got {estimand!r}")
    if not isinstance(folds, (int, np.integer)) or folds < 1:
        raise ValueError(f"folds must be a positive integer, got {folds!r}")
    covariates = list(covariates)
    clash = [c for c in covariates if c in (treatment, outcome)]
    if clash:
        raise ValueError(f"covariates must not include the treatment or outcome column: {clash}")
    prep = _prepare(data, treatment, outcome, covariates)
    if cluster is not None:
        prep.groups = _cluster_codes(data, cluster, (treatment, outcome, *covariates))
    smaller = int(min(prep.t.sum(), len(prep.t) - prep.t.sum()))
    if folds > 1 and smaller < folds:
        raise ValueError(
            f"the smaller group has only {smaller} row(s), fewer than folds={folds}: every "
            "cross-fitting fold needs treated and control rows; use folds <= that number"
        )
    est, se, pom, diag, notes = _core(prep, method, estimand, folds, learner, trim, seed, True)
    warns = prep.warnings + notes
    extra: dict[str, Any] = dict(pom)
    kwargs: dict[str, Any] = {}
    if bootstrap and bootstrap > 0:
        rng = np.random.default_rng(seed)
        draws = []
        n = len(prep.t)
        failed = 0
        for b in range(int(bootstrap)):
            idx, sub_groups = _resample(prep.groups, n, rng)
            sub = _Prepared(prep.t[idx], prep.y[idx], prep.names, prep.binary_outcome, [],
                            sub_groups, cat_mask=prep.cat_mask,
                            encoding=prep.encoding.take(idx))
            if sub.t.sum() in (0, n):
                failed += 1
                continue
            try:
                draws.append(_core(sub, method, estimand, folds, learner, trim, seed + b + 1,
                                   False)[0])
            except ValueError:
                failed += 1
        draws_a = np.asarray(draws)
        if failed:
            warns.append(f"{failed} of {bootstrap} bootstrap replicates failed and were skipped")
        extra["se_analytic"] = se
        lo_a, hi_a, _ = _normal(est, se, alpha)
        extra["ci_analytic"] = (lo_a, hi_a)
        diag["bootstrap"] = draws_a
        se_b = float(draws_a.std(ddof=1))
        lo, hi = np.quantile(draws_a, [alpha / 2, 1 - alpha / 2])
        p = float(2 * stats.norm.sf(abs(est) / se_b)) if se_b > 0 else np.nan
        return Estimate(
            estimate=est, se=se_b, ci_low=float(lo), ci_high=float(hi), n=len(prep.t),
            method=f"{method}+bootstrap", alpha=alpha, estimand=estimand,
            label=f"{treatment} -> {outcome}", pvalue=p, diagnostics=diag, warnings=warns,
            extra=extra,
        )
    return Estimate.from_normal(
        est, se, n=diag["n_used"], method=method, alpha=alpha, estimand=estimand,
        label=f"{treatment} -> {outcome}", diagnostics=diag, warnings=warns, extra=extra,
        **kwargs,
    )


def _cluster_codes(data: pd.DataFrame, cluster: str, used: Sequence[str]) -> np.ndarray:
    if cluster not in data.columns:
        raise KeyError(f"cluster column {cluster!r} is not in data; it has "
                       f"{list(data.columns)[:20]}")
    if cluster in used:
        raise ValueError(f"cluster column {cluster!r} must not be the treatment, outcome or a "
                         "covariate")
    codes, uniques = pd.factorize(data[cluster])
    if (codes < 0).any():
        raise ValueError(
            f"cluster column {cluster!r} has {int((codes < 0).sum()):,} missing value(s) of "
            f"{len(codes):,} rows; every row needs a cluster (give singletons their own id)"
        )
    if len(uniques) < 2:
        raise ValueError(f"cluster column {cluster!r} has {len(uniques)} cluster(s); "
                         "cluster-robust SEs need at least 2")
    return codes


def _resample(
    groups: np.ndarray | None, n: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray | None]:
    """Bootstrap row indices: rows, or whole clusters (each draw a new cluster id)."""
    if groups is None:
        return rng.integers(0, n, n), None
    order = np.argsort(groups, kind="stable")
    sizes = np.bincount(groups)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    pick = rng.integers(0, len(sizes), len(sizes))
    lengths = sizes[pick]
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    within = np.arange(int(lengths.sum())) - np.repeat(offsets, lengths)
    idx = order[np.repeat(starts[pick], lengths) + within]
    return idx, np.repeat(np.arange(len(pick)), lengths)


def _normal(est: float, se: float, alpha: float) -> tuple[float, float, float]:
    from promo_analysis.results import normal_interval

    return normal_interval(est, se, alpha=alpha)


# --------------------------------------------------------------------------------------------
# sensitivity
# --------------------------------------------------------------------------------------------
def _e_of_rr(rr: float) -> float:
    if not np.isfinite(rr) or rr <= 0:
        return np.nan
    r = rr if rr >= 1 else 1 / rr
    return float(r + np.sqrt(r * (r - 1)))


def e_value(
    estimate: float | Estimate,
    ci: tuple[float, float] | None = None,
    *,
    scale: str = "rd",
    baseline: float | None = None,
) -> dict[str, float]:
    """E-value (VanderWeele & Ding 2017): how strong unmeasured confounding must be to explain
    an effect away.

    The E-value of a risk ratio ``RR >= 1`` is ``RR + sqrt(RR (RR - 1))`` (for ``RR < 1`` use
    ``1/RR``): the minimum strength of association, on the risk-ratio scale, that an unmeasured
    confounder would need with both treatment and outcome to move the estimate to the null.
    For the confidence limit closest to the null it says how strong it must be to make the
    interval include the null (1 if it already does).

    Parameters
    ----------
    estimate : float or Estimate
        A risk ratio (``scale="rr"``) or a risk difference (``scale="rd"``). An
        :class:`Estimate` from :func:`estimate_effect` supplies its CI and ``extra["pom0"]``
        as the baseline.
    ci : (low, high), optional
        Confidence interval on the same scale.
    scale : {"rd", "rr"}
    baseline : float
        For ``scale="rd"``: the outcome rate without treatment in the target population
        (e.g. ``pom0``); RD is converted as ``RR = (baseline + RD) / baseline``, treating the
        baseline as known.

    Returns
    -------
    dict
        ``rr``, ``rr_low``, ``rr_high`` (NaN without CI), ``e_value``, ``e_value_ci``.
    """
    if isinstance(estimate, Estimate):
        ci = ci if ci is not None else estimate.ci
        if baseline is None and scale == "rd":
            baseline = estimate.extra.get("pom0")
        estimate = estimate.estimate
    if scale not in ("rd", "rr"):
        raise ValueError(f"scale must be 'rd' or 'rr', got {scale!r}")
    if scale == "rd":
        if baseline is None or not 0 < baseline < 1:
            raise ValueError(f"scale='rd' needs a baseline rate in (0, 1), got {baseline!r}")

        def conv(v: float) -> float:
            return (baseline + v) / baseline
    else:
        def conv(v: float) -> float:
            return v

    rr = conv(float(estimate))
    out = {"rr": rr, "rr_low": np.nan, "rr_high": np.nan, "e_value": _e_of_rr(rr),
           "e_value_ci": np.nan}
    if ci is not None:
        lo, hi = conv(ci[0]), conv(ci[1])
        out["rr_low"], out["rr_high"] = lo, hi
        if lo <= 1 <= hi:
            out["e_value_ci"] = 1.0
        else:
            out["e_value_ci"] = _e_of_rr(lo if rr > 1 else hi)
    return out


def negative_control(
    data: pd.DataFrame,
    treatment: str,
    negative_outcome: str,
    covariates: Sequence[str] = (),
    **kwargs: Any,
) -> Estimate:
    """Estimate the "effect" on an outcome the treatment cannot have caused.

    Example: a first parcel sent in the 30 days *before* the index date cannot be caused by a
    coupon issued on it. An interval excluding zero signals residual confounding or a broken
    index date (Lipsitch, Tchetgen Tchetgen & Cohen 2010). ``kwargs`` go to
    :func:`estimate_effect`. ``extra["passed"]`` is True when the CI covers 0; otherwise a
    warning is added.
    """
    est = estimate_effect(data, treatment=treatment, outcome=negative_outcome,
                          covariates=covariates, **kwargs)
    est.label = f"negative control: {treatment} -> {negative_outcome}"
    passed = est.covers(0.0)
    est.extra["passed"] = passed
    if not passed:
        est.warnings.append(
            f"negative control failed: the estimated effect on {negative_outcome!r}, which "
            f"{treatment!r} cannot cause, is {est.estimate:.4g} (CI {est.ci_low:.4g} to "
            f"{est.ci_high:.4g}); suspect unmeasured confounding or a wrong index date"
        )
    return est
