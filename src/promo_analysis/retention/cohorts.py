"""Acquisition cohorts: share of each cohort still sending k periods after its first parcel."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from promo_analysis.results import _html_block

__all__ = ["cohort_matrix", "CohortResult"]


@dataclass
class CohortResult:
    """Cohort retention matrices.

    Attributes
    ----------
    counts : DataFrame
        Long form ``group, cohort, k, active, size, observed`` (one row per cell).
    count : DataFrame
        Active customers, rows ``(group, cohort)`` (just ``cohort`` with one group), columns
        ``k``; cells not yet observed are missing.
    share : DataFrame
        ``count / size`` with the same shape.
    size : Series
        Customers per cohort.
    freq : str
    """

    counts: pd.DataFrame
    freq: str
    diagnostics: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    method = "cohort retention"

    def _wide(self, values: pd.Series) -> pd.DataFrame:
        c = self.counts.assign(_v=values.where(self.counts["observed"]))
        idx = ["cohort"] if c["group"].nunique() == 1 else ["group", "cohort"]
        wide = c.pivot_table(index=idx, columns="k", values="_v", aggfunc="first",
                             dropna=False)
        wide.columns.name = "k"
        return wide

    @property
    def count(self) -> pd.DataFrame:
        return self._wide(self.counts["active"].astype(float))

    @property
    def share(self) -> pd.DataFrame:
        return self._wide(self.counts["active"] / self.counts["size"])

    @property
    def size(self) -> pd.Series:
        s = self.counts.drop_duplicates(["group", "cohort"])
        if s["group"].nunique() == 1:
            return s.set_index("cohort")["size"]
        return s.set_index(["group", "cohort"])["size"]

    def average(self) -> pd.DataFrame:
        """Size-weighted share active at each k per group, over the cohorts observed at k,
        with a binomial SE (customers as independent units)."""
        c = self.counts[self.counts["observed"]]
        g = c.groupby(["group", "k"]).agg(active=("active", "sum"), size=("size", "sum"))
        g["share"] = g["active"] / g["size"]
        g["se"] = np.sqrt(g["share"] * (1 - g["share"]) / g["size"])
        return g.reset_index()

    def summary(self) -> pd.DataFrame:
        return self.share

    def plot(self, ax=None, group: Any = None, **kwargs: Any):
        """Heatmap of the share active; returns ``ax``."""
        from promo_analysis.plots.retention import plot_cohort_heatmap

        return plot_cohort_heatmap(self, ax=ax, group=group, **kwargs)

    def _repr_html_(self) -> str:
        return _html_block(f"Cohort retention (share active, freq={self.freq})",
                           self.share.round(3), self.warnings)

    def __repr__(self) -> str:
        n = self.counts.drop_duplicates(["group", "cohort"]).shape[0]
        return f"<CohortResult {n} cohort(s), freq={self.freq}, k < {self.counts['k'].max() + 1}>"


def cohort_matrix(
    data: Any,
    customer: str = "customer_id",
    time: str = "sent_at",
    freq: str = "M",
    periods: int = 12,
    cohort_by: str | None = None,
    region: str | None = None,
) -> CohortResult:
    """Share and count of each acquisition cohort active k periods after acquisition.

    Parameters
    ----------
    data : DataFrame or Dataset
        Transactions (one row per parcel) with ``customer`` and ``time`` columns; or a
        ``Dataset``, in which case the counts are computed in the engine by
        ``features.cohort_counts`` (``customer``/``time`` are then the shipments columns).
    customer, time : str
    freq : {"D", "W", "M", "Q", "Y"}
        Period length. The cohort is the period of the first transaction; a customer is active
        in period k if they transact at least once in the k-th period after it.
    periods : int
        Number of periods ``k = 0 .. periods - 1`` (k = 0 is always 100%).
    cohort_by : str, optional
        A column whose value on the customer's first transaction splits the cohorts (for a
        Dataset: ``"first_used_coupon"`` or a customers column).
    region : str, optional
        Dataset only: restrict to the shipments of one ``region_id``.

    Returns
    -------
    CohortResult
        ``.share``, ``.count``, ``.size``, ``.average()``, ``.plot(ax=None)``. Cells beyond the
        last observed period are missing (not zero).
    """
    from promo_analysis.features.cohorts import FREQ_UNITS, _complete_cells

    if freq not in FREQ_UNITS:
        raise ValueError(f"freq must be one of {sorted(FREQ_UNITS)}, not {freq!r}")
    if periods < 1:
        raise ValueError(f"periods must be >= 1, got {periods}")
    if hasattr(data, "table") and not isinstance(data, pd.DataFrame):
        from promo_analysis.features.cohorts import cohort_counts

        counts = cohort_counts(data, freq=freq, periods=periods, cohort_by=cohort_by,
                               region=region)
        return CohortResult(counts=counts, freq=freq, diagnostics={"engine": True})
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"data must be a DataFrame or a Dataset, got {type(data).__name__}")
    cols = [customer, time, *([cohort_by] if cohort_by else [])]
    missing = [c for c in cols if c not in data.columns]
    if missing:
        raise ValueError(f"data lacks the column(s) {missing}; it has {list(data.columns)}")
    for c in (customer, time):
        na = data[c].isna()
        if na.any():
            raise ValueError(f"data.{c}: {int(na.sum())} of {len(data)} rows are missing "
                             f"(e.g. row {data.index[na.to_numpy()][0]!r})")
    ts = pd.to_datetime(data[time])
    df = pd.DataFrame({"customer": data[customer].to_numpy(), "ts": ts.to_numpy(),
                       "p": ts.dt.to_period(freq).array.asi8})
    order = np.lexsort((np.arange(len(df)), df["ts"].to_numpy()))
    firsts = df.iloc[order].drop_duplicates("customer")
    if cohort_by:
        grp = data[cohort_by].iloc[firsts.index].astype(str).to_numpy()
    else:
        grp = np.full(len(firsts), "all", dtype=object)
    first = pd.DataFrame({"customer": firsts["customer"].to_numpy(),
                          "cp": firsts["p"].to_numpy(), "group": grp})
    act = df[["customer", "p"]].drop_duplicates().merge(first, on="customer")
    act["k"] = act["p"] - act["cp"]
    act = act[act["k"] < periods]
    to_ts = {o: pd.Period(ordinal=o, freq=freq).start_time for o in first["cp"].unique()}
    act["cohort"] = act["cp"].map(to_ts)
    first["cohort"] = first["cp"].map(to_ts)
    cells = act.groupby(["group", "cohort", "k"]).size().rename("active").reset_index()
    sizes = first.groupby(["group", "cohort"]).size().rename("size").reset_index()
    last = pd.Period(ordinal=int(df["p"].max()), freq=freq)
    counts = _complete_cells(cells, sizes, last, freq, periods)
    return CohortResult(counts=counts, freq=freq, diagnostics={"engine": False,
                                                                "customers": len(first)})
