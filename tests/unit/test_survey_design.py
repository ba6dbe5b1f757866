"""Design-based mean/total/proportion/by: hand-computed answers (explicit loops, textbook
formulas), bad input, lonely PSUs and missing answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import special, stats

from promo_analysis import survey as sv
from promo_analysis.survey import SurveyDesignError


def hand_var(z, strata, psu, fractions=None):
    """V(sum z) = sum_h (1-f_h) n_h/(n_h-1) sum_j (z_hj - zbar_h)^2, written as plain loops."""
    v = 0.0
    for h in sorted(set(strata)):
        totals = {}
        for zi, s, c in zip(z, strata, psu, strict=True):
            if s == h:
                totals[c] = totals.get(c, 0.0) + zi
        t = np.array(list(totals.values()))
        nh = len(t)
        f = 0.0 if fractions is None else fractions[h]
        v += (1 - f) * nh / (nh - 1) * ((t - t.mean()) ** 2).sum()
    return v


@pytest.fixture
def strat_clustered():
    rng = np.random.default_rng(11)
    rows = []
    for h, n_psu in (("A", 3), ("B", 4), ("C", 2)):
        for j in range(n_psu):
            for _ in range(rng.integers(2, 6)):
                rows.append({"h": h, "psu": f"{h}{j}", "w": rng.uniform(5, 40),
                             "y": rng.normal(10 + j, 3), "b": bool(rng.random() < 0.4),
                             "g": rng.choice(["x", "y", "z"])})
    return pd.DataFrame(rows)


def test_stratified_element_sample_mean_and_total():
    d = pd.DataFrame({"h": [1, 1, 1, 2, 2, 2, 2], "w": [2, 2, 2, 5, 5, 5, 5.0],
                      "y": [1.0, 2, 6, 3, 4, 8, 9]})
    design = sv.Design(d, weights="w", strata="h")
    # textbook stratified estimator: T = sum_h N_h ybar_h, V = sum_h N_h^2 s_h^2/n_h
    t_hand = 6 * 3.0 + 20 * 6.0
    v_hand = 6**2 * np.var([1, 2, 6], ddof=1) / 3 + 20**2 * np.var([3, 4, 8, 9], ddof=1) / 4
    t = sv.total(design, "y")
    assert t.estimate == pytest.approx(t_hand)
    assert t.se == pytest.approx(np.sqrt(v_hand))
    assert design.df == 7 - 2
    q = stats.t.ppf(0.975, 5)
    assert t.ci_low == pytest.approx(t_hand - q * np.sqrt(v_hand))
    m = sv.mean(design, "y")
    assert m.estimate == pytest.approx(t_hand / 26)
    # ratio linearization z = w (y - m)/N
    z = d.w * (d.y - t_hand / 26) / 26
    assert m.se == pytest.approx(np.sqrt(hand_var(z, d.h, range(7))))


def test_stratified_fpc_population_sizes_and_fractions_agree():
    d = pd.DataFrame({"h": [1, 1, 1, 2, 2, 2, 2], "w": [2, 2, 2, 5, 5, 5, 5.0],
                      "y": [1.0, 2, 6, 3, 4, 8, 9], "N": [6, 6, 6, 20, 20, 20, 20],
                      "f": [0.5, 0.5, 0.5, 0.2, 0.2, 0.2, 0.2]})
    with_n = sv.total(sv.Design(d, weights="w", strata="h", fpc="N"), "y")
    with_f = sv.total(sv.Design(d, weights="w", strata="h", fpc="f"), "y")
    v_hand = (6**2 * (1 - 3 / 6) * np.var([1, 2, 6], ddof=1) / 3
              + 20**2 * (1 - 4 / 20) * np.var([3, 4, 8, 9], ddof=1) / 4)
    assert with_n.se == pytest.approx(np.sqrt(v_hand))
    assert with_f.se == pytest.approx(with_n.se)


def test_cluster_sample_without_strata(strat_clustered):
    d = strat_clustered
    design = sv.Design(d, weights="w", cluster="psu")
    m = sv.mean(design, "y")
    n_hat = d.w.sum()
    est = (d.w * d.y).sum() / n_hat
    assert m.estimate == pytest.approx(est)
    z = d.w * (d.y - est) / n_hat
    assert m.se == pytest.approx(np.sqrt(hand_var(z, [0] * len(d), d.psu)))
    assert design.df == d.psu.nunique() - 1
    assert m.ci_high - m.estimate == pytest.approx(stats.t.ppf(0.975, design.df) * m.se)


def test_stratified_cluster_with_fpc(strat_clustered):
    d = strat_clustered.copy()
    pop = {"A": 10, "B": 8, "C": 5}
    d["N"] = d.h.map(pop)
    design = sv.Design(d, weights="w", strata="h", cluster="psu", fpc="N")
    t = sv.total(design, "y")
    n_psu = d.groupby("h").psu.nunique()
    fr = {h: n_psu[h] / pop[h] for h in pop}
    z = d.w * d.y
    assert t.estimate == pytest.approx(z.sum())
    assert t.se == pytest.approx(np.sqrt(hand_var(z, d.h, d.psu, fr)))
    assert design.df == d.psu.nunique() - 3


def test_proportion_wald_and_logit(strat_clustered):
    d = strat_clustered
    design = sv.Design(d, weights="w", strata="h", cluster="psu")
    p = (d.w * d.b).sum() / d.w.sum()
    z = d.w * (d.b - p) / d.w.sum()
    se = np.sqrt(hand_var(z, d.h, d.psu))
    wald = sv.proportion(design, "b")
    assert wald.estimate == pytest.approx(p)
    assert wald.se == pytest.approx(se)
    logit = sv.proportion(design, "b", ci="logit")
    q = stats.t.ppf(0.975, design.df)
    lo = special.expit(special.logit(p) - q * se / (p * (1 - p)))
    hi = special.expit(special.logit(p) + q * se / (p * (1 - p)))
    assert (logit.ci_low, logit.ci_high) == pytest.approx((lo, hi))
    # categorical level
    share_x = sv.proportion(design, "g", level="x")
    assert share_x.estimate == pytest.approx((d.w * (d.g == "x")).sum() / d.w.sum())
    with pytest.raises(SurveyDesignError, match="level="):
        sv.proportion(design, "g")


def test_srs_design_effect_is_one():
    rng = np.random.default_rng(3)
    d = pd.DataFrame({"y": rng.normal(size=50), "w": 4.0})
    m = sv.mean(sv.Design(d, weights="w"), "y")
    assert m.extra["deff"] == pytest.approx(1.0)
    assert m.se == pytest.approx(d.y.std(ddof=1) / np.sqrt(50))


def test_domain_estimates_use_the_full_design(strat_clustered):
    d = strat_clustered
    design = sv.Design(d, weights="w", strata="h", cluster="psu")
    res = sv.by(design, "y", "g")
    for lev in ("x", "y", "z"):
        dom = (d.g == lev).to_numpy()
        wd = d.w * dom
        est = (wd * d.y).sum() / wd.sum()
        z = wd * (d.y - est) / wd.sum()
        assert res.estimate[lev] == pytest.approx(est)
        # every PSU of every stratum counts, also those without domain members
        assert res.se[lev] == pytest.approx(np.sqrt(hand_var(z, d.h, d.psu)))
    # the covariance of two domains is that of their linearized values
    vc = res.diagnostics["vcov"]
    assert vc.loc["x", "x"] == pytest.approx(res.se["x"] ** 2)
    # totals by domain add up to the overall total
    tot = sv.by(design, "y", "g", stat="total")
    assert tot.estimate.sum() == pytest.approx(sv.total(design, "y").estimate)


def test_domain_differs_from_subsetting_when_a_domain_misses_psus():
    # domain "x" has no member in PSU a2: subsetting would drop that PSU and the variance
    d = pd.DataFrame({"psu": ["a1", "a1", "a2", "a2", "a3", "a3"], "w": 1.0,
                      "y": [1.0, 2, 3, 4, 5, 9], "g": ["x", "x", "o", "o", "x", "o"]})
    design = sv.Design(d, weights="w", cluster="psu")
    dom = sv.by(design, "y", "g").se["x"]
    sub = sv.mean(sv.Design(d[d.g == "x"], weights="w", cluster="psu"), "y").se
    z = (d.g == "x") * (d.y - 8 / 3) / 3
    assert dom == pytest.approx(np.sqrt(hand_var(z, [0] * 6, d.psu)))
    assert dom != pytest.approx(sub)


def test_missing_answers_are_counted_not_silently_dropped():
    d = pd.DataFrame({"w": [1.0, 2, 3, 4], "ans": pd.array([True, None, False, True],
                                                          dtype="boolean")})
    design = sv.Design(d, weights="w")
    p = sv.proportion(design, "ans")
    assert p.estimate == pytest.approx((1 + 4) / (1 + 3 + 4))
    assert p.n == 3
    assert p.diagnostics["n_missing"] == 1
    assert any("1 of 4 rows have no value of 'ans'" in w for w in p.warnings)


@pytest.mark.parametrize("bad", [0.0, -1.0, np.nan])
def test_bad_weights_are_rejected(bad):
    d = pd.DataFrame({"w": [1.0, bad, 2.0], "y": [1, 2, 3]})
    with pytest.raises(SurveyDesignError, match=r"weights column 'w' must be finite and > 0; "
                       r"1 of 3 rows"):
        sv.Design(d, weights="w")


def test_clusters_must_nest_in_strata_unless_nest_true():
    d = pd.DataFrame({"h": [1, 1, 2, 2], "c": ["a", "b", "a", "b"], "w": 1.0, "y": [1, 2, 3, 5]})
    with pytest.raises(SurveyDesignError, match="nest=True"):
        sv.Design(d, weights="w", strata="h", cluster="c")
    design = sv.Design(d, weights="w", strata="h", cluster="c", nest=True)
    assert design.n_psu == 4


def test_fpc_smaller_than_sample_is_rejected():
    d = pd.DataFrame({"h": [1, 1, 1], "w": 1.0, "y": [1, 2, 3], "N": 2})
    with pytest.raises(SurveyDesignError, match="population PSUs"):
        sv.Design(d, weights="w", strata="h", fpc="N")


def lonely_frame():
    return pd.DataFrame({"h": ["a", "a", "a", "a", "b", "b"],
                         "c": ["a1", "a1", "a2", "a3", "b1", "b1"],
                         "w": [1.0, 2, 1, 3, 2, 2], "y": [1.0, 3, 2, 5, 8, 6]})


def test_lonely_psu_fail_is_a_clear_error():
    with pytest.raises(SurveyDesignError, match=r"1 stratum/strata of 'h' have a single PSU "
                       r"\('b'\).*lonely_psu='adjust'"):
        sv.Design(lonely_frame(), weights="w", strata="h", cluster="c")


def test_lonely_psu_options_by_hand():
    d = lonely_frame()
    z = (d.w * d.y).to_numpy()
    totals_a = np.array([1 * 1 + 2 * 3, 1 * 2, 3 * 5.0])
    v_a = 3 / 2 * ((totals_a - totals_a.mean()) ** 2).sum()
    total_b = 2 * 8 + 2 * 6.0
    for option in ("certainty", "remove"):
        design = sv.Design(d, weights="w", strata="h", cluster="c", lonely_psu=option)
        assert sv.total(design, "y").se == pytest.approx(np.sqrt(v_a))
    adj = sv.Design(d, weights="w", strata="h", cluster="c", lonely_psu="adjust")
    grand = z.sum() / 4  # mean PSU total over all 4 PSUs
    assert sv.total(adj, "y").se == pytest.approx(np.sqrt(v_a + (total_b - grand) ** 2))
    assert any("single PSU" in w for w in sv.total(adj, "y").warnings)
    # a stratum whose fpc says its only PSU was taken with certainty is not lonely
    d["N"] = d.h.map({"a": 10, "b": 1})
    cert = sv.Design(d, weights="w", strata="h", cluster="c", fpc="N")
    assert sv.total(cert, "y").se == pytest.approx(np.sqrt(v_a * (1 - 3 / 10)))


def test_missing_design_column_named_in_error():
    d = pd.DataFrame({"w": [1.0, 2], "y": [1, 2]})
    with pytest.raises(SurveyDesignError, match="strata column 'stratum' is not in the data"):
        sv.Design(d, weights="w", strata="stratum")
    with pytest.raises(SurveyDesignError, match="analysis column 'nope'"):
        sv.mean(sv.Design(d, weights="w"), "nope")


def test_coverage_at_nominal_rate_on_a_stratified_cluster_population():
    """95% t intervals cover the finite-population mean in ~95% of repeated samples."""
    rng = np.random.default_rng(2024)
    strata, psus_per, m = 4, 40, 10
    psu_effect = rng.normal(0, 1, (strata, psus_per))
    pop_y = (np.arange(strata)[:, None, None] + psu_effect[..., None]
             + rng.normal(0, 2, (strata, psus_per, m)))
    pop_b = pop_y > 2.0
    true_mean, true_share = pop_y.mean(), pop_b.mean()
    n_take = np.array([4, 6, 8, 5])
    hits_mean = hits_share = 0
    reps = 200
    h_idx = np.repeat(np.arange(strata), n_take * m)
    for _ in range(reps):
        ys, bs, cs, ws = [], [], [], []
        for h in range(strata):
            take = rng.choice(psus_per, n_take[h], replace=False)
            ys.append(pop_y[h, take].ravel())
            bs.append(pop_b[h, take].ravel())
            cs.append(np.repeat(take + 100 * h, m))
            ws.append(np.full(n_take[h] * m, psus_per / n_take[h]))
        d = pd.DataFrame({"h": h_idx, "c": np.concatenate(cs), "w": np.concatenate(ws),
                          "y": np.concatenate(ys), "b": np.concatenate(bs),
                          "N": psus_per})
        design = sv.Design(d, weights="w", strata="h", cluster="c", fpc="N")
        hits_mean += sv.mean(design, "y").covers(true_mean)
        hits_share += sv.proportion(design, "b", ci="logit").covers(true_share)
    # binomial(200, 0.95): 99.8% of rates fall in [0.905, 0.99]
    assert 0.905 <= hits_mean / reps <= 0.99
    assert 0.905 <= hits_share / reps <= 0.99
