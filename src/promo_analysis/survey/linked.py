"""What respondents say vs. what they do: survey answers joined to later sending behaviour.

For respondents linked to a customer id, the engine counts their shipments before the survey
and in the ``window_days`` after it (all, and at full price, i.e. without a coupon). Design-
based domain means by answer (e.g. ``coupon_influenced`` yes / no) then compare later
behaviour of those who say coupons influence them with those who say they do not, next to the
behavioural coupon effect of the first-use analysis (``features.first_use_table`` +
``causal.estimate_effect``) when the dataset allows it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from promo_analysis.results import Estimate, TableResult
from promo_analysis.survey.design import Design, survey_design
from promo_analysis.survey.estimators import by, proportion

__all__ = ["linked_behaviour", "survey_table", "linked_outcomes", "LINKED_OUTCOMES"]

#: Outcome columns added by :func:`linked_outcomes` (NaN outside their domain).
LINKED_OUTCOMES = {
    "first_send_within_window": "first parcel within the window (prospects at survey time)",
    "sent_within_window": "any parcel within the window (linked respondents)",
    "full_price_within_window": "a full-price parcel (no coupon) within the window",
}


def survey_table(ds: Any, region: str | None = None) -> pd.DataFrame:
    """The ``survey`` table of ``ds`` (one region's rows when ``region`` is given)."""
    if not ds.has("survey"):
        raise KeyError(f"the dataset has no survey table (tables: {', '.join(ds.tables)})")
    t = ds.table("survey")
    if region is not None:
        t = t.filter(t.region_id == region)
    frame = t.to_pandas()
    if region is not None and frame.empty:
        raise ValueError(f"the survey table has no response for region {region!r}")
    return frame


def linked_outcomes(ds: Any, survey: pd.DataFrame, window_days: int = 30) -> pd.DataFrame:
    """Add later-behaviour columns to ``survey`` (shipment counts computed in the engine).

    Adds ``linked`` (has a customer id), ``n_before``, ``n_window``, ``n_full_price_window``
    and the 0/1 outcomes of :data:`LINKED_OUTCOMES` (NaN outside their domain: unlinked
    respondents; for ``first_send_within_window`` also those who had sent before).
    The window is ``[surveyed_at, surveyed_at + window_days)``.
    """
    out = survey.copy()
    linked = out["customer_id"].notna().to_numpy()
    out["linked"] = linked
    ids = out.loc[linked, ["response_id", "customer_id", "surveyed_at"]]
    counts = pd.DataFrame(
        columns=["response_id", "n_before", "n_window", "n_full_price_window"]
    )
    if len(ids):
        import ibis  # the engine is only needed here

        sv = ibis.memtable(
            ids.assign(surveyed_at=pd.to_datetime(ids["surveyed_at"])).astype(
                {"response_id": str, "customer_id": str}
            )
        )
        sh = ds.table("shipments").select("customer_id", "sent_at", "coupon_id")
        j = sv.join(sh, "customer_id")
        start = j.surveyed_at.cast("timestamp")
        end = start + ibis.interval(days=int(window_days))
        in_window = (j.sent_at >= start) & (j.sent_at < end)
        counts = (
            j.group_by("response_id")
            .aggregate(
                n_before=(j.sent_at < start).ifelse(1, 0).sum(),
                n_window=in_window.ifelse(1, 0).sum(),
                n_full_price_window=(in_window & j.coupon_id.isnull()).ifelse(1, 0).sum(),
            )
            .to_pandas()
        )
    out = out.merge(counts, on="response_id", how="left")
    for c in ("n_before", "n_window", "n_full_price_window"):
        out[c] = pd.to_numeric(out[c]).fillna(0).where(out["linked"], np.nan)
    lk = out["linked"].to_numpy()
    prospect = lk & (out["n_before"].to_numpy() == 0)
    out["first_send_within_window"] = np.where(prospect, out["n_window"] > 0, np.nan)
    out["sent_within_window"] = np.where(lk, out["n_window"] > 0, np.nan)
    out["full_price_within_window"] = np.where(lk, out["n_full_price_window"] > 0, np.nan)
    return out


def _difference(tab: TableResult, a: Any, b: Any, df: int, label: str) -> Estimate | None:
    vc = tab.diagnostics["vcov"]
    if a not in vc.index or b not in vc.index:
        return None
    est = float(tab.estimate[a] - tab.estimate[b])
    var = float(vc.loc[a, a] + vc.loc[b, b] - 2 * vc.loc[a, b])
    return Estimate.from_normal(
        est,
        np.sqrt(max(var, 0.0)),
        n=int(tab.n[a] + tab.n[b]),
        method="survey domain difference (linearization)",
        df=max(df, 1),
        label=label,
        estimand="difference of domain means",
    )


def _behavioural_effect(
    ds: Any, region: str | None, window_days: int, method: str
) -> tuple[Estimate | None, str | None]:
    """The first-use coupon effect (ATE) where the first-use analysis is available."""
    try:
        from promo_analysis import causal, features

        table = features.first_use_table(ds, window_days=window_days)
    except Exception as err:  # the table needs coupons and customers; report why not
        return None, f"behavioural coupon effect not computed: {type(err).__name__}: {err}"
    if region is not None:
        table = table[table["region_id"] == region]
    covariates = [
        c
        for c in ("segment", "wechat_contact", "parcels_received", "tenure_days", "region_id")
        if c in table.columns and table[c].nunique() > 1
    ]
    if table.empty or table["got_coupon"].nunique() < 2:
        return None, "behavioural coupon effect not computed: no coupon/no-coupon contrast"
    try:
        eff = causal.estimate_effect(
            table, covariates=covariates, method=method, estimand="ate", folds=2
        )
    except Exception as err:
        return None, f"behavioural coupon effect not computed: {type(err).__name__}: {err}"
    return eff, None


def linked_behaviour(
    ds: Any,
    window_days: int = 30,
    *,
    region: str | None = None,
    answer: str = "coupon_influenced",
    design: Design | None = None,
    effect_method: str = "aipw",
    alpha: float = 0.05,
) -> TableResult:
    """What people say vs. what they do, for survey respondents linked to a customer id.

    Parameters
    ----------
    ds : Dataset
        With ``survey`` and ``shipments`` (and for the behavioural effect ``customers`` and
        ``coupons``).
    window_days : int
        Length of the follow-up window after the survey date.
    region : str, optional
        Restrict to one region's respondents (the survey's strata are regional, so this is
        the region's own design).
    answer : str
        The boolean answer to compare by (``coupon_influenced``: "coupons influence which
        courier I choose").
    design : Design, optional
        A design over :func:`linked_outcomes` of the survey; by default
        :func:`survey_design` (lonely PSUs adjusted).
    effect_method : str
        ``method`` passed to ``causal.estimate_effect`` for the behavioural coupon effect.

    Returns
    -------
    TableResult
        Rows ``says``: the share answering yes; for each outcome of :data:`LINKED_OUTCOMES`
        the design-based domain mean among yes- and no-sayers and their difference
        (yes - no); row ``does``: the behavioural effect of receiving a coupon on first
        sending within ``window_days`` (ATE, from the first-use analysis) where available.
        Columns ``kind``, ``outcome``, ``answer`` say what each row is.
    """
    frame = linked_outcomes(ds, survey_table(ds, region), window_days)
    d = design if design is not None else survey_design(frame)
    rows: dict[str, Estimate] = {}
    notes: list[str] = []
    says = proportion(d, answer, alpha=alpha)
    says.extra.update({"kind": "says", "outcome": answer, "answer": "yes"})
    rows[f"says: share {answer}"] = says
    n_linked = int(frame["linked"].sum())
    if n_linked == 0:
        notes.append("no respondent is linked to a customer id: no behaviour to compare")
    for outcome, text in LINKED_OUTCOMES.items():
        if n_linked == 0 or frame[outcome].notna().sum() == 0:
            continue
        tab = by(d, outcome, answer, stat="mean", alpha=alpha)
        for lev in tab.table.index:
            e = Estimate.from_normal(
                float(tab.estimate[lev]),
                float(tab.se[lev]),
                n=int(tab.n[lev]),
                method="survey domain mean (linearization)",
                df=max(d.df, 1),
                alpha=alpha,
                label=f"{text} | {answer}={lev}",
                estimand=f"share with {outcome}",
            )
            e.extra.update({"kind": "does, by answer", "outcome": outcome,
                            "answer": "yes" if bool(lev) else "no"})
            rows[f"{outcome} | {answer}={'yes' if bool(lev) else 'no'}"] = e
        diff = _difference(tab, True, False, d.df, f"{text}: yes - no")
        if diff is not None:
            diff.extra.update({"kind": "difference", "outcome": outcome, "answer": "yes - no"})
            rows[f"{outcome} | yes - no"] = diff
        notes.extend(w for w in tab.warnings if w not in notes)
    effect, why = _behavioural_effect(ds, region, window_days, effect_method)
    if effect is not None:
        eff = Estimate.from_normal(
            effect.estimate, effect.se, n=effect.n, method=f"first-use {effect.method}",
            alpha=alpha, label="coupon effect on first sending (behaviour, ATE)",
            estimand=effect.estimand,
        )
        eff.ci_low, eff.ci_high, eff.pvalue = effect.ci_low, effect.ci_high, effect.pvalue
        eff.extra.update({"kind": "does", "outcome": "sent_within_window", "answer": "-"})
        rows["does: coupon effect (first use)"] = eff
    elif why:
        notes.append(why)
    result = TableResult.from_estimates(
        rows,
        method="survey answers linked to behaviour",
        index_name="row",
        alpha=alpha,
        estimand="stated coupon influence vs. later sending",
        label=f"says vs. does{'' if region is None else f' ({region})'}",
        warnings=list(dict.fromkeys(list(d.warnings) + list(says.warnings) + notes)),
    )
    result.diagnostics.update(
        {
            "window_days": window_days,
            "respondents": len(frame),
            "linked": n_linked,
            "prospects_at_survey": int(frame["first_send_within_window"].notna().sum()),
            "behavioural_effect": effect,
        }
    )
    return result
