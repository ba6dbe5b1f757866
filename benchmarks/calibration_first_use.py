"""Calibration study: do the 95% intervals of compare_arms and AIPW cover the truth 95% of the time?

Two fast data-generating processes with exactly known population truths, many seeds each:

* ``randomized``: a coupon test with a control and two designs ("12-3" with a heterogeneous
  effect, "21-5" with none), binary 30-day first-send outcome; ``compare_arms`` with Newcombe,
  Wald and Lin-HC2 (covariate-adjusted) intervals.
* ``observational``: couriers hand coupons to likely senders (selection on observed
  segment, WeChat contact, parcels received); naive, regression, IPW and cross-fitted AIPW for
  the ATE and the ATT.

Truths are population (super-population) values computed exactly by summing over the discrete
covariate distribution. Run: ``.venv/bin/python benchmarks/calibration_first_use.py [--seeds N]
[--jobs J] [--learner hgb]``
(default 500: Monte-Carlo SE of a coverage of 95 % is 1.0 point);
writes ``benchmarks/results/calibration_first_use.csv``. Target: coverage within 93-97%.
"""

from __future__ import annotations

import argparse
import os
import resource
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats
from threadpoolctl import threadpool_limits

from promo_analysis import causal, experiments

OUT = Path(__file__).parent / "results" / "calibration_first_use.csv"

SEGMENTS = ["office", "campus", "residential"]
SEG_P = np.array([0.3, 0.2, 0.5])
SEG_PS = {"office": 0.4, "campus": 0.2, "residential": -0.3}  # propensity (logit scale)
SEG_Y = {"office": 0.04, "campus": 0.02, "residential": -0.03}  # baseline rate shift
PARCEL_MEAN = 2.0
PARCEL_MAX = 40  # Poisson(2) mass above 40 is < 1e-30


def _base_rate(parcels, wechat, seg_shift):
    return np.clip(0.05 + 0.04 * np.minimum(parcels, 10) + 0.10 * wechat + seg_shift, 0, 1)


def _tau(wechat):
    return 0.08 + 0.06 * wechat


def _propensity(parcels, wechat, seg_ps):
    return 1 / (1 + np.exp(-(-1.2 + 0.35 * parcels + 0.9 * wechat + seg_ps)))


def observational_truth() -> tuple[float, float]:
    """Exact population ATE and ATT by summing over the covariate distribution."""
    k = np.arange(PARCEL_MAX + 1)
    pk = stats.poisson.pmf(k, PARCEL_MEAN)
    num_ate = num_att = den_att = 0.0
    for w, pw in ((0, 0.65), (1, 0.35)):
        for s, ps in zip(SEGMENTS, SEG_P, strict=True):
            e = _propensity(k, w, SEG_PS[s])
            base = _base_rate(k, w, SEG_Y[s])
            tau = np.clip(base + _tau(w), 0, 1) - base
            mass = pk * pw * ps
            num_ate += np.sum(mass * tau)
            num_att += np.sum(mass * e * tau)
            den_att += np.sum(mass * e)
    return float(num_ate), float(num_att / den_att)


def observational_sample(n: int, rng: np.random.Generator) -> pd.DataFrame:
    parcels = rng.poisson(PARCEL_MEAN, n)
    wechat = rng.binomial(1, 0.35, n)
    seg = rng.choice(SEGMENTS, n, p=SEG_P)
    seg_ps = pd.Series(seg).map(SEG_PS).to_numpy()
    seg_y = pd.Series(seg).map(SEG_Y).to_numpy()
    t = rng.binomial(1, _propensity(parcels, wechat, seg_ps))
    base = _base_rate(parcels, wechat, seg_y)
    y = rng.binomial(1, np.clip(base + t * _tau(wechat), 0, 1))
    return pd.DataFrame({"got_coupon": t, "sent": y, "parcels": parcels,
                         "wechat": wechat.astype(bool), "segment": seg})


ARM_TAU = {"12-3": lambda w: 0.03 + 0.02 * w, "21-5": lambda w: 0.0 * w}


def randomized_truth() -> dict[str, float]:
    # p0 = 0.10 + 0.10 w, w ~ Bernoulli(0.4): the effect averages over w
    return {a: float(0.6 * f(0) + 0.4 * f(1)) for a, f in ARM_TAU.items()}


def randomized_sample(n_per_arm: int, rng: np.random.Generator) -> pd.DataFrame:
    arms = np.repeat(["control", *ARM_TAU], n_per_arm)
    rng.shuffle(arms)
    w = rng.binomial(1, 0.4, len(arms))
    p = 0.10 + 0.10 * w
    for a, f in ARM_TAU.items():
        p = np.where(arms == a, p + f(w), p)
    return pd.DataFrame({"arm": arms, "sent": rng.binomial(1, p), "wechat": w})


def seed_rows(seed: int, n_obs: int, n_arm: int, learner: str = "linear") -> list[tuple]:
    """Every interval of one seed: compare_arms on a randomized test, then the observational
    estimators (ATE and ATT) on a selection-on-observables sample. With ``learner="hgb"``
    only AIPW with gradient-boosted nuisance models (the other methods do not use them)."""
    ate, att = observational_truth()
    rtruth = randomized_truth()
    rows = []
    with threadpool_limits(limits=1):
        rng = np.random.default_rng(10_000 + seed)
        rd = randomized_sample(n_arm, rng)
        designs = ((("newcombe", {"ci": "newcombe"}), ("wald", {"ci": "wald"}),
                    ("lin-hc2", {"covariates": ["wechat"]})) if learner == "linear" else ())
        for label, kw in designs:
            res = experiments.compare_arms(rd, arm="arm", outcome="sent", expected=False, **kw)
            for a, truth in rtruth.items():
                r = res.table.loc[a]
                rows.append(("randomized", f"compare_arms/{label}", f"effect {a}", seed, truth,
                             r["estimate"], r["se"], r["ci_low"], r["ci_high"]))
        od = observational_sample(n_obs, rng)
        methods = causal.METHODS if learner == "linear" else ("aipw",)
        for estimand, truth in (("ate", ate), ("att", att)):
            for method in methods:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    est = causal.estimate_effect(od, "got_coupon", "sent",
                                                 ["parcels", "wechat", "segment"],
                                                 method=method, estimand=estimand, seed=seed,
                                                 learner=None if learner == "linear" else learner)
                name = method if learner == "linear" else f"{method}/{learner}"
                rows.append(("observational", name, estimand, seed, truth, est.estimate,
                             est.se, est.ci_low, est.ci_high))
    return rows


def run(seeds: int, n_obs: int, n_arm: int, jobs: int = 1,
        learner: str = "linear") -> pd.DataFrame:
    t0, c0, load0 = time.perf_counter(), time.process_time(), os.getloadavg()[0]
    if jobs > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(jobs) as pool:
            parts = list(pool.map(seed_rows, range(seeds), [n_obs] * seeds, [n_arm] * seeds,
                                  [learner] * seeds, chunksize=5))
    else:
        parts = [seed_rows(seed, n_obs, n_arm, learner) for seed in range(seeds)]
    rows = [r for part in parts for r in part]
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - c0 + resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime
    raw = pd.DataFrame(rows, columns=["design", "method", "estimand", "seed", "truth",
                                      "estimate", "se", "ci_low", "ci_high"])
    raw["covered"] = (raw.ci_low <= raw.truth) & (raw.truth <= raw.ci_high)
    g = raw.groupby(["design", "method", "estimand"], sort=False)
    out = g.agg(seeds=("seed", "size"), truth=("truth", "first"),
                mean_estimate=("estimate", "mean"), sd_estimate=("estimate", "std"),
                mean_se=("se", "mean"), coverage=("covered", "mean")).reset_index()
    out["bias"] = out.mean_estimate - out.truth
    out["coverage_mc_se"] = np.sqrt(out.coverage * (1 - out.coverage) / out.seeds)
    out["n"] = np.where(out.design == "randomized", 3 * n_arm, n_obs)
    out["within_93_97"] = out.coverage.between(0.93, 0.97)
    out["run"] = (f"{elapsed:.0f} s wall, {cpu:.0f} CPU-s, {jobs} job(s), load "
                  f"{load0:.1f} -> {os.getloadavg()[0]:.1f}")
    out.attrs["elapsed_s"] = elapsed
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=500)
    ap.add_argument("--out", type=Path, default=None,
                    help=f"default {OUT.name} (linear) or calibration_first_use_hgb.csv")
    ap.add_argument("--learner", choices=("linear", "hgb"), default="linear",
                    help="nuisance models; 'hgb' runs only AIPW (ATE, ATT) with gradient "
                         "boosting, the learner whose settings can move its coverage")
    ap.add_argument("--n-obs", type=int, default=4000)
    ap.add_argument("--n-arm", type=int, default=1500)
    ap.add_argument("--jobs", type=int, default=1,
                    help="worker processes over seeds (each single-threaded)")
    args = ap.parse_args()
    _run(args)


def _run(args: argparse.Namespace) -> None:
    if args.out is None:
        args.out = OUT if args.learner == "linear" else OUT.with_name(f"{OUT.stem}_hgb.csv")
    out = run(args.seeds, args.n_obs, args.n_arm, args.jobs, args.learner)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    out.to_csv(args.out, index=False, float_format="%.6g")
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(out.drop(columns=["within_93_97", "run"]).to_string(index=False))
    print(f"{args.seeds} seeds, {out['run'].iloc[0]} -> {args.out}")


if __name__ == "__main__":
    main()
