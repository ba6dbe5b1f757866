"""Result objects shared by every estimator.

Two shapes cover the toolkit, following statsmodels results and lifelines fitters:

* :class:`Estimate` -- one number with its uncertainty (an ATT, a hazard ratio, a share).
* :class:`TableResult` -- several labelled estimates that belong together (one row per arm,
  per campaign, per coefficient), each row with the same columns as an ``Estimate``.

Both expose ``summary()`` (a labelled DataFrame), ``to_frame()`` (tidy rows for concatenating
across regions and campaigns), ``_repr_html_()`` for notebooks and a one-line ``__repr__``.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

__all__ = ["Estimate", "TableResult", "normal_interval", "ESTIMATE_COLUMNS"]

#: Columns every estimate row carries, in this order.
ESTIMATE_COLUMNS = ["estimate", "se", "ci_low", "ci_high", "pvalue", "n"]


def normal_interval(
    estimate: float | np.ndarray,
    se: float | np.ndarray,
    alpha: float = 0.05,
    null: float = 0.0,
    df: float | None = None,
) -> tuple[Any, Any, Any]:
    """Wald interval and two-sided p-value for ``estimate`` with standard error ``se``.

    Uses the standard normal, or Student's t when ``df`` is given (design-based and
    small-sample cluster-robust inference).

    Returns
    -------
    (ci_low, ci_high, pvalue)
    """
    est = np.asarray(estimate, dtype=float)
    s = np.asarray(se, dtype=float)
    dist = stats.norm if df is None else stats.t(df)
    q = dist.ppf(1 - alpha / 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (est - null) / s
        p = 2 * dist.sf(np.abs(z))
    lo, hi = est - q * s, est + q * s
    if np.ndim(est) == 0:
        return float(lo), float(hi), float(p)
    return lo, hi, p


def _fmt(x: Any, digits: int = 4) -> str:
    if x is None:
        return "—"
    if isinstance(x, (int, np.integer)):
        return f"{int(x):,}"
    try:
        xf = float(x)
    except (TypeError, ValueError):
        return str(x)
    if math.isnan(xf):
        return "—"
    if xf != 0 and (abs(xf) >= 1e6 or abs(xf) < 1e-3):
        return f"{xf:.{digits - 1}e}"
    return f"{xf:,.{digits}f}".rstrip("0").rstrip(".") if abs(xf) < 1e6 else f"{xf:,.0f}"


def _html_block(title: str, table: pd.DataFrame, notes: Sequence[str]) -> str:
    parts = [f"<div><strong>{html.escape(title)}</strong>", table.to_html(float_format=_fmt)]
    if notes:
        parts.append(
            "<ul>" + "".join(f"<li>{html.escape(str(n))}</li>" for n in notes) + "</ul>"
        )
    parts.append("</div>")
    return "".join(parts)


@dataclass
class Estimate:
    """A point estimate with standard error, confidence interval and provenance.

    Attributes
    ----------
    estimate, se, ci_low, ci_high : float
        Point estimate, standard error and the ``1 - alpha`` confidence interval.
    n : int
        Number of observations (units) that entered the estimate.
    method : str
        How it was computed, e.g. ``"aipw"``, ``"newcombe"``, ``"kaplan-meier"``.
    alpha : float
        Significance level of the interval.
    estimand : str
        What it estimates, e.g. ``"att"``, ``"difference in 30-day first-send rate"``.
    label : str
        A short human name shown in tables (``"coupon vs. no coupon"``).
    pvalue : float or None
        Two-sided p-value against ``null`` where a test is meaningful.
    diagnostics : dict
        Method-specific checks (overlap, balance tables, effective sample size, ...).
    warnings : list of str
        Plain-language cautions raised while estimating.
    extra : dict
        Further scalars worth reporting next to the estimate (e.g. arm rates, E-value).
    """

    estimate: float
    se: float
    ci_low: float
    ci_high: float
    n: int
    method: str
    alpha: float = 0.05
    estimand: str = ""
    label: str = ""
    pvalue: float | None = None
    null: float = 0.0
    diagnostics: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_normal(
        cls,
        estimate: float,
        se: float,
        *,
        n: int,
        method: str,
        alpha: float = 0.05,
        null: float = 0.0,
        df: float | None = None,
        **kwargs: Any,
    ) -> Estimate:
        """Build an estimate whose CI and p-value come from a normal (or t) approximation."""
        lo, hi, p = normal_interval(estimate, se, alpha=alpha, null=null, df=df)
        return cls(
            estimate=float(estimate),
            se=float(se),
            ci_low=lo,
            ci_high=hi,
            n=int(n),
            method=method,
            alpha=alpha,
            pvalue=p,
            null=null,
            **kwargs,
        )

    @property
    def ci(self) -> tuple[float, float]:
        """The confidence interval as ``(low, high)``."""
        return (self.ci_low, self.ci_high)

    def covers(self, value: float) -> bool:
        """Whether ``value`` lies inside the confidence interval (ends included)."""
        return bool(self.ci_low <= value <= self.ci_high)

    def to_frame(self) -> pd.DataFrame:
        """One tidy row: label, estimand, method, estimate, se, CI, p-value, n, alpha, extras."""
        row: dict[str, Any] = {
            "label": self.label,
            "estimand": self.estimand,
            "method": self.method,
            "estimate": self.estimate,
            "se": self.se,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "pvalue": self.pvalue,
            "n": self.n,
            "alpha": self.alpha,
        }
        for key, value in self.extra.items():
            if np.isscalar(value) or value is None:
                row[key] = value
        return pd.DataFrame([row])

    def summary(self) -> pd.DataFrame:
        """A labelled one-row table with the CI columns named by their level."""
        level = round(100 * (1 - self.alpha), 1)
        lo_name, hi_name = f"{level:g}% CI low", f"{level:g}% CI high"
        df = pd.DataFrame(
            {
                "estimate": [self.estimate],
                "std. error": [self.se],
                lo_name: [self.ci_low],
                hi_name: [self.ci_high],
                "p-value": [self.pvalue],
                "n": [self.n],
            },
            index=pd.Index([self.label or self.estimand or self.method], name="quantity"),
        )
        return df

    def _repr_html_(self) -> str:
        title = f"{self.label or 'Estimate'} ({self.method}"
        title += f", {self.estimand})" if self.estimand else ")"
        return _html_block(title, self.summary(), self.warnings)

    def __repr__(self) -> str:
        level = round(100 * (1 - self.alpha), 1)
        name = self.label or self.estimand or "estimate"
        text = (
            f"<Estimate {name}: {_fmt(self.estimate)} "
            f"[{level:g}% CI {_fmt(self.ci_low)}, {_fmt(self.ci_high)}], "
            f"se={_fmt(self.se)}, n={self.n:,}, method={self.method}"
        )
        if self.pvalue is not None and not math.isnan(self.pvalue):
            text += f", p={self.pvalue:.3g}"
        if self.warnings:
            text += f", {len(self.warnings)} warning(s)"
        return text + ">"


@dataclass
class TableResult:
    """Several estimates that belong together, one labelled row each.

    ``table`` has an index of labels (e.g. arms, campaign ids, coefficient names) and at least
    the columns of :data:`ESTIMATE_COLUMNS`; further columns (rates, costs, adjusted p-values)
    are kept and shown.

    Attributes ``estimate``, ``se``, ``ci_low``, ``ci_high``, ``pvalue`` and ``n`` are Series
    indexed like ``table``.
    """

    table: pd.DataFrame
    method: str
    alpha: float = 0.05
    estimand: str = ""
    label: str = ""
    diagnostics: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        missing = [c for c in ESTIMATE_COLUMNS if c not in self.table.columns]
        if missing:
            raise ValueError(f"TableResult.table lacks the columns {missing}")

    @classmethod
    def from_estimates(
        cls,
        estimates: Mapping[Any, Estimate],
        *,
        method: str,
        index_name: str = "label",
        **kwargs: Any,
    ) -> TableResult:
        """Stack several :class:`Estimate` objects into one table, keyed by the mapping."""
        rows = []
        for key, est in estimates.items():
            row = est.to_frame().iloc[0].to_dict()
            row[index_name] = key
            rows.append(row)
        table = pd.DataFrame(rows).set_index(index_name)
        alphas = {e.alpha for e in estimates.values()}
        alpha = kwargs.pop("alpha", alphas.pop() if len(alphas) == 1 else 0.05)
        warnings = kwargs.pop("warnings", [w for e in estimates.values() for w in e.warnings])
        return cls(table=table, method=method, alpha=alpha, warnings=warnings, **kwargs)

    estimate = property(lambda self: self.table["estimate"])
    se = property(lambda self: self.table["se"])
    ci_low = property(lambda self: self.table["ci_low"])
    ci_high = property(lambda self: self.table["ci_high"])
    pvalue = property(lambda self: self.table["pvalue"])
    n = property(lambda self: self.table["n"])

    def __len__(self) -> int:
        return len(self.table)

    def to_frame(self) -> pd.DataFrame:
        """Tidy rows (the index becomes a column) with ``method``, ``estimand`` and ``alpha``."""
        df = self.table.reset_index()
        df.insert(1, "method", self.method)
        df.insert(2, "estimand", self.estimand)
        df["alpha"] = self.alpha
        return df

    def summary(self) -> pd.DataFrame:
        """The table with the CI columns named by their level."""
        level = round(100 * (1 - self.alpha), 1)
        return self.table.rename(
            columns={
                "se": "std. error",
                "ci_low": f"{level:g}% CI low",
                "ci_high": f"{level:g}% CI high",
                "pvalue": "p-value",
            }
        )

    def _repr_html_(self) -> str:
        title = f"{self.label or 'Estimates'} ({self.method}"
        title += f", {self.estimand})" if self.estimand else ")"
        return _html_block(title, self.summary(), self.warnings)

    def __repr__(self) -> str:
        name = self.label or self.estimand or "estimates"
        text = f"<TableResult {name}: {len(self.table)} rows, method={self.method}"
        if self.warnings:
            text += f", {len(self.warnings)} warning(s)"
        return text + ">"
