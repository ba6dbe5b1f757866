"""Render the regional report of every region: inputs, papermill per region, HTML, index.

:func:`render_reports` validates every parameter before a kernel starts and validates the
dataset once; then, region by region, it aggregates that region's rows in the engine
(:func:`~promo_analysis.report.inputs.build_region_inputs`, on this thread: one engine
connection) and hands the region to a pool that executes the template (``workers`` notebooks
at a time, each in its own kernel process) and exports it to offline HTML, so building the next
region's inputs overlaps with the kernels. Memory stays bounded by a few regions' frames, not
the dataset's: regions are built alternately largest and smallest, the kernels together run
at most ``kernel_rows`` first-use rows (:class:`_Dispatch`), and each process returns the
memory it freed after a region (``process_memory.release_free_memory``). Finally it writes
``index.html``, ``manifest.json`` and the ``latest`` pointer.
A failing region (inputs or notebook) is recorded and does not stop the others.

Each worker keeps its kernel for its next region (:class:`_Kernels`): starting a kernel and
importing the analysis stack cost about 5 CPU-s, a third of a small region's report. A hidden
first cell clears the kernel's namespace, figures and warning registries, so a notebook runs
as in a fresh kernel; it is removed from the saved notebook, whose execution counts are
renumbered from 1. A kernel whose notebook failed is shut down (it may still be busy, e.g.
after a cell timeout) and the worker's next region gets a new one.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import json
import os
import shutil
import sys
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from promo_analysis.process_memory import release_free_memory
from promo_analysis.report.html import export_html, external_references, write_atomic
from promo_analysis.report.inputs import (
    build_region_inputs,
    data_calendar,
    dataset_regions,
    load_inputs,
)
from promo_analysis.report.params import (
    LANGS,
    Period,
    ReportParameterError,
    check_region_ids,
    compare_period,
    parse_period,
    safe_child,
)
from promo_analysis.report.privacy import DEFAULT_K, find_identifiers

__all__ = [
    "render_reports",
    "RunSummary",
    "RegionStatus",
    "default_template",
]

#: seconds one notebook cell may run before its region is failed
CELL_TIMEOUT = 900

#: default of ``render_reports(kernel_rows=)``: first-use rows in the running notebooks
#: together. In the 50 M national simulation the largest region (Guangdong) has ~3.1 M and
#: runs alone; Jiangsu, Zhejiang, Shandong (~2.1-2.2 M) only beside the smallest regions;
#: a kernel peaks at ~0.4 GB plus ~0.8 GB per million rows (the first-use AIPW fit)
KERNEL_ROWS = 2_500_000

_DEFAULT: Any = object()


def default_template() -> Path:
    """``notebooks/regional_report.ipynb`` of the source tree the package is installed from."""
    return Path(__file__).resolve().parents[3] / "notebooks" / "regional_report.ipynb"


@dataclass
class RegionStatus:
    """How one region's report went."""

    region: str
    status: str  # "ok" or "failed"
    seconds: float
    html: Path | None = None
    notebook: Path | None = None
    error: str | None = None
    stderr_outputs: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "seconds": round(self.seconds, 3),
            "html": self.html.name if self.html else None,
            "notebook": self.notebook.name if self.notebook else None,
            "error": self.error,
            "stderr_outputs": self.stderr_outputs,
        }


@dataclass
class RunSummary:
    """The outcome of :func:`render_reports`."""

    run_id: str
    folder: Path
    index: Path
    manifest: Path
    regions: dict[str, RegionStatus] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when every region rendered."""
        return all(s.status == "ok" for s in self.regions.values())

    @property
    def failed(self) -> list[str]:
        return [r for r, s in self.regions.items() if s.status != "ok"]

    def __repr__(self) -> str:
        n_ok = sum(s.status == "ok" for s in self.regions.values())
        return (f"<RunSummary {self.run_id}: {n_ok}/{len(self.regions)} regions ok, "
                f"{self.seconds:.1f} s, index={self.index}>")


def _open(data: Any) -> tuple[Any, str]:
    if hasattr(data, "table") and hasattr(data, "tables"):
        return data, str(getattr(data, "path", "") or "<in-memory dataset>")
    from promo_analysis import load_dataset

    path = Path(data)
    if not path.exists():
        raise ReportParameterError(f"dataset folder {path} does not exist")
    return load_dataset(path), str(path)


def _default_period(ds: Any) -> Period:
    """The calendar year of the last shipment (to that date when the year is incomplete)."""
    s = ds.table("shipments")
    last = s.sent_at.max().to_pandas()
    if last is None:
        raise ReportParameterError("the shipments table is empty: nothing to report on")
    last = dt.datetime.fromisoformat(str(last)).date()
    return Period(dt.date(last.year, 1, 1), last)


def _new_run_folder(out: Path, stem: str) -> tuple[str, Path]:
    """Create a fresh run folder; never reuse one (a suffix is added on a name clash)."""
    out.mkdir(parents=True, exist_ok=True)
    for i in range(1, 1000):
        run_id = stem if i == 1 else f"{stem}-{i}"
        folder = out / run_id
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        return run_id, folder
    raise RuntimeError(f"could not create a new run folder under {out}")


def _point_latest(out: Path, run_id: str) -> None:
    """Make ``out/latest`` point to the run: a relative symlink, or a file with the run id."""
    link = out / "latest"
    tmp = out / f".latest-{os.getpid()}"
    try:
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        os.symlink(run_id, tmp, target_is_directory=True)
        os.replace(tmp, link)
    except OSError:
        if tmp.is_symlink():
            tmp.unlink()
        if link.is_symlink():
            link.unlink()
        write_atomic(link, run_id + "\n")


def _identifiers(ds: Any, region: str) -> Any:
    """The region's customer ids (what its report must never show), as an Arrow array:
    millions of ids at national scale cost tens of MB there, not a Python set of strings."""
    c = ds.table("customers")
    return c.filter(c.region_id == region).select("customer_id").to_pyarrow()["customer_id"]


#: id of the hidden first cell that cleans a reused kernel (removed from the saved notebook)
RESET_CELL_ID = "promo-analysis-reset"
#: id of the hidden last cell that frees the region's memory after its report
RESET_END_ID = "promo-analysis-reset-end"

# A reused kernel must run the next notebook as a fresh one would: no variables of the last
# region, no open figures, and warnings shown again (Python shows a warning once per place;
# resetting the filters invalidates the registries, then the filters are put back as they were).
_RESET_SOURCE = """\
get_ipython().reset(new_session=False, aggressive=False)
import warnings as _warnings

import matplotlib.pyplot as _plt

from promo_analysis.process_memory import release_free_memory as _release

_plt.close("all")
_filters = list(_warnings.filters)
_warnings.resetwarnings()
_warnings.filters[:] = _filters
del _filters, _plt, _warnings

_release()
del _release"""


class _Kernels:
    """One Jupyter kernel per worker thread, reused for that thread's regions.

    papermill (nbclient) uses a kernel manager it is given without shutting its kernel down;
    the client it opens for each notebook is closed here after the notebook. ``discard``
    shuts the calling thread's kernel down (after a failure), ``close`` every kernel.
    """

    def __init__(self) -> None:
        self._local = threading.local()
        self._lock = threading.Lock()
        self._managers: list[Any] = []

    def manager(self) -> Any:
        km = getattr(self._local, "km", None)
        if km is None:
            from jupyter_client.manager import AsyncKernelManager

            class _Manager(AsyncKernelManager):
                def client(self, **kwargs: Any) -> Any:
                    kc = super().client(**kwargs)
                    self.opened_clients.append(kc)
                    return kc

            km = _Manager(kernel_name="python3")
            km.opened_clients = []
            self._local.km = km
            with self._lock:
                self._managers.append(km)
        return km

    def release_clients(self) -> None:
        """Close the channels of the clients papermill opened on this thread's kernel."""
        km = getattr(self._local, "km", None)
        while km is not None and km.opened_clients:
            km.opened_clients.pop().stop_channels()

    def discard(self) -> None:
        km = self._local.__dict__.pop("km", None)
        if km is not None:
            with self._lock:
                self._managers.remove(km)
            self._shutdown(km)

    def close(self) -> None:
        with self._lock:
            managers, self._managers = self._managers, []
        for km in managers:
            self._shutdown(km)

    @staticmethod
    def _shutdown(km: Any) -> None:
        from jupyter_core.utils import run_sync

        for kc in km.opened_clients:
            try:
                kc.stop_channels()
            except Exception:  # noqa: BLE001, S110 - closing what is left, best effort
                pass
        km.opened_clients.clear()
        try:
            if km.has_kernel:
                run_sync(km.shutdown_kernel)(now=True)
        except Exception:  # noqa: BLE001 - a kernel that is already gone
            run_sync(km.cleanup_resources)()


def _with_reset_cell(template: Path, target: Path) -> Path:
    """A copy of ``template`` whose first cell cleans a reused kernel (``RESET_CELL_ID``) and
    whose last cell (``RESET_END_ID``) does the same after the report: a kernel waiting for
    its next region then holds its start-up memory, not the last region's (at 50 M an idle
    kernel kept ~1 GB beside the other kernel's biggest region)."""
    import nbformat

    nb = nbformat.read(str(template), as_version=4)
    for at, cell_id in ((0, RESET_CELL_ID), (len(nb.cells) + 1, RESET_END_ID)):
        cell = nbformat.v4.new_code_cell(_RESET_SOURCE)
        cell.id = cell_id
        cell.metadata["tags"] = ["promo-analysis-reset"]
        nb.cells.insert(at, cell)
    nbformat.write(nb, str(target))
    return target


def _without_reset_cell(nb: Any, template: Path) -> Any:
    """The executed notebook as a fresh kernel would have left it: no reset cell, execution
    counts from 1, the real template as papermill's input path."""
    nb.cells = [c for c in nb.cells if c.get("id") not in (RESET_CELL_ID, RESET_END_ID)]
    count = 0
    for cell in nb.cells:
        if cell.cell_type != "code" or cell.get("execution_count") is None:
            continue
        count += 1
        cell.execution_count = count
        for out in cell.get("outputs", []):
            if "execution_count" in out:
                out["execution_count"] = count
    if "papermill" in nb.metadata:
        nb.metadata["papermill"]["input_path"] = str(template)
    return nb


def _render_one(
    region: str,
    template: Path,
    folder: Path,
    parameters: dict[str, Any],
    identifiers: Any,
    kernels: _Kernels | None = None,
    source: Path | None = None,
) -> RegionStatus:
    """Execute and export one region's notebook.

    With ``kernels``, the worker's kernel is reused and ``source`` is the template with the
    reset cell (:func:`_with_reset_cell`); without, papermill starts and stops a kernel.
    """
    import nbformat
    import papermill as pm

    start = time.perf_counter()
    work = folder / ".work"
    work.mkdir(exist_ok=True)
    nb_work = work / f"{region}.ipynb"
    html_path = safe_child(folder, f"{region}.html")
    nb_path = safe_child(folder, f"{region}.ipynb")
    reuse = {} if kernels is None else {"km": kernels.manager()}
    try:
        try:
            pm.execute_notebook(
                str(source or template),
                str(nb_work),
                parameters=parameters,
                kernel_name="python3",
                progress_bar=False,
                log_output=False,
                # no ``cwd=``: papermill would chdir the whole process, which races with the
                # inputs of the next regions being built on the main thread (relative paths
                # then break); a hung cell fails its region instead of blocking the run forever
                execution_timeout=CELL_TIMEOUT,
                **reuse,
            )
        except BaseException:
            if kernels is not None:
                kernels.discard()  # maybe still busy (a timeout): the next region gets a new one
            raise
        finally:
            if kernels is not None:
                kernels.release_clients()
        nb = nbformat.read(str(nb_work), as_version=4)
        if kernels is not None:
            nb = _without_reset_cell(nb, template)
        meta = json.loads((Path(parameters["inputs"]) / "meta.json").read_text(encoding="utf-8"))
        title = f"{meta['name_zh']} {meta['name_en']} 地区报告 regional report"
        text, dropped = export_html(nb, title=title)
        leaked = find_identifiers(text, identifiers)
        if leaked:
            raise RuntimeError(
                f"privacy check failed: {len(leaked)} customer id(s) appear in the report "
                f"(e.g. {leaked[0]!r}); the HTML was not written"
            )
        external = external_references(text)
        if external:
            raise RuntimeError(f"the HTML references external resources: {external[:3]}")
        if kernels is not None:
            nbformat.write(nb, str(nb_work))
        os.replace(nb_work, nb_path)
        write_atomic(html_path, text)
        return RegionStatus(region, "ok", time.perf_counter() - start, html=html_path,
                            notebook=nb_path, stderr_outputs=dropped)
    except Exception as err:  # noqa: BLE001 - a failing region must not stop the others
        failed_nb = None
        if nb_work.exists():
            failed_nb = safe_child(folder, f"{region}.failed.ipynb")
            if kernels is not None:
                try:
                    nbformat.write(_without_reset_cell(
                        nbformat.read(str(nb_work), as_version=4), template), str(nb_work))
                except Exception:  # noqa: BLE001, S110 - keep the notebook as papermill left it
                    pass
            os.replace(nb_work, failed_nb)
        message = _short_error(err)
        return RegionStatus(region, "failed", time.perf_counter() - start, notebook=failed_nb,
                            error=message)


class _Dispatch:
    """Hands regions whose inputs are built to the kernel pool, in build order: at most
    ``workers`` notebooks at once and, when ``rows_limit`` is set, at most that many first-use
    rows in the kernels together (a region larger than the limit runs when no other does).

    A kernel's memory grows with its region's first-use table (the AIPW fit: ~1 GB per
    million rows), so two big regions side by side are what pushes the process tree over its
    memory target at national scale; a smaller region that fits beside a big one is run
    instead of waiting for it. Regions are submitted from the main thread (after each build)
    and from the pool's threads (when a notebook finishes), never by polling: the kernels
    keep both cores.
    """

    def __init__(self, pool: Any, workers: int, rows_limit: int | None,
                 job: Callable[..., RegionStatus], record: Callable[[RegionStatus], None]):
        self.pool, self.workers, self.rows_limit = pool, workers, rows_limit
        self.job, self.record = job, record
        # re-entrant: a future that finished before its callback was added calls it at once
        self.cond = threading.Condition(threading.RLock())
        self.ready: list[tuple[tuple[Any, ...], int]] = []
        self.running: dict[Any, int] = {}

    def add(self, args: tuple[Any, ...], rows: int) -> None:
        with self.cond:
            self.ready.append((args, rows))
            self._dispatch()

    def _fits(self, rows: int) -> bool:
        return (not self.running or self.rows_limit is None
                or sum(self.running.values()) + rows <= self.rows_limit)

    def _dispatch(self) -> None:
        while len(self.running) < self.workers:
            item = next((it for it in self.ready if self._fits(it[1])), None)
            if item is None:
                return
            self.ready.remove(item)
            fut = self.pool.submit(self.job, *item[0])
            self.running[fut] = item[1]
            fut.add_done_callback(self._done)

    def _done(self, fut: Any) -> None:
        self.record(fut.result())
        with self.cond:
            self.running.pop(fut, None)
            self._dispatch()
            self.cond.notify_all()

    def wait_for_room(self, waiting: int) -> None:
        """Block while ``waiting`` or more built regions wait for a kernel (bounds the ids
        held in memory and how far the inputs run ahead)."""
        with self.cond:
            self.cond.wait_for(lambda: len(self.ready) < waiting)

    def join(self) -> None:
        with self.cond:
            self.cond.wait_for(lambda: not self.ready and not self.running)


def _first_use_rows(folder: Path) -> int:
    """Rows of a region's written first-use input (0 without one)."""
    import pyarrow.parquet as pq

    path = folder / "first_use.parquet"
    return pq.ParquetFile(path).metadata.num_rows if path.exists() else 0


def _build_order(ds: Any, regions: list[str]) -> list[str]:
    """``regions`` in the order their inputs are built: by shipments, alternately the largest
    and the smallest left (ties and regions without shipments in the order given).

    A region's inputs and notebook take time roughly in proportion to its shipments. With the
    biggest regions last (the table's order), one kernel rendered the last big region while
    the other had nothing left to do; all big regions first would have them wait for each
    other under the kernels' row limit (:class:`_Dispatch`). Alternating keeps a small region
    ready to run beside a big one and leaves mid-sized regions for the end. The manifest and
    the index keep the order of ``regions``.
    """
    s = ds.table("shipments")
    if "region_id" not in s.columns or len(regions) < 3:
        return list(regions)
    counts = s.group_by("region_id").aggregate(n=s.count()).to_pandas()
    n = dict(zip(counts["region_id"].astype(str), counts["n"], strict=True))
    by_size = sorted(regions, key=lambda r: -int(n.get(r, 0)))
    order = []
    while by_size:
        order.append(by_size.pop(0))
        if by_size:
            order.append(by_size.pop())
    return order


def _check_same_rows(ds: Any, validation: Any) -> None:
    """Refuse a validation report whose table row counts are not the dataset's."""
    rows = getattr(validation, "rows", None)
    if not isinstance(rows, dict):
        raise ReportParameterError(
            f"validation must be the dataset's ValidationReport, got {type(validation).__name__}"
        )
    for name, n in rows.items():
        if name not in ds.tables:
            raise ReportParameterError(
                f"the validation report has table {name!r}, which the dataset does not have"
            )
        have = int(ds.table(name).count().to_pandas())
        if have != int(n):
            raise ReportParameterError(
                f"the validation report is of other data: table {name!r} has {have:,} rows, "
                f"the report counted {int(n):,}"
            )


def _short_error(err: Exception) -> str:
    ename = getattr(err, "ename", None)
    evalue = getattr(err, "evalue", None)
    if ename:
        return f"{ename}: {evalue}"
    last = traceback.format_exception_only(type(err), err)[-1].strip()
    return last[:500]


def _chart_b64(kpis: Any) -> str | None:
    import matplotlib.pyplot as plt

    from promo_analysis.plots.report import region_comparison_plot

    if kpis.empty:
        return None
    ax = region_comparison_plot(kpis)
    buf = io.BytesIO()
    ax.figure.savefig(buf, format="png", dpi=110)
    plt.close(ax.figure)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def render_reports(
    data: Any,
    regions: list[str] | str | None = None,
    out: str | Path = "reports",
    template: str | Path | None = None,
    workers: int = 2,
    *,
    period_start: Any = None,
    period_end: Any = None,
    compare_to: str | None = "previous_year",
    lang: str = "zh",
    k: int = DEFAULT_K,
    progress: Callable[[str], None] | None = print,
    validate: bool = True,
    validation: Any | None = None,
    reuse_kernels: bool = True,
    kernel_rows: Any = _DEFAULT,
) -> RunSummary:
    """Render the regional report of every requested region into a new run folder.

    Parameters
    ----------
    data : path or Dataset
        The dataset folder (or an opened Dataset).
    regions : list of str or comma-separated str, optional
        Region ids (default: every region of the dataset's ``regions`` table).
    out : path
        Parent folder of the run folders; ``out/latest`` points to the newest run.
    template : path, optional
        The parameterised notebook (default ``notebooks/regional_report.ipynb``).
    workers : int
        Notebooks executed at the same time.
    period_start, period_end : date-like, optional
        The report period (default: the calendar year of the last shipment).
    compare_to : str
        ``"previous_year"`` (default), ``"none"`` or ``"YYYY-MM-DD..YYYY-MM-DD"``.
    lang : {"zh", "en"}
        Language of the labels (names are always shown in both).
    k : int
        Minimum number of customers a published cell or chart group must describe.
    progress : callable, optional
        Receives one line per finished region (``print`` by default; None for silence).
    validate : bool
        Run the data-contract validation for the data-quality section.
    validation : ValidationReport, optional
        The dataset's validation report when the caller already has it (a pipeline that
        validated first): used instead of validating again, which is the largest single cost
        of a one-region run (41 CPU-s of 93 for Guangdong at 10 M shipments). Its table row
        counts must be the dataset's, else ``ReportParameterError``.
    reuse_kernels : bool
        Keep each worker's kernel for its next region (default), cleaned by a hidden first
        cell; False starts a new kernel for every region (as papermill does on its own).
    kernel_rows : int, optional
        At most this many first-use rows in the notebooks running at once (a larger region
        runs alone); default :data:`KERNEL_ROWS`; None: no limit. A kernel's memory grows
        with its region's first-use table (~1 GB per million rows at its peak), so this bounds
        the kernels' memory together at national scale; smaller data never reaches it.

    Returns
    -------
    RunSummary
        Paths, per-region status and timings; ``summary.ok`` is False when a region failed.

    Raises
    ------
    ReportParameterError
        For an invalid parameter (unknown region, unsafe name, bad period, ...), before any
        kernel starts and before the run folder is created.
    """
    t0 = time.perf_counter()
    started = dt.datetime.now(dt.UTC)
    if lang not in LANGS:
        raise ReportParameterError(f"lang={lang!r}; use one of {LANGS}")
    if not isinstance(workers, int) or workers < 1:
        raise ReportParameterError(f"workers must be a positive integer, got {workers!r}")
    if not isinstance(k, int) or k < 1:
        raise ReportParameterError(f"k must be a positive integer, got {k!r}")
    if kernel_rows is _DEFAULT:
        kernel_rows = KERNEL_ROWS
    if kernel_rows is not None and (not isinstance(kernel_rows, int) or kernel_rows < 1):
        raise ReportParameterError(f"kernel_rows must be a positive integer or None, "
                                   f"got {kernel_rows!r}")
    template = Path(template) if template is not None else default_template()
    if not template.exists():
        raise ReportParameterError(f"report template {template} does not exist")
    if isinstance(regions, str):
        regions = [r.strip() for r in regions.split(",") if r.strip()]

    ds, data_label = _open(data)
    known = dataset_regions(ds)
    regions = check_region_ids(list(regions) if regions else known, known)
    if period_start is None and period_end is None:
        period = _default_period(ds)
    elif period_start is None or period_end is None:
        raise ReportParameterError("give both period_start and period_end, or neither")
    else:
        period = parse_period(period_start, period_end)
    compare = compare_period(period, compare_to)
    if validation is not None:
        _check_same_rows(ds, validation)  # before the run folder exists

    fingerprint = ds.fingerprint()
    params = {
        "period_start": period.as_strings()[0],
        "period_end": period.as_strings()[1],
        "compare_to": compare_to if compare_to is not None else "none",
        "lang": lang,
        "k": k,
    }
    stem = started.strftime("%Y%m%dT%H%M%SZ") + "-" + hashlib.sha256(
        json.dumps([fingerprint, params, regions], sort_keys=True).encode()
    ).hexdigest()[:6]
    out = Path(out).resolve()
    run_id, folder = _new_run_folder(out, stem)

    report = validation
    if report is None and validate:
        from promo_analysis import validate as validate_dataset

        report = validate_dataset(ds, strict=False)
    dataset_meta = dict(getattr(ds, "meta", {}) or {})
    extra = {"fingerprint": fingerprint, "run_id": run_id,
             "dataset_name": dataset_meta.get("name", "")}
    statuses: dict[str, RegionStatus] = {}
    folders: dict[str, Path] = {}
    total = len(regions)
    lock = threading.Lock()

    def record(st: RegionStatus) -> None:
        with lock:
            statuses[st.region] = st
            if progress is not None:
                where = st.html if st.status == "ok" else st.error
                progress(f"[{len(statuses)}/{total}] {st.region}: {st.status} in "
                         f"{st.seconds:.1f} s -> {where}")

    def job(region: str, ids: Any, inputs_seconds: float) -> RegionStatus:
        p = {
            "region": region,
            "data": data_label,
            "inputs": str(folders[region].resolve()),
            **params,
        }
        st = _render_one(region, template, folder, p, ids, kernels=kernels, source=source)
        st.seconds += inputs_seconds
        return st

    calendar = data_calendar(ds)
    kernels = _Kernels() if reuse_kernels else None
    source = None
    if reuse_kernels:
        (folder / ".work").mkdir(exist_ok=True)
        source = _with_reset_cell(template, folder / ".work" / "template.ipynb")
    try:
        with ThreadPoolExecutor(max_workers=min(workers, total)) as pool:
            dispatch = _Dispatch(pool, workers, kernel_rows, job, record)
            for r in _build_order(ds, regions):
                # a few built regions may wait for a kernel: bounds the memory held in ids
                dispatch.wait_for_room(workers + 2)
                start = time.perf_counter()
                try:
                    folders[r] = build_region_inputs(ds, r, period, compare, folder / "inputs",
                                                     validation=report, extra_meta=extra,
                                                     calendar=calendar)
                    ids = _identifiers(ds, r)
                except Exception as err:  # noqa: BLE001 - a failing region must not stop the others
                    record(RegionStatus(r, "failed", time.perf_counter() - start,
                                        error="building the report inputs: " + _short_error(err)))
                    continue
                release_free_memory()  # the region's frames, before the next is built
                dispatch.add((r, ids, time.perf_counter() - start), _first_use_rows(folders[r]))
            dispatch.join()
    finally:
        if kernels is not None:
            kernels.close()
    statuses = {r: statuses[r] for r in regions}
    shutil.rmtree(folder / ".work", ignore_errors=True)

    from promo_analysis import __version__
    from promo_analysis.report.index import KPI_FRAMES, index_html, region_kpis

    finished = dt.datetime.now(dt.UTC)
    manifest = {
        "run_id": run_id,
        "package": {"name": "promo-analysis", "version": __version__},
        "python": sys.version.split()[0],
        "dataset": {"path": data_label, "fingerprint": fingerprint, "meta": dataset_meta},
        "parameters": {**params, "regions": regions, "workers": workers,
                       "template": str(template)},
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": finished.isoformat(timespec="seconds"),
        "seconds": round(time.perf_counter() - t0, 3),
        "status": "ok" if all(s.status == "ok" for s in statuses.values()) else "failed",
        "regions": {r: s.to_dict() for r, s in statuses.items()},
    }
    kpis = region_kpis({r: load_inputs(folders[r], frames=KPI_FRAMES) for r in regions
                        if r in folders}, k=k)
    index_path = write_atomic(folder / "index.html", index_html(manifest, kpis, _chart_b64(kpis)))
    manifest["seconds"] = round(time.perf_counter() - t0, 3)
    manifest_path = write_atomic(
        folder / "manifest.json",
        json.dumps(manifest, ensure_ascii=False, indent=2, default=str),
    )
    _point_latest(out, run_id)
    return RunSummary(run_id, folder, index_path, manifest_path, statuses,
                      seconds=time.perf_counter() - t0)
