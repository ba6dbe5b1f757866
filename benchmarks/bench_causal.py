"""Speed of the effect estimators at scale.

Targets (issue 4): ``estimate_effect(method="aipw", folds=5)`` on 1 M rows x 20 covariates in
under 15 s with the default logistic/linear learners and under 90 s with histogram gradient
boosting; ``compare_arms`` on 10 M rows in under 5 s.

Run: ``.venv/bin/python benchmarks/bench_causal.py [--rows 1000000] [--arm-rows 10000000]
[--threads 2] [--skip-hgb]``; writes ``benchmarks/results/causal.csv`` with wall-clock and CPU
seconds (``time.process_time``, all threads) and the 1-minute load average before and after
each case. Each AIPW case is paired with a reference measured in the same run -- one
scikit-learn fit of the same model family on all rows and covariates (``LogisticRegression``
newton-cholesky on the one-hot design; ``HistGradientBoostingClassifier`` with native
categoricals) -- so that the ratio ``cpu_s / ref_cpu_s`` survives a loaded machine: five-fold
AIPW fits 10 (ATE) models on 80 % of the rows each. ``--threads`` limits BLAS/OpenMP for the
whole run; ``estimate_effect`` itself keeps BLAS at one thread (its products are
memory-bound) and runs the two arms' linear outcome fits in two threads, while the scikit-learn
reference uses ``--threads`` BLAS threads -- on a busy machine a multi-threaded OpenBLAS
reference inflates several-fold, so compare ratios only between runs at similar load.
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
    load0 = os.getloadavg()[0]
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c, load0, os.getloadavg()[0]


def reference_fit(df: pd.DataFrame, covs: list[str], kind: str) -> None:
    """One scikit-learn fit of the propensity on all rows: the yardstick for the ratio."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

    if kind == "linear":
        X = pd.get_dummies(df[covs], drop_first=True, dtype=float).to_numpy()
        LogisticRegression(C=np.inf, solver="newton-cholesky", tol=1e-10).fit(X, df.got_coupon)
    else:
        X = df[covs].copy()
        for c in ("segment", "region_id", "channel"):
            X[c] = X[c].astype("category")
        HistGradientBoostingClassifier(categorical_features="from_dtype", random_state=0).fit(
            X, df.got_coupon)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--arm-rows", type=int, default=10_000_000)
    ap.add_argument("--skip-hgb", action="store_true")
    ap.add_argument("--hgb-rows", type=int, default=None,
                    help="rows for the gradient-boosting case (default: --rows)")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--threads", type=int, default=2,
                    help="BLAS/OpenMP threads (2 = both cores of the target machine)")
    args = ap.parse_args()
    with threadpool_limits(limits=args.threads):
        _run(args)


def _run(args: argparse.Namespace) -> None:
    rows = []
    cases = [("aipw-linear", None, "linear", 15.0, args.rows)]
    if not args.skip_hgb:
        cases.append(("aipw-hgb", "hgb", "hgb", 90.0, args.hgb_rows or args.rows))
    for name, learner, ref, target, n in cases:
        df, covs = observational(n)
        _, rwall, rcpu, _, _ = timed(lambda df=df, covs=covs, ref=ref:
                                     reference_fit(df, covs, ref))
        est, wall, cpu, l0, l1 = timed(lambda df=df, covs=covs, learner=learner:
                                       causal.estimate_effect(df, "got_coupon", "sent", covs,
                                                              method="aipw", folds=5,
                                                              learner=learner))
        rows.append({"case": name, "rows": n, "covariates": len(covs),
                     "wall_s": wall, "cpu_s": cpu, "target_s": target,
                     "ref_wall_s": rwall, "ref_cpu_s": rcpu, "cpu_ratio_to_ref": cpu / rcpu,
                     "load_before": l0, "load_after": l1,
                     "estimate": est.estimate, "se": est.se})
        print(rows[-1], flush=True)
    df = None  # free the 1 M-row frame before building 10 M rows
    rd = randomized(args.arm_rows)
    res, wall, cpu, l0, l1 = timed(lambda: experiments.compare_arms(rd, arm="arm",
                                                                     outcome="sent"))
    rows.append({"case": "compare_arms", "rows": args.arm_rows, "covariates": 0,
                 "wall_s": wall, "cpu_s": cpu, "target_s": 5.0, "load_before": l0,
                 "load_after": l1, "estimate": res.table.loc["12-3", "estimate"],
                 "se": res.table.loc["12-3", "se"]})
    print(rows[-1], flush=True)
    out = pd.DataFrame(rows)
    out["machine"] = (f"{platform.machine()} {os.cpu_count()} cpu, threads {args.threads}, "
                      f"python {platform.python_version()}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    out.to_csv(args.out, index=False, float_format="%.6g")
    print(out.to_string(index=False))


if __name__ == "__main__":
    main()
