"""Kaplan-Meier survival curves and the k-group log-rank test.

Both accept frequency weights (``weights=``), so a survival table aggregated in the engine
(one row per duration and event status with a count, see ``features.survival_table``) gives
exactly the same answer as the customer-level frame it summarises.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from promo_analysis.results import Estimate, TableResult, _html_block

__all__ = ["kaplan_meier", "logrank", "KaplanMeierResult", "check_survival_data"]


def _example(values: pd.Series, mask: np.ndarray) -> Any:
    v = values[mask].iloc[0]
    return v.item() if isinstance(v, np.generic) else v


def check_survival_data(
    data: pd.DataFrame,
    duration: str,
    event: str,
    *,
    weights: str | None = None,
    extra: Sequence[str] = (),
    table: str = "data",
) -> None:
    """Raise a clear ``ValueError`` when survival input breaks a rule.

    Rules: the columns exist; durations are finite and >= 0; events are 0/1 (bool allowed);
    weights are finite and >= 0; no missing values in any used column; at least one event.
    Each message names the table, column, rule, number of offending rows and an example.
    """
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"{table} must be a pandas DataFrame, got {type(data).__name__}")
    cols = [duration, event, *([weights] if weights else []), *extra]
    missing = [c for c in cols if c not in data.columns]
    if missing:
        raise ValueError(f"{table} lacks the column(s) {missing}; it has {list(data.columns)}")
    if len(data) == 0:
        raise ValueError(f"{table} has no rows")
    for c in cols:
        na = data[c].isna().to_numpy()
        if na.any():
            raise ValueError(
                f"{table}.{c}: missing values are not allowed ({int(na.sum())} of {len(data)} "
                f"rows, e.g. row index {data.index[na][0]!r}); drop or impute them explicitly"
            )
    d = pd.to_numeric(data[duration], errors="coerce")
    bad = ~np.isfinite(d.to_numpy(dtype=float))
    if bad.any():
        raise ValueError(
            f"{table}.{duration}: durations must be finite numbers ({int(bad.sum())} rows "
            f"break this, e.g. {_example(data[duration], bad)!r})"
        )
    neg = d.to_numpy(dtype=float) < 0
    if neg.any():
        raise ValueError(
            f"{table}.{duration}: durations must be >= 0 ({int(neg.sum())} of {len(data)} rows "
            f"are negative, e.g. {_example(data[duration], neg)!r})"
        )
    e = data[event]
    ok = e.isin([0, 1, True, False]).to_numpy()
    if not ok.all():
        raise ValueError(
            f"{table}.{event}: events must be 0/1 ({int((~ok).sum())} of {len(data)} rows are "
            f"not, e.g. {_example(e, ~ok)!r})"
        )
    if weights:
        w = pd.to_numeric(data[weights], errors="coerce").to_numpy(dtype=float)
        badw = ~np.isfinite(w) | (w < 0)
        if badw.any():
            raise ValueError(
                f"{table}.{weights}: weights must be finite and >= 0 ({int(badw.sum())} rows "
                f"break this, e.g. {_example(data[weights], badw)!r})"
            )
        n_events = float((w * e.astype(float).to_numpy()).sum())
    else:
        n_events = float(e.astype(float).sum())
    if n_events <= 0:
        raise ValueError(
            f"{table}.{event}: all {len(data)} rows are censored (no event); a survival "
            "curve or test needs at least one event"
        )


def _arrays(
    data: pd.DataFrame, duration: str, event: str, weights: str | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    t = data[duration].to_numpy(dtype=float)
    e = data[event].astype(float).to_numpy()
    w = np.ones_like(t) if weights is None else data[weights].to_numpy(dtype=float)
    return t, e, w


def _risk_table(t: np.ndarray, e: np.ndarray, w: np.ndarray) -> pd.DataFrame:
    """At-risk, event and censored (weighted) counts at each distinct observed time."""
    times, inv = np.unique(t, return_inverse=True)
    events = np.bincount(inv, weights=w * e, minlength=len(times))
    total = np.bincount(inv, weights=w, minlength=len(times))
    at_risk = total[::-1].cumsum()[::-1]
    return pd.DataFrame(
        {"time": times, "at_risk": at_risk, "events": events, "censored": total - events}
    )


def _km_curve(rt: pd.DataFrame, alpha: float) -> pd.DataFrame:
    """Product-limit estimate, Greenwood SE and log-log interval on a risk table."""
    n, d = rt["at_risk"].to_numpy(), rt["events"].to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.cumprod(1.0 - d / n)
        # Greenwood's sum; n == d makes the term infinite, S = 0 there and after.
        term = np.where(d > 0, d / (n * (n - d)), 0.0)
        gw = np.cumsum(term)
        se = s * np.sqrt(gw)
        z = stats.norm.ppf(1 - alpha / 2)
        # log(-log S) interval (Kalbfleisch-Prentice): S ** exp(+-z * sqrt(gw) / log S)
        logs = np.log(s)
        half = z * np.sqrt(gw) / np.abs(logs)
        lo = np.exp(-np.exp(np.log(-logs) + half))
        hi = np.exp(-np.exp(np.log(-logs) - half))
    first = s >= 1.0
    lo = np.where(first, 1.0, lo)
    hi = np.where(first, 1.0, hi)
    zero = s <= 0.0
    lo = np.where(zero, 0.0, lo)
    hi = np.where(zero, 0.0, hi)
    se = np.where(zero, 0.0, se)
    out = rt.copy()
    out["survival"] = s
    out["se"] = se
    out["ci_low"] = lo
    out["ci_high"] = hi
    start = pd.DataFrame(
        {
            "time": [0.0],
            "at_risk": [n[0]],
            "events": [0.0],
            "censored": [0.0],
            "survival": [1.0],
            "se": [0.0],
            "ci_low": [1.0],
            "ci_high": [1.0],
        }
    )
    if out["time"].iloc[0] > 0:
        out = pd.concat([start, out], ignore_index=True)
    return out


def _first_time_at_or_below(times: np.ndarray, values: np.ndarray, level: float) -> float:
    hit = np.nonzero(values <= level + 1e-12)[0]
    return float(times[hit[0]]) if len(hit) else float("inf")


@dataclass
class KaplanMeierResult:
    """Kaplan-Meier estimates for one or several groups.

    Attributes
    ----------
    table : DataFrame
        One row per group and distinct time: ``group, time, at_risk, events, censored,
        survival, se`` (Greenwood) and ``ci_low, ci_high`` (log-log interval).
    median : TableResult
        Median survival time per group with its Brookmeyer-Crowley interval (``inf`` when the
        curve or its band never reaches 0.5).
    groups : list
        Group labels (``["all"]`` without ``group=``).
    alpha : float
    n : Series
        Number of units (sum of weights) per group.
    """

    table: pd.DataFrame
    median: TableResult
    groups: list
    alpha: float
    n: pd.Series
    duration: str = "duration"
    group_name: str | None = None
    diagnostics: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    method = "kaplan-meier"

    def curve(self, group: Any = None) -> pd.DataFrame:
        """The survival table of one group (the only group when omitted)."""
        if group is None:
            if len(self.groups) != 1:
                raise ValueError(f"name a group: one of {self.groups}")
            group = self.groups[0]
        if group not in self.groups:
            raise KeyError(f"unknown group {group!r}; groups are {self.groups}")
        return self.table[self.table["group"] == group].drop(columns="group").reset_index(
            drop=True
        )

    def at(self, times: Sequence[float] | float) -> pd.DataFrame:
        """Survival, SE, CI and number at risk at the given times, for every group.

        ``S(t)`` is the right-continuous step function: the estimate at the last distinct
        time ``<= t``. The number at risk is the count with duration ``>= t``.
        """
        ts = np.atleast_1d(np.asarray(times, dtype=float))
        rows = []
        for g in self.groups:
            c = self.curve(g)
            idx = np.searchsorted(c["time"].to_numpy(), ts, side="right") - 1
            ct = c["time"].to_numpy()
            total = float(c["at_risk"].iloc[0])
            leaving = (c["events"] + c["censored"]).to_numpy()
            for t, i in zip(ts, idx, strict=True):
                r = c.iloc[max(i, 0)]
                at_risk = total - leaving[ct < t].sum()
                rows.append(
                    {
                        "group": g,
                        "time": t,
                        "survival": float(r["survival"]) if i >= 0 else 1.0,
                        "se": float(r["se"]) if i >= 0 else 0.0,
                        "ci_low": float(r["ci_low"]) if i >= 0 else 1.0,
                        "ci_high": float(r["ci_high"]) if i >= 0 else 1.0,
                        "at_risk": at_risk,
                    }
                )
        return pd.DataFrame(rows)

    def at_risk(self, times: Sequence[float]) -> pd.DataFrame:
        """Numbers at risk (rows: groups, columns: times), as printed under a KM plot."""
        a = self.at(times)
        return a.pivot(index="group", columns="time", values="at_risk").loc[self.groups]

    def summary(self) -> pd.DataFrame:
        """Per group: units, events, median and its interval."""
        out = self.median.summary().copy()
        out["events"] = [
            float(self.table.loc[self.table["group"] == g, "events"].sum()) for g in self.groups
        ]
        return out

    def plot(self, ax=None, at_risk: bool = True, **kwargs: Any):
        """Step curves with CI bands and (optionally) an at-risk table; returns ``ax``."""
        from promo_analysis.plots.retention import plot_km

        return plot_km(self, ax=ax, at_risk=at_risk, **kwargs)

    def _repr_html_(self) -> str:
        return _html_block("Kaplan-Meier survival", self.summary(), self.warnings)

    def __repr__(self) -> str:
        med = ", ".join(f"{g}: {m:.4g}" for g, m in self.median.estimate.items())
        return f"<KaplanMeierResult {len(self.groups)} group(s), median {med}>"


def kaplan_meier(
    data: pd.DataFrame,
    duration: str,
    event: str,
    group: str | None = None,
    alpha: float = 0.05,
    weights: str | None = None,
) -> KaplanMeierResult:
    """Kaplan-Meier product-limit estimate of the survival function.

    Parameters
    ----------
    data : DataFrame
        One row per unit, or per (duration, event[, group]) cell with a count in ``weights``.
    duration : str
        Time from origin to event or censoring (>= 0, any unit; days throughout this project).
    event : str
        1 if the event was observed, 0 if censored.
    group : str, optional
        Column whose levels get separate curves.
    alpha : float
        Pointwise intervals have level ``1 - alpha``.
    weights : str, optional
        Frequency weights (counts); results equal those on the expanded data.

    Returns
    -------
    KaplanMeierResult
        Survival table with Greenwood standard errors and log-log intervals, medians with
        Brookmeyer-Crowley intervals, ``at(times)``, ``at_risk(times)`` and ``plot()``.

    Notes
    -----
    ``S(t) = prod_{t_j <= t} (1 - d_j / n_j)``; ``Var S(t) = S(t)^2 sum d_j / (n_j (n_j - d_j))``
    (Greenwood); the interval is ``S(t) ** exp(+-z sqrt(sum d_j/(n_j(n_j-d_j))) / log S(t))``.
    The median is the first time with ``S(t) <= 0.5``; its interval runs from the first time
    the lower band falls to 0.5 to the first time the upper band does (Brookmeyer & Crowley
    1982, as computed by R's ``survfit``).
    """
    check_survival_data(
        data, duration, event, weights=weights, extra=[group] if group else ()
    )
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    groups = sorted(data[group].unique().tolist(), key=str) if group else ["all"]
    tables, medians, ns, warns = [], {}, {}, []
    for g in groups:
        sub = data[data[group] == g] if group else data
        t, e, w = _arrays(sub, duration, event, weights)
        keep = w > 0
        c = _km_curve(_risk_table(t[keep], e[keep], w[keep]), alpha)
        c.insert(0, "group", g)
        tables.append(c)
        times = c["time"].to_numpy()
        med = _first_time_at_or_below(times, c["survival"].to_numpy(), 0.5)
        # the lower band crosses 0.5 first: it gives the lower limit of the median
        lo = _first_time_at_or_below(times, c["ci_low"].to_numpy(), 0.5)
        hi = _first_time_at_or_below(times, c["ci_high"].to_numpy(), 0.5)
        ns[g] = float(w.sum())
        nev = float((w * e).sum())
        if nev == 0:
            warns.append(f"group {g!r} has no events: its curve stays at 1")
        medians[g] = Estimate(
            estimate=med,
            se=float("nan"),
            ci_low=lo,
            ci_high=hi,
            n=int(round(ns[g])),
            method="kaplan-meier",
            alpha=alpha,
            estimand="median survival time",
            label=str(g),
            extra={"events": nev},
        )
    table = pd.concat(tables, ignore_index=True)
    median = TableResult.from_estimates(
        medians, method="kaplan-meier (Brookmeyer-Crowley)", index_name="group",
        estimand="median survival time", label="median", alpha=alpha,
    )
    median.table = median.table.drop(columns=["label", "estimand", "method"])
    return KaplanMeierResult(
        table=table,
        median=median,
        groups=groups,
        alpha=alpha,
        n=pd.Series(ns, name="n"),
        duration=duration,
        group_name=group,
        warnings=warns,
    )


def logrank(
    data: pd.DataFrame,
    duration: str,
    event: str,
    group: str,
    weights: str | None = None,
) -> Estimate:
    """Log-rank (Mantel-Haenszel) test that k survival curves are equal.

    Parameters
    ----------
    data : DataFrame
    duration, event : str
        As in :func:`kaplan_meier`.
    group : str
        Column with at least two levels.
    weights : str, optional
        Frequency weights (counts).

    Returns
    -------
    Estimate
        ``estimate`` is the chi-square statistic, ``pvalue`` its upper tail with ``k - 1``
        degrees of freedom (``extra["df"]``); ``diagnostics["table"]`` holds observed and
        expected events per group.

    Notes
    -----
    At each distinct event time with ``n`` at risk and ``d`` events, group ``j`` expects
    ``E_j = d n_j / n`` with hypergeometric covariance
    ``V_jl = d (n - d) / (n - 1) * n_j / n * (delta_jl - n_l / n)``. With ``U = O - E`` summed
    over time, ``chi2 = U' V^- U`` on the first ``k - 1`` groups.
    """
    check_survival_data(data, duration, event, weights=weights, extra=[group])
    levels = sorted(data[group].unique().tolist(), key=str)
    if len(levels) < 2:
        raise ValueError(
            f"data.{group}: the log-rank test compares groups, but all {len(data)} rows are "
            f"in the single group {levels[0]!r}"
        )
    t, e, w = _arrays(data, duration, event, weights)
    g = pd.Categorical(data[group], categories=levels).codes
    times = np.unique(t[(e > 0) & (w > 0)])
    k = len(levels)
    n_j = np.zeros((len(times), k))
    d_j = np.zeros((len(times), k))
    for j in range(k):
        m = g == j
        tj, ej, wj = t[m], e[m], w[m]
        order = np.argsort(tj)
        tj, ej, wj = tj[order], ej[order], wj[order]
        cum = np.concatenate([[0.0], np.cumsum(wj)])
        # at risk: weight with duration >= time
        n_j[:, j] = cum[-1] - cum[np.searchsorted(tj, times, side="left")]
        ecum = np.concatenate([[0.0], np.cumsum(wj * ej)])
        d_j[:, j] = ecum[np.searchsorted(tj, times, side="right")] - ecum[
            np.searchsorted(tj, times, side="left")
        ]
    n = n_j.sum(1)
    d = d_j.sum(1)
    expected = d[:, None] * n_j / n[:, None]
    u = (d_j - expected).sum(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        f = np.where(n > 1, d * (n - d) / (n - 1), 0.0)
    p_j = n_j / n[:, None]
    v = np.einsum("t,tj,tl->jl", f, p_j, -p_j) + np.diag((f[:, None] * p_j).sum(0))
    vv = v[:-1, :-1]
    chi2 = float(u[:-1] @ np.linalg.pinv(vv) @ u[:-1])
    df = k - 1
    p = float(stats.chi2.sf(chi2, df))
    tab = pd.DataFrame(
        {"n": [float(w[g == j].sum()) for j in range(k)], "observed": d_j.sum(0),
         "expected": expected.sum(0)},
        index=pd.Index(levels, name=group),
    )
    return Estimate(
        estimate=chi2,
        se=float("nan"),
        ci_low=float("nan"),
        ci_high=float("nan"),
        n=int(round(w.sum())),
        method="log-rank",
        estimand="chi-square statistic for equal survival curves",
        label=f"log-rank by {group}",
        pvalue=p,
        diagnostics={"table": tab},
        extra={"df": df},
    )
