"""Lazy package namespaces: names resolve to their submodule on first use.

Keeps ``import promo_analysis`` (and ``promo_analysis.features``, ``promo_analysis.report``)
cheap: a report kernel or a researcher who only validates data never loads nbconvert or
scikit-learn.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any


def lazy_exports(
    package: str,
    names: Mapping[str, str],
    modules: Iterable[str] = (),
    eager: Iterable[str] = (),
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``.

    ``names`` maps an exported name to the submodule that defines it; ``modules`` are
    submodules exposed as attributes themselves; ``eager`` are names the package binds itself
    (listed by ``dir()`` too).
    """
    submodules = frozenset(modules)
    public = sorted({*names, *submodules, *eager})

    def __getattr__(name: str) -> Any:
        if name in names:
            return getattr(importlib.import_module(f".{names[name]}", package), name)
        if name in submodules:
            return importlib.import_module(f".{name}", package)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return public

    return __getattr__, __dir__
