"""The one way plotting functions get their axes: the caller's, or a new figure's."""

from __future__ import annotations

from typing import Any

from promo_analysis.plots.fonts import use_cjk_font

__all__ = ["axes_for"]


def axes_for(ax: Any, size: tuple[float, float] = (8, 3.6), constrained: bool = False) -> Any:
    """Return ``ax``, or the axes of a new ``size`` figure when ``ax`` is None.

    The bundled CJK font is made current first, so Chinese labels never show as boxes.
    ``constrained`` uses matplotlib's constrained layout for the new figure.
    """
    import matplotlib.pyplot as plt

    use_cjk_font()
    if ax is None:
        _, ax = plt.subplots(figsize=size, layout="constrained" if constrained else None)
    return ax
