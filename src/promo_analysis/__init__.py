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

from promo_analysis._lazy import lazy_exports

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


__getattr__, __dir__ = lazy_exports(
    __name__, _FUNCTIONS, _MODULES, eager=("__version__", "simulate")
)


# The function ``simulate`` shares its name with the subpackage that defines it. Importing the
# subpackage binds the package attribute to the module, so the function is bound eagerly here,
# after that import, and ``promo_analysis.simulate(...)`` is always the function.
from promo_analysis.simulate import simulate  # noqa: E402
