"""Calibration study: do the per-campaign 95% intervals of ``campaign_effects`` cover the truth?

For each seed x region set x scale, simulate the default scenario (and, with ``--null``, the
null scenario), run ``campaign_effects(ds, short_pre="skip")`` and compare every campaign row
with ``ds.truth.campaigns``: coverage of ``incremental_revenue``, mean SE against the SD of the
error, bias (mean error and mean z), and the pull-forward estimate against
``-pull_forward_revenue``; summarised overall, by region and by campaign kind (national /
provincial, theme). The null scenario reports the share of campaigns found significant.

The truth prices a parcel that would have been sent anyway without a campaign's coupon at
the price the data give a parcel without a coupon (its raw list price times the region's
calibration factor ``a exp(b t)``, ``truth.calibration["regions"][r]["price_factor"]``); before
that fix it used the raw price, and this study compared against a re-priced truth as well.

Run:  .venv/bin/python benchmarks/calibration_campaigns.py [--seeds 4] [--scales 0.003 0.01]
      [--region-sets guangxi,shanxi guangxi,shanxi,beijing,zhejiang] [--null]
Writes benchmarks/results/calibration_campaigns.csv (one row per setting x group) and prints
the overall rows.
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

HERE = Path(__file__).resolve().parent
OUT = HERE / "results" / "calibration_campaigns.csv"


def evaluate(ds, alpha: float = 0.05, **kw) -> pd.DataFrame:
    from promo_analysis.campaigns import campaign_effects

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = campaign_effects(ds, short_pre="skip", alpha=alpha, **kw)
    truth = ds.truth.campaigns
    m = res.table.reset_index().merge(
        truth, on=["campaign_id", "region_id"], suffixes=("", "_true"), validate="1:1"
    )
    m["kind"] = np.where(m.national, "national", "provincial")
    return m


def summarise(
    m: pd.DataFrame, truth_col: pd.Series, pf_true: pd.Series, alpha: float
) -> pd.DataFrame:
    """Coverage, error and pull-forward summaries; ``pf_true`` is the true (negative) dip."""
    err = m.estimate - truth_col
    cover = (m.ci_low <= truth_col) & (truth_col <= m.ci_high)
    pf_err = m.pull_forward - pf_true
    d = pd.DataFrame({
        "cover": cover, "err": err, "z": err / m.se, "se": m.se, "truth": truth_col,
        "significant": m.pvalue < alpha,
        "significant_gain": (m.pvalue < alpha) & (m.estimate > 0), "pf_err": pf_err, "pf_z": pf_err / m.pull_forward_se,
        "pf_est": m.pull_forward, "pf_true": pf_true,
        "region_id": m.region_id, "kind": m.kind, "theme": m.theme,
    })  # fmt: skip
    q = stats.norm.ppf(1 - alpha / 2)
    rows = []
    groups = [("all", None), ("region", "region_id"), ("kind", "kind"), ("theme", "theme")]
    for gname, col in groups:
        parts = [("all", d)] if col is None else list(d.groupby(col))
        for key, g in parts:
            rows.append({
                "group": gname, "value": key, "n": len(g), "coverage": g.cover.mean(),
                "mean_se": g.se.mean(), "sd_error": g.err.std(ddof=1), "bias": g.err.mean(),
                "mean_z": g.z.mean(), "sd_z": g.z.std(ddof=1),
                "mean_truth": g.truth.mean(), "significant": g.significant.mean(),
                "significant_gain": g.significant_gain.mean(),
                "pull_forward_est": g.pf_est.mean(), "pull_forward_true": g.pf_true.mean(),
                "pull_forward_bias": g.pf_err.mean(), "pull_forward_mean_z": g.pf_z.mean(),
                "pull_forward_coverage": (g.pf_z.abs() <= q).mean(),
            })  # fmt: skip
    return pd.DataFrame(rows)


def main() -> None:
    from promo_analysis.simulate import simulate

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--first-seed", type=int, default=1)
    ap.add_argument("--scales", type=float, nargs="+", default=[0.003])
    ap.add_argument(
        "--region-sets", nargs="+",
        default=["guangxi,shanxi", "guangxi,shanxi,beijing,zhejiang", "beijing,zhejiang"],
    )  # fmt: skip
    ap.add_argument("--null", action="store_true", help="also run the null scenario")
    ap.add_argument("--controls", action="store_true", help="also run controls='regions'")
    ap.add_argument("--alpha", type=float, default=0.05)
    args = ap.parse_args()
    scenarios = ["china-post-2022"] + (["china-post-2022-null"] if args.null else [])
    out = []
    for scale in args.scales:
        for regions in args.region_sets:
            regs = regions.split(",")
            for scenario in scenarios:
                per = []
                for seed in range(args.first_seed, args.first_seed + args.seeds):
                    w0, c0 = time.perf_counter(), time.process_time()
                    ds = simulate(scenario, scale=scale, regions=regs, seed=seed)
                    for ctl in [None, "regions"] if args.controls else [None]:
                        m = evaluate(ds, alpha=args.alpha, controls=ctl)
                        m["seed"], m["controls"] = seed, ctl or "none"
                        per.append(m)
                    print(
                        f"{scenario} scale={scale} {regions} seed={seed}: "
                        f"{time.perf_counter() - w0:.1f} s wall, "
                        f"{time.process_time() - c0:.1f} s CPU, "
                        f"load {os.getloadavg()[0]:.2f}", flush=True,
                    )  # fmt: skip
                m = pd.concat(per, ignore_index=True)
                for ctl, mc in m.groupby("controls"):
                    s = summarise(
                        mc, mc.incremental_revenue, -mc.pull_forward_revenue, args.alpha
                    )
                    for col, val in [("scenario", scenario), ("scale", scale),
                                     ("regions", regions), ("seeds", args.seeds),
                                     ("controls", ctl)][::-1]:
                        s.insert(0, col, val)
                    out.append(s)
                    a = s[s.group == "all"].iloc[0]
                    print(
                        f"  controls={ctl}: n={a.n} coverage={a.coverage:.3f} "
                        f"mean_z={a.mean_z:+.2f} sd_z={a.sd_z:.2f} "
                        f"significant={a.significant:.3f} "
                        f"pull-forward est {a.pull_forward_est:.0f} vs true "
                        f"{a.pull_forward_true:.0f}", flush=True,
                    )  # fmt: skip
                df = pd.concat(out, ignore_index=True)
                OUT.parent.mkdir(parents=True, exist_ok=True)
                df.to_csv(OUT, index=False, float_format="%.4g")
    ru = resource.getrusage(resource.RUSAGE_SELF)
    print(f"total CPU {ru.ru_utime + ru.ru_stime:.1f} s; wrote {OUT}")


if __name__ == "__main__":
    main()
