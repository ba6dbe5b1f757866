"""Calibration of the survey estimators on the simulator's survey design (many seeds).

For each seed and region a fresh population and survey sample are drawn with
``promo_analysis.simulate.survey.simulate_survey`` (stratified two-stage cluster sample with
age-related non-response and weighting-class adjustment). Reported per region and analysis:
coverage of the 95% interval of the "coupons influence my choice" share, mean bias, mean
estimated SE vs. the Monte-Carlo SD of the estimates, and seconds per replicate.

Run: ``.venv/bin/python benchmarks/bench_survey.py [n_seeds]`` -> ``benchmarks/results/survey.csv``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from promo_analysis import survey as sv
from promo_analysis.simulate import load_scenario
from promo_analysis.simulate.survey import simulate_survey
from promo_analysis.simulate.timeline import Timeline


def run(n_seeds: int = 200, regions: tuple[str, ...] = ("guangxi", "shanxi")) -> pd.DataFrame:
    sc = load_scenario("china-post-2022")
    tl = Timeline(sc.start, sc.n_days)
    rows = []
    for region in regions:
        for seed in range(n_seeds):
            t0 = time.perf_counter()
            frame, truth = simulate_survey(sc, tl, region, np.random.default_rng([seed, 7]))
            true = float(truth.set_index("variable").loc["coupon_influenced", "value"])
            design = sv.survey_design(frame)
            naive = sv.Design(frame.assign(equal_weight=1.0), weights="equal_weight")
            for name, est in (
                ("weighted, logit CI", sv.proportion(design, "coupon_influenced", ci="logit")),
                ("weighted, Wald CI", sv.proportion(design, "coupon_influenced")),
                ("unweighted, Wald CI", sv.proportion(naive, "coupon_influenced")),
            ):
                rows.append({"region": region, "seed": seed, "analysis": name, "truth": true,
                             "estimate": est.estimate, "se": est.se,
                             "covered": est.covers(true),
                             "seconds": time.perf_counter() - t0})
    raw = pd.DataFrame(rows)
    raw["error"] = raw["estimate"] - raw["truth"]
    out = raw.groupby(["region", "analysis"]).agg(
        replicates=("seed", "size"),
        coverage=("covered", "mean"),
        bias=("error", "mean"),
        mc_sd=("estimate", "std"),
        mean_se=("se", "mean"),
        seconds_per_rep=("seconds", "mean"),
    )
    out["bias_mcse"] = raw.groupby(["region", "analysis"])["error"].std() / np.sqrt(
        out["replicates"]
    )
    return out.reset_index()


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    result = run(n)
    path = Path(__file__).parent / "results" / "survey.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    result.to_csv(path, index=False)
    print(result.to_string(index=False))
