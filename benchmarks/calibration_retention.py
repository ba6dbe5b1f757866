"""Calibration study: do the retention intervals cover the simulator's truth at their rate?

For each seed, simulate Guangxi + Shanxi at a small scale, run ``habit_formation`` (no
adjustment, for speed) and record whether the 95% intervals of the hazard ratio and of the
coupon-acquired and organic full-price shares cover ``truth.retention``.

Run:  .venv/bin/python benchmarks/calibration_retention.py [--seeds 20] [--scale 0.003]
Writes benchmarks/results/calibration_retention.csv (one row per seed) and prints coverage.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
OUT = HERE / "results" / "calibration_retention.csv"


def main() -> None:
    from promo_analysis.retention import habit_formation
    from promo_analysis.simulate import simulate

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--scale", type=float, default=0.003)
    ap.add_argument("--first-seed", type=int, default=100)
    args = ap.parse_args()
    rows = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        t0 = time.perf_counter()
        ds = simulate("china-post-2022", scale=args.scale, regions=["guangxi", "shanxi"],
                      seed=seed)
        h = habit_formation(ds, adjust=None, window_days=(90,))
        truth = ds.truth.retention
        row = {"seed": seed, "seconds": time.perf_counter() - t0}
        for name, est, true in (
            ("hazard_ratio", h.hazard_ratio, truth["hazard_ratio"]),
            ("habit_share", h.habit_share, truth["habit_share"]),
            ("habit_share_organic", h.habit_share_organic, truth["habit_share_organic"]),
        ):
            row[f"{name}_truth"] = true
            row[f"{name}_estimate"] = est.estimate
            row[f"{name}_ci_low"] = est.ci_low
            row[f"{name}_ci_high"] = est.ci_high
            row[f"{name}_covered"] = est.covers(true)
        rows.append(row)
        df = pd.DataFrame(rows)
        OUT.parent.mkdir(parents=True, exist_ok=True)
        df.to_csv(OUT, index=False)
        cov = {c: round(df[c].mean(), 3) for c in df.columns if c.endswith("_covered")}
        print(f"seed {seed}: {len(df)} runs, coverage {cov}", flush=True)


if __name__ == "__main__":
    main()
