"""Scenarios: the readable configuration of a simulated world.

A scenario is a TOML file (``simulate/scenarios/<name>.toml``, or any path) read into a
:class:`Scenario`. A file may say ``base = "<other scenario>"``; its tables then override the
base's key by key (tables merge recursively, everything else replaces), so a what-if world is a
few lines. ``docs/scenarios.md`` documents every knob.
"""

from __future__ import annotations

import copy
import datetime as dt
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = ["Scenario", "load_scenario", "available_scenarios"]

_SCENARIO_DIR = "scenarios"


def available_scenarios() -> list[str]:
    """Names of the scenarios shipped with the package."""
    folder = resources.files(__package__).joinpath(_SCENARIO_DIR)
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _read(name_or_path: str | Path, seen: tuple[str, ...] = ()) -> dict:
    path = Path(name_or_path)
    if path.suffix == ".toml" and path.exists():
        text = path.read_text(encoding="utf-8")
        label = str(path)
    else:
        name = str(name_or_path)
        res = resources.files(__package__).joinpath(_SCENARIO_DIR, f"{name}.toml")
        if not res.is_file():
            raise ValueError(
                f"unknown scenario {name!r}: not a .toml file and not one of "
                f"{', '.join(available_scenarios())}"
            )
        text = res.read_text(encoding="utf-8")
        label = name
    if label in seen:
        raise ValueError(f"scenario {label!r} inherits from itself: {' -> '.join(seen)}")
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"scenario {label}: not valid TOML: {err}") from err
    base = raw.pop("base", None)
    if base:
        raw = _merge(_read(base, (*seen, label)), raw)
    return raw


@dataclass
class Scenario:
    """A simulated world: people, sending, coupons, campaigns, retention, survey.

    Attributes
    ----------
    name, description : str
    start, end : datetime.date
        The simulated period (inclusive), daily.
    people : dict
        Segments (shares, first-send and repeat-rate offsets, coupon effect ``coupon_tau``),
        covariate effects, hazards, churn, inflow of new prospects and walk-ins.
    coupons : dict
        Courier coupons to prospects (rate, ``confounding``, ``unobserved_confounding``),
        designs, redemption and bunching behaviour, habit (``habit_acquired``).
    retention : dict
        ``hazard_ratio`` of the time from first to second parcel, coupon-acquired vs organic.
    campaigns : dict
        ``effect_scale``, ``new_customer_lift``, ``pull_forward``, ``post_days``, theme and
        design lifts.
    national : dict
        Year (str) -> national campaign rows ``[theme, anchor, offset, days, design, target]``.
    defaults : dict
        Region parameters for regions without their own table.
    regions : dict
        Region id -> parameters overriding ``defaults`` (calibration targets live here).
    experiments : list of dict
        Randomized coupon tests.
    survey : dict
        Survey design: strata, outlets, sample sizes; linking of respondents to customer ids
        (``linked_share``, ``answer_behaviour``).
    size : dict
        Region id -> size relative to ``defaults`` (regions without their own table).
    """

    name: str
    description: str
    start: dt.date
    end: dt.date
    people: dict[str, Any]
    coupons: dict[str, Any]
    retention: dict[str, Any]
    campaigns: dict[str, Any]
    national: dict[str, list]
    defaults: dict[str, Any]
    regions: dict[str, dict[str, Any]] = field(default_factory=dict)
    experiments: list[dict[str, Any]] = field(default_factory=list)
    survey: dict[str, Any] = field(default_factory=dict)
    size: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Scenario:
        """Build from a parsed TOML mapping (after ``base`` inheritance)."""
        required = ["name", "start", "end", "people", "coupons", "retention", "campaigns",
                    "national", "defaults"]
        missing = [k for k in required if k not in raw]
        if missing:
            raise ValueError(f"scenario is missing the key(s) {missing}")
        start, end = (dt.date.fromisoformat(str(raw[k])) for k in ("start", "end"))
        if end <= start:
            raise ValueError(f"scenario end {end} must be after start {start}")
        people = raw["people"]
        n = len(people["segments"])
        for key in ("segment_share", "first_send_offset", "repeat_offset", "coupon_tau"):
            if len(people[key]) != n:
                raise ValueError(f"people.{key} needs {n} values (one per segment)")
        return cls(
            name=str(raw["name"]),
            description=str(raw.get("description", "")),
            start=start,
            end=end,
            people=people,
            coupons=raw["coupons"],
            retention=raw["retention"],
            campaigns=raw["campaigns"],
            national={str(k): v for k, v in raw["national"].items()},
            defaults=raw["defaults"],
            regions=raw.get("regions", {}),
            experiments=list(raw.get("experiments", [])),
            survey=raw.get("survey", {}),
            size={str(k): float(v) for k, v in raw.get("size", {}).items()},
        )

    def region(self, region_id: str) -> dict[str, Any]:
        """Parameters of ``region_id``: ``defaults`` (revenue and coupon targets times the
        region's ``size``) overridden by ``regions[region_id]``."""
        base = copy.deepcopy(self.defaults)
        factor = float(self.size.get(region_id, 1.0))
        for key in ("revenue_2022", "coupons_used_2022"):
            base[key] = float(base[key]) * factor
        return _merge(base, self.regions.get(region_id, {}))

    @property
    def years(self) -> list[int]:
        return list(range(self.start.year, self.end.year + 1))

    @property
    def n_days(self) -> int:
        return (self.end - self.start).days + 1


def load_scenario(name_or_path: str | Path = "china-post-2022") -> Scenario:
    """Read a scenario by name (shipped with the package) or from a ``.toml`` path.

    Examples
    --------
    >>> sc = load_scenario("china-post-2022-null")
    >>> sc.campaigns["effect_scale"]
    0.0
    """
    return Scenario.from_dict(_read(name_or_path))
