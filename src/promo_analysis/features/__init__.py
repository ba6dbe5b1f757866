"""Engine-side aggregations: Ibis expressions over a Dataset's tables that return small frames.

Features never import the statistics modules. Each function takes a ``Dataset`` (and options),
does the table-scale work in the engine (DuckDB by default, Spark at scale) and returns a
pandas DataFrame small enough for in-memory statistics.
"""

from __future__ import annotations

import importlib
from typing import Any

# name -> submodule that defines it
_FUNCTIONS = {
    "customer_table": "customers",
    "first_use_table": "first_use",
    "daily_series": "daily",
    "cohort_counts": "cohorts",
    "survival_table": "cohorts",
    "repeat_windows": "cohorts",
    "assignment_outcomes": "cohorts",
    "experiment_table": "first_use",
}

__all__ = list(_FUNCTIONS)


def __getattr__(name: str) -> Any:
    if name in _FUNCTIONS:
        module = importlib.import_module(f".{_FUNCTIONS[name]}", __name__)
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
