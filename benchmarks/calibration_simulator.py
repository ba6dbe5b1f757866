"""Calibration study of the simulator's randomized test: does the simple difference in means
of each design arm cover the true effect (``truth.experiments``) at its nominal 95% rate?

Run standalone: ``.venv/bin/python benchmarks/calibration_simulator.py [--seeds 40]
[--scale 0.003]``. Simulates only the Guangxi world (the region with the test) for each seed,
computes the Wald interval of every design arm vs control and appends the coverage to
``benchmarks/results/calibration_simulator.csv``. (The test suite checks one dataset; this is
the many-seed version.)
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results" / "calibration_simulator.csv"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=40)
    p.add_argument("--scale", type=float, default=0.003)
    p.add_argument("--scenario", default="china-post-2022")
    args = p.parse_args()

    from promo_analysis.simulate import _rng, load_scenario
    from promo_analysis.simulate.campaigns import campaign_calendar
    from promo_analysis.simulate.region import simulate_region
    from promo_analysis.simulate.timeline import Timeline
    from promo_analysis.simulate.truth import experiment_truth

    sc = load_scenario(args.scenario)
    tl = Timeline(sc.start, sc.n_days)
    region = "guangxi"
    z = []
    for seed in range(args.seeds):
        camps = campaign_calendar(sc, tl, [region], _rng(seed, region, "campaigns"))
        w = simulate_region(sc, tl, region, args.scale, camps, _rng(seed, region, "world"))
        truth = experiment_truth(sc, w).set_index("arm")
        y = {}
        for j, arm in enumerate(w.experiment["arms"]):
            part = np.flatnonzero(w.exp_arm == j)
            a = w.exp_day[part]
            y[arm] = ((w.t_first[part] >= a) & (w.t_first[part] < a + 30)).astype(float)
        for arm in y:
            if arm == "control":
                continue
            diff = y[arm].mean() - y["control"].mean()
            se = np.sqrt(y[arm].var() / y[arm].size + y["control"].var() / y["control"].size)
            z.append((diff - truth.loc[arm, "effect"]) / se)
    z = np.asarray(z)
    row = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "scenario": args.scenario,
        "scale": args.scale,
        "seeds": args.seeds,
        "intervals": z.size,
        "coverage_95": round(float(np.mean(np.abs(z) < 1.96)), 4),
        "mean_z": round(float(z.mean()), 4),
        "sd_z": round(float(z.std(ddof=1)), 4),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    new = not RESULTS.exists()
    with RESULTS.open("a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(row))
        if new:
            writer.writeheader()
        writer.writerow(row)
    print(row)


if __name__ == "__main__":
    main()
