"""A complex sampling design: weights, strata, primary sampling units (PSUs), fpc.

The variance of an estimated total ``sum_i z_i`` (``z_i`` already carries the sampling weight,
i.e. it is a linearized "influence" value) follows Lumley's R ``survey`` package for a
one-stage design (``svyrecvar`` at the first stage)::

    V = sum_h (1 - f_h) * n_h / (n_h - 1) * sum_j (z_hj - zbar_h)^2

where ``z_hj`` is the total of ``z`` over PSU ``j`` of stratum ``h``, ``zbar_h`` their mean
over the ``n_h`` PSUs of the stratum and ``f_h`` the first-stage sampling fraction (0 without
``fpc``: the with-replacement approximation). Later-stage variance is not added: with
``fpc`` this is exact only for single-stage cluster (or element) sampling; for multistage
designs it is the usual with-replacement approximation, slightly conservative.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["Design", "SurveyDesignError", "LONELY_PSU_OPTIONS", "survey_design"]

LONELY_PSU_OPTIONS = ("fail", "adjust", "certainty", "remove")


class SurveyDesignError(ValueError):
    """Raised when the data cannot describe a valid sampling design."""


def _column(data: pd.DataFrame, name: str, role: str) -> pd.Series:
    if name not in data.columns:
        raise SurveyDesignError(
            f"survey design: {role} column {name!r} is not in the data "
            f"(columns: {', '.join(map(str, data.columns[:20]))})"
        )
    return data[name]


def _example(frame: pd.DataFrame, mask: np.ndarray, cols: list[str]) -> str:
    row = frame.loc[mask, cols].head(1)
    if row.empty:
        return ""
    return f"; e.g. row {row.index[0]!r}: " + ", ".join(
        f"{c}={row.iloc[0][c]!r}" for c in cols
    )


class Design:
    """A sampling design for design-based (randomization) inference, after R ``svydesign``.

    Parameters
    ----------
    data : pandas.DataFrame
        One row per responding unit.
    weights : str
        Column of sampling weights (inverse inclusion probabilities, possibly adjusted for
        non-response or calibrated). Must be finite and strictly positive.
    strata : str, optional
        Column of first-stage strata. Without it the design has one stratum.
    cluster : str, optional
        Column of primary sampling units (PSUs). Without it every row is its own PSU.
    fpc : str, optional
        Column giving the finite-population correction of the first stage, constant within a
        stratum: either the population number of PSUs in the stratum (a value > 1; the number
        of elements when there is no ``cluster``) or the sampling fraction ``n_h / N_h`` (a
        value in (0, 1]). Without it PSUs are treated as drawn with replacement.
    nest : bool, default False
        Whether PSU labels are only unique within a stratum (``"c1"`` in several strata are
        different PSUs). With ``nest=False`` a PSU label appearing in two strata is an error,
        as in R.
    lonely_psu : {"fail", "adjust", "certainty", "remove"}
        What to do with a stratum that has a single PSU (its variance contribution is not
        estimable): ``"fail"`` raises; ``"adjust"`` centres that PSU at the grand mean of all
        PSU totals instead of its stratum mean (conservative); ``"certainty"`` declares it a
        certainty PSU (selected with probability one, contributes no first-stage variance);
        ``"remove"`` drops its contribution (numerically as ``"certainty"`` but warns, as it
        is a repair, not a design fact). A stratum whose ``fpc`` says every PSU was taken is a
        certainty stratum and never "lonely".

    Attributes
    ----------
    n : int
        Number of rows (units).
    weights : numpy.ndarray
        The sampling weights.
    n_strata, n_psu : int
        Numbers of strata and of PSUs.
    df : int
        Design degrees of freedom: #PSUs - #strata (R ``degf``).
    warnings : list of str
        Notes raised while building the design (lonely PSUs handled, ...).
    """

    def __init__(
        self,
        data: pd.DataFrame,
        weights: str,
        strata: str | None = None,
        cluster: str | None = None,
        fpc: str | None = None,
        nest: bool = False,
        lonely_psu: str = "fail",
    ) -> None:
        if not isinstance(data, pd.DataFrame):
            raise TypeError(f"survey design: data must be a pandas DataFrame, got {type(data)}")
        if lonely_psu not in LONELY_PSU_OPTIONS:
            raise SurveyDesignError(
                f"survey design: lonely_psu must be one of {LONELY_PSU_OPTIONS}, "
                f"got {lonely_psu!r}"
            )
        if len(data) == 0:
            raise SurveyDesignError("survey design: the data has no rows")
        self.data = data
        self.weights_col, self.strata_col, self.cluster_col, self.fpc_col = (
            weights,
            strata,
            cluster,
            fpc,
        )
        self.nest = nest
        self.lonely_psu = lonely_psu
        self.warnings: list[str] = []

        w = pd.to_numeric(_column(data, weights, "weights"), errors="coerce").to_numpy(float)
        bad = ~np.isfinite(w) | (w <= 0)
        if bad.any():
            raise SurveyDesignError(
                f"survey design: weights column {weights!r} must be finite and > 0; "
                f"{int(bad.sum())} of {len(w)} rows break the rule"
                + _example(data, bad, [weights])
            )
        self.weights = w
        self.n = len(data)

        for col, role in ((strata, "strata"), (cluster, "cluster")):
            if col is not None:
                miss = _column(data, col, role).isna().to_numpy()
                if miss.any():
                    raise SurveyDesignError(
                        f"survey design: {role} column {col!r} has {int(miss.sum())} missing "
                        f"values of {len(data)} rows" + _example(data, miss, [col])
                    )

        if strata is None:
            strata_codes = np.zeros(self.n, dtype=np.int64)
            self.strata_labels = pd.Index(["(all)"])
        else:
            strata_codes, self.strata_labels = pd.factorize(data[strata], sort=True)
        strata_codes = np.asarray(strata_codes, dtype=np.int64)
        n_s = int(strata_codes.max()) + 1
        if cluster is None:
            psu_codes = np.arange(self.n, dtype=np.int64)
        else:
            c_codes, c_labels = pd.factorize(data[cluster], sort=False)
            # one integer per (stratum, cluster label) pair
            pair = c_codes.astype(np.int64) * n_s + strata_codes
            if not nest and strata is not None:
                pairs = np.unique(pair)
                per_label = np.bincount(pairs // n_s, minlength=len(c_labels))
                crossing = np.flatnonzero(per_label > 1)
                if len(crossing):
                    raise SurveyDesignError(
                        f"survey design: {len(crossing)} PSU label(s) of {cluster!r} occur in "
                        f"more than one stratum of {strata!r} (e.g. {c_labels[crossing[0]]!r});"
                        " PSUs must be nested in strata: pass nest=True if labels are only "
                        "unique within a stratum"
                    )
            psu_codes, _ = pd.factorize(pair if nest else c_codes, sort=False)
        self.strata_codes = np.asarray(strata_codes, dtype=np.int64)
        self.psu_codes = np.asarray(psu_codes, dtype=np.int64)
        self.n_strata = len(self.strata_labels)
        self.n_psu = int(self.psu_codes.max()) + 1
        # stratum of each PSU
        self.psu_stratum = np.empty(self.n_psu, dtype=np.int64)
        self.psu_stratum[self.psu_codes] = self.strata_codes
        self.psu_per_stratum = np.bincount(self.psu_stratum, minlength=self.n_strata)

        self.sampling_fraction = self._fpc(data)
        self._lonely = self._check_lonely(data)
        self.df = int(self.n_psu - self.n_strata)

    # -- construction helpers -------------------------------------------------------------
    def _fpc(self, data: pd.DataFrame) -> np.ndarray:
        """Per-stratum first-stage sampling fraction f_h (zeros without fpc)."""
        if self.fpc_col is None:
            return np.zeros(self.n_strata)
        col = self.fpc_col
        values = pd.to_numeric(_column(data, col, "fpc"), errors="coerce").to_numpy(float)
        bad = ~np.isfinite(values) | (values <= 0)
        if bad.any():
            raise SurveyDesignError(
                f"survey design: fpc column {col!r} must be a positive number (population "
                f"PSU count or sampling fraction); {int(bad.sum())} of {self.n} rows break the "
                "rule" + _example(data, bad, [col])
            )
        lo = np.full(self.n_strata, np.inf)
        hi = np.full(self.n_strata, -np.inf)
        np.minimum.at(lo, self.strata_codes, values)
        np.maximum.at(hi, self.strata_codes, values)
        if (hi > lo).any():
            h = int(np.argmax(hi - lo))
            raise SurveyDesignError(
                f"survey design: fpc column {col!r} must be constant within a stratum; stratum "
                f"{self.strata_labels[h]!r} has values from {lo[h]:g} to {hi[h]:g}"
            )
        v = lo
        n_h = self.psu_per_stratum.astype(float)
        # 1 is both "all sampled" (a fraction) and "one PSU in the population" (a count)
        if (v < 1).any() and (v > 1).any():
            raise SurveyDesignError(
                f"survey design: fpc column {col!r} mixes sampling fractions (< 1) and "
                "population sizes (> 1) across strata; use one kind"
            )
        if not (v > 1).any():
            f = v
        else:
            too_small = v < n_h
            if too_small.any():
                h = int(np.argmax(too_small))
                raise SurveyDesignError(
                    f"survey design: fpc column {col!r} gives {v[h]:g} population PSUs in "
                    f"stratum {self.strata_labels[h]!r} but the sample has {int(n_h[h])} PSUs "
                    f"there; {int(too_small.sum())} stratum/strata break the rule"
                )
            f = n_h / v
        return f

    def _check_lonely(self, data: pd.DataFrame) -> np.ndarray:
        lonely = (self.psu_per_stratum == 1) & (self.sampling_fraction < 1)
        if lonely.any():
            labels = [self.strata_labels[h] for h in np.flatnonzero(lonely)]
            shown = ", ".join(map(repr, labels[:5])) + (" ..." if len(labels) > 5 else "")
            if self.lonely_psu == "fail":
                raise SurveyDesignError(
                    f"survey design: {len(labels)} stratum/strata of {self.strata_col!r} have a "
                    f"single PSU ({shown}), so their variance cannot be estimated; "
                    "pass lonely_psu='adjust' (centre at the grand mean, conservative), "
                    "'certainty' (PSU taken with certainty) or 'remove' (drop its contribution)"
                )
            if self.lonely_psu != "certainty":
                self.warnings.append(
                    f"{len(labels)} stratum/strata with a single PSU ({shown}) handled by "
                    f"lonely_psu={self.lonely_psu!r}"
                )
        return lonely

    # -- variance ---------------------------------------------------------------------------
    def variance(self, z: np.ndarray) -> np.ndarray:
        """Design covariance matrix of the estimated totals ``z.sum(axis=0)``.

        Parameters
        ----------
        z : array of shape (n,) or (n, k)
            Weighted linearized values, one row per unit of the design (zero for units outside
            a domain: their PSUs still count).

        Returns
        -------
        numpy.ndarray of shape (k, k)
        """
        z = np.asarray(z, dtype=float)
        if z.ndim == 1:
            z = z[:, None]
        if z.shape[0] != self.n:
            raise ValueError(f"z has {z.shape[0]} rows, the design has {self.n}")
        k = z.shape[1]
        # bincount per column: much faster than np.add.at on large surveys
        totals = np.column_stack(
            [np.bincount(self.psu_codes, weights=z[:, j], minlength=self.n_psu) for j in range(k)]
        )
        s = self.psu_stratum
        n_h = self.psu_per_stratum.astype(float)
        stratum_sum = np.column_stack(
            [np.bincount(s, weights=totals[:, j], minlength=self.n_strata) for j in range(k)]
        )
        centre = stratum_sum / n_h[:, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            scale_h = np.where(n_h > 1, n_h / (n_h - 1), 1.0) * (1 - self.sampling_fraction)
        lonely_psu = self._lonely[s]
        if lonely_psu.any():
            if self.lonely_psu == "adjust":
                # R survey: a lonely PSU deviates from the average PSU total of the whole stage
                grand = totals.sum(axis=0) / self.n_psu
                centre = centre.copy()
                centre[self._lonely] = grand
            else:  # certainty / remove: no first-stage contribution
                scale_h = np.where(self._lonely, 0.0, scale_h)
        dev = totals - centre[s]
        return (dev * scale_h[s][:, None]).T @ dev

    # -- description ------------------------------------------------------------------------
    def summary(self) -> pd.DataFrame:
        """One row per stratum: rows, PSUs, sum of weights, sampling fraction, lonely flag."""
        df = pd.DataFrame(
            {
                "rows": np.bincount(self.strata_codes, minlength=self.n_strata),
                "psus": self.psu_per_stratum,
                "sum_weights": np.bincount(
                    self.strata_codes, weights=self.weights, minlength=self.n_strata
                ),
                "sampling_fraction": self.sampling_fraction,
                "lonely_psu": self._lonely,
            },
            index=pd.Index(self.strata_labels, name=self.strata_col or "stratum"),
        )
        return df

    def describe(self) -> dict[str, Any]:
        """Scalars describing the design (for ``diagnostics``)."""
        return {
            "design_rows": self.n,
            "design_strata": self.n_strata,
            "design_psus": self.n_psu,
            "design_df": self.df,
            "fpc": self.fpc_col is not None,
            "lonely_psu": self.lonely_psu,
            "lonely_strata": int(self._lonely.sum()),
            # Kish's effective sample size of the weights alone: (sum w)^2 / sum w^2
            "kish_ess": float(self.weights.sum() ** 2 / (self.weights**2).sum()),
        }

    def subset_weights(self, mask: np.ndarray) -> np.ndarray:
        """Weights with units outside ``mask`` set to zero (domain, not a new design)."""
        return np.where(mask, self.weights, 0.0)

    def _repr_html_(self) -> str:
        return (
            f"<div><strong>Survey design</strong> {self._label()}</div>"
            + self.summary().to_html()
        )

    def _label(self) -> str:
        parts = [f"{self.n:,} rows", f"{self.n_strata} strata", f"{self.n_psu} PSUs"]
        parts.append(f"df={self.df}")
        if self.fpc_col:
            parts.append("fpc")
        return ", ".join(parts)

    def __repr__(self) -> str:
        return f"<Design {self._label()}, weights={self.weights_col!r}>"

    def __len__(self) -> int:
        return self.n

    def column(self, name: Hashable) -> pd.Series:
        """A column of the design's data, with a clear error when absent."""
        return _column(self.data, str(name), "analysis")


def survey_design(
    data: pd.DataFrame,
    *,
    weights: str = "weight",
    strata: str | None = "stratum",
    cluster: str | None = "cluster",
    fpc: str | None = "auto",
    lonely_psu: str = "adjust",
) -> Design:
    """The design of a contract ``survey`` table (weights, strata, clusters nested in strata).

    With several regions in the table, strata are region x stratum (each region's survey is
    its own stratified sample), so a national estimate or ``by(design, var, "region_id")``
    uses the right design. ``fpc="auto"`` uses the column ``stratum_clusters`` (population PSUs per stratum) when the
    table has it. Cluster labels are taken as nested in strata (``nest=True``). Lonely PSUs are
    adjusted by default so that a regional report never stops on one small stratum; the
    handling is recorded in ``Design.warnings``.
    """
    if fpc == "auto":
        fpc = "stratum_clusters" if "stratum_clusters" in data.columns else None
    # the contract allows surveys without strata or clusters: an all-null column means none
    if strata is not None and strata in data.columns and data[strata].isna().all():
        strata = None
    if cluster is not None and cluster in data.columns and data[cluster].isna().all():
        cluster = None
    if (
        strata is not None
        and "region_id" in data.columns
        and data["region_id"].nunique(dropna=False) > 1
    ):
        # each region runs its own survey: a stratum label ("station") in two regions is two
        # strata, with its own PSU count and fpc
        data = data.assign(
            region_stratum=data["region_id"].astype(str) + "|" + data[strata].astype(str)
        )
        strata = "region_stratum"
    return Design(
        data,
        weights=weights,
        strata=strata,
        cluster=cluster,
        fpc=fpc,
        nest=True,
        lonely_psu=lonely_psu,
    )
