"""Regions generated in worker processes, results handed back in region order.

Every region draws from its own random streams (``_rng(seed, region, purpose)``), so a region's
rows do not depend on which process generates it or on the other regions: the output is the
same for any number of workers. Workers are *spawned* (not forked): the parent may hold DuckDB
or Arrow thread pools, which a fork would copy in an undefined state.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from multiprocessing import get_context
from typing import Any

__all__ = [
    "resolve_workers", "in_region_order", "next_region", "SHIPMENTS_PER_YUAN",
    "MAX_RUNNING_SHIPMENTS",
]

#: below this many expected shipments per region a worker's start-up (importing pandas,
#: pyarrow and the package, ~1 s) costs more than the region itself: ``workers=None`` stays
#: in-process
_MIN_SHIPMENTS_PER_WORKER = 300_000
#: shipments (2021-2022) per yuan of a region's 2022 revenue target, roughly (for the heuristic)
SHIPMENTS_PER_YUAN = 0.11
#: expected shipments (the :func:`~promo_analysis.simulate._sizes` estimate) the running workers
#: may generate at once: a worker peaks at ~0.6 GiB per million shipments of its region
#: (session 4, tables written as they are built; benchmarks/bench_simulate.py at the 50 M
#: national scale: guangdong alone, 4.36 M shipments, 2.65 GiB PSS, was 3.35 GiB; session 3:
#: zhejiang alone, 3.66 M shipments, 2.81 GB PSS), so two big regions together (Guangdong
#: ~4.4 M and Jiangsu ~3.2 M at 50 M national) would still need ~4.5 GiB; a
#: region that would push the running total above this waits (unless nothing else runs). The
#: estimate runs high where prices are calibrated up (beijing, zhejiang: ~0.77 x the real
#: count). 6 M keeps zhejiang out of beijing's company in the 10 M benchmark (6.51 M estimated):
#: measured idle (session 3) 51.8 s wall / 3.75 GiB summed PSS with 6 M against 56.6 s /
#: 4.05 GiB with a 6.55 M budget that ran the two together -- pairing them raised the peak past
#: 4 GiB and did not shorten the run.
MAX_RUNNING_SHIPMENTS = 6_000_000


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


def next_region(pending: list[int], running: float, sizes: list[float],
                budget: float) -> int | None:
    """Position in ``pending`` (region indices in region order) of the next region to start:
    the first whose expected size fits next to the ``running`` total within ``budget``; the
    first one if nothing runs (a region bigger than the budget runs alone); ``None`` to wait."""
    if not pending:
        return None
    if running <= 0:
        return 0
    for pos, i in enumerate(pending):
        if running + sizes[i] <= budget:
            return pos
    return None


def in_region_order(
    task: Callable[..., Any], regions: list[str], args: tuple, workers: int,
    sizes: list[float] | None = None, budget: float | None = None,
) -> Iterator[tuple[str, Any]]:
    """``(region, task(region, *args))`` for every region, in the order of ``regions``.

    With ``workers > 1`` the regions run in a pool of that many spawned processes; results are
    yielded as soon as they and all earlier regions are done (so the caller can write region
    ``i`` while later ones are still generated). ``task`` must be a module-level function.
    With ``sizes`` (expected shipments per region) a region starts only while the running
    regions' sizes plus its own stay within ``budget`` (see :func:`next_region`), so two big
    regions never run at once; smaller later regions may run ahead (their results wait).
    ``budget`` defaults to :data:`MAX_RUNNING_SHIPMENTS` (read at call time).
    """
    if workers <= 1:
        for region in regions:
            yield region, task(region, *args)
        return
    n = len(regions)
    budget = MAX_RUNNING_SHIPMENTS if budget is None else float(budget)
    sizes = [0.0] * n if sizes is None else [float(x) for x in sizes]
    pending = list(range(n))
    running: dict[Any, int] = {}
    done: dict[int, Any] = {}
    nxt = 0
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        try:
            while nxt < n:
                while len(running) < workers:
                    pos = next_region(pending, sum(sizes[i] for i in running.values()), sizes,
                                      budget)
                    if pos is None:
                        break
                    i = pending.pop(pos)
                    running[pool.submit(task, regions[i], *args)] = i
                if nxt in done:
                    yield regions[nxt], done.pop(nxt)
                    nxt += 1
                    continue
                finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for fut in finished:
                    done[running.pop(fut)] = fut.result()
        except BaseException:
            for fut in running:
                fut.cancel()
            raise
