"""People of one region: prior senders, prospects and walk-ins, with their covariates.

* **prior senders** sent before the period; the company's records (and ``known_since``) start
  with their first parcel inside the period (``prior_sender = True``).
* **prospects** are known (parcel received, WeChat contact) before they send; some are known
  at the start of the period, more become known during it. Their first-send hazard per year is
  ``b = exp(first_send_log_rate + segment offset + wechat_effect * wechat
  + received_effect * log1p(parcels_received) + unobserved_sd * U)``.
* **walk-ins** become known when they send their first parcel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .scenario import Scenario
from .timeline import Timeline

__all__ = ["People", "draw_people", "PRIOR", "PROSPECT", "WALKIN"]

PRIOR, PROSPECT, WALKIN = 0, 1, 2


@dataclass
class People:
    """Column arrays, one entry per person (before anyone is dropped)."""

    kind: np.ndarray  # PRIOR / PROSPECT / WALKIN
    segment: np.ndarray  # index into scenario.people["segments"]
    wechat: np.ndarray  # bool
    parcels_received: np.ndarray  # int
    u: np.ndarray  # unobserved N(0, 1)
    known_day: np.ndarray  # day index (may be < 0: known before the period); walk-ins: -1 yet
    score: np.ndarray  # observed part of the log first-send hazard
    b: np.ndarray  # first-send hazard per year (prospects)

    def __len__(self) -> int:
        return len(self.kind)


def _covariates(sc: Scenario, n: int, rng: np.random.Generator):
    pp = sc.people
    share = np.asarray(pp["segment_share"], float)
    seg = rng.choice(len(share), size=n, p=share / share.sum())
    wechat = rng.random(n) < float(pp["wechat_share"])
    size = float(pp["parcels_received_dispersion"])
    mean = float(pp["parcels_received_mean"])
    received = rng.negative_binomial(size, size / (size + mean), size=n)
    u = rng.standard_normal(n)
    return seg, wechat, received, u


def first_send_score(sc: Scenario, seg, wechat, received) -> np.ndarray:
    """Observed part of a prospect's log first-send hazard (the confounder index)."""
    pp = sc.people
    return (
        np.asarray(pp["first_send_offset"], float)[seg]
        + float(pp["wechat_effect"]) * wechat
        + float(pp["received_effect"]) * np.log1p(received)
    )


def draw_people(
    sc: Scenario, tl: Timeline, size_parcels: float, rng: np.random.Generator
) -> People:
    """Draw the people of a region whose 2022 express target is ``size_parcels`` x 20 yuan.

    Walk-ins are drawn later (their arrival days come from the sending model); here they
    are not yet present.
    """
    pp = sc.people
    years = tl.n_days / 365.0
    n_prior = rng.poisson(float(pp["prior_per_parcel"]) * size_parcels)
    n_pros0 = rng.poisson(float(pp["prospects_per_parcel"]) * size_parcels)
    n_inflow = rng.poisson(float(pp["prospect_inflow_per_year"]) * n_pros0 * years)
    n = n_prior + n_pros0 + n_inflow
    seg, wechat, received, u = _covariates(sc, n, rng)
    kind = np.r_[
        np.full(n_prior, PRIOR), np.full(n_pros0, PROSPECT), np.full(n_inflow, PROSPECT)
    ].astype(np.int8)
    known = np.r_[
        np.full(n_prior, -1),
        # known during the two years before the period
        -1 - rng.integers(0, 730, size=n_pros0),
        rng.integers(0, tl.n_days, size=n_inflow),
    ].astype(np.int64)
    score = first_send_score(sc, seg, wechat, received)
    b = np.exp(
        float(pp["first_send_log_rate"]) + score + float(pp["unobserved_sd"]) * u
    )
    return People(kind, seg, wechat, received, u, known, score, b)


def draw_walkins(
    sc: Scenario, seg: np.ndarray, arrival: np.ndarray, rng: np.random.Generator
) -> People:
    """Walk-ins of segments ``seg`` arriving (sending first, becoming known) on ``arrival``."""
    n = len(seg)
    _, wechat, received, u = _covariates(sc, n, rng)
    # walk-ins were not known before: they received no parcels the company could count
    received = np.zeros(n, dtype=np.int64)
    score = first_send_score(sc, seg, wechat, received)
    return People(
        np.full(n, WALKIN, dtype=np.int8), seg, wechat, received, u,
        np.asarray(arrival, dtype=np.int64), score, np.zeros(n),
    )
