"""Calibration of the survey estimators on the simulator's survey design (many seeds).

For each seed and region a fresh population and survey sample are drawn with
``promo_analysis.simulate.survey.simulate_survey`` (stratified two-stage cluster sample with
age-related non-response and weighting-class adjustment). Reported per region and analysis:
coverage of the 95% interval of the "coupons influence my choice" share, mean bias, mean
estimated SE vs. the Monte-Carlo SD of the estimates, and seconds per replicate.

A speed table (design construction, mean, domain means, Rao-Scott table, logistic GLM on a
stratified cluster sample of 10^4 .. 10^6 rows) goes to ``benchmarks/results/survey_speed.csv``.

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


def speed(sizes: tuple[int, ...] = (10_000, 100_000, 1_000_000)) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for n in sizes:
        frame = pd.DataFrame({
            "stratum": rng.integers(0, 20, n),
            "cluster": rng.integers(0, max(n // 50, 40), n),
            "weight": rng.uniform(1, 50, n),
            "x": rng.normal(size=n),
            "group": rng.choice(["a", "b", "c", "d"], n),
        })
        frame["yes"] = rng.random(n) < 1 / (1 + np.exp(-frame["x"]))
        timings = {}
        t0 = time.perf_counter()
        design = sv.Design(frame, weights="weight", strata="stratum", cluster="cluster",
                           nest=True)
        timings["design"] = time.perf_counter() - t0
        for name, call in (
            ("mean", lambda design=design: sv.mean(design, "x")),
            ("proportion_logit", lambda design=design: sv.proportion(design, "yes", ci="logit")),
            ("by_4_domains", lambda design=design: sv.by(design, "x", "group")),
            ("crosstab_2x4", lambda design=design: sv.crosstab(design, "yes", "group")),
            ("glm_logistic", lambda design=design: sv.glm(design, "yes ~ x + group")),
        ):
            t0 = time.perf_counter()
            call()
            timings[name] = time.perf_counter() - t0
        rows += [{"rows": n, "step": k, "seconds": round(v, 4)} for k, v in timings.items()]
    return pd.DataFrame(rows)


if __name__ == "__main__":
    fast = speed()
    fast.to_csv(Path(__file__).parent / "results" / "survey_speed.csv", index=False)
    print(fast.to_string(index=False))
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    result = run(n)
    path = Path(__file__).parent / "results" / "survey.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    result.to_csv(path, index=False)
    print(result.to_string(index=False))
