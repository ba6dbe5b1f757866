"""Raking: calibrate weights to known population margins by iterative proportional fitting.

Each cycle visits every margin ``m`` and multiplies the weights of the units in category ``k``
by ``T_mk / sum_{i in k} w_i`` (Deming and Stephan 1940; R ``survey::rake``). The fixed point
is the weight vector closest to the input weights in the raking (multiplicative, Kullback-
Leibler) distance whose weighted margins equal the targets; the final weights are the input
weights times a product of one factor per category of each margin.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from promo_analysis.survey.design import SurveyDesignError

__all__ = ["rake", "RakeResult"]


@dataclass
class RakeResult:
    """Raked weights and a convergence report.

    Attributes
    ----------
    weights : Series
        The calibrated weights, indexed like the input data.
    converged : bool
        Whether every weighted margin is within ``tol`` (relative) of its target.
    iterations : int
        Full cycles over the margins that were run.
    max_rel_error : float
        Largest ``|achieved - target| / target`` over all margin categories at the end.
    history : list of float
        ``max_rel_error`` after each cycle.
    margins : DataFrame
        One row per margin category: ``margin, level, target, initial, achieved, rel_error``.
    """

    weights: pd.Series
    converged: bool
    iterations: int
    max_rel_error: float
    history: list[float]
    margins: pd.DataFrame
    diagnostics: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> pd.DataFrame:
        """One row: convergence, iterations, error, weight range and Kish weighting deff."""
        return pd.DataFrame(
            {
                "converged": [self.converged],
                "iterations": [self.iterations],
                "max relative error": [self.max_rel_error],
                "min adjustment": [self.diagnostics.get("min_adjustment")],
                "max adjustment": [self.diagnostics.get("max_adjustment")],
                "Kish deff (weights)": [self.diagnostics.get("kish_deff")],
            },
            index=pd.Index(["raking"], name="step"),
        )

    def _repr_html_(self) -> str:
        notes = "".join(f"<li>{html.escape(w)}</li>" for w in self.warnings)
        return (
            "<div><strong>Raked weights</strong>"
            + self.summary().to_html()
            + self.margins.to_html(index=False)
            + (f"<ul>{notes}</ul>" if notes else "")
            + "</div>"
        )

    def __repr__(self) -> str:
        state = "converged" if self.converged else "NOT converged"
        return (
            f"<RakeResult {state} in {self.iterations} iterations, "
            f"max relative error {self.max_rel_error:.2e}, n={len(self.weights):,}>"
        )


def _margin_key(data: pd.DataFrame, cols: tuple[str, ...]) -> pd.Series:
    for c in cols:
        if c not in data.columns:
            raise SurveyDesignError(f"rake: margin column {c!r} is not in the data")
        miss = data[c].isna()
        if miss.any():
            raise SurveyDesignError(
                f"rake: margin column {c!r} has {int(miss.sum())} missing values of "
                f"{len(data)} rows (e.g. row {data.index[miss.to_numpy()][0]!r}); every unit "
                "needs a category to be raked"
            )
    if len(cols) == 1:
        return data[cols[0]]
    return pd.Series(list(zip(*(data[c] for c in cols), strict=True)), index=data.index)


def rake(
    data: pd.DataFrame,
    weights: str,
    margins: Mapping[str | tuple[str, ...], Mapping[Any, float] | pd.Series],
    max_iter: int = 100,
    tol: float = 1e-6,
) -> RakeResult:
    """Rake ``weights`` so that weighted counts match population ``margins``.

    Parameters
    ----------
    data : DataFrame
        The sample, one row per unit.
    weights : str
        Column of starting (design) weights, finite and > 0.
    margins : mapping
        ``{column: {level: population total}}``; a key may be a tuple of columns for a joint
        margin (e.g. ``("region_id", "channel")`` with tuple levels). Every margin must have
        the same grand total, every sample category a target and every positive target at
        least one sample unit.
    max_iter : int
        Maximum number of full cycles over the margins.
    tol : float
        Convergence criterion on the maximum relative margin error.

    Returns
    -------
    RakeResult

    Raises
    ------
    SurveyDesignError
        On invalid weights, missing categories, or incompatible margins.
    """
    if not margins:
        raise SurveyDesignError("rake: no margins given")
    if weights not in data.columns:
        raise SurveyDesignError(f"rake: weights column {weights!r} is not in the data")
    w0 = pd.to_numeric(data[weights], errors="coerce").to_numpy(float)
    bad = ~np.isfinite(w0) | (w0 <= 0)
    if bad.any():
        raise SurveyDesignError(
            f"rake: weights column {weights!r} must be finite and > 0; {int(bad.sum())} of "
            f"{len(w0)} rows break the rule (e.g. row {data.index[bad][0]!r}: {w0[bad][0]!r})"
        )
    specs = []
    grand_totals = {}
    for key, target in margins.items():
        cols = (key,) if isinstance(key, str) else tuple(key)
        name = " x ".join(cols)
        t = pd.Series(target, dtype=float) if not isinstance(target, pd.Series) else target
        t = t.astype(float)
        if len(cols) > 1 and isinstance(t.index, pd.MultiIndex):
            t.index = pd.Index(list(t.index), tupleize_cols=False)
        if (~np.isfinite(t.to_numpy()) | (t.to_numpy() < 0)).any():
            raise SurveyDesignError(f"rake: margin {name!r} has negative or non-finite totals")
        cat = _margin_key(data, cols)
        present = pd.Index(pd.unique(cat))
        unknown = present.difference(t.index, sort=False)
        if len(unknown):
            n_rows = int(cat.isin(list(unknown)).sum())
            raise SurveyDesignError(
                f"rake: margin {name!r} has no population total for {len(unknown)} sample "
                f"categor(y/ies) ({list(unknown)[:5]}), covering {n_rows} rows"
            )
        empty = t[(t > 0) & ~t.index.isin(present)]
        if len(empty):
            raise SurveyDesignError(
                f"rake: margin {name!r} has {len(empty)} categor(y/ies) with a positive "
                f"population total but no sample unit ({list(empty.index)[:5]}); incompatible "
                "margins: collapse categories first"
            )
        zero = t[(t == 0) & t.index.isin(present)]
        if len(zero):
            raise SurveyDesignError(
                f"rake: margin {name!r} gives a population total of 0 to sampled categories "
                f"{list(zero.index)[:5]}; weights must stay > 0"
            )
        codes = pd.Index(t.index).get_indexer(cat)
        specs.append((name, t, codes))
        grand_totals[name] = float(t.sum())
    totals = np.array(list(grand_totals.values()))
    if np.ptp(totals) > 1e-9 * totals.max():
        raise SurveyDesignError(
            "rake: incompatible margins: their population totals differ "
            f"({ {k: round(v, 6) for k, v in grand_totals.items()} }); every margin must add up "
            "to the same population size"
        )

    w = w0.copy()

    def errors(wv: np.ndarray) -> float:
        worst = 0.0
        for _, t, codes in specs:
            got = np.bincount(codes, weights=wv, minlength=len(t))
            tv = t.to_numpy()
            pos = tv > 0
            worst = max(worst, float(np.max(np.abs(got[pos] - tv[pos]) / tv[pos])))
        return worst

    history: list[float] = []
    converged = errors(w) < tol
    it = 0
    while not converged and it < max_iter:
        it += 1
        for _, t, codes in specs:
            got = np.bincount(codes, weights=w, minlength=len(t))
            with np.errstate(divide="ignore", invalid="ignore"):
                factor = np.where(got > 0, t.to_numpy() / got, 1.0)
            w = w * factor[codes]
        history.append(errors(w))
        converged = history[-1] < tol
    notes = []
    if not converged:
        notes.append(
            f"raking did not converge in {max_iter} iterations (max relative error "
            f"{history[-1] if history else errors(w):.3g} > tol {tol:g}); margins may be "
            "nearly incompatible or a category very sparse"
        )
    rows = []
    for name, t, codes in specs:
        init = np.bincount(codes, weights=w0, minlength=len(t))
        got = np.bincount(codes, weights=w, minlength=len(t))
        for lev, tv, a, b in zip(t.index, t.to_numpy(), init, got, strict=True):
            rows.append(
                {
                    "margin": name,
                    "level": lev,
                    "target": tv,
                    "initial": a,
                    "achieved": b,
                    "rel_error": abs(b - tv) / tv if tv > 0 else 0.0,
                }
            )
    adj = w / w0
    return RakeResult(
        weights=pd.Series(w, index=data.index, name=f"{weights}_raked"),
        converged=bool(converged),
        iterations=it,
        max_rel_error=errors(w),
        history=history,
        margins=pd.DataFrame(rows),
        diagnostics={
            "min_adjustment": float(adj.min()),
            "max_adjustment": float(adj.max()),
            "kish_deff": float(len(w) * (w**2).sum() / w.sum() ** 2),
            "population_total": float(totals[0]),
        },
        warnings=notes,
    )
