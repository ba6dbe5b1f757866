"""Repeat-purchase models: RFM summaries, BG/NBD, Gamma-Gamma spend and customer lifetime value.

BG/NBD: Fader, Hardie & Lee (2005), "Counting your customers the easy way: an alternative to
the Pareto/NBD model", Marketing Science 24(2). Gamma-Gamma: Fader, Hardie & Lee (2005), "RFM
and CLV: using iso-value curves for customer base analysis", JMR 42(4), and Fader & Hardie
(2013), "The Gamma-Gamma model of monetary value". Maximum likelihood with scipy only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, special

from promo_analysis.results import TableResult, _html_block, normal_interval

__all__ = [
    "rfm_summary",
    "bgnbd_loglik",
    "BGNBD",
    "fit_bgnbd",
    "gamma_gamma_loglik",
    "GammaGamma",
    "fit_gamma_gamma",
    "customer_lifetime_value",
]


# ----------------------------------------------------------------------------- RFM summary
def rfm_summary(
    transactions: pd.DataFrame,
    customer: str,
    time: str,
    value: str | None = None,
    calibration_end: Any = None,
    observation_end: Any = None,
    freq: str = "D",
) -> pd.DataFrame:
    """Frequency, recency, age (and mean repeat spend) per customer, BG/NBD convention.

    Times are cut to periods of ``freq`` (``"D"`` days, ``"W"`` weeks, ``"M"`` months); all
    purchases in one period count as one (values summed).

    Returns a frame indexed by customer with
    ``frequency`` (number of repeat purchase periods: distinct periods minus one),
    ``recency`` (periods from the first to the last purchase; 0 without repeats),
    ``T`` (periods from the first purchase to the end of calibration or observation) and,
    with ``value``, ``monetary`` (mean value of the repeat purchases; 0 without repeats).
    With ``calibration_end``, the statistics describe the calibration period and
    ``frequency_holdout``, ``duration_holdout`` (and ``monetary_holdout``) the rest up to
    ``observation_end``. Customers first seen after ``calibration_end`` and transactions after
    ``observation_end`` are left out and counted in ``attrs["diagnostics"]``.
    """
    cols = [customer, time, *([value] if value else [])]
    missing = [c for c in cols if c not in transactions.columns]
    if missing:
        raise ValueError(f"transactions lacks the column(s) {missing}")
    for c in cols:
        na = transactions[c].isna()
        if na.any():
            raise ValueError(f"transactions.{c}: {int(na.sum())} missing values (e.g. row "
                             f"{transactions.index[na.to_numpy()][0]!r}); drop them explicitly")
    ts = pd.to_datetime(transactions[time])
    obs_end = ts.max() if observation_end is None else pd.Timestamp(observation_end)
    cal_end = None if calibration_end is None else pd.Timestamp(calibration_end)
    if cal_end is not None and cal_end > obs_end:
        raise ValueError(f"calibration_end {cal_end} is after observation_end {obs_end}")
    after = ts > obs_end
    df = pd.DataFrame({"customer": transactions[customer].to_numpy(),
                       "period": ts.dt.to_period(freq).array.asi8})
    df["value"] = transactions[value].to_numpy(float) if value else 0.0
    df = df[~after.to_numpy()]
    per = df.groupby(["customer", "period"], sort=True)["value"].sum().reset_index()
    end_p = pd.Period(obs_end, freq).ordinal
    cal_p = None if cal_end is None else pd.Period(cal_end, freq).ordinal
    first = per.groupby("customer")["period"].min()
    diag: dict[str, Any] = {"transactions_after_observation_end": int(after.sum()),
                            "freq": freq}
    cut = end_p if cal_p is None else cal_p
    if cal_p is not None:
        late = first[first > cal_p].index
        diag["customers_first_seen_after_calibration"] = len(late)
        per = per[~per["customer"].isin(late)]
        first = first[first <= cal_p]
    cal = per[per["period"] <= cut]
    g = cal.groupby("customer")
    out = pd.DataFrame(index=first.index)
    out["frequency"] = g["period"].count() - 1
    out["recency"] = g["period"].max() - first
    out["T"] = cut - first
    if value:
        rep = cal[cal["period"] > cal["customer"].map(first)]
        out["monetary"] = rep.groupby("customer")["value"].mean().reindex(out.index).fillna(0.0)
    if cal_p is not None:
        hold = per[per["period"] > cal_p].groupby("customer")
        out["frequency_holdout"] = hold["period"].count().reindex(out.index).fillna(0)
        out["frequency_holdout"] = out["frequency_holdout"].astype(int)
        out["duration_holdout"] = end_p - cal_p
        if value:
            out["monetary_holdout"] = hold["value"].mean().reindex(out.index).fillna(0.0)
    out.index.name = customer
    out["frequency"] = out["frequency"].astype(int)
    out["recency"] = out["recency"].astype(float)
    out["T"] = out["T"].astype(float)
    out.attrs["diagnostics"] = diag
    return out


# ----------------------------------------------------------------------------- BG/NBD
def bgnbd_loglik(params, frequency, recency, T) -> np.ndarray:
    """Per-customer BG/NBD log-likelihood (Fader, Hardie & Lee 2005, eq. 6).

    ``params = (r, alpha, a, b)``; ``frequency`` x, ``recency`` t_x and ``T`` as arrays.
    """
    r, alpha, a, b = (float(p) for p in params)
    x = np.asarray(frequency, float)
    tx = np.asarray(recency, float)
    T = np.asarray(T, float)
    a1 = special.gammaln(r + x) - special.gammaln(r) + r * np.log(alpha)
    a2 = special.betaln(a, b + x) - special.betaln(a, b)
    a3 = -(r + x) * np.log(alpha + T)
    with np.errstate(divide="ignore", invalid="ignore"):
        a4 = np.where(
            x > 0,
            np.log(a) - np.log(np.maximum(b + x - 1, 1e-300)) - (r + x) * np.log(alpha + tx),
            -np.inf,
        )
    return a1 + a2 + np.logaddexp(a3, a4)


def _check_rfm(data: pd.DataFrame, cols: dict[str, str], table: str = "data") -> None:
    missing = [c for c in cols.values() if c not in data.columns]
    if missing:
        raise ValueError(f"{table} lacks the column(s) {missing}")
    x, tx, T = (data[cols[k]].to_numpy(float) for k in ("frequency", "recency", "T"))
    rules = [
        (~np.isfinite(x) | ~np.isfinite(tx) | ~np.isfinite(T), "values must be finite"),
        ((x < 0) | (x != np.round(x)), f"{cols['frequency']} must be a whole number >= 0"),
        ((tx < 0) | (tx > T), f"need 0 <= {cols['recency']} <= {cols['T']}"),
        ((x == 0) & (tx != 0), f"{cols['recency']} must be 0 when {cols['frequency']} is 0"),
    ]
    for bad, rule in rules:
        if bad.any():
            i = np.nonzero(bad)[0][0]
            raise ValueError(f"{table}: {rule} ({int(bad.sum())} of {len(data)} rows break "
                             f"it, e.g. row {data.index[i]!r}: x={x[i]}, t_x={tx[i]}, T={T[i]})")


def _hessian(f, x0: np.ndarray) -> np.ndarray:
    from statsmodels.tools.numdiff import approx_hess3

    return approx_hess3(x0, f)


def _numeric_jacobian(g, x0: np.ndarray) -> np.ndarray:
    """Symmetrised central-difference Jacobian of a gradient function ``g`` at ``x0``."""
    k = len(x0)
    jac = np.empty((k, k))
    for i in range(k):
        h = 1e-5 * max(abs(x0[i]), 1e-3)
        up, dn = x0.copy(), x0.copy()
        up[i] += h
        dn[i] -= h
        jac[:, i] = (g(up) - g(dn)) / (2 * h)
    return (jac + jac.T) / 2


def _bgnbd_loglik_grad(params, x, tx, T, w, uniq=None) -> tuple[float, np.ndarray]:
    """Weighted total BG/NBD log-likelihood and its analytic gradient in (r, alpha, a, b).

    Special functions are evaluated once per distinct frequency (few), the rest per row;
    ``uniq = np.unique(x, return_inverse=True)`` may be passed in to save the sort.
    """
    r, al, a, b = (float(p) for p in params)
    ux, inv = np.unique(x, return_inverse=True) if uniq is None else uniq
    a1 = (special.gammaln(r + ux) - special.gammaln(r) + r * np.log(al))[inv]
    a2 = (special.betaln(a, b + ux) - special.betaln(a, b))[inv]
    lat = np.log(al + T)
    latx = np.log(al + tx)
    a3 = -(r + x) * lat
    rep = x > 0
    bx1 = np.where(ux > 0, b + ux - 1, 1.0)[inv]
    a4 = np.where(rep, np.log(a) - np.log(bx1) - (r + x) * latx, -np.inf)
    lse = np.logaddexp(a3, a4)
    ll = float(w @ (a1 + a2 + lse))
    p3 = np.exp(a3 - lse)
    p4 = np.where(rep, np.exp(a4 - lse), 0.0)
    dig_ab = special.digamma(a + b)
    d_r = (special.digamma(r + ux) - special.digamma(r))[inv] + np.log(al) - p3 * lat - p4 * latx
    d_al = r / al - p3 * (r + x) / (al + T) - p4 * (r + x) / (al + tx)
    d_a = (dig_ab - special.digamma(a + b + ux))[inv] + p4 / a
    d_b = (special.digamma(b + ux) - special.digamma(a + b + ux) - special.digamma(b)
           + dig_ab)[inv] - p4 / bx1
    grad = np.array([w @ d_r, w @ d_al, w @ d_a, w @ d_b])
    return ll, grad


def _fit_result_table(names, params, cov, n, method, alpha) -> TableResult:
    se = np.sqrt(np.clip(np.diag(cov), 0, None))
    lo, hi, p = normal_interval(params, se, alpha=alpha)
    tab = pd.DataFrame({"estimate": params, "se": se, "ci_low": lo, "ci_high": hi,
                        "pvalue": p, "n": n}, index=pd.Index(names, name="parameter"))
    return TableResult(table=tab, method=method, alpha=alpha, estimand="model parameters")


@dataclass
class BGNBD:
    """BG/NBD repeat-purchase model (scikit-learn style: ``fit`` returns ``self``).

    Parameters
    ----------
    alpha : float
        Level of the parameter intervals (not the model's ``alpha`` parameter, which is
        ``params_["alpha"]``).

    Fitted attributes
    -----------------
    params_ : Series (r, alpha, a, b)
    se_ : Series, standard errors from the numerical Hessian (delta method from log scale)
    cov_ : DataFrame
    loglik_ : float
    n_ : int
    result_ : TableResult
    """

    alpha: float = 0.05
    params_: pd.Series = field(init=False, repr=False)
    se_: pd.Series = field(init=False, repr=False)
    cov_: pd.DataFrame = field(init=False, repr=False)
    loglik_: float = field(init=False, repr=False)
    n_: int = field(init=False, repr=False)
    result_: TableResult = field(init=False, repr=False)

    names = ("r", "alpha", "a", "b")

    def fit(self, data: pd.DataFrame, frequency: str = "frequency", recency: str = "recency",
            T: str = "T", weights: str | None = None) -> BGNBD:
        """Maximum-likelihood fit on one row per customer (``weights`` = counts of identical
        rows, optional)."""
        _check_rfm(data, {"frequency": frequency, "recency": recency, "T": T})
        x, tx, tt = (data[c].to_numpy(float) for c in (frequency, recency, T))
        w = np.ones_like(x) if weights is None else data[weights].to_numpy(float)
        if (x > 0).sum() == 0:
            raise ValueError(f"data.{frequency}: no customer repeated; BG/NBD is not "
                             "identified")

        uniq = np.unique(x, return_inverse=True)
        scale_n = float(w.sum())

        def fun(logp):
            # per-customer average keeps the objective O(1) for the optimiser's tolerances
            ll, grad = _bgnbd_loglik_grad(np.exp(logp), x, tx, tt, w, uniq)
            return -ll / scale_n, -grad * np.exp(logp) / scale_n  # chain rule to log scale

        scale = max(float(np.average(tt, weights=w)), 1e-3)
        best = None
        for start in ([0.0, np.log(scale), 0.0, 0.0],
                      [np.log(0.5), np.log(scale / 5), np.log(0.5), np.log(2.0)]):
            res = optimize.minimize(fun, np.array(start), jac=True, method="BFGS",
                                    options={"gtol": 1e-8, "maxiter": 1000})
            # BFGS may stop on "precision loss" at the optimum: judge by the gradient
            res.success = bool(res.success or np.max(np.abs(res.jac)) < 1e-5)
            if best is None or res.fun < best.fun:
                best = res
            if res.success:  # a second start only when the first one did not converge
                break
        logp = best.x
        theta = np.exp(logp)
        # observed information on the natural scale: central differences of the analytic
        # score (more accurate than second differences of the likelihood)
        cov = np.linalg.pinv(_numeric_jacobian(
            lambda th: -_bgnbd_loglik_grad(th, x, tx, tt, w, uniq)[1], theta))
        self.params_ = pd.Series(theta, index=self.names)
        self.cov_ = pd.DataFrame(cov, index=self.names, columns=self.names)
        self.se_ = pd.Series(np.sqrt(np.clip(np.diag(cov), 0, None)), index=self.names)
        self.loglik_ = -float(best.fun) * scale_n
        self.n_ = int(round(w.sum()))
        self.result_ = _fit_result_table(self.names, theta, cov, self.n_, "bg/nbd ml",
                                         self.alpha)
        self.result_.diagnostics = {"converged": bool(best.success), "loglik": self.loglik_}
        if not best.success:
            self.result_.warnings.append(f"optimiser did not report convergence: "
                                         f"{best.message}")
        return self

    def expected_purchases(self, t) -> np.ndarray | float:
        """Expected repeat purchases in (0, t] of a customer just acquired (eq. 9)."""
        r, al, a, b = self.params_.to_numpy()
        t = np.asarray(t, float)
        z = t / (al + t)
        val = (a + b - 1) / (a - 1) * (1 - (al / (al + t)) ** r * special.hyp2f1(r, b,
                                                                               a + b - 1, z))
        return float(val) if val.ndim == 0 else val

    def conditional_expected_purchases(self, t, frequency, recency, T) -> np.ndarray:
        """Expected repeat purchases in (T, T + t] given a customer's history (eq. 10)."""
        r, al, a, b = self.params_.to_numpy()
        t = np.asarray(t, float)
        x, tx, T = (np.asarray(v, float) for v in (frequency, recency, T))
        z = t / (al + T + t)
        num = (a + b + x - 1) / (a - 1) * (
            1 - ((al + T) / (al + T + t)) ** (r + x) * special.hyp2f1(r + x, b + x,
                                                                      a + b + x - 1, z))
        return num * self.p_alive(x, tx, T)

    def p_alive(self, frequency, recency, T) -> np.ndarray:
        """Probability that a customer with history (x, t_x, T) is still active."""
        r, al, a, b = self.params_.to_numpy()
        x, tx, T = (np.asarray(v, float) for v in (frequency, recency, T))
        with np.errstate(divide="ignore", invalid="ignore"):
            odds = np.where(x > 0, a / np.maximum(b + x - 1, 1e-300)
                            * ((al + T) / (al + tx)) ** (r + x), 0.0)
        return 1.0 / (1.0 + odds)

    def summary(self) -> pd.DataFrame:
        return self.result_.summary()

    def _repr_html_(self) -> str:
        return _html_block("BG/NBD", self.summary(), [f"log-likelihood {self.loglik_:.2f}"])


def fit_bgnbd(data: pd.DataFrame, frequency: str = "frequency", recency: str = "recency",
              T: str = "T", weights: str | None = None, alpha: float = 0.05) -> BGNBD:
    """Fit a :class:`BGNBD` model; see there."""
    return BGNBD(alpha=alpha).fit(data, frequency=frequency, recency=recency, T=T,
                                  weights=weights)


# ----------------------------------------------------------------------------- Gamma-Gamma
def gamma_gamma_loglik(params, frequency, monetary) -> np.ndarray:
    """Per-customer Gamma-Gamma log-likelihood of the mean spend ``monetary`` over
    ``frequency`` (> 0) transactions; ``params = (p, q, gamma)``."""
    p, q, g = (float(v) for v in params)
    x = np.asarray(frequency, float)
    m = np.asarray(monetary, float)
    return (special.gammaln(p * x + q) - special.gammaln(p * x) - special.gammaln(q)
            + q * np.log(g) + (p * x - 1) * np.log(m) + p * x * np.log(x)
            - (p * x + q) * np.log(g + m * x))


@dataclass
class GammaGamma:
    """Gamma-Gamma model of mean transaction value (independent of frequency by assumption).

    Fitted attributes: ``params_`` (p, q, gamma), ``se_``, ``cov_``, ``loglik_``, ``n_``,
    ``result_``.
    """

    alpha: float = 0.05
    params_: pd.Series = field(init=False, repr=False)
    se_: pd.Series = field(init=False, repr=False)
    cov_: pd.DataFrame = field(init=False, repr=False)
    loglik_: float = field(init=False, repr=False)
    n_: int = field(init=False, repr=False)
    result_: TableResult = field(init=False, repr=False)
    diagnostics_: dict = field(init=False, repr=False)

    names = ("p", "q", "gamma")

    def fit(self, data: pd.DataFrame, frequency: str = "frequency",
            monetary: str = "monetary") -> GammaGamma:
        """Fit on customers with ``frequency > 0`` (the others carry no spend information;
        their number is in ``diagnostics_``)."""
        for c in (frequency, monetary):
            if c not in data.columns:
                raise ValueError(f"data lacks the column {c!r}")
        x = data[frequency].to_numpy(float)
        m = data[monetary].to_numpy(float)
        use = x > 0
        bad = use & ~(m > 0)
        if bad.any():
            i = np.nonzero(bad)[0][0]
            raise ValueError(f"data.{monetary}: mean spend must be > 0 for repeat customers "
                             f"({int(bad.sum())} rows break it, e.g. row {data.index[i]!r})")
        if use.sum() < 3:
            raise ValueError("Gamma-Gamma needs at least 3 customers with repeat purchases")
        x, m = x[use], m[use]

        def nll(logp):
            return -float(gamma_gamma_loglik(np.exp(logp), x, m).sum())

        start = np.log([1.0, 2.0, float(np.mean(m))])
        res = optimize.minimize(nll, start, method="Nelder-Mead",
                                options={"maxiter": 4000, "xatol": 1e-8, "fatol": 1e-10})
        res = optimize.minimize(nll, res.x, method="BFGS")
        theta = np.exp(res.x)
        cov = np.diag(theta) @ np.linalg.pinv(_hessian(nll, res.x)) @ np.diag(theta)
        self.params_ = pd.Series(theta, index=self.names)
        self.cov_ = pd.DataFrame(cov, index=self.names, columns=self.names)
        self.se_ = pd.Series(np.sqrt(np.clip(np.diag(cov), 0, None)), index=self.names)
        self.loglik_ = -float(res.fun)
        self.n_ = int(use.sum())
        self.diagnostics_ = {"excluded_no_repeat": int((~use).sum()),
                             "converged": bool(res.success)}
        self.result_ = _fit_result_table(self.names, theta, cov, self.n_, "gamma-gamma ml",
                                         self.alpha)
        if theta[1] > 1e4:
            # q, gamma -> infinity with gamma / q fixed: every customer has the same mean spend
            self.result_.warnings.append(
                "no between-customer heterogeneity in mean spend was found (q -> infinity): "
                "the model reduces to one common mean; q and gamma and their SEs are not "
                "meaningful, mean_spend is")
        return self

    @property
    def mean_spend(self) -> float:
        """Population mean transaction value ``p gamma / (q - 1)`` (needs q > 1)."""
        p, q, g = self.params_.to_numpy()
        return float(p * g / (q - 1)) if q > 1 else float("inf")

    def conditional_expected_spend(self, frequency, monetary) -> np.ndarray:
        """E[mean spend | x, m_x] = p (gamma + x m_x) / (p x + q - 1): a weighted average of
        the population mean and the customer's own mean."""
        p, q, g = self.params_.to_numpy()
        x = np.asarray(frequency, float)
        m = np.asarray(monetary, float)
        return p * (g + x * m) / (p * x + q - 1)

    def summary(self) -> pd.DataFrame:
        return self.result_.summary()


def fit_gamma_gamma(data: pd.DataFrame, frequency: str = "frequency",
                    monetary: str = "monetary", alpha: float = 0.05) -> GammaGamma:
    """Fit a :class:`GammaGamma` spend model; see there."""
    return GammaGamma(alpha=alpha).fit(data, frequency=frequency, monetary=monetary)


# ----------------------------------------------------------------------------- CLV
def customer_lifetime_value(
    bgnbd: BGNBD,
    spend: GammaGamma | float,
    data: pd.DataFrame | None = None,
    frequency: str = "frequency",
    recency: str = "recency",
    T: str = "T",
    monetary: str = "monetary",
    horizon: int = 12,
    period: float = 30.0,
    discount_rate: float = 0.01,
) -> pd.Series | float:
    """Discounted expected value of future repeat purchases.

    ``CLV = sum_{i=1..horizon} E[spend] * (E[Y(i P)] - E[Y((i-1) P)]) / (1 + d) ** i``, with
    ``E[Y(t)]`` the BG/NBD conditional expectation, ``P = period`` (in the model's time unit,
    e.g. 30 days), ``d = discount_rate`` per period and ``E[spend]`` the Gamma-Gamma
    conditional mean (or a fixed number of yuan).

    With ``data=None`` it returns the value of a customer acquired today (x = t_x = T = 0):
    the expected value of the repeat purchases an extra acquired customer brings, which is
    what enters a campaign's return.
    """
    if discount_rate < 0 or horizon < 1 or period <= 0:
        raise ValueError("need discount_rate >= 0, horizon >= 1 and period > 0")
    if data is None:
        x = tx = tt = np.zeros(1)
        m = np.zeros(1)
    else:
        x, tx, tt = (data[c].to_numpy(float) for c in (frequency, recency, T))
        m = data[monetary].to_numpy(float) if isinstance(spend, GammaGamma) else np.zeros(len(x))
    if isinstance(spend, GammaGamma):
        value = spend.conditional_expected_spend(x, m) if data is not None else np.array(
            [spend.mean_spend])
    else:
        value = np.full(len(x), float(spend))
    total = np.zeros(len(x))
    prev = np.zeros(len(x))
    for i in range(1, horizon + 1):
        cum = bgnbd.conditional_expected_purchases(i * period, x, tx, tt)
        total += value * (cum - prev) / (1 + discount_rate) ** i
        prev = cum
    if data is None:
        return float(total[0])
    return pd.Series(total, index=data.index, name="clv")
