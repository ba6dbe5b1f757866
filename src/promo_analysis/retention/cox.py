"""Cox proportional-hazards regression with a proportional-hazards check.

statsmodels' ``PHReg`` carries the partial-likelihood fit; this module prepares the design
(dummy-coding categorical covariates), wraps the results in the project's result objects and
adds Harrell's concordance and the Grambsch-Therneau test on scaled Schoenfeld residuals.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from promo_analysis.results import Estimate, TableResult, _html_block
from promo_analysis.retention.survival import check_survival_data

__all__ = ["cox", "CoxResult", "concordance_index", "design_matrix"]


def design_matrix(data: pd.DataFrame, covariates: Sequence[str]) -> pd.DataFrame:
    """Numeric design for ``covariates``: numbers and bools as they are, other columns
    dummy-coded against their first level (sorted), named ``column[level]``.
    """
    parts = []
    for c in covariates:
        s = data[c]
        if pd.api.types.is_bool_dtype(s):
            parts.append(s.astype(float).rename(c))
        elif pd.api.types.is_numeric_dtype(s):
            parts.append(s.astype(float).rename(c))
        else:
            levels = sorted(s.astype(str).unique())
            if len(levels) < 2:
                raise ValueError(
                    f"data.{c}: a categorical covariate needs at least two levels, all "
                    f"{len(s)} rows are {levels[0]!r}"
                )
            cat = pd.Categorical(s.astype(str), categories=levels)
            for lev in levels[1:]:
                parts.append(pd.Series((cat == lev).astype(float), index=data.index,
                                       name=f"{c}[{lev}]"))
    X = pd.concat(parts, axis=1)
    const = [c for c in X.columns if X[c].nunique() < 2]
    if const:
        raise ValueError(
            f"covariate column(s) {const} are constant over all {len(X)} rows; "
            "a Cox model has no intercept, drop them"
        )
    return X


def concordance_index(time: np.ndarray, risk: np.ndarray, event: np.ndarray) -> float:
    """Harrell's C: share of comparable pairs whose higher-risk member fails first.

    A pair is comparable when the shorter time is an event; a unit censored at the same time
    as an event counts as outliving it, two events at the same time are not comparable. Ties
    in risk count one half. O(n log n) with a Fenwick tree over risk ranks.
    """
    time = np.asarray(time, float)
    risk = np.asarray(risk, float)
    event = np.asarray(event, float) > 0
    ranks = np.unique(risk, return_inverse=True)[1]
    m = ranks.max() + 1
    tree = np.zeros(m + 1)

    def add(i: int) -> None:
        i += 1
        while i <= m:
            tree[i] += 1
            i += i & -i

    def prefix(i: int) -> float:  # count with rank < i
        s = 0.0
        while i > 0:
            s += tree[i]
            i -= i & -i
        return s

    order = np.argsort(-time, kind="stable")
    ts = time[order]
    conc = ties = comparable = 0.0
    inserted = 0
    i = 0
    n = len(time)
    while i < n:
        j = i
        while j < n and ts[j] == ts[i]:
            j += 1
        block = order[i:j]
        # a unit censored at an event's time outlived it (Harrell; as R and lifelines):
        # insert the censored first, then score the events, then insert the events
        for k in block:
            if not event[k]:
                add(ranks[k])
                inserted += 1
        for k in block:
            if event[k]:
                below = prefix(ranks[k])
                same = prefix(ranks[k] + 1) - below
                conc += below
                ties += same
                comparable += inserted
        for k in block:
            if event[k]:
                add(ranks[k])
                inserted += 1
        i = j
    if comparable == 0:
        return float("nan")
    return float((conc + 0.5 * ties) / comparable)


@dataclass
class CoxResult:
    """A fitted Cox model.

    Attributes
    ----------
    coefficients : TableResult
        Log hazard ratios with SEs, Wald CIs and p-values; columns ``hazard_ratio``,
        ``hr_ci_low``, ``hr_ci_high`` hold the exponentiated values.
    concordance : float
        Harrell's C of the linear predictor.
    loglik : float
        Maximised log partial likelihood.
    n, n_events : int
    ties : str
    """

    coefficients: TableResult
    concordance: float
    loglik: float
    n: int
    n_events: int
    ties: str
    alpha: float
    cov_params: pd.DataFrame
    diagnostics: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    _schoenfeld: pd.DataFrame | None = None
    _event_times: np.ndarray | None = None

    method = "cox proportional hazards"

    @property
    def params(self) -> pd.Series:
        return self.coefficients.estimate

    @property
    def hazard_ratios(self) -> pd.Series:
        return self.coefficients.table["hazard_ratio"]

    def hazard_ratio(self, name: str) -> Estimate:
        """The hazard ratio of one design column as an :class:`Estimate` (CI on the HR scale,
        ``se`` by the delta method)."""
        tab = self.coefficients.table
        if name not in tab.index:
            raise KeyError(f"no coefficient {name!r}; have {list(tab.index)}")
        r = tab.loc[name]
        hr = float(r["hazard_ratio"])
        return Estimate(
            estimate=hr,
            se=hr * float(r["se"]),
            ci_low=float(r["hr_ci_low"]),
            ci_high=float(r["hr_ci_high"]),
            n=self.n,
            method=f"cox ({self.ties})",
            alpha=self.alpha,
            estimand="hazard ratio",
            label=name,
            pvalue=float(r["pvalue"]),
            null=1.0,
            extra={"events": self.n_events, "concordance": self.concordance},
        )

    def summary(self) -> pd.DataFrame:
        return self.coefficients.summary()

    def scaled_schoenfeld(self) -> pd.DataFrame:
        """Scaled Schoenfeld residuals ``beta + d * V s_k`` at each event (Grambsch &
        Therneau 1994), indexed by event time; plot them against time to check PH."""
        s = self._schoenfeld
        v = self.cov_params.to_numpy()
        scaled = self.n_events * s.to_numpy() @ v + self.params.to_numpy()
        return pd.DataFrame(scaled, index=pd.Index(self._event_times, name="time"),
                            columns=s.columns)

    def ph_test(self, time_transform: str = "rank") -> pd.DataFrame:
        """Grambsch-Therneau test of proportional hazards, per covariate and global.

        Correlates the Schoenfeld residuals with ``g(t)``: ``"identity"`` (t), ``"log"``,
        ``"rank"`` (rank of event times) or ``"km"`` (1 - left-continuous KM). Returns
        ``statistic, df, pvalue`` per covariate and a ``GLOBAL`` row; small p-values mean the
        effect changes over time.
        """
        t = self._event_times
        if time_transform == "identity":
            g = t.astype(float)
        elif time_transform == "log":
            g = np.log(t)
        elif time_transform == "rank":
            g = stats.rankdata(t)
        elif time_transform == "km":
            g = self.diagnostics["km_at_events"]
        else:
            raise ValueError(f"time_transform must be identity, log, rank or km, not "
                             f"{time_transform!r}")
        gc = g - g.mean()
        s = self._schoenfeld.to_numpy()
        v = self.cov_params.to_numpy()
        d = self.n_events
        u = gc @ s
        vu = v @ u
        sgg = float(gc @ gc)
        per = d * vu**2 / (np.diag(v) * sgg)
        glob = d * float(u @ v @ u) / sgg
        p = len(per)
        out = pd.DataFrame(
            {
                "statistic": np.append(per, glob),
                "df": [1] * p + [p],
            },
            index=pd.Index([*self._schoenfeld.columns, "GLOBAL"], name="covariate"),
        )
        out["pvalue"] = stats.chi2.sf(out["statistic"], out["df"])
        return out

    def _repr_html_(self) -> str:
        notes = [f"n = {self.n:,}, events = {self.n_events:,}, ties = {self.ties}, "
                 f"concordance = {self.concordance:.3f}", *self.warnings]
        return _html_block("Cox proportional hazards", self.summary(), notes)

    def __repr__(self) -> str:
        return (f"<CoxResult {len(self.coefficients)} coefficient(s), n={self.n:,}, "
                f"events={self.n_events:,}, C={self.concordance:.3f}>")


def cox(
    data: pd.DataFrame,
    duration: str,
    event: str,
    covariates: Sequence[str],
    ties: str = "efron",
    alpha: float = 0.05,
    strata: str | None = None,
) -> CoxResult:
    """Cox proportional-hazards regression by maximum partial likelihood.

    Parameters
    ----------
    data : DataFrame
        One row per unit.
    duration, event : str
        Time to event or censoring (>= 0) and the 0/1 event indicator.
    covariates : sequence of str
        Numeric and boolean columns enter as they are; other columns are dummy-coded against
        their first (sorted) level, named ``column[level]``.
    ties : {"efron", "breslow"}
    alpha : float
        Level of the Wald intervals.
    strata : str, optional
        Column whose levels get separate baseline hazards.

    Returns
    -------
    CoxResult
        ``coefficients`` (log-HR, SE, CI, p, HR and its CI), ``hazard_ratio(name)``,
        ``concordance``, ``loglik``, ``ph_test()``, ``scaled_schoenfeld()``.
    """
    from statsmodels.duration.hazard_regression import PHReg

    covariates = list(covariates)
    if not covariates:
        raise ValueError("cox needs at least one covariate")
    if ties not in ("efron", "breslow"):
        raise ValueError(f"ties must be 'efron' or 'breslow', not {ties!r}")
    check_survival_data(data, duration, event, extra=[*covariates, *([strata] if strata else [])])
    X = design_matrix(data, covariates)
    t = data[duration].to_numpy(float)
    e = data[event].astype(float).to_numpy()
    model = PHReg(
        t, X.to_numpy(), status=e, ties=ties,
        strata=None if strata is None else data[strata].astype(str).to_numpy(),
    )
    res = model.fit(disp=False)
    params = pd.Series(np.asarray(res.params), index=X.columns)
    cov = pd.DataFrame(np.asarray(res.cov_params()), index=X.columns, columns=X.columns)
    se = np.sqrt(np.diag(cov))
    rows = {}
    z = stats.norm.ppf(1 - alpha / 2)
    for i, name in enumerate(X.columns):
        est = Estimate.from_normal(params.iloc[i], se[i], n=len(data), method=f"cox ({ties})",
                                   alpha=alpha, estimand="log hazard ratio", label=name)
        est.extra = {
            "hazard_ratio": float(np.exp(params.iloc[i])),
            "hr_ci_low": float(np.exp(params.iloc[i] - z * se[i])),
            "hr_ci_high": float(np.exp(params.iloc[i] + z * se[i])),
        }
        rows[name] = est
    table = TableResult.from_estimates(rows, method=f"cox ({ties})", index_name="covariate",
                                       estimand="log hazard ratio", label="Cox model",
                                       alpha=alpha)
    table.table = table.table.drop(columns=["label", "estimand", "method"])
    lp = X.to_numpy() @ params.to_numpy()
    c = concordance_index(t, lp, e)
    sch = np.asarray(res.schoenfeld_residuals)
    ev = e > 0
    sch_df = pd.DataFrame(sch[ev], columns=X.columns)
    times = t[ev]
    order = np.argsort(times, kind="stable")
    sch_df = sch_df.iloc[order].reset_index(drop=True)
    times = times[order]
    # 1 - KM just before each event time, the "km" transform of the PH test
    from promo_analysis.retention.survival import _km_curve, _risk_table

    kmc = _km_curve(_risk_table(t, e, np.ones_like(t)), alpha)
    idx = np.searchsorted(kmc["time"].to_numpy(), times, side="left") - 1
    km_left = np.where(idx >= 0, kmc["survival"].to_numpy()[np.maximum(idx, 0)], 1.0)
    warns = []
    if not np.all(np.isfinite(se)):
        warns.append("some standard errors are not finite: check for separation or "
                     "collinear covariates")
    return CoxResult(
        coefficients=table,
        concordance=c,
        loglik=float(res.llf),
        n=len(data),
        n_events=int(ev.sum()),
        ties=ties,
        alpha=alpha,
        cov_params=cov,
        diagnostics={"km_at_events": 1.0 - km_left, "design_columns": list(X.columns)},
        warnings=warns,
        _schoenfeld=sch_df,
        _event_times=times,
    )
