"""Engine-side aggregations: Ibis expressions over a Dataset's tables that return small frames.

Features never import the statistics modules. Each function takes a ``Dataset`` (and options),
does the table-scale work in the engine (DuckDB by default, Spark at scale) and returns a
pandas DataFrame small enough for in-memory statistics. The two per-customer tables, tens of
millions of rows at national scale, can instead be written to Parquet by the engine
(``path=``), returning a small file handle (:class:`CustomerTableFile`, :class:`FirstUseFile`).
"""

from __future__ import annotations

from promo_analysis._lazy import lazy_exports

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
    # what customer_table / first_use_table return when asked to write Parquet (path=)
    "CustomerTableFile": "customers",
    "FirstUseFile": "first_use",
}

__all__ = list(_FUNCTIONS)


__getattr__, __dir__ = lazy_exports(__name__, _FUNCTIONS)
