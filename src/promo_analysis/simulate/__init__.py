"""Calibrated synthetic data with known ground truth: the embedded default and the test oracle.

>>> from promo_analysis import simulate
>>> ds = simulate("china-post-2022", scale=0.003, regions=["guangxi", "shanxi"], seed=1)
...                                                          # doctest: +SKIP
>>> ds.truth.first_use.query("by == 'overall'")              # doctest: +SKIP

The model is documented in ``docs/methods.md`` (section 3) and the knobs in
``docs/scenarios.md``; a scenario is a TOML file (:func:`load_scenario`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from promo_analysis.process_memory import release_free_memory
from promo_analysis.regions import REGIONS, regions_frame

from .campaigns import campaign_calendar, campaigns_frame
from .parallel import (
    SHIPMENTS_PER_YUAN,
    in_region_order,
    resolve_workers,
)
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
    habit_sums,
    retention_truth,
)

__all__ = ["simulate", "simulate_frames", "write_simulation", "GroundTruth", "Scenario",
           "load_scenario", "available_scenarios"]

#: tables up to this size are coerced whole, bigger ones checked on a sample of about this size
_COERCE_MAX_ROWS = 5_000


def _coerce(df: pd.DataFrame, name: str, coerce_frame) -> pd.DataFrame:
    """The contract's pandas dtypes. The tables are built in those dtypes already;
    ``coerce_frame`` checks string columns value by value (slow, ~3 us a value), so big tables
    are checked on an evenly spaced sample: any column whose dtype the coercion would change is
    an error (a generator bug). ``validate`` checks every row; the simulator's tests run it."""
    if len(df) <= _COERCE_MAX_ROWS:
        return coerce_frame(df, name)
    sample = df.iloc[:: max(1, len(df) // _COERCE_MAX_ROWS)]
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
    if isinstance(regions, str) and regions.strip().lower() == "all":
        return list(REGIONS)
    if isinstance(regions, str):
        regions = [r.strip() for r in regions.split(",") if r.strip()]
    regions = list(dict.fromkeys(regions))
    unknown = [r for r in regions if r not in REGIONS]
    if unknown:
        raise ValueError(f"unknown region id(s) {unknown}; known: {', '.join(REGIONS)}")
    if not regions:
        raise ValueError("regions is empty; give at least one region id")
    return regions


def _check(scenario, scale, regions) -> tuple[Scenario, list[str], Timeline]:
    sc = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
    if not (isinstance(scale, (int, float)) and 0 < scale <= 10):
        raise ValueError(f"scale must be a number in (0, 10], got {scale!r}")
    return sc, _regions(sc, regions), Timeline(sc.start, sc.n_days)


def _region_parts(sc: Scenario, tl: Timeline, region: str, scale: float, seed: int,
                  arrow: bool = False, sink: Callable[[str, Any], None] | None = None) -> dict:
    """Everything one region contributes: its table rows (pandas, or Arrow tables for the
    writer, except the small survey), campaign copies, truth parts.

    With ``sink`` (the writer's), each table is handed to ``sink(name, table)`` as soon as
    it is built and not kept (``tables`` is then empty): the region's model, which the truth
    needs, is never held together with all of its tables.
    """
    camps = campaign_calendar(sc, tl, [region], _rng(seed, region, "campaigns"))
    world = simulate_region(sc, tl, region, scale, camps, _rng(seed, region, "world"))
    if sink is not None:
        release_free_memory()  # the model's intermediates: ~1/3 of the worker's heap
    tables = region_tables(world, sc, tl, _rng(seed, region, "tables"), arrow=arrow)
    if sink is not None:
        for name in list(tables):
            sink(name, tables.pop(name))
    survey, survey_truth = simulate_survey(sc, tl, region, _rng(seed, region, "survey"), world)
    if sink is not None:
        sink("survey", survey)
    else:
        tables["survey"] = survey
    t_rng = _rng(seed, region, "truth")
    rp = sc.region(region)
    return {
        "tables": tables,
        "campaigns": camps,
        "truth": {
            "region": region,
            # compact columns (codes, floats): ~36 M units at 50 M shipments
            "units": first_use_units(sc, world, t_rng),
            "experiments": experiment_truth(sc, world),
            "campaigns": campaign_truth(sc, tl, world),
            "bunching": bunching_truth(world),
            "survey": survey_truth,
            "habit": habit_sums(world),
        },
        "calibration": {
            "price_factor": world.price_factor,
            "price_steps": world.price_steps,
            "coupons": world.coupon_calibration,
            "targets": {
                k: rp[k] for k in (
                    "revenue_2022", "growth", "coupons_used_2022", "campaign_incremental_2022",
                    "campaign_revenue_share_2022", "channel_revenue_2022", "channel_growth",
                ) if k in rp
            },
            "survey_links": {
                "respondents": len(survey),
                "linked": int(survey["customer_id"].notna().sum()),
                "linked_first_time": int(
                    (survey["customer_id"].notna() & survey["first_time_sender"]).sum()
                ),
            },
        },
    }


def _region_task(region: str, sc: Scenario, tl: Timeline, scale: float, seed: int) -> dict:
    """:func:`_region_parts` with the region first (the worker-pool task signature)."""
    return _region_parts(sc, tl, region, scale, seed)


def _sizes(sc: Scenario, region_ids: list[str], scale: float) -> list[float]:
    """Expected shipments per region (roughly; for the worker heuristics)."""
    return [
        scale * SHIPMENTS_PER_YUAN * float(sc.region(r)["revenue_2022"])
        * float(sc.region(r)["population_scale"])
        for r in region_ids
    ]


def _workers(sc: Scenario, region_ids: list[str], scale: float, workers: int | None) -> int:
    return resolve_workers(workers, len(region_ids), sum(_sizes(sc, region_ids, scale)))


def _truth(sc: Scenario, parts: list[dict], calibration: dict) -> GroundTruth:
    def cat(key):
        frames = [p["truth"][key] for p in parts if len(p["truth"][key])]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    experiments = cat("experiments")
    if experiments.empty:
        experiments = pd.DataFrame(columns=["experiment_id", "region_id", "arm", "threshold",
                                            "face_value", "n", "control_rate", "effect"])
    return GroundTruth(
        first_use=first_use_truth([(p["truth"]["region"], p["truth"]["units"]) for p in parts],
                                  list(sc.coupons["designs"]), list(sc.people["segments"])),
        experiments=experiments,
        campaigns=cat("campaigns"),
        retention=retention_truth(sc, [p["truth"]["habit"] for p in parts]),
        survey=cat("survey"),
        bunching=cat("bunching"),
        calibration=calibration,
    )


def _meta(sc: Scenario, scale: float, seed: int, region_ids: list[str]) -> dict:
    return {
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


def simulate_frames(
    scenario: str | Path | Scenario = "china-post-2022",
    scale: float = 0.01,
    regions: list[str] | str | None = None,
    seed: int = 0,
    workers: int | None = None,
) -> tuple[dict[str, pd.DataFrame], dict, GroundTruth]:
    """The tables (pandas, contract dtypes), ``dataset.json`` meta and ground truth.

    See :func:`simulate`; this is the same without building a :class:`Dataset`.
    """
    from promo_analysis.contract import coerce_frame

    sc, region_ids, tl = _check(scenario, scale, regions)
    n_workers = _workers(sc, region_ids, scale, workers)
    t0 = time.perf_counter()
    parts, campaigns, calibration = [], [], {"regions": {}}
    for region, part in in_region_order(
        _region_task, region_ids, (sc, tl, scale, seed), n_workers,
        sizes=_sizes(sc, region_ids, scale),
    ):
        campaigns += part.pop("campaigns")
        calibration["regions"][region] = part.pop("calibration")
        parts.append(part)

    def cat(name):
        frames = [p["tables"][name] for p in parts]
        return pd.concat([f for f in frames if len(f)] or frames[:1], ignore_index=True)

    frames = {
        "regions": regions_frame(region_ids),
        "customers": cat("customers"),
        "campaigns": campaigns_frame(campaigns, tl, scale),
        "coupons": cat("coupons"),
        "shipments": cat("shipments"),
        "survey": cat("survey"),
        "assignments": cat("assignments"),
    }
    frames = {name: _coerce(df, name, coerce_frame) for name, df in frames.items()}
    truth = _truth(sc, parts, calibration)
    truth.calibration["seconds"] = round(time.perf_counter() - t0, 3)
    return frames, _meta(sc, scale, seed, region_ids), truth


def simulate(
    scenario: str | Path | Scenario = "china-post-2022",
    scale: float = 0.01,
    regions: list[str] | str | None = None,
    seed: int = 0,
    engine: str = "duckdb",
    workers: int | None = None,
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
    workers : int, optional
        Processes that generate regions in parallel (1: in this process). Default: the
        number of CPUs, capped by the number of regions, and 1 for small jobs (under ~300 k
        shipments per worker) where starting processes costs more than it saves. The data
        are identical for any number of workers.

    Returns
    -------
    Dataset
        With ``ds.truth`` a :class:`GroundTruth` and ``ds.meta`` the ``dataset.json`` content.
    """
    from promo_analysis.dataset import Dataset

    frames, meta, truth = simulate_frames(
        scenario, scale=scale, regions=regions, seed=seed, workers=workers
    )
    return Dataset.from_frames(frames, meta=meta, truth=truth, engine=engine)


from .writer import write_simulation  # noqa: E402  (uses the helpers above)
