"""Calibrated synthetic data with known ground truth: the embedded default and the test oracle.

>>> from promo_analysis import simulate
>>> ds = simulate("china-post-2022", scale=0.003, regions=["guangxi", "shanxi"], seed=1)
...                                                          # doctest: +SKIP
>>> ds.truth.first_use.query("by == 'overall'")              # doctest: +SKIP

The model is documented in ``docs/methods.md`` (section 3) and the knobs in
``docs/scenarios.md``; a scenario is a TOML file (:func:`load_scenario`).
"""

from __future__ import annotations

import sys
import time
import types
from pathlib import Path

import numpy as np
import pandas as pd

from promo_analysis.regions import REGIONS, regions_frame

from .campaigns import campaign_calendar, campaigns_frame
from .region import simulate_region
from .scenario import Scenario, available_scenarios, load_scenario
from .survey import simulate_survey
from .tables import region_tables
from .timeline import Timeline
from .truth import (
    GroundTruth,
    bunching_truth,
    campaign_truth,
    experiment_truth,
    first_use_truth,
    first_use_units,
    retention_truth,
)

__all__ = ["simulate", "simulate_frames", "GroundTruth", "Scenario", "load_scenario",
           "available_scenarios"]

_COERCE_MAX_ROWS = 100_000


def _coerce(df: pd.DataFrame, name: str, coerce_frame) -> pd.DataFrame:
    """The contract's pandas dtypes. The tables are built in those dtypes already;
    ``coerce_frame`` checks string columns value by value (slow), so big tables are checked on
    a sample: any column whose dtype the coercion would change is an error (a generator bug)."""
    if len(df) <= _COERCE_MAX_ROWS:
        return coerce_frame(df, name)
    sample = df.iloc[:: max(1, len(df) // 20_000)]
    checked = coerce_frame(sample, name)
    changed = [c for c in df.columns if checked[c].dtype != sample[c].dtype]
    if changed:
        raise TypeError(f"{name}: columns {changed} are not built in contract dtypes")
    return df
_REGION_INDEX = {r: i for i, r in enumerate(REGIONS)}
# independent random streams per region and purpose
_STREAMS = {"campaigns": 0, "world": 1, "tables": 2, "survey": 3, "truth": 4}


def _rng(seed: int, region: str, purpose: str) -> np.random.Generator:
    ss = np.random.SeedSequence(entropy=int(seed), spawn_key=(_REGION_INDEX[region], _STREAMS[purpose]))
    return np.random.default_rng(ss)


def _regions(sc: Scenario, regions) -> list[str]:
    if regions is None:
        return list(sc.regions)
    if isinstance(regions, str):
        regions = [r.strip() for r in regions.split(",") if r.strip()]
    regions = list(dict.fromkeys(regions))
    unknown = [r for r in regions if r not in REGIONS]
    if unknown:
        raise ValueError(f"unknown region id(s) {unknown}; known: {', '.join(REGIONS)}")
    if not regions:
        raise ValueError("regions is empty; give at least one region id")
    return regions


def simulate_frames(
    scenario: str | Path | Scenario = "china-post-2022",
    scale: float = 0.01,
    regions: list[str] | str | None = None,
    seed: int = 0,
) -> tuple[dict[str, pd.DataFrame], dict, GroundTruth]:
    """The tables (pandas, contract dtypes), ``dataset.json`` meta and ground truth.

    See :func:`simulate`; this is the same without building a :class:`Dataset`.
    """
    from promo_analysis.contract import coerce_frame

    sc = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
    if not (isinstance(scale, (int, float)) and 0 < scale <= 10):
        raise ValueError(f"scale must be a number in (0, 10], got {scale!r}")
    region_ids = _regions(sc, regions)
    tl = Timeline(sc.start, sc.n_days)
    t0 = time.perf_counter()
    parts: dict[str, list[pd.DataFrame]] = {
        k: [] for k in ("customers", "shipments", "coupons", "assignments", "survey")
    }
    all_campaigns = []
    worlds = []
    truth_parts: dict[str, list[pd.DataFrame]] = {
        k: [] for k in ("units", "experiments", "campaigns", "survey", "bunching")
    }
    calibration: dict = {"regions": {}}
    for region in region_ids:
        camps = campaign_calendar(sc, tl, [region], _rng(seed, region, "campaigns"))
        world = simulate_region(sc, tl, region, scale, camps, _rng(seed, region, "world"))
        tables = region_tables(world, sc, tl, _rng(seed, region, "tables"))
        for k, v in tables.items():
            parts[k].append(v)
        survey, survey_truth = simulate_survey(sc, tl, region, _rng(seed, region, "survey"))
        parts["survey"].append(survey)
        truth_parts["survey"].append(survey_truth)
        t_rng = _rng(seed, region, "truth")
        truth_parts["units"].append(first_use_units(sc, world, t_rng))
        truth_parts["experiments"].append(experiment_truth(sc, world))
        truth_parts["campaigns"].append(campaign_truth(sc, tl, world))
        truth_parts["bunching"].append(bunching_truth(world))
        all_campaigns += camps
        rp = sc.region(region)
        calibration["regions"][region] = {
            "price_factor": world.price_factor,
            "coupons": world.coupon_calibration,
            "targets": {
                k: rp[k] for k in (
                    "revenue_2022", "growth", "coupons_used_2022", "campaign_incremental_2022",
                    "campaign_revenue_share_2022", "channel_revenue_2022", "channel_growth",
                ) if k in rp
            },
        }
        worlds.append(world)

    frames = {
        "regions": regions_frame(region_ids),
        "customers": pd.concat(parts["customers"], ignore_index=True),
        "campaigns": campaigns_frame(all_campaigns, tl, scale),
        "coupons": pd.concat(parts["coupons"], ignore_index=True),
        "shipments": pd.concat(parts["shipments"], ignore_index=True),
        "survey": pd.concat(parts["survey"], ignore_index=True),
        "assignments": pd.concat(
            [a for a in parts["assignments"] if len(a)] or parts["assignments"][:1],
            ignore_index=True,
        ),
    }
    frames = {name: _coerce(df, name, coerce_frame) for name, df in frames.items()}
    units = pd.concat(truth_parts["units"], ignore_index=True)
    exp_parts = [x for x in truth_parts["experiments"] if len(x)]
    truth = GroundTruth(
        first_use=first_use_truth(units, list(sc.coupons["designs"])),
        experiments=(
            pd.concat(exp_parts, ignore_index=True) if exp_parts else pd.DataFrame(
                columns=["experiment_id", "region_id", "arm", "threshold", "face_value", "n",
                         "control_rate", "effect"]
            )
        ),
        campaigns=pd.concat(truth_parts["campaigns"], ignore_index=True),
        retention=retention_truth(sc, worlds),
        survey=pd.concat(truth_parts["survey"], ignore_index=True),
        bunching=pd.concat(truth_parts["bunching"], ignore_index=True),
        calibration=calibration,
    )
    meta = {
        "name": f"{sc.name} (simulated)",
        "contract_version": "1",
        "currency": "CNY",
        "period": [sc.start.isoformat(), sc.end.isoformat()],
        "scenario": sc.name,
        "scale": scale,
        "seed": int(seed),
        "regions": region_ids,
        "generator": "promo_analysis.simulate",
    }
    truth.calibration["seconds"] = round(time.perf_counter() - t0, 3)
    return frames, meta, truth


def simulate(
    scenario: str | Path | Scenario = "china-post-2022",
    scale: float = 0.01,
    regions: list[str] | str | None = None,
    seed: int = 0,
    engine: str = "duckdb",
):
    """A simulated dataset (2021-01-01 .. 2022-12-31) with all seven tables and ground truth.

    Parameters
    ----------
    scenario : str, path or Scenario, default "china-post-2022"
        A shipped scenario name (``china-post-2022``, ``china-post-2022-null``), a ``.toml``
        path or a :class:`Scenario`.
    scale : float, default 0.01
        Every count and yuan figure is ``scale`` x the 2022 facts (at 1: the real size).
    regions : list of str, optional
        Region ids (see :mod:`promo_analysis.regions`); default: the regions the scenario
        configures (guangxi, shanxi, beijing, zhejiang). Each region's data depends only on
        the seed and the region, not on which other regions are simulated.
    seed : int, default 0
        Same scenario, scale, regions and seed give identical data.
    engine : {"duckdb", "spark"}

    Returns
    -------
    Dataset
        With ``ds.truth`` a :class:`GroundTruth` and ``ds.meta`` the ``dataset.json`` content.
    """
    from promo_analysis.dataset import Dataset

    frames, meta, truth = simulate_frames(scenario, scale=scale, regions=regions, seed=seed)
    return Dataset.from_frames(frames, meta=meta, truth=truth, engine=engine)


class _CallableModule(types.ModuleType):
    """``promo_analysis.simulate`` is both this package and the function: once the package is
    imported, Python binds the attribute ``promo_analysis.simulate`` to the package, so the
    package forwards calls to :func:`simulate` (``from promo_analysis import simulate;
    simulate(...)`` works either way)."""

    def __call__(self, *args, **kwargs):
        return simulate(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
