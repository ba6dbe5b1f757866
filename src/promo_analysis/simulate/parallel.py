"""Regions generated in worker processes, results handed back in region order.

Every region draws from its own random streams (``_rng(seed, region, purpose)``), so a region's
rows do not depend on which process generates it or on the other regions: the output is the
same for any number of workers. Workers are *spawned* (not forked): the parent may hold DuckDB
or Arrow thread pools, which a fork would copy in an undefined state.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Any

__all__ = ["resolve_workers", "in_region_order", "SHIPMENTS_PER_YUAN"]

#: below this many expected shipments per region a worker's start-up (importing pandas,
#: pyarrow and the package, ~1 s) costs more than the region itself: ``workers=None`` stays
#: in-process
_MIN_SHIPMENTS_PER_WORKER = 300_000
#: shipments (2021-2022) per yuan of a region's 2022 revenue target, roughly (for the heuristic)
SHIPMENTS_PER_YUAN = 0.11


def resolve_workers(workers: int | None, n_regions: int, expected_shipments: float) -> int:
    """The number of worker processes; ``1`` means in-process.

    ``None`` (auto): the number of CPUs, capped by the number of regions, and 1 when the job is
    too small for processes to pay off (fewer than ~300 k shipments per worker).
    """
    if workers is None:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        by_size = int(expected_shipments // _MIN_SHIPMENTS_PER_WORKER)
        return max(1, min(cpus or 1, n_regions, by_size))
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise ValueError(f"workers must be a positive integer or None, got {workers!r}")
    return min(workers, max(n_regions, 1))


def in_region_order(
    task: Callable[..., Any], regions: list[str], args: tuple, workers: int
) -> Iterator[tuple[str, Any]]:
    """``(region, task(region, *args))`` for every region, in the order of ``regions``.

    With ``workers > 1`` the regions run in a pool of that many spawned processes; results are
    yielded as soon as they and all earlier regions are done (so the caller can write region
    ``i`` while later ones are still generated). ``task`` must be a module-level function.
    """
    if workers <= 1:
        for region in regions:
            yield region, task(region, *args)
        return
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(task, region, *args) for region in regions]
        try:
            for region, fut in zip(regions, futures, strict=True):
                yield region, fut.result()
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise
