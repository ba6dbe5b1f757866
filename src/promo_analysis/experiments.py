"""Randomized coupon tests: arm-vs-control comparisons, sample-ratio checks, heterogeneity, power.

Every comparison is a difference of means (rates, for a 0/1 outcome) of one arm against the
control arm, with

* a Newcombe hybrid-score interval (binary outcomes, the default) or a Wald interval,
* a Welch interval for continuous outcomes such as revenue (yuan),
* a Lin (2013) interacted regression with HC2 robust standard errors when ``covariates`` are
  given (CUPED-style variance reduction that stays unbiased under randomization),
* the relative lift ``arm mean / control mean - 1`` with a delta-method interval on the log
  ratio,
* Holm-adjusted p-values across the arms of one test.

Methods, formulas and references: ``docs/methods.md`` section 5.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, stats

from promo_analysis.results import TableResult

__all__ = [
    "compare_arms",
    "srm_test",
    "by_segment",
    "power",
    "sample_size",
    "minimum_detectable_effect",
    "wilson_interval",
    "newcombe_interval",
]

SRM_ALPHA = 0.001


# --------------------------------------------------------------------------------------------
# input checks
# --------------------------------------------------------------------------------------------
def _require_columns(data: pd.DataFrame, columns: Sequence[str], what: str = "data") -> None:
    missing = [c for c in columns if c not in data.columns]
    if missing:
        raise KeyError(
            f"{what} lacks the column(s) {missing}; it has {list(data.columns)[:20]}"
        )


def _no_missing(data: pd.DataFrame, columns: Sequence[str], what: str = "data") -> None:
    for col in columns:
        bad = data[col].isna()
        if bad.any():
            example = data.index[bad.to_numpy()][0]
            raise ValueError(
                f"{what}: column {col!r} has {int(bad.sum()):,} missing value(s) of "
                f"{len(data):,} rows (first at index {example!r}); drop or impute them "
                "explicitly before comparing arms"
            )


def _is_binary(values: np.ndarray) -> bool:
    # a vectorised test, not np.unique: sorting 10 M outcomes costs a second
    return bool(((values == 0.0) | (values == 1.0)).all())


def _arm_codes(data: pd.DataFrame, arm: str) -> tuple[np.ndarray, list[str]]:
    """Integer code per row and the arm labels (as strings); one pass over the column."""
    codes, uniques = pd.factorize(data[arm], sort=False)
    labels = [str(u) for u in uniques]
    if len(set(labels)) < len(labels):  # e.g. 1 and "1": merge labels that print the same
        codes, uniques = pd.factorize(data[arm].astype(str))
        labels = list(uniques)
    return codes, labels


def _numeric_outcome(data: pd.DataFrame, outcome: str) -> np.ndarray:
    col = data[outcome]
    if col.dtype == bool or str(col.dtype) == "boolean":
        return col.astype(float).to_numpy()
    if not pd.api.types.is_numeric_dtype(col):
        raise TypeError(
            f"outcome column {outcome!r} must be numeric or boolean, got dtype {col.dtype}"
        )
    return col.astype(float).to_numpy()


def _design_matrix(data: pd.DataFrame, covariates: Sequence[str]) -> pd.DataFrame:
    """Numeric covariates as floats, strings/categories one-hot (first level dropped)."""
    _require_columns(data, covariates)
    _no_missing(data, covariates)
    parts = []
    for col in covariates:
        s = data[col]
        if s.dtype == bool or pd.api.types.is_numeric_dtype(s):
            parts.append(s.astype(float).rename(col))
        else:
            dummies = pd.get_dummies(s.astype(str), prefix=col, drop_first=True, dtype=float)
            parts.append(dummies)
    X = pd.concat(parts, axis=1) if parts else pd.DataFrame(index=data.index)
    # constant columns carry no information and make the interacted design singular
    keep = X.columns[X.std(ddof=0).to_numpy() > 0]
    return X[keep]


# --------------------------------------------------------------------------------------------
# intervals
# --------------------------------------------------------------------------------------------
def wilson_interval(successes: float, n: float, alpha: float = 0.05) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (no continuity correction)."""
    if n <= 0:
        return (np.nan, np.nan)
    z = stats.norm.ppf(1 - alpha / 2)
    p = successes / n
    denom = 1 + z**2 / n
    centre = (p + z**2 / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / denom
    return (float(centre - half), float(centre + half))


def newcombe_interval(
    x1: float, n1: float, x0: float, n0: float, alpha: float = 0.05
) -> tuple[float, float]:
    """Newcombe (1998, method 10) hybrid-score interval for ``x1/n1 - x0/n0``."""
    p1, p0 = x1 / n1, x0 / n0
    l1, u1 = wilson_interval(x1, n1, alpha)
    l0, u0 = wilson_interval(x0, n0, alpha)
    d = p1 - p0
    low = d - np.sqrt((p1 - l1) ** 2 + (u0 - p0) ** 2)
    high = d + np.sqrt((u1 - p1) ** 2 + (p0 - l0) ** 2)
    return (float(low), float(high))


def _log_ratio_interval(
    m1: float, m0: float, var_m1: float, var_m0: float, cov: float, alpha: float
) -> tuple[float, float, float]:
    """Relative lift m1/m0 - 1 and its delta-method interval on log(m1/m0)."""
    if m1 <= 0 or m0 <= 0:
        return (m1 / m0 - 1 if m0 != 0 else np.nan, np.nan, np.nan)
    se = np.sqrt(max(var_m1 / m1**2 + var_m0 / m0**2 - 2 * cov / (m1 * m0), 0.0))
    z = stats.norm.ppf(1 - alpha / 2)
    lr = np.log(m1 / m0)
    return (float(np.expm1(lr)), float(np.expm1(lr - z * se)), float(np.expm1(lr + z * se)))


def _holm(p: np.ndarray) -> np.ndarray:
    """Holm (1979) step-down adjusted p-values; NaNs stay NaN.

    Written out rather than calling statsmodels' ``multipletests``, which runs a full
    ``gc.collect()`` on every call (0.6 s in a busy process).
    """
    p = np.asarray(p, dtype=float)
    out = np.full_like(p, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    m = len(ok)
    if m:
        order = ok[np.argsort(p[ok], kind="stable")]
        adj = np.maximum.accumulate((m - np.arange(m)) * p[order])
        out[order] = np.minimum(adj, 1.0)
    return out


def _bh(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg (1995) step-up adjusted p-values (q-values); NaNs stay NaN."""
    p = np.asarray(p, dtype=float)
    out = np.full_like(p, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    m = len(ok)
    if m:
        order = ok[np.argsort(p[ok], kind="stable")]
        adj = p[order] * m / np.arange(1, m + 1)
        adj = np.minimum.accumulate(adj[::-1])[::-1]
        out[order] = np.minimum(adj, 1.0)
    return out


# --------------------------------------------------------------------------------------------
# one arm against control
# --------------------------------------------------------------------------------------------
def _unadjusted(
    y1: np.ndarray, y0: np.ndarray, binary: bool, ci: str, alpha: float
) -> dict[str, Any]:
    n1, n0 = len(y1), len(y0)
    m1, m0 = float(y1.mean()), float(y0.mean())
    d = m1 - m0
    z = stats.norm.ppf(1 - alpha / 2)
    if binary:
        v1, v0 = m1 * (1 - m1), m0 * (1 - m0)
        se = np.sqrt(v1 / n1 + v0 / n0)
        if ci == "newcombe":
            lo, hi = newcombe_interval(y1.sum(), n1, y0.sum(), n0, alpha)
            # score-type test to go with a score-type interval: pooled two-proportion z test
            pp = (y1.sum() + y0.sum()) / (n1 + n0)
            se0 = np.sqrt(pp * (1 - pp) * (1 / n1 + 1 / n0))
            p = 2 * stats.norm.sf(abs(d) / se0) if se0 > 0 else (1.0 if d == 0 else 0.0)
            method = "newcombe"
        else:
            lo, hi = d - z * se, d + z * se
            p = 2 * stats.norm.sf(abs(d) / se) if se > 0 else (1.0 if d == 0 else 0.0)
            method = "wald"
        var_m1, var_m0 = v1 / n1, v0 / n0
    else:
        v1, v0 = y1.var(ddof=1), y0.var(ddof=1)
        var_m1, var_m0 = v1 / n1, v0 / n0
        se = np.sqrt(var_m1 + var_m0)
        # Welch-Satterthwaite degrees of freedom
        dof = se**4 / (var_m1**2 / (n1 - 1) + var_m0**2 / (n0 - 1)) if se > 0 else np.inf
        q = stats.t.ppf(1 - alpha / 2, dof)
        lo, hi = d - q * se, d + q * se
        p = 2 * stats.t.sf(abs(d) / se, dof) if se > 0 else (1.0 if d == 0 else 0.0)
        method = "welch"
    lift, lift_lo, lift_hi = _log_ratio_interval(m1, m0, var_m1, var_m0, 0.0, alpha)
    return {
        "n_arm": n1,
        "n_control": n0,
        "mean_arm": m1,
        "mean_control": m0,
        "estimate": d,
        "se": float(se),
        "ci_low": float(lo),
        "ci_high": float(hi),
        "pvalue": float(p),
        "lift": lift,
        "lift_ci_low": lift_lo,
        "lift_ci_high": lift_hi,
        "ci_method": method,
    }


def _lin_adjusted(
    y: np.ndarray, d: np.ndarray, X: pd.DataFrame, alpha: float, cov_type: str
) -> dict[str, Any]:
    """Lin (2013): y ~ 1 + D + Xc + D*Xc, Xc centred at the pooled mean; robust SEs."""
    import statsmodels.api as sm

    Xc = X.to_numpy(dtype=float) - X.to_numpy(dtype=float).mean(axis=0)
    design = np.column_stack([np.ones(len(y)), d, Xc, d[:, None] * Xc])
    res = sm.OLS(y, design).fit(cov_type=cov_type)
    params, cov = np.asarray(res.params), np.asarray(res.cov_params())
    est, se = float(params[1]), float(np.sqrt(cov[1, 1]))
    z = stats.norm.ppf(1 - alpha / 2)
    p = 2 * stats.norm.sf(abs(est) / se) if se > 0 else (1.0 if est == 0 else 0.0)
    # adjusted means: control = intercept, arm = intercept + D coefficient (at the pooled mean)
    m0 = float(params[0])
    m1 = m0 + est
    var_m0 = cov[0, 0]
    var_m1 = cov[0, 0] + cov[1, 1] + 2 * cov[0, 1]
    cov_10 = cov[0, 0] + cov[0, 1]
    lift, lift_lo, lift_hi = _log_ratio_interval(m1, m0, var_m1, var_m0, cov_10, alpha)
    return {
        "n_arm": int(d.sum()),
        "n_control": int(len(d) - d.sum()),
        "mean_arm": float(y[d == 1].mean()),
        "mean_control": float(y[d == 0].mean()),
        "adjusted_mean_arm": m1,
        "adjusted_mean_control": m0,
        "estimate": est,
        "se": se,
        "ci_low": est - z * se,
        "ci_high": est + z * se,
        "pvalue": float(p),
        "lift": lift,
        "lift_ci_low": lift_lo,
        "lift_ci_high": lift_hi,
        "ci_method": f"lin-{cov_type.lower()}",
    }


def compare_arms(
    data: pd.DataFrame,
    arm: str = "arm",
    outcome: str = "sent_within_window",
    control: str = "control",
    covariates: Sequence[str] | None = None,
    alpha: float = 0.05,
    ci: str = "newcombe",
    expected: Mapping[Any, float] | None | bool = None,
    cov_type: str = "HC2",
) -> TableResult:
    """Compare every arm of a randomized test with its control arm.

    Parameters
    ----------
    data : DataFrame
        One row per randomized unit.
    arm : str
        Column with the assigned arm (``control`` or a design code such as ``"12-3"``).
    outcome : str
        Outcome column: 0/1 or boolean (a rate, e.g. sent within 30 days) or continuous
        (e.g. revenue in yuan). No missing values allowed.
    control : str
        Label of the control arm.
    covariates : sequence of str, optional
        Pre-assignment covariates for regression adjustment (Lin 2013, interacted and centred),
        with ``cov_type`` robust standard errors. Strings are one-hot encoded.
    alpha : float
        1 - confidence level.
    ci : {"newcombe", "wald"}
        Interval for a binary outcome without covariates. Continuous outcomes always use Welch.
    expected : mapping arm -> share, None or False
        Planned allocation for the sample-ratio-mismatch test. ``None`` assumes equal shares;
        ``False`` skips the check.
    cov_type : {"HC2", "HC3"}
        Robust covariance for the adjusted estimate.

    Returns
    -------
    TableResult
        Indexed by arm: ``estimate`` (difference arm - control), ``se``, ``ci_low``,
        ``ci_high``, ``pvalue``, ``n`` (arm + control units), ``n_arm``, ``n_control``,
        ``mean_arm``, ``mean_control``, ``lift`` with ``lift_ci_low``/``lift_ci_high``,
        ``pvalue_holm``. ``diagnostics["srm"]`` holds the sample-ratio test.
    """
    if ci not in ("newcombe", "wald"):
        raise ValueError(f"ci must be 'newcombe' or 'wald', got {ci!r}")
    if cov_type not in ("HC2", "HC3"):
        raise ValueError(f"cov_type must be 'HC2' or 'HC3', got {cov_type!r}")
    covariates = list(covariates or [])
    _require_columns(data, [arm, outcome, *covariates])
    _no_missing(data, [arm, outcome])
    codes, labels = _arm_codes(data, arm)
    control = str(control)
    if control not in labels:
        raise ValueError(
            f"no row of column {arm!r} equals the control label {control!r}; arms present: "
            f"{sorted(labels)[:10]}"
        )
    others = sorted(lab for lab in labels if lab != control)
    if not others:
        raise ValueError(f"column {arm!r} holds only the control arm {control!r}")
    y_all = _numeric_outcome(data, outcome)
    binary = _is_binary(y_all)
    X_all = _design_matrix(data, covariates) if covariates else None

    warnings: list[str] = []
    rows = {}
    is_control = codes == labels.index(control)
    for a in others:
        is_arm = codes == labels.index(a)
        if is_arm.sum() < 2 or is_control.sum() < 2:
            raise ValueError(
                f"arm {a!r} has {int(is_arm.sum())} and control {int(is_control.sum())} "
                "rows; at least 2 each are needed"
            )
        if X_all is None:
            row = _unadjusted(y_all[is_arm], y_all[is_control], binary, ci, alpha)
        else:
            keep = is_arm | is_control
            Xs = X_all[keep]
            Xs = Xs.loc[:, Xs.std(ddof=0).to_numpy() > 0]
            row = _lin_adjusted(
                y_all[keep], is_arm[keep].astype(float), Xs, alpha, cov_type
            )
        row["n"] = row["n_arm"] + row["n_control"]
        rows[a] = row
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = arm
    table["pvalue_holm"] = _holm(table["pvalue"].to_numpy())
    lead = ["estimate", "se", "ci_low", "ci_high", "pvalue", "pvalue_holm", "n"]
    table = table[lead + [c for c in table.columns if c not in lead]]

    diagnostics: dict[str, Any] = {"binary_outcome": binary, "covariates": covariates}
    if expected is not False:
        counts = pd.Series(np.bincount(codes, minlength=len(labels)), index=labels)
        srm = _srm(counts.sort_index(), arm, expected)
        diagnostics["srm"] = srm
        if srm["pvalue"] < SRM_ALPHA:
            warnings.append(
                f"sample ratio mismatch: observed arm sizes {srm['observed']} differ from the "
                f"planned allocation (chi-square p = {srm['pvalue']:.2g} < {SRM_ALPHA}); the "
                "randomization or the logging is broken - do not trust the comparison until "
                "explained (if the split was unequal by design, pass expected=)"
            )
    if binary and X_all is None:
        estimand = "difference in rate (arm - control)"
    else:
        estimand = "difference in mean (arm - control)"
    method = table["ci_method"].iloc[0]
    return TableResult(
        table=table,
        method=method,
        alpha=alpha,
        estimand=estimand,
        label=f"{outcome} by {arm}",
        diagnostics=diagnostics,
        warnings=warnings,
    )


def srm_test(
    data: pd.DataFrame, arm: str = "arm", expected: Mapping[Any, float] | None = None
) -> dict[str, Any]:
    """Sample-ratio-mismatch test: chi-square goodness of fit of arm sizes to the plan.

    Parameters
    ----------
    data : DataFrame
        One row per randomized unit.
    arm : str
        Arm column.
    expected : mapping arm -> share (or count), optional
        Planned allocation; normalised to sum to one. Default: equal shares.

    Returns
    -------
    dict
        ``statistic``, ``df``, ``pvalue``, ``observed`` and ``expected`` (dicts arm -> count).
    """
    _require_columns(data, [arm])
    _no_missing(data, [arm])
    codes, labels = _arm_codes(data, arm)
    counts = pd.Series(np.bincount(codes, minlength=len(labels)), index=labels).sort_index()
    return _srm(counts, arm, expected)


def _srm(counts: pd.Series, arm: str, expected: Mapping[Any, float] | None) -> dict[str, Any]:
    if expected is None:
        shares = pd.Series(1.0, index=counts.index)
    else:
        shares = pd.Series({str(k): float(v) for k, v in expected.items()})
        unknown = sorted(set(counts.index) - set(shares.index))
        if unknown:
            raise ValueError(
                f"arms {unknown} are in column {arm!r} but not in expected={dict(expected)}"
            )
        counts = counts.reindex(shares.index, fill_value=0)
    if (shares <= 0).any():
        raise ValueError(f"expected shares must be positive, got {shares.to_dict()}")
    exp = shares / shares.sum() * counts.sum()
    if len(counts) < 2:
        raise ValueError(f"column {arm!r} has a single arm; nothing to compare")
    stat, p = stats.chisquare(counts.to_numpy(float), exp.to_numpy(float))
    return {
        "statistic": float(stat),
        "df": len(counts) - 1,
        "pvalue": float(p),
        "observed": {k: int(v) for k, v in counts.items()},
        "expected": {k: float(v) for k, v in exp.items()},
    }


def by_segment(
    data: pd.DataFrame,
    arm: str = "arm",
    outcome: str = "sent_within_window",
    segment: str = "segment",
    control: str = "control",
    min_n: int = 2,
    **kwargs: Any,
) -> TableResult:
    """Arm-vs-control effects within each segment, with Benjamini-Hochberg q-values.

    Each segment is analysed with :func:`compare_arms` (``kwargs`` are passed on). The table is
    indexed by ``(segment, arm)`` and adds ``qvalue_bh`` (false-discovery-rate adjusted across
    all segment x arm rows). ``diagnostics["heterogeneity"]`` holds, per arm, Cochran's Q test
    that the effect is the same in every segment (inverse-variance weights, k - 1 df).
    Segments where the arm or control has fewer than ``min_n`` rows are skipped and listed in
    ``warnings``.
    """
    _require_columns(data, [arm, outcome, segment])
    _no_missing(data, [segment])
    kwargs.setdefault("expected", False)
    pieces, warnings = [], []
    for seg, part in data.groupby(segment, sort=True, observed=True):
        counts = part[arm].astype(str).value_counts()
        if counts.get(str(control), 0) < min_n or (counts.drop(str(control), errors="ignore")
                                                   < min_n).any() or len(counts) < 2:
            warnings.append(
                f"segment {seg!r} skipped: arm sizes {counts.to_dict()} below min_n={min_n}"
            )
            continue
        res = compare_arms(part, arm=arm, outcome=outcome, control=control, **kwargs)
        t = res.table.copy()
        t.insert(0, segment, seg)
        pieces.append(t.reset_index())
    if not pieces:
        raise ValueError(f"no segment of {segment!r} has at least {min_n} rows in every arm")
    table = pd.concat(pieces, ignore_index=True).set_index([segment, arm])
    table["qvalue_bh"] = _bh(table["pvalue"].to_numpy())
    het = {}
    for a, part in table.groupby(level=arm):
        w = 1 / part["se"].to_numpy() ** 2
        ok = np.isfinite(w)
        if ok.sum() < 2:
            continue
        est = part["estimate"].to_numpy()[ok]
        pooled = np.sum(w[ok] * est) / np.sum(w[ok])
        q = float(np.sum(w[ok] * (est - pooled) ** 2))
        het[a] = {"Q": q, "df": int(ok.sum() - 1), "pvalue": float(stats.chi2.sf(q, ok.sum() - 1)),
                  "pooled": float(pooled)}
    return TableResult(
        table=table,
        method=str(table["ci_method"].iloc[0]),
        alpha=kwargs.get("alpha", 0.05),
        estimand="difference (arm - control) within segment",
        label=f"{outcome} by {arm} and {segment}",
        diagnostics={"heterogeneity": het},
        warnings=warnings,
    )


# --------------------------------------------------------------------------------------------
# planning
# --------------------------------------------------------------------------------------------
def _cohen_h(p1: float, p0: float) -> float:
    return float(2 * np.arcsin(np.sqrt(p1)) - 2 * np.arcsin(np.sqrt(p0)))


def _check_rate(name: str, p: float) -> None:
    if not 0 < p < 1:
        raise ValueError(f"{name} must be a probability strictly between 0 and 1, got {p}")


def _std_effect(baseline: float, effect: float, sd: float | None) -> float:
    if sd is None:
        _check_rate("baseline", baseline)
        _check_rate("baseline + effect", baseline + effect)
        return _cohen_h(baseline + effect, baseline)
    if sd <= 0:
        raise ValueError(f"sd must be positive, got {sd}")
    return effect / sd


def power(
    n_control: float,
    baseline: float,
    effect: float,
    alpha: float = 0.05,
    ratio: float = 1.0,
    sd: float | None = None,
) -> float:
    """Power of a two-sided test of arm vs. control.

    Two proportions (``sd=None``): the arcsine effect size ``h = 2 asin sqrt(p1) -
    2 asin sqrt(p0)`` with ``p0 = baseline`` and ``p1 = baseline + effect`` (Cohen 1988);
    means: ``d = effect / sd``. ``n_control`` units in control, ``ratio * n_control`` in the
    arm. Normal approximation, both rejection tails counted (as statsmodels' NormalIndPower).
    """
    return _power(n_control, baseline, effect, alpha, ratio, sd)


def _power(
    n_control: float, baseline: float, effect: float, alpha: float, ratio: float,
    sd: float | None = None,
) -> float:
    es = abs(_std_effect(baseline, effect, sd))
    n1 = n_control * ratio
    scale = np.sqrt(n_control * n1 / (n_control + n1))
    z = stats.norm.ppf(1 - alpha / 2)
    return float(stats.norm.sf(z - es * scale) + stats.norm.cdf(-z - es * scale))


def sample_size(
    baseline: float,
    effect: float,
    alpha: float = 0.05,
    power: float = 0.8,
    ratio: float = 1.0,
    sd: float | None = None,
) -> int:
    """Control-arm size (rounded up) for a two-sided test to reach ``power``; arm = ratio x."""
    target = power
    es = abs(_std_effect(baseline, effect, sd))
    if es == 0:
        raise ValueError("effect is zero: no finite sample size detects it")

    def f(n: float) -> float:
        return _power(n, baseline, effect, alpha, ratio, sd) - target

    hi = 10.0
    while f(hi) < 0:
        hi *= 4
    return int(np.ceil(optimize.brentq(f, 1e-6, hi, xtol=1e-8)))


def minimum_detectable_effect(
    n_control: float,
    baseline: float,
    alpha: float = 0.05,
    power: float = 0.8,
    ratio: float = 1.0,
    sd: float | None = None,
) -> float:
    """Smallest positive absolute effect (rate difference, or mean difference with ``sd``)
    that a test with ``n_control`` control units (and ``ratio * n_control`` treated) detects
    with the given power at level ``alpha`` (two-sided)."""
    target = power
    pw = _power
    if sd is not None:
        return float(optimize.brentq(
            lambda e: pw(n_control, baseline, e, alpha, ratio, sd) - target, 1e-12, 1e3 * sd
        ))
    _check_rate("baseline", baseline)
    hi = (1 - baseline) - 1e-12
    if pw(n_control, baseline, hi, alpha, ratio) < target:
        raise ValueError(
            f"even an effect up to a rate of 1 is not detected with power {target} at "
            f"n_control={n_control}; increase the sample"
        )
    return float(optimize.brentq(
        lambda e: pw(n_control, baseline, e, alpha, ratio) - target, 1e-12, hi, xtol=1e-12
    ))
