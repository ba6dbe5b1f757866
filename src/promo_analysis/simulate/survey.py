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

Linking (:func:`link_respondents`, when the region's generated world is given): a simple
random sample of ``linked_share`` of the respondents (the rest stay anonymous,
``customer_id`` null) is matched to customers of the region, so that what they say can be
set against what they do. A respondent who says they are a first-time sender is matched to a
prospect (known by ``surveyed_at``, no parcel before it), anyone else to a customer with a
parcel before ``surveyed_at``; among those, the match is drawn with probability proportional
to ``exp(+-answer_behaviour * z)``, ``z`` the customer's coupon reliance (log-odds of the
smoothed share of their parcels sent with a coupon, relative to the region's share): people
who rely on coupons say "coupons influence my choice" more often. Answers, weights and the
population truth are those drawn above (the linking uses random numbers drawn after them).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .population import PROSPECT
from .timeline import Timeline

__all__ = ["simulate_survey", "link_respondents"]

_AGE = np.array(["18-34", "35-54", "55+"], dtype=object)
_AGE_SHARE = np.array([0.35, 0.40, 0.25])
_AGE_EFFECT = np.array([0.7, 0.0, -0.8])
_RESPONSE = np.array([0.35, 0.55, 0.75])
_DAY = 86400
_NEVER = np.iinfo(np.int64).max
# prior strength (in parcels) of the smoothed coupon share: people with few parcels are
# pulled towards the region's share, people who never sent are neutral
_PRIOR_PARCELS = 2.0
_CHUNK = 256


def _systematic_fixed(p: np.ndarray, rng) -> np.ndarray:
    order = rng.permutation(p.size)
    cum = np.cumsum(p[order])
    u = rng.random()
    hits = np.floor(cum - u) - np.floor(np.r_[0.0, cum[:-1]] - u)
    out = np.zeros(p.size, bool)
    out[order] = hits > 0
    return out


def simulate_survey(
    sc, tl: Timeline, region: str, rng: np.random.Generator, world=None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(survey rows, population truth rows)`` for ``region``.

    With ``world`` (the region's :class:`~.region.RegionWorld`, after ``region_tables``) a
    share of the respondents is linked to customer ids (:func:`link_respondents`); without
    it every respondent is anonymous. Everything else does not depend on ``world``.
    """
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
    surveyed_day = day0 + rng.integers(0, 21, size=len(smp))
    surveyed_sec = rng.integers(9 * 3600, 19 * 3600, size=len(smp))
    surveyed = (
        pd.Timestamp(tl.start)
        + pd.to_timedelta(surveyed_day, unit="D")
        + pd.to_timedelta(surveyed_sec, unit="s")
    )
    first_time_r = first_time[person]
    customer_id = None
    if world is not None:
        match = link_respondents(
            world,
            surveyed_day.astype(np.int64) * _DAY + surveyed_sec,
            first_time_r,
            answer,
            rng,
            share=float(sv.get("linked_share", 0.6)),
            strength=float(sv.get("answer_behaviour", 0.5)),
        )
        customer_id = np.full(match.size, None, dtype=object)
        linked = match >= 0
        customer_id[linked] = world.customer_ids.take(match[linked]).to_numpy(
            zero_copy_only=False
        )
    out = pd.DataFrame(
        {
            "response_id": [f"{region}-r{i:05d}" for i in range(len(smp))],
            "region_id": region,
            "surveyed_at": surveyed,
            "customer_id": customer_id,
            "weight": smp["weight"].to_numpy(),
            "stratum": smp["stratum"].to_numpy(),
            "cluster": smp["cluster"].to_numpy(),
            "coupon_influenced": answer,
            "first_time_sender": first_time_r,
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


def coupon_reliance(world) -> np.ndarray:
    """Per person: log-odds of the smoothed share of their parcels sent with a coupon, minus
    the log-odds of the region's share (0 for people who never sent)."""
    rec, n = world.rec, len(world.people)
    used = np.bincount(rec["cust"], weights=rec["coupon_kind"] > 0, minlength=n)
    sent = np.bincount(rec["cust"], minlength=n).astype(float)
    base = float(np.clip(used.sum() / max(sent.sum(), 1.0), 0.01, 0.99))
    r = (used + _PRIOR_PARCELS * base) / (sent + _PRIOR_PARCELS)
    return np.log(r / (1 - r)) - np.log(base / (1 - base))


def link_respondents(
    world,
    surveyed_s: np.ndarray,
    first_time: np.ndarray,
    answer,
    rng: np.random.Generator,
    share: float = 0.6,
    strength: float = 0.5,
) -> np.ndarray:
    """Person index (into ``world.people``) of each respondent, -1 for anonymous ones.

    ``round(share * n)`` respondents, a simple random sample, are matched in random order by
    successive weighted sampling without replacement (an exponential race: each person has
    a time ``E / w``, ``E ~ Exp(1)``; the earliest eligible unused person wins), with
    ``w = exp(strength * z)`` for a "yes" to ``coupon_influenced``, ``exp(-strength * z)`` for
    a "no" and 1 for no answer, ``z`` = :func:`coupon_reliance`. Eligible at ``surveyed_s``
    (seconds since the period start): for a first-time sender a prospect known by then who
    has not sent before; for anyone else a person whose first recorded parcel is earlier. A
    respondent left without an eligible person (tiny populations) stays anonymous.
    """
    people = world.people
    rec = world.rec
    n_resp = len(surveyed_s)
    out = np.full(n_resp, -1, dtype=np.int64)
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"survey.linked_share must be in [0, 1], got {share}")
    k = int(round(share * n_resp))
    if k == 0 or len(people) == 0:
        return out
    chosen = rng.choice(n_resp, size=k, replace=False)  # random order: the matching order
    first_s = np.full(len(people), _NEVER, dtype=np.int64)
    f = rec["k"] == 1
    first_s[rec["cust"][f]] = rec["sent_s"][f]
    known_s = people.known_day.astype(np.int64) * _DAY
    z = coupon_reliance(world)
    ans = np.asarray(pd.array(answer, dtype="boolean").to_numpy(dtype=float, na_value=np.nan))
    ans_key = np.where(np.isnan(ans), 0, np.where(ans > 0, 1, -1)).astype(np.int64)
    lo, hi = int(surveyed_s.min()), int(surveyed_s.max())
    pools = {
        True: np.flatnonzero(
            (people.kind == PROSPECT) & (known_s <= hi) & (first_s >= lo)
        ),
        False: np.flatnonzero(first_s < hi),
    }
    ranked, times = {}, {}
    head = 8 * k + 2048  # only the front of each ranking is ever needed (k picks)
    for sign in (1, 0, -1):
        # an independent race per answer: each ranking is successive sampling with weights w
        time = rng.standard_exponential(len(people)) * np.exp(-sign * strength * z)
        for ft, pool in pools.items():
            t = time[pool]
            if pool.size > head:
                front = np.argpartition(t, head - 1)[:head]
                ranked[sign, ft] = pool[front[np.argsort(t[front], kind="stable")]]
                times[sign, ft] = t
            else:
                ranked[sign, ft] = pool[np.argsort(t, kind="stable")]
    used = np.zeros(len(people), dtype=bool)
    for j in chosen:
        s, ft = int(surveyed_s[j]), bool(first_time[j])
        key = (ans_key[j], ft)
        cand = ranked[key]
        start = 0
        while start < cand.size:
            if start + _CHUNK > cand.size and key in times:
                # the front ran out (a tiny eligible set): rank the whole pool once
                cand = ranked[key] = pools[ft][np.argsort(times.pop(key), kind="stable")]
            c = cand[start:start + _CHUNK]
            start += _CHUNK
            if ft:
                ok = (known_s[c] <= s) & (first_s[c] >= s)
            else:
                ok = first_s[c] < s
            ok &= ~used[c]
            if ok.any():
                out[j] = c[np.argmax(ok)]
                used[out[j]] = True
                break
    return out
