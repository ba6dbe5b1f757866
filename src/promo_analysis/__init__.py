"""promo-analysis: do coupon and festival campaigns really work?

Public entry points (imported lazily, so ``import promo_analysis`` stays fast and a
researcher who only validates data never loads scikit-learn):

* ``load_dataset``, ``save_dataset`` -- open or write a dataset folder (``dataset``);
* ``validate`` -- check a dataset against the data contract (``contract``);
* ``simulate`` -- a calibrated synthetic dataset with known ground truth (``simulate``);
* the analysis modules ``experiments``, ``causal``, ``uplift``, ``campaigns``, ``retention``,
  ``survey``, ``calendar``, ``features``, ``plots`` and ``report``.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# name -> module that defines it
_FUNCTIONS = {
    "load_dataset": "dataset",
    "save_dataset": "dataset",
    "Dataset": "dataset",
    "validate": "contract",
    "ValidationReport": "contract",
    "DataContractError": "contract",
    "quarantine": "contract",
    "GroundTruth": "simulate",
    "Estimate": "results",
    "TableResult": "results",
}
_MODULES = (
    "calendar",
    "campaigns",
    "causal",
    "contract",
    "dataset",
    "experiments",
    "features",
    "plots",
    "report",
    "results",
    "retention",
    "survey",
    "uplift",
)

__all__ = ["__version__", "simulate", *_FUNCTIONS, *_MODULES]


def __getattr__(name: str) -> Any:
    if name in _FUNCTIONS:
        module = importlib.import_module(f".{_FUNCTIONS[name]}", __name__)
        return getattr(module, name)
    if name in _MODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)


# The function ``simulate`` shares its name with the subpackage that defines it. Importing the
# subpackage binds the package attribute to the module, so the function is bound eagerly here,
# after that import, and ``promo_analysis.simulate(...)`` is always the function.
from promo_analysis.simulate import simulate  # noqa: E402
