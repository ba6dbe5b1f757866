"""RFM summaries, BG/NBD, Gamma-Gamma and CLV: direct formula evaluation and recovery of known
parameters from data simulated from the models themselves."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from promo_analysis.retention import (
    bgnbd_loglik,
    customer_lifetime_value,
    fit_bgnbd,
    fit_gamma_gamma,
    gamma_gamma_loglik,
    rfm_summary,
)

TRUE = {"r": 2.0, "alpha": 10.0, "a": 1.5, "b": 6.0}


def simulate_bgnbd(n, r, alpha, a, b, T, rng):
    """BG/NBD by its story: Poisson purchases at rate lambda ~ Gamma(r, alpha); after each
    purchase the customer drops out with probability p ~ Beta(a, b).

    The customer dies after purchase N ~ Geometric(p); M ~ Poisson(lambda T) arrivals fall
    in (0, T]; x = min(N, M) and t_x is the x-th of M uniform order statistics on (0, T),
    i.e. T * Beta(x, M - x + 1).
    """
    lam = rng.gamma(r, 1 / alpha, n)
    p = rng.beta(a, b, n)
    N = rng.geometric(p)
    M = rng.poisson(lam * T)
    x = np.minimum(N, M)
    tx = np.where(x > 0, T * rng.beta(np.maximum(x, 1), np.maximum(M - x + 1, 1)), 0.0)
    return pd.DataFrame({"frequency": x, "recency": tx, "T": np.full(n, float(T))})


@pytest.fixture(scope="module")
def bg_data():
    return simulate_bgnbd(20_000, **TRUE, T=200.0, rng=np.random.default_rng(0))


@pytest.fixture(scope="module")
def bg_fit(bg_data):
    return fit_bgnbd(bg_data)


def _direct_likelihood(r, alpha, a, b, x, tx, T):
    """Fader, Hardie & Lee (2005), eq. 6, with gamma and beta functions (no logs)."""
    G = math.gamma

    def B(u, v):
        return G(u) * G(v) / G(u + v)

    first = B(a, b + x) / B(a, b) * G(r + x) * alpha**r / (G(r) * (alpha + T) ** (r + x))
    second = 0.0
    if x > 0:
        second = B(a + 1, b + x - 1) / B(a, b) * G(r + x) * alpha**r / (
            G(r) * (alpha + tx) ** (r + x))
    return first + second


def test_bgnbd_loglik_matches_direct_formula():
    rows = [(0, 0.0, 30.0), (1, 12.5, 30.0), (4, 20.0, 38.0), (9, 35.9, 36.0)]
    for params in [(0.243, 4.414, 0.793, 2.426), (2.0, 10.0, 1.5, 6.0)]:
        x, tx, T = map(np.array, zip(*rows, strict=True))
        ours = bgnbd_loglik(params, x, tx, T)
        direct = [math.log(_direct_likelihood(*params, *row)) for row in rows]
        np.testing.assert_allclose(ours, direct, rtol=1e-12)


def test_bgnbd_recovers_known_parameters(bg_fit):
    for name, value in TRUE.items():
        assert bg_fit.params_[name] == pytest.approx(value, rel=0.05), name
        # and the Hessian-based interval covers the truth
        lo, hi = bg_fit.result_.table.loc[name, ["ci_low", "ci_high"]]
        assert lo <= value <= hi, name


def test_bgnbd_loglik_attribute_is_the_total_at_the_optimum(bg_fit, bg_data):
    total = bgnbd_loglik(bg_fit.params_.to_numpy(), bg_data.frequency, bg_data.recency,
                         bg_data["T"]).sum()
    assert bg_fit.loglik_ == pytest.approx(total, rel=1e-10)
    # the optimum: any small move lowers the likelihood
    for i in range(4):
        p = bg_fit.params_.to_numpy().copy()
        p[i] *= 1.01
        assert bgnbd_loglik(p, bg_data.frequency, bg_data.recency, bg_data["T"]).sum() < total


def test_expected_purchases_and_p_alive(bg_fit, bg_data):
    m = bg_fit
    # E[X(t)] for a new customer equals the simulated mean count over (0, t]
    assert m.expected_purchases(200.0) == pytest.approx(bg_data.frequency.mean(), rel=0.03)
    assert m.expected_purchases(0.0) == 0.0
    # conditional expectation at x = t_x = T = 0 is the unconditional one
    assert m.conditional_expected_purchases(50.0, 0, 0, 0) == pytest.approx(
        m.expected_purchases(50.0), rel=1e-12)
    # p_alive by hand: 1 / (1 + a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x))
    r, al, a, b = m.params_.to_numpy()
    x, tx, T = 3, 20.0, 100.0
    assert m.p_alive(x, tx, T) == pytest.approx(
        1 / (1 + a / (b + x - 1) * ((al + T) / (al + tx)) ** (r + x)), rel=1e-12)
    assert m.p_alive(0, 0, 100.0) == 1.0
    assert m.p_alive(3, 99.0, 100.0) > m.p_alive(3, 20.0, 100.0)


def test_conditional_expectation_predicts_holdout():
    """Calibrate on (0, 100], predict (100, 200]: the prediction matches the simulated holdout
    counts on average (a check of the conditional-expectation formula against the model's own
    data-generating story)."""
    rng = np.random.default_rng(7)
    n, T1, T2 = 4000, 100.0, 200.0
    lam = rng.gamma(TRUE["r"], 1 / TRUE["alpha"], n)
    p = rng.beta(TRUE["a"], TRUE["b"], n)
    cal, hold = [], []
    for i in range(n):
        t, times = 0.0, []
        while True:
            t += rng.exponential(1 / lam[i])
            if t > T2:
                break
            times.append(t)
            if rng.random() < p[i]:
                break
        times = np.array(times)
        c = times[times <= T1]
        cal.append((len(c), c.max() if len(c) else 0.0, T1))
        hold.append(int((times > T1).sum()))
    df = pd.DataFrame(cal, columns=["frequency", "recency", "T"])
    m = fit_bgnbd(df)
    pred = m.conditional_expected_purchases(T2 - T1, df.frequency, df.recency, df["T"])
    assert pred.mean() == pytest.approx(np.mean(hold), rel=0.08)


def test_rfm_summary_by_hand():
    tx = pd.DataFrame(
        {
            "c": ["a", "a", "a", "a", "b", "c", "c"],
            "t": pd.to_datetime(["2022-01-01", "2022-01-01 18:00", "2022-01-05", "2022-01-11",
                                 "2022-01-03", "2022-01-08", "2022-01-20"], format="mixed"),
            "v": [10.0, 5.0, 20.0, 30.0, 7.0, 8.0, 9.0],
        }
    )
    out = rfm_summary(tx, "c", "t", value="v", observation_end="2022-01-21")
    # a: purchase days 1, 5, 11 (two on day 1 count as one) -> x = 2, t_x = 10, T = 20;
    # repeat spend mean (20 + 30) / 2
    assert out.loc["a"].to_dict() == {"frequency": 2, "recency": 10.0, "T": 20.0,
                                      "monetary": 25.0}
    assert out.loc["b"].to_dict() == {"frequency": 0, "recency": 0.0, "T": 18.0, "monetary": 0.0}
    assert out.loc["c", "frequency"] == 1 and out.loc["c", "recency"] == 12
    cal = rfm_summary(tx, "c", "t", value="v", calibration_end="2022-01-06",
                      observation_end="2022-01-21")
    # c is first seen after calibration: left out and counted
    assert list(cal.index) == ["a", "b"]
    assert cal.attrs["diagnostics"]["customers_first_seen_after_calibration"] == 1
    assert cal.loc["a"].to_dict() == {"frequency": 1, "recency": 4.0, "T": 5.0, "monetary": 20.0,
                                      "frequency_holdout": 1, "duration_holdout": 15,
                                      "monetary_holdout": 30.0}
    weekly = rfm_summary(tx, "c", "t", freq="W", observation_end="2022-01-21")
    assert weekly.loc["a", "frequency"] == 2  # weeks of 2021-12-27, 2022-01-03, 2022-01-10


def test_gamma_gamma_recovers_parameters_and_loglik_formula():
    rng = np.random.default_rng(3)
    p, q, g = 6.0, 4.0, 15.0
    n = 5000
    x = rng.integers(1, 10, n)
    nu = rng.gamma(q, 1 / g, n)  # z_i ~ Gamma(p, nu): mean of x draws ~ Gamma(p x, nu x)
    m = rng.gamma(p * x, 1 / (nu * x))
    df = pd.DataFrame({"frequency": x, "monetary": m})
    gg = fit_gamma_gamma(pd.concat([df, pd.DataFrame({"frequency": [0], "monetary": [0.0]})],
                                   ignore_index=True))
    assert gg.diagnostics_["excluded_no_repeat"] == 1
    for name, value in {"p": p, "q": q, "gamma": g}.items():
        lo, hi = gg.result_.table.loc[name, ["ci_low", "ci_high"]]
        assert lo <= value <= hi, name
    # density by hand for one row
    xi, mi = 3, 22.0
    dens = (math.gamma(p * xi + q) / (math.gamma(p * xi) * math.gamma(q)) * g**q
            * mi ** (p * xi - 1) * xi ** (p * xi) / (g + mi * xi) ** (p * xi + q))
    assert gamma_gamma_loglik((p, q, g), xi, mi) == pytest.approx(math.log(dens), rel=1e-12)
    assert gg.mean_spend == pytest.approx(gg.params_["p"] * gg.params_["gamma"]
                                          / (gg.params_["q"] - 1))
    # the conditional mean shrinks a customer's own mean towards the population mean
    cond = gg.conditional_expected_spend(2, 100.0)
    assert gg.mean_spend < cond < 100.0


def test_customer_lifetime_value_by_hand(bg_fit):
    # a constant spend of 20 yuan, 6 monthly periods, 1% per period
    v = customer_lifetime_value(bg_fit, 20.0, horizon=6, period=30.0, discount_rate=0.01)
    e = [bg_fit.expected_purchases(30.0 * i) for i in range(7)]
    by_hand = sum(20.0 * (e[i] - e[i - 1]) / 1.01**i for i in range(1, 7))
    assert v == pytest.approx(by_hand, rel=1e-10)
    hist = pd.DataFrame({"frequency": [0, 5], "recency": [0.0, 90.0], "T": [100.0, 100.0],
                         "monetary": [0.0, 25.0]})
    s = customer_lifetime_value(bg_fit, 20.0, hist, horizon=6, discount_rate=0.0)
    ce = bg_fit.conditional_expected_purchases(180.0, hist.frequency, hist.recency, hist["T"])
    np.testing.assert_allclose(s.to_numpy(), 20.0 * ce, rtol=1e-10)


def test_bad_input():
    bad = pd.DataFrame({"frequency": [1, 2], "recency": [5.0, 50.0], "T": [10.0, 20.0]})
    with pytest.raises(ValueError, match=r"need 0 <= recency <= T \(1 of 2 rows"):
        fit_bgnbd(bad)
    with pytest.raises(ValueError, match=r"whole number"):
        fit_bgnbd(bad.assign(frequency=[1.5, 0], recency=[5.0, 0.0]))
    with pytest.raises(ValueError, match=r"no customer repeated"):
        fit_bgnbd(pd.DataFrame({"frequency": [0, 0], "recency": [0.0, 0.0], "T": [3.0, 4.0]}))
