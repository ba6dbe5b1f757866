"""Weighted two-way tables with the Rao-Scott corrected chi-square test (R ``svychisq``)."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from promo_analysis.survey.design import Design

__all__ = ["crosstab", "CrosstabResult"]


@dataclass
class CrosstabResult:
    """A weighted contingency table and its design-based test of independence.

    Attributes
    ----------
    counts : DataFrame
        Estimated population counts (sum of weights) per cell.
    proportions : DataFrame
        Estimated cell shares (sum to one).
    row_proportions : DataFrame
        Shares of each column level within a row level (rows sum to one).
    se : DataFrame
        Linearization standard errors of the cell shares.
    statistic : float
        Rao-Scott second-order corrected statistic, ``X2 / trace(Delta)``, referred to
        ``F(ndf, ddf)``.
    ndf, ddf : float
        ``d0 = trace(Delta)^2 / trace(Delta^2)`` and ``d0 * (design df)``.
    pvalue : float
    chisq : float
        The Pearson statistic of the weighted table scaled to ``n`` units (uncorrected).
    delta : numpy.ndarray
        The generalized design-effect matrix ``Delta``.
    n : int
        Rows with both variables answered.
    """

    counts: pd.DataFrame
    proportions: pd.DataFrame
    row_proportions: pd.DataFrame
    se: pd.DataFrame
    statistic: float
    ndf: float
    ddf: float
    pvalue: float
    chisq: float
    delta: np.ndarray
    n: int
    method: str = "Rao-Scott second-order corrected F (svychisq statistic='F')"
    diagnostics: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> pd.DataFrame:
        """One labelled row: F, its degrees of freedom, p-value, Pearson X2, mean deff."""
        return pd.DataFrame(
            {
                "F": [self.statistic],
                "ndf": [self.ndf],
                "ddf": [self.ddf],
                "p-value": [self.pvalue],
                "Pearson X2": [self.chisq],
                "mean generalized deff": [float(np.trace(self.delta) / len(self.delta))],
                "n": [self.n],
            },
            index=pd.Index([self.diagnostics.get("label", "independence")], name="test"),
        )

    def _repr_html_(self) -> str:
        parts = [
            f"<div><strong>Weighted table {html.escape(self.diagnostics.get('label', ''))}"
            f" ({html.escape(self.method)})</strong>",
            self.row_proportions.to_html(float_format=lambda x: f"{x:.3f}"),
            self.summary().to_html(float_format=lambda x: f"{x:.4g}"),
        ]
        if self.warnings:
            parts.append("<ul>" + "".join(f"<li>{html.escape(w)}</li>" for w in self.warnings))
            parts.append("</ul>")
        return "".join(parts) + "</div>"

    def __repr__(self) -> str:
        return (
            f"<CrosstabResult {self.diagnostics.get('label', '')}: F={self.statistic:.4g} on "
            f"({self.ndf:.3g}, {self.ddf:.3g}) df, p={self.pvalue:.3g}, n={self.n:,}>"
        )


def crosstab(design: Design, row: str, col: str) -> CrosstabResult:
    """Weighted ``row`` x ``col`` table and the Rao-Scott F test of independence.

    Follows R ``svychisq(~row + col, design, statistic="F")``: the Pearson statistic of the
    weighted table scaled to the sample size is divided by the mean generalized design effect
    ``trace(Delta)`` and referred to an F distribution with ``d0`` and ``d0 * df`` degrees of
    freedom (Rao and Scott 1984; second-order correction via Satterthwaite's ``d0``).

    Rows with a missing ``row`` or ``col`` are a domain excluded from the table (counted in
    ``warnings``); unlike R, the table is scaled to the number of complete rows.
    """
    r_s, c_s = design.column(row), design.column(col)
    ok = (r_s.notna() & c_s.notna()).to_numpy()
    n_missing = int((~ok).sum())
    notes = list(design.warnings)
    if n_missing:
        notes.append(
            f"{n_missing} of {design.n} rows miss {row!r} or {col!r}; excluded as a domain"
        )
    r_levels = pd.Index(pd.unique(r_s[ok])).sort_values()
    c_levels = pd.Index(pd.unique(c_s[ok])).sort_values()
    nr, nc = len(r_levels), len(c_levels)
    if nr < 2 or nc < 2:
        raise ValueError(
            f"crosstab needs at least two observed levels of each variable; {row!r} has {nr}, "
            f"{col!r} has {nc}"
        )
    ri = r_levels.get_indexer(r_s.where(ok, r_levels[0]))
    ci = c_levels.get_indexer(c_s.where(ok, c_levels[0]))
    cell = ri + nr * ci  # row level varies fastest
    n = int(ok.sum())
    w = design.subset_weights(ok)
    wsum = w.sum()
    x = np.zeros((design.n, nr * nc))
    x[np.arange(design.n), cell] = ok
    p = (w @ x) / wsum
    z = w[:, None] * (x - p) / wsum
    v = design.variance(z)

    # Pearson X2 of the weighted table scaled to n units
    pm = p.reshape(nc, nr).T  # rows x cols
    expected = np.outer(pm.sum(1), pm.sum(0))
    with np.errstate(divide="ignore", invalid="ignore"):
        chisq = float(n * np.nansum(np.where(expected > 0, (pm - expected) ** 2 / expected, 0)))

    # contrasts spanning the interaction, orthogonal to the main effects
    grid_r = np.tile(np.arange(nr), nc)
    grid_c = np.repeat(np.arange(nc), nr)
    rd = (grid_r[:, None] == np.arange(1, nr)).astype(float)
    cd = (grid_c[:, None] == np.arange(1, nc)).astype(float)
    x1 = np.column_stack([np.ones(nr * nc), rd, cd])
    x12 = np.column_stack([rd[:, i] * cd[:, j] for j in range(nc - 1) for i in range(nr - 1)])
    cmat = x12 - x1 @ np.linalg.lstsq(x1, x12, rcond=None)[0]
    idm = np.diag(np.where(p > 0, 1 / np.where(p > 0, p, 1), 0.0))
    denom = cmat.T @ (idm / n) @ cmat
    numr = cmat.T @ idm @ v @ idm @ cmat
    delta = np.linalg.solve(denom, numr)
    tr = float(np.trace(delta))
    d0 = tr**2 / float(np.trace(delta @ delta))
    nu = max(design.df, 1)
    f_stat = chisq / tr
    pvalue = float(stats.f.sf(f_stat, d0, d0 * nu))
    if (p == 0).any():
        notes.append(f"{int((p == 0).sum())} empty cell(s) in the weighted table")

    def frame(values: np.ndarray) -> pd.DataFrame:
        return pd.DataFrame(
            values,
            index=pd.Index(r_levels, name=row),
            columns=pd.Index(c_levels, name=col),
        )

    with np.errstate(divide="ignore", invalid="ignore"):
        row_props = pm / pm.sum(1, keepdims=True)
    return CrosstabResult(
        counts=frame(pm * wsum),
        proportions=frame(pm),
        row_proportions=frame(row_props),
        se=frame(np.sqrt(np.clip(np.diag(v), 0, None)).reshape(nc, nr).T),
        statistic=float(f_stat),
        ndf=float(d0),
        ddf=float(d0 * nu),
        pvalue=pvalue,
        chisq=chisq,
        delta=delta,
        n=n,
        diagnostics={**design.describe(), "label": f"{row} x {col}", "n_missing": n_missing},
        warnings=notes,
    )
