"""Speed of the effect estimators at scale.

Targets (issue 4): ``estimate_effect(method="aipw", folds=5)`` on 1 M rows x 20 covariates in
under 15 s with the default logistic/linear learners and under 90 s with histogram gradient
boosting; ``compare_arms`` on 10 M rows in under 5 s.

Run: ``.venv/bin/python benchmarks/bench_causal.py [--rows 1000000] [--arm-rows 10000000]``;
writes ``benchmarks/results/causal.csv`` with wall-clock and CPU seconds (CPU time is the
fairer number on a shared machine).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from promo_analysis import causal, experiments

OUT = Path(__file__).parent / "results" / "causal.csv"


def observational(n: int, seed: int = 0) -> tuple[pd.DataFrame, list[str]]:
    """16 numeric and 4 categorical covariates (20 in all), selection on all of them."""
    rng = np.random.default_rng(seed)
    num = rng.normal(size=(n, 16)).astype(np.float64)
    df = pd.DataFrame(num, columns=[f"x{i}" for i in range(16)])
    df["segment"] = rng.choice(["office", "campus", "mall", "residential", "hospital",
                                "tourist_site", "military", "transport_hub", "other"], n)
    df["region_id"] = rng.choice([f"r{i:02d}" for i in range(31)], n)
    df["channel"] = rng.choice(["station", "counter", "pickup_point", "online"], n)
    df["wechat_contact"] = rng.random(n) < 0.35
    lin = -0.5 + num[:, :8] @ np.linspace(0.4, 0.05, 8) + 0.6 * df.wechat_contact
    t = rng.random(n) < 1 / (1 + np.exp(-lin))
    p = 1 / (1 + np.exp(-(-2 + num[:, 4:12] @ np.linspace(0.3, 0.05, 8)
                          + 0.5 * df.wechat_contact + 0.3 * t)))
    df["got_coupon"] = t.astype(int)
    df["sent"] = (rng.random(n) < p).astype(int)
    covs = [f"x{i}" for i in range(16)] + ["segment", "region_id", "channel", "wechat_contact"]
    return df, covs


def randomized(n: int, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    arm = pd.Categorical.from_codes(rng.integers(0, 3, n), ["control", "12-3", "21-5"])
    p = np.array([0.03, 0.055, 0.045])[arm.codes]
    return pd.DataFrame({"arm": arm, "sent": (rng.random(n) < p).astype(np.int8)})


def timed(fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--arm-rows", type=int, default=10_000_000)
    ap.add_argument("--skip-hgb", action="store_true")
    ap.add_argument("--threads", type=int, default=1,
                    help="BLAS/OpenMP threads (1: fair on a shared machine, see the report)")
    args = ap.parse_args()
    with threadpool_limits(limits=args.threads):
        _run(args)


def _run(args: argparse.Namespace) -> None:
    rows = []
    df, covs = observational(args.rows)
    cases = [("aipw-linear", None, 15.0)]
    if not args.skip_hgb:
        cases.append(("aipw-hgb", "hgb", 90.0))
    for name, learner, target in cases:
        est, wall, cpu = timed(lambda learner=learner: causal.estimate_effect(
            df, "got_coupon", "sent", covs, method="aipw", folds=5, learner=learner))
        rows.append({"case": name, "rows": args.rows, "covariates": len(covs),
                     "wall_s": wall, "cpu_s": cpu, "target_s": target,
                     "estimate": est.estimate, "se": est.se})
        print(rows[-1], flush=True)
    df = None  # free the 1 M-row frame before building 10 M rows
    rd = randomized(args.arm_rows)
    res, wall, cpu = timed(lambda: experiments.compare_arms(rd, arm="arm", outcome="sent"))
    rows.append({"case": "compare_arms", "rows": args.arm_rows, "covariates": 0,
                 "wall_s": wall, "cpu_s": cpu, "target_s": 5.0,
                 "estimate": res.table.loc["12-3", "estimate"],
                 "se": res.table.loc["12-3", "se"]})
    print(rows[-1], flush=True)
    out = pd.DataFrame(rows)
    out["machine"] = (f"{platform.machine()} {os.cpu_count()} cpu, load "
                      f"{os.getloadavg()[0]:.1f}, threads {args.threads}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    out.to_csv(OUT, index=False, float_format="%.6g")
    print(out.to_string(index=False))


if __name__ == "__main__":
    main()
