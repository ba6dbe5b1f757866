"""The market survey: a stratified two-stage cluster sample with non-response.

Population (per region): outlets (clusters) in strata by outlet type, each with ``N_hj``
walk-in customers. Each customer's answer to "coupons influence which courier I choose"
depends on an outlet effect and the customer's age group (young people more often say yes);
the population share is exactly the region's ``survey_coupon_influenced`` (up to one person).

Sample: ``n_h`` outlets by simple random sampling per stratum, then ``m`` customers by simple
random sampling per outlet. Design weight ``(M_h / n_h) * (N_hj / m)``. Unit non-response
depends on the age group (young answer least): the published ``weight`` is the design weight
times the inverse response rate within the weighting class (stratum x age group), so the
weighted share is consistent (non-response is at random within classes) and the unweighted
share of respondents is biased (too few young, who say yes more). A few answers to
``coupon_influenced`` are missing completely at random (item non-response).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .timeline import Timeline

__all__ = ["simulate_survey"]

_AGE = np.array(["18-34", "35-54", "55+"], dtype=object)
_AGE_SHARE = np.array([0.35, 0.40, 0.25])
_AGE_EFFECT = np.array([0.7, 0.0, -0.8])
_RESPONSE = np.array([0.35, 0.55, 0.75])


def _systematic_fixed(p: np.ndarray, rng) -> np.ndarray:
    order = rng.permutation(p.size)
    cum = np.cumsum(p[order])
    u = rng.random()
    hits = np.floor(cum - u) - np.floor(np.r_[0.0, cum[:-1]] - u)
    out = np.zeros(p.size, bool)
    out[order] = hits > 0
    return out


def simulate_survey(
    sc, tl: Timeline, region: str, rng: np.random.Generator
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(survey rows, population truth rows)`` for ``region``."""
    sv = sc.survey
    share = float(sc.region(region)["survey_coupon_influenced"])
    strata = list(sv["strata"])
    M = [int(x) for x in sv["outlets_per_stratum"]]
    n_h = [int(x) for x in sv["sampled_outlets"]]
    m = int(sv["respondents_per_outlet"])

    # population
    h_of = np.repeat(np.arange(len(strata)), M)
    n_out = h_of.size
    size = 20 + rng.poisson(180, size=n_out)
    outlet_eff = rng.normal(0.0, 0.5, size=n_out)
    person_outlet = np.repeat(np.arange(n_out), size)
    first_member = np.r_[0, np.cumsum(size)]
    N = person_outlet.size
    age = rng.choice(3, size=N, p=_AGE_SHARE)
    lin = outlet_eff[person_outlet] + _AGE_EFFECT[age]
    # intercept so that expected yes = share * N, then exactly round(share * N) yes
    lo, hi = -10.0, 10.0
    target = share * N
    for _ in range(60):
        mid = (lo + hi) / 2
        if (1 / (1 + np.exp(-(mid + lin)))).sum() < target:
            lo = mid
        else:
            hi = mid
    p = 1 / (1 + np.exp(-(hi + lin)))
    p *= target / p.sum()
    yes = _systematic_fixed(np.minimum(p, 1.0), rng)
    aware = rng.random(N) < 0.25 + 0.35 * yes
    first_time = rng.random(N) < 0.10 + 0.10 * (age == 0)
    sat_p = np.array([0.04, 0.08, 0.25, 0.38, 0.25])
    satisfaction = rng.choice(5, size=N, p=sat_p) + 1
    satisfaction = np.minimum(5, satisfaction + (yes & (rng.random(N) < 0.2)))

    # sample
    rows = []
    for h, name in enumerate(strata):
        outlets = np.flatnonzero(h_of == h)
        chosen = np.sort(rng.choice(outlets, size=min(n_h[h], outlets.size), replace=False))
        for o in chosen:
            members = np.arange(first_member[o], first_member[o + 1])
            k = min(m, members.size)
            pick = np.sort(rng.choice(members, size=k, replace=False))
            dw = (M[h] / len(chosen)) * (members.size / k)
            rows.append(
                pd.DataFrame(
                    {
                        "person": pick,
                        "stratum": name,
                        "cluster": f"{region}-{name}-{o:04d}",
                        "design_weight": dw,
                        "stratum_clusters": M[h],
                        "sampled_clusters": len(chosen),
                        "cluster_size": members.size,
                    }
                )
            )
    smp = pd.concat(rows, ignore_index=True)
    pa = age[smp["person"].to_numpy()]
    smp["age_group"] = _AGE[pa]
    responded = rng.random(len(smp)) < _RESPONSE[pa]
    # non-response adjustment within weighting classes (stratum x age group)
    cls = smp["stratum"] + "|" + smp["age_group"]
    tot = smp.groupby(cls)["design_weight"].transform("sum")
    resp_tot = smp["design_weight"].where(responded, 0.0).groupby(cls).transform("sum")
    smp["weight"] = smp["design_weight"] * tot / resp_tot.replace(0.0, np.nan)
    smp = smp[responded & smp["weight"].notna()].reset_index(drop=True)
    person = smp["person"].to_numpy()
    answer = pd.array(yes[person], dtype="boolean")
    missing = rng.random(len(smp)) < float(sv["item_nonresponse"])
    answer[missing] = pd.NA
    day0 = tl.day(f"{max(sc.years)}-11-01")
    surveyed = (
        pd.Timestamp(tl.start)
        + pd.to_timedelta(day0 + rng.integers(0, 21, size=len(smp)), unit="D")
        + pd.to_timedelta(rng.integers(9 * 3600, 19 * 3600, size=len(smp)), unit="s")
    )
    out = pd.DataFrame(
        {
            "response_id": [f"{region}-r{i:05d}" for i in range(len(smp))],
            "region_id": region,
            "surveyed_at": surveyed,
            "customer_id": None,
            "weight": smp["weight"].to_numpy(),
            "stratum": smp["stratum"].to_numpy(),
            "cluster": smp["cluster"].to_numpy(),
            "coupon_influenced": answer,
            "first_time_sender": first_time[person],
            "aware_of_campaign": aware[person],
            "satisfaction": satisfaction[person].astype(np.int64),
            "design_weight": smp["design_weight"].to_numpy(),
            "age_group": smp["age_group"].to_numpy(),
            "stratum_clusters": smp["stratum_clusters"].to_numpy(),
            "sampled_clusters": smp["sampled_clusters"].to_numpy(),
            "cluster_size": smp["cluster_size"].to_numpy(),
        }
    )
    truth = pd.DataFrame(
        {
            "region_id": region,
            "variable": [
                "coupon_influenced", "aware_of_campaign", "first_time_sender",
                "satisfaction", "population_size", "population_clusters",
            ],
            "value": [
                yes.mean(), aware.mean(), first_time.mean(), satisfaction.mean(),
                float(N), float(n_out),
            ],
        }
    )
    return out, truth
