"""Observational estimators against known truths: own DGP (coverage) and the simulator."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from promo_analysis import causal

COVS = ["segment", "wechat_contact", "parcels_received", "tenure_days", "region_id"]


@pytest.fixture(autouse=True, scope="module")
def _one_blas_thread():
    """Single-threaded BLAS/OpenMP: on a shared 2-core machine multithreaded BLAS spins and
    runs these small fits ~10x slower; results do not depend on the thread count."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield


def _dgp(rng: np.random.Generator, n: int) -> tuple[pd.DataFrame, float]:
    """Coupons to likely senders on observed covariates; returns data and the sample ATT."""
    parcels = rng.poisson(2.0, n)
    wechat = rng.binomial(1, 0.35, n)
    e = 1 / (1 + np.exp(-(-1.2 + 0.35 * parcels + 0.9 * wechat)))
    t = rng.binomial(1, e)
    base = 0.05 + 0.04 * np.minimum(parcels, 10) + 0.10 * wechat
    tau = 0.08 + 0.06 * wechat
    y = rng.binomial(1, np.clip(base + t * tau, 0, 1))
    return pd.DataFrame({"t": t, "y": y, "parcels": parcels, "wechat": wechat}), float(
        tau[t == 1].mean())


def test_aipw_att_coverage_small_calibration():
    """80 seeds (the 300-seed study is benchmarks/calibration_first_use.py)."""
    covered, naive_covered = [], []
    for seed in range(80):
        d, att = _dgp(np.random.default_rng(seed), 3000)
        est = causal.estimate_effect(d, "t", "y", ["parcels", "wechat"], estimand="att",
                                     folds=2, seed=seed)
        covered.append(est.covers(att))
        naive_covered.append(causal.estimate_effect(d, "t", "y", [], method="naive").covers(att))
    assert 0.87 <= np.mean(covered) <= 1.0
    assert np.mean(naive_covered) < 0.5


@pytest.fixture(scope="module")
def first_use(small_ds):
    from promo_analysis import features

    return features.first_use_table(small_ds)


@pytest.fixture(scope="module")
def null_first_use(null_ds):
    from promo_analysis import features

    return features.first_use_table(null_ds)


def _overall(ds, estimand):
    fu = ds.truth.first_use
    return float(fu[(fu.estimand == estimand) & (fu.by == "overall")]["value"].iloc[0])


def test_aipw_covers_simulated_att_and_naive_does_not(small_ds, first_use):
    truth = _overall(small_ds, "att")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        aipw = causal.estimate_effect(first_use, "got_coupon", "sent_within_window", COVS,
                                      estimand="att")
        naive = causal.estimate_effect(first_use, "got_coupon", "sent_within_window", COVS,
                                       method="naive")
    assert aipw.covers(truth), (aipw, truth)
    assert not naive.covers(truth), (naive, truth)


def test_null_scenario_finds_no_effect(null_ds, null_first_use):
    assert abs(_overall(null_ds, "att")) < 1e-12
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        aipw = causal.estimate_effect(null_first_use, "got_coupon", "sent_within_window", COVS,
                                      estimand="att")
    assert aipw.covers(0.0), aipw


def _clustered_dgp(rng: np.random.Generator, customers: int) -> pd.DataFrame:
    """Every customer twice (two windows), sharing covariates, the coupon decision and a
    latent propensity to send: rows of one customer are correlated; the true effect is 0.08
    for everyone."""
    parcels = np.repeat(rng.poisson(2.0, customers), 2)
    keen = np.repeat(rng.binomial(1, 0.5, customers), 2)
    t = np.repeat(rng.binomial(1, 1 / (1 + np.exp(-(-0.8 + 0.3 * parcels[::2])))), 2)
    y = rng.binomial(1, 0.05 + 0.03 * np.minimum(parcels, 8) + 0.6 * keen + 0.08 * t)
    return pd.DataFrame({"t": t, "y": y, "parcels": parcels,
                         "cid": np.repeat(np.arange(customers), 2)})


def test_cluster_robust_se_restores_coverage_when_customers_repeat():
    covered, se_ratio = [], []
    for seed in range(60):
        d = _clustered_dgp(np.random.default_rng(500 + seed), 1500)
        clus = causal.estimate_effect(d, "t", "y", ["parcels"], estimand="att", folds=2,
                                      seed=seed, cluster="cid")
        plain = causal.estimate_effect(d, "t", "y", ["parcels"], estimand="att", folds=2,
                                       seed=seed)
        assert clus.estimate == plain.estimate
        covered.append(clus.covers(0.08))
        se_ratio.append(clus.se / plain.se)
    # the shared latent term makes the two rows of a customer positively correlated: the
    # row-independent SE is too small, the clustered one is not
    assert np.mean(se_ratio) > 1.1
    assert np.mean(covered) >= 0.88
