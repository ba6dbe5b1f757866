"""Regional reports: papermill orchestration, offline HTML export, index page, run manifest.

* :func:`render_reports` -- every region of a dataset through the template notebook
  (``notebooks/regional_report.ipynb``) into ``reports/<run-id>/``;
* :func:`load_inputs` -- what a report notebook reads (its region's small aggregated frames),
  written by :func:`build_region_inputs` from :func:`region_dataset` (the region's rows only);
* :mod:`~promo_analysis.report.sections` -- the report's sections, built from those inputs;
* :mod:`~promo_analysis.report.kpis` -- headline KPI, channel-mix and monthly tables;
* :mod:`~promo_analysis.report.privacy` -- small-cell suppression and identifier checks.

Names are imported lazily: a report kernel imports ``sections`` without paying for nbconvert,
papermill and jsonschema, which only the orchestrating process needs.
"""

from __future__ import annotations

from promo_analysis._lazy import lazy_exports

# name -> submodule that defines it
_NAMES = {
    "render_reports": "render",
    "RunSummary": "render",
    "RegionStatus": "render",
    "ReportParameterError": "params",
    "RegionInputs": "inputs",
    "build_inputs": "inputs",
    "build_region_inputs": "inputs",
    "region_dataset": "inputs",
    "load_inputs": "inputs",
    "open_inputs": "inputs",
    "kpi_table": "kpis",
    "channel_mix": "kpis",
    "monthly_revenue": "kpis",
    "suppress_small_cells": "privacy",
    "DEFAULT_K": "privacy",
}

__all__ = list(_NAMES)


__getattr__, __dir__ = lazy_exports(__name__, _NAMES)
