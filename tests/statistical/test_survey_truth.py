"""The survey estimators recover the simulator's population truth; ignoring the design does not.

The simulated survey is a stratified two-stage cluster sample whose young customers (who say
more often that coupons influence them) respond least; the published weights undo that
within weighting classes. So the weighted share is consistent and its interval covers the
truth at the nominal rate, while the unweighted share is biased downwards. The full
calibration over 200 seeds is ``benchmarks/bench_survey.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

from promo_analysis import survey as sv


def _truth(ds, region: str, variable: str) -> float:
    t = ds.truth.survey
    return float(t[(t.region_id == region) & (t.variable == variable)]["value"].iloc[0])


def test_headline_share_covers_the_guangxi_truth(small_ds):
    truth = _truth(small_ds, "guangxi", "coupon_influenced")
    assert truth == pytest.approx(0.504, abs=1e-3)  # the article's 50.4%
    design = sv.survey_design(sv.survey_table(small_ds, "guangxi"))
    share = sv.proportion(design, "coupon_influenced", ci="logit")
    assert share.covers(truth)
    assert share.diagnostics["n_missing"] > 0  # item non-response counted
    assert any("no answer" in w for w in share.warnings)
    naive = sv.Design(design.data.assign(one=1.0), weights="one")
    assert sv.proportion(naive, "coupon_influenced").estimate < share.estimate


def test_every_question_and_region_covered(small_ds):
    comp = []
    for region in ("guangxi", "shanxi"):
        design = sv.survey_design(sv.survey_table(small_ds, region))
        for var in ("coupon_influenced", "aware_of_campaign", "first_time_sender",
                    "satisfaction"):
            est = (sv.mean(design, var) if var == "satisfaction"
                   else sv.proportion(design, var, ci="logit"))
            comp.append(est.covers(_truth(small_ds, region, var)))
    # 8 intervals at 95%: all but at most one cover (P(>= 2 misses) ~ 6%; seed fixed)
    assert sum(comp) >= 7


@pytest.mark.slow
def test_weighted_unbiased_and_unweighted_biased_over_seeds():
    from promo_analysis.simulate import load_scenario
    from promo_analysis.simulate.survey import simulate_survey
    from promo_analysis.simulate.timeline import Timeline

    sc = load_scenario("china-post-2022")
    tl = Timeline(sc.start, sc.n_days)
    werr, uerr, covered = [], [], 0
    reps = 10
    for seed in range(reps):
        frame, truth = simulate_survey(sc, tl, "guangxi", np.random.default_rng([seed, 99]))
        true = float(truth.set_index("variable").loc["coupon_influenced", "value"])
        design = sv.survey_design(frame)
        w = sv.proportion(design, "coupon_influenced", ci="logit")
        u = sv.proportion(sv.Design(frame.assign(one=1.0), weights="one"), "coupon_influenced")
        werr.append(w.estimate - true)
        uerr.append(u.estimate - true)
        covered += w.covers(true)
    werr, uerr = np.array(werr), np.array(uerr)
    # unweighted: non-response bias of about -4 points, many Monte-Carlo SEs from zero
    assert uerr.mean() < -3 * uerr.std(ddof=1) / np.sqrt(reps)
    # weighted: no detectable bias
    assert abs(werr.mean()) < 3 * werr.std(ddof=1) / np.sqrt(reps)
    # P(at most 6 of 10 covered | 95%) ~ 0.001
    assert covered >= 7
