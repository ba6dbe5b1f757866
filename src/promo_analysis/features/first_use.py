"""The first-use table: did a coupon given to a prospect make them send a first parcel?

A target-trial emulation on observational data (Hernán & Robins 2016). The trial we would like
to run: take a *prospect* (a known person who has never sent with EMS) on a day, give them a
coupon or not, and see whether they send a first parcel within ``window_days``.

* Treated rows: each prospect's FIRST coupon received while eligible (``known_since <= issued_at``
  and no shipment before ``issued_at``); index date = the coupon's ``issued_at``.
* Control rows (default ``controls="not-yet-treated"``): every prospect -- later coupon
  recipients included -- gets a pseudo index date drawn (seeded) from the empirical
  distribution of the treated index dates of their region on or after the day they became
  known; the row is kept if on that day they were still a prospect without a coupon. Only the
  history up to the index date decides, as in a sequence of emulated trials (a person may be a
  control on one day and treated later). ``controls="never-treated"`` instead takes only people
  who never got a coupon and draws their date among the days they were eligible; it conditions
  on the future (people who send early have no time to get a coupon), which biases the control
  outcome upward -- kept for comparison, see the tests and ``docs/methods.md``.
* Time is counted in whole days, as the simulator and the couriers' records do: the index
  date is the day of issue; a prospect is eligible on day ``d`` if known on or before ``d`` and
  without a parcel on an earlier day; the outcome window is days ``d .. d + window_days - 1``.
  A first parcel on the issue day counts (the order of events within a day is not reliable).
* Experiment participants (anyone in ``assignments``) are left out: their coupons were
  randomised, and :func:`experiment_table` builds their analysis table instead.

The engine (Ibis) does the table-scale work: per-customer shipment history, the first eligible
coupon per customer, the joins, the exclusion of experiment participants. Only the one-row-per-
prospect result comes to pandas, where the seeded pseudo-index-date draw happens (so the draw is
identical on every engine). At national scale that result does not fit in memory as pandas (35 M
rows at 50 M shipments): ``first_use_table(ds, path=...)`` builds it one customer-id range at a
time (about :data:`PIECE_CUSTOMERS` customers), in id order, continuing one seeded draw from the
regions' whole pools of treated dates, and writes it to Parquet -- the same rows, order and draws
as the in-memory table -- with DuckDB capped at :data:`FILE_MEMORY_LIMIT`.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ibis
import numpy as np
import pandas as pd

from .aggregates import materialized, on_duckdb, struct_min
from .customers import CUSTOMER_COLUMNS, _require, shipment_history
from .frames import to_frame

__all__ = [
    "first_use_table",
    "experiment_table",
    "design_code",
    "FirstUseFile",
    "FIRST_USE_COLUMNS",
]

#: Customers per piece when ``first_use_table`` writes to a file: customer-id ranges of at
#: most about this many customers (a region larger than that is split), so the pandas part of a
#: piece stays near 0.5 GB at ~450 bytes per output row.
PIECE_CUSTOMERS = 1_000_000
#: Rows converted to Arrow and written at a time (one Parquet row group each).
WRITE_ROWS = 500_000
#: DuckDB's memory cap while ``first_use_table(ds, path=...)`` runs, when the connection's own
#: (DuckDB's default: 80 % of RAM) is higher: the file mode is for data whose table does not
#: fit in memory, and its queries (the history, the first coupons, the sorted temporary
#: tables) spill to DuckDB's ``temp_directory`` above it. Peak at 50 M shipments: see
#: ``benchmarks/README.md`` (``bench_first_use.py``).
FILE_MEMORY_LIMIT = "2GB"

#: Columns of the first-use table, in order (extra customer columns follow them).
FIRST_USE_COLUMNS = [
    "customer_id",
    "region_id",
    "index_date",
    "got_coupon",
    "design",
    "coupon_id",
    "sent_within_window",
    "first_revenue",
    "revenue_within_window",
    "list_price_within_window",
    "days_to_first_send",
    "coupon_within_window",
    "segment",
    "wechat_contact",
    "parcels_received",
    "tenure_days",
    "known_since",
]


def design_code(threshold: Any, face_value: Any) -> Any:
    """The coupon design as ``"<threshold>-<face value>"``, e.g. 满12减3 -> ``"12-3"``.

    Works element-wise on Series (missing values give ``None``) and on scalars.
    """
    if isinstance(threshold, pd.Series):
        return _design_codes(threshold, face_value)
    if threshold is None or face_value is None or pd.isna(threshold) or pd.isna(face_value):
        return None
    return f"{float(threshold):g}-{float(face_value):g}"


def _as_float_array(values: Any) -> np.ndarray:
    # float(x) per element, as the scalar formula does, with every missing marker as NaN
    if not isinstance(values, pd.Series):
        values = pd.Series(np.asarray(values, dtype=object))
    return values.to_numpy(dtype="float64", na_value=np.nan)


def _design_codes(threshold: pd.Series, face_value: Any) -> pd.Series:
    # A campaign has a handful of designs over millions of rows: format each distinct
    # (threshold, face) pair once and map the rows to it, instead of one string per row.
    t = _as_float_array(threshold)
    f = _as_float_array(face_value)
    if len(t) != len(f):
        raise ValueError(
            f"design_code: threshold has {len(t)} values but face_value has {len(f)}"
        )
    ok = ~(np.isnan(t) | np.isnan(f))
    # factorised on the bit patterns, so that -0.0 and 0.0 ("-0" and "0") stay apart
    t_codes, t_uniq = pd.factorize(t[ok].view(np.int64))
    f_codes, f_uniq = pd.factorize(f[ok].view(np.int64))
    pair_codes, pairs = pd.factorize(t_codes.astype(np.int64) * len(f_uniq) + f_codes)
    t_vals = t_uniq.view(np.float64)
    f_vals = f_uniq.view(np.float64)
    labels = np.array(
        [f"{t_vals[p // len(f_uniq)]:g}-{f_vals[p % len(f_uniq)]:g}" for p in pairs],
        dtype=object,
    )
    out = np.full(len(t), None, dtype=object)
    out[ok] = labels[pair_codes]
    return pd.Series(out, index=threshold.index, dtype=object)


def _as_day(col: Any) -> Any:
    # The table works in whole days (see the module notes): a DATE or TIMESTAMP column becomes
    # the midnight that starts its day, so that dates and timestamps compare.
    return col.cast("timestamp").truncate("D")


def _data_end(ds: Any, as_of: Any) -> pd.Timestamp:
    """The first instant NOT covered by the data: ``as_of`` or the day after the last parcel."""
    if as_of is not None:
        return pd.Timestamp(as_of)
    meta = getattr(ds, "meta", None) or {}
    period = meta.get("period") if isinstance(meta, dict) else None
    end = None
    if isinstance(period, dict):
        end = period.get("end")
    elif isinstance(period, (list, tuple)) and len(period) == 2:
        end = period[1]
    elif isinstance(period, str) and "/" in period:
        end = period.split("/")[1]
    if end is not None:
        return pd.Timestamp(end).normalize() + pd.Timedelta(days=1)
    s = ds.table("shipments")
    last = s.sent_at.max().to_pandas()
    return pd.Timestamp(last).normalize() + pd.Timedelta(days=1)


def _prospect_frame(ds: Any) -> tuple[pd.DataFrame, dict[str, int]]:
    """Engine side: customers + shipment history + first eligible coupon, minus participants."""
    counts: dict[str, int] = {}
    frames = list(_prospect_frames(ds, [None], counts, build=lambda frame: frame))
    return frames[0], counts


@dataclass(frozen=True)
class _Piece:
    """The customers whose id lies in ``[lo, hi)`` (``None``: no bound on that side)."""

    lo: Any
    hi: Any

    def holds(self, col: Any) -> Any:
        """Ibis condition: ``col`` (a customer-id column) is in the piece."""
        cond = ibis.literal(True)
        if self.lo is not None:
            cond = cond & (col >= self.lo)
        if self.hi is not None:
            cond = cond & (col < self.hi)
        return cond


def _prospect_frames(
    ds: Any,
    pieces: list[_Piece] | list[None],
    counts: dict[str, int],
    build: Callable[[pd.DataFrame, pd.DataFrame | None], Any],
) -> Iterator[Any]:
    """The engine part, one frame per piece (``[None]``: all customers at once), yielded as
    ``build(frame, pool_counts)``: ``build`` holds the only reference to the frame and can free
    it while it builds its output. ``pool_counts`` (None with one piece, whose frame holds
    them) counts the treated index dates per region and day over ALL pieces: the control draw
    of a piece needs its regions' whole pools (see :func:`_treated_pool_counts`).

    The history and, with several pieces, each customer's first eligible coupon are computed
    once, into temporary tables sorted by customer id, of which each piece reads its id range;
    ``counts`` receives the exclusion counts (summed over the pieces).
    """
    c = ds.table("customers")
    s = ds.table("shipments")
    _require(c, "customers", CUSTOMER_COLUMNS)
    _require(
        s,
        "shipments",
        [
            "shipment_id",
            "customer_id",
            "sent_at",
            "revenue",
            "channel",
            "list_price",
            "discount",
            "coupon_id",
        ],
    )
    hist = shipment_history(s).select(
        "customer_id", "first_sent_at", "first_revenue", "first_list_price"
    ).rename(_hid="customer_id")
    sliced = pieces != [None]
    # the history is used twice (eligibility of coupons, the output): computed once
    with materialized(hist.order_by("_hid") if sliced else hist) as hist:
        ids = _participants(ds, c, counts)
        k = _coupons(ds, counts)
        if not sliced:
            base = _customer_base(c, hist, ids)
            el = None if k is None else _first_coupons(k, base)
            yield build(_prospect_piece(base, el, counts), None)
            return

        def piece_base(piece: _Piece) -> Any:
            # a piece's customers are one id range: the sorted temporary tables (and Parquet
            # row groups) are read only where they hold it (zone maps / statistics)
            cp = c.filter(piece.holds(c.customer_id))
            return _customer_base(cp, hist.filter(piece.holds(hist._hid)), ids)

        # Each customer's first eligible coupon, computed piece by piece (one query over all
        # coupons joined to all customers did not fit DuckDB in 2 GB at 50 M shipments: 33.6 M
        # coupons, 37.9 M customers) into one temporary table sorted by id, which every piece
        # then reads again, after the pools of treated dates were counted from it.
        parts = (
            []
            if k is None
            else [
                _first_coupons(k.filter(piece.holds(k.customer_id)), piece_base(piece))
                .order_by("_kcid")
                for piece in pieces
            ]
        )
        with materialized(*parts) if parts else nullcontext() as el_all:
            pool_counts = _treated_pool_counts(el_all)
            for piece in pieces:
                ep = None if el_all is None else el_all.filter(piece.holds(el_all._kcid))
                yield build(_prospect_piece(piece_base(piece), ep, counts), pool_counts)


def _treated_pool_counts(el: Any) -> pd.DataFrame:
    """Engine side: customers (non-participants) whose first eligible coupon came on each day,
    per region -- ``region_id, _issued, _n``, a few rows per region and day.

    These are the treated index dates before the ``as_of`` cut, over every customer: with the
    table built in id-range pieces, a region can span several pieces, and its controls draw
    from its whole pool whichever piece they are in.
    """
    cols = ["region_id", "_issued", "_n"]
    if el is None:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in
                             zip(cols, ["object", "datetime64[ns]", "int64"], strict=True)})
    t = el.filter(el._issued.notnull())
    out = t.group_by(region_id=t._region, _issued=t._issued).aggregate(_n=t.count()).to_pandas()
    out["_issued"] = pd.to_datetime(out["_issued"]).astype("datetime64[ns]")
    return out[cols]


def _participants(ds: Any, c: Any, counts: dict[str, int]) -> Any:
    """Ids of experiment participants (left out: :func:`experiment_table` is theirs)."""
    if not ds.has("assignments"):
        counts["experiment_participants"] = 0
        return None
    a = ds.table("assignments")
    _require(a, "assignments", ["customer_id"])
    ids = a.select(_aid=a.customer_id).distinct()
    counts["experiment_participants"] = int(
        c.semi_join(ids, c.customer_id == ids._aid).count().to_pandas()
    )
    return ids


def _customer_base(c: Any, hist: Any, ids: Any) -> Any:
    cust = c.mutate(_known=_as_day(c.known_since))
    base = cust.left_join(hist, cust.customer_id == hist._hid).select(
        *[cust[col] for col in cust.columns],
        hist.first_sent_at,
        hist.first_revenue,
        hist.first_list_price.name("_first_list_price"),
    )
    if ids is not None:
        base = base.anti_join(ids, base.customer_id == ids._aid)
    return base


#: The first eligible coupon's columns, as the engine frame holds them.
_COUPON_COLS = ["_issued", "_coupon_id", "_threshold", "_face"]


def _coupons(ds: Any, counts: dict[str, int]) -> Any:
    """The coupons given to a known person (None without a ``coupons`` table); counts the
    anonymous ones and starts the count of coupons given to non-prospects."""
    if not ds.has("coupons"):
        counts["anonymous_coupons"] = 0
        counts["coupons_to_non_prospects"] = 0
        return None
    k = ds.table("coupons")
    _require(k, "coupons", ["coupon_id", "customer_id", "issued_at", "threshold", "face_value"])
    counts["anonymous_coupons"] = int(k.filter(k.customer_id.isnull()).count().to_pandas())
    counts["coupons_to_non_prospects"] = 0
    k = k.filter(k.customer_id.notnull())
    return k.mutate(_issued_ts=k.issued_at.cast("timestamp"), _issued=_as_day(k.issued_at))


def _first_coupons(k: Any, base: Any) -> Any:
    """Per customer of ``base`` with a coupon in ``k``: the first coupon received while
    eligible (:data:`_COUPON_COLS`, NULL if none), the number received while not a prospect
    (``_n_not_eligible``) and the region (``_region``)."""
    kb = k.join(base, k.customer_id == base.customer_id).select(
        _kcid=k.customer_id,
        _issued=k._issued,
        _issued_ts=k._issued_ts,
        _coupon_id=k.coupon_id,
        _threshold=k.threshold,
        _face=k.face_value,
        _known=base._known,
        _first_sent=base.first_sent_at,
        _kregion=base.region_id,
    )
    # eligible on the issue day: known by then, no parcel on an earlier day
    eligible = (kb._known <= kb._issued) & (
        kb._first_sent.isnull() | (kb._first_sent >= kb._issued)
    )
    kb = kb.mutate(_eligible=eligible)
    # Per customer, in the same query as the rest (a separate count would read the
    # shipments again for the history): the first eligible coupon and the number of
    # coupons they got while not a prospect.
    n_bad = (~kb._eligible).cast("int64").sum()
    # one row per customer id, so one region: min only carries it along
    region = kb._kregion.min()
    # On DuckDB: the smallest (issued_ts, coupon_id, ...) struct among the eligible coupons, a
    # streaming group-by that spills under a memory_limit (arg_min of structs did not spill,
    # and the window sorts every coupon). Struct order is field by field, so the first coupon
    # is the one of the window's (issued_ts, coupon_id) order; coupon ids are unique, so the
    # later fields never decide. Both spellings give the same table (tests, tests/spark).
    if on_duckdb(kb):
        first = ibis.struct(
            {"_issued_ts": kb._issued_ts, "_coupon_id": kb._coupon_id,
             "_issued": kb._issued, "_threshold": kb._threshold, "_face": kb._face}
        )
        el = kb.group_by("_kcid").aggregate(
            _c=struct_min(first, where=kb._eligible), _n_not_eligible=n_bad, _region=region
        )
        return el.select(
            "_kcid", "_n_not_eligible", "_region", **{k: el._c[k] for k in _COUPON_COLS}
        )
    first = kb.filter(kb._eligible)
    first = first.mutate(
        _rank=ibis.row_number().over(
            group_by=first._kcid, order_by=[first._issued_ts, first._coupon_id]
        )
    ).filter(lambda t: t._rank == 0)
    first = first.select(_fid="_kcid", **{k: first[k] for k in _COUPON_COLS})
    bad = kb.group_by("_kcid").aggregate(_n_not_eligible=n_bad, _region=region)
    return bad.left_join(first, bad._kcid == first._fid).select(
        bad._kcid, bad._n_not_eligible, bad._region, *[first[k] for k in _COUPON_COLS]
    )


def _prospect_piece(base: Any, el: Any, counts: dict[str, int]) -> pd.DataFrame:
    if el is not None:
        base = base.left_join(el, base.customer_id == el._kcid).select(
            *[base[col] for col in base.columns],
            el._n_not_eligible,
            *[el[k] for k in _COUPON_COLS],
        )
    else:
        base = base.mutate(
            _issued=ibis.null("timestamp"),
            _coupon_id=ibis.null("string"),
            _threshold=ibis.null("float64"),
            _face=ibis.null("float64"),
        )
        base = base.mutate(_n_not_eligible=ibis.literal(0, type="int64"))
    # sorted outside the engine (cheaper than an ORDER BY); the seeded draw relies on this order
    frame = to_frame(base, sort_by=["customer_id"])
    if el is not None:
        counts["coupons_to_non_prospects"] += int(frame["_n_not_eligible"].fillna(0).sum())
    return frame.drop(columns="_n_not_eligible")


def _pieces(ds: Any, max_customers: int) -> list[_Piece] | list[None]:
    """Customer-id ranges to build one after the other, in id order, each of at most about
    ``max_customers`` customers; together they hold every customer.

    The control draw consumes one seeded stream over all candidates in ``customer_id`` order,
    from pools of treated dates known for every region before the first piece: consecutive id
    ranges therefore reproduce the one-piece table row for row (same draws, same order),
    wherever the ranges cut. Ranges follow the regions' id ranges (whole regions, grouped up to
    ``max_customers``; regions whose id ranges overlap count as one); a larger region is cut at
    every ``max_customers``-th of its ids (an engine sort of that region's ids only).
    ``[None]`` (one piece) when a customer has no id or no region.
    """
    c = ds.table("customers")
    ranges = (
        c.group_by("region_id")
        .aggregate(_lo=c.customer_id.min(), _hi=c.customer_id.max(), _n=c.count())
        .to_pandas()
    )
    if ranges.empty or ranges["region_id"].isna().any() or ranges["_lo"].isna().any():
        return [None]
    if int(ranges["_n"].sum()) != int(c.customer_id.count().to_pandas()):
        return [None]  # customers without an id: in no id range
    # strings compare by code point in Python, as by UTF-8 bytes in the engine and Arrow
    ranges = ranges.sort_values("_lo", kind="stable")
    groups: list[tuple[list[Any], Any, Any, int]] = []
    for region, lo, hi, n in ranges[["region_id", "_lo", "_hi", "_n"]].itertuples(index=False):
        if groups and lo <= groups[-1][2]:
            regions, low, top, size = groups[-1]
            groups[-1] = (regions + [region], low, max(top, hi), size + int(n))
        else:
            groups.append(([region], lo, hi, int(n)))
    # (first id, customers) of consecutive id segments, big groups cut into several
    segments: list[tuple[Any, int]] = []
    for regions, lo, _hi, n in groups:
        if n <= max_customers:
            segments.append((lo, n))
            continue
        parts = -(-n // max_customers)
        step = -(-n // parts)
        g = c.filter(c.region_id.isin(regions)).select("customer_id")
        g = g.mutate(_rank=ibis.row_number().over(order_by=g.customer_id))
        cuts = g.filter(g._rank % step == 0).order_by("_rank").to_pandas()["customer_id"]
        starts = list(cuts)
        sizes = [step] * (len(starts) - 1) + [n - step * (len(starts) - 1)]
        segments.extend(zip(starts, sizes, strict=True))
    firsts: list[Any] = []
    size = 0
    for lo, n in segments:
        if firsts and size + n <= max_customers:
            size += n
        else:
            firsts.append(lo)
            size = n
    bounds = [None, *firsts[1:], None]
    return [_Piece(lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]


def _draw_pseudo_index(
    candidates: pd.DataFrame,
    pools: dict[Any, np.ndarray],
    rng: np.random.Generator,
    until_first_send: bool,
) -> pd.Series:
    """Draw one index date per candidate from its region's pool of treated index dates.

    Dates are drawn uniformly among the pool entries (so in proportion to the region's issue
    dates) on or after the candidate's ``known_since`` day; with ``until_first_send`` also on or
    before the day of their first parcel (the "never-treated" design). NaT when no entry fits.
    """
    out = pd.Series(pd.NaT, index=candidates.index, dtype="datetime64[ns]")
    u = rng.random(len(candidates))
    for region, idx in candidates.groupby("region_id", sort=True).indices.items():
        pool = pools.get(region)
        if pool is None or len(pool) == 0:
            continue
        sub = candidates.iloc[idx]
        lo = np.searchsorted(pool, sub["_known"].to_numpy(dtype="datetime64[ns]"), side="left")
        hi = np.full(len(sub), len(pool))
        if until_first_send:
            ends = sub["first_sent_at"].to_numpy(dtype="datetime64[ns]")
            hi = np.where(np.isnat(ends), len(pool), np.searchsorted(pool, ends, side="right"))
        ok = hi > lo
        pick = np.clip(lo + np.floor(u[idx] * (hi - lo)).astype(np.int64), 0, len(pool) - 1)
        out.iloc[idx] = np.where(ok, pool[pick], np.datetime64("NaT"))
    return out


def first_use_table(
    ds: Any,
    window_days: int = 30,
    as_of: Any = None,
    seed: int = 0,
    controls: str = "not-yet-treated",
    path: Any = None,
) -> Any:
    """One row per prospect: coupon (or pseudo) index date, outcome and pre-index covariates.

    Parameters
    ----------
    ds : Dataset
        Needs ``customers`` and ``shipments``; uses ``coupons`` and ``assignments`` if present.
    window_days : int, default 30
        Outcome window: a first parcel sent in ``[index_date, index_date + window_days)``.
    as_of : date-like, optional
        The first instant not covered by the data. Default: the day after the dataset's period
        end (``ds.meta["period"]``) or, failing that, after the last shipment. Rows whose outcome
        window does not fit before ``as_of`` are excluded (counted).
    seed : int, default 0
        Seed of the control units' pseudo-index-date draw.
    controls : {"not-yet-treated", "never-treated"}
        How control rows are formed (see the module notes). With ``"not-yet-treated"`` a
        person can have a control row and, later, a treated row; ``coupon_within_window``
        flags control rows whose own coupon arrived inside their window (intention to treat).
    path : str or Path, optional
        Write the table to this Parquet file instead of returning it, built one customer-id
        range of about :data:`PIECE_CUSTOMERS` customers at a time (for national data, whose
        table does not fit in memory as pandas: ~450 bytes per row). The file holds the same
        rows in the same order, with the same control draws, as the returned table would:
        pieces are taken in id order, the draw continues one seeded stream from piece to
        piece, and each region's pool of treated dates is counted over all pieces first. While
        it runs, DuckDB's ``memory_limit`` is lowered to :data:`FILE_MEMORY_LIMIT` (2 GB)
        unless the dataset was loaded with a lower one (``load_dataset(..., memory_limit=)``);
        it spills to the connection's ``temp_directory``. A :class:`FirstUseFile` is returned.

    Returns
    -------
    pandas.DataFrame or FirstUseFile
        Columns :data:`FIRST_USE_COLUMNS` then any extra customer columns; ``got_coupon`` and
        ``sent_within_window`` are 0/1 integers, ``design`` is ``"<threshold>-<face>"`` for
        treated rows and ``None`` for controls, ``first_revenue`` is the revenue (yuan) of the
        prospect's first parcel whenever sent (NaN if never), ``revenue_within_window`` that
        revenue if the first parcel falls inside the window else 0,
        ``list_price_within_window`` the same at list price (before any discount: the gross
        revenue a coupon's face value is paid out of), ``coupon_within_window`` flags control
        rows whose own coupon came inside their window, ``tenure_days`` is
        ``index_date - known_since`` in days. ``df.attrs["exclusions"]`` counts every row or
        record left out and why; ``df.attrs["as_of"]``, ``["window_days"]``, ``["seed"]`` record
        the options. With ``path``: a :class:`FirstUseFile` with the same ``attrs``.

    Notes
    -----
    See ``docs/methods.md`` (section 4) for the estimand, the control-index choice and its
    alternatives.
    """
    if controls not in ("not-yet-treated", "never-treated"):
        raise ValueError(f"controls must be 'not-yet-treated' or 'never-treated', got {controls!r}")
    if int(window_days) <= 0:
        raise ValueError(f"window_days must be a positive number of days, got {window_days!r}")
    window = pd.Timedelta(days=int(window_days))
    end = _data_end(ds, as_of)
    rng = np.random.default_rng(seed)
    attrs: dict[str, Any] = {
        "as_of": end, "window_days": int(window_days), "seed": seed, "controls": controls
    }
    counts: dict[str, int] = {}
    if path is None:
        def build(df: pd.DataFrame, pool_counts: pd.DataFrame | None) -> pd.DataFrame:
            return _first_use_rows(df, counts, window, end, rng, controls, pool_counts)

        (out,) = _prospect_frames(ds, [None], counts, build)
        out.attrs["exclusions"] = counts
        out.attrs.update(attrs)
        return out
    return _write_first_use(ds, Path(path), counts, attrs, window, end, rng, controls)


def _first_use_rows(
    df: pd.DataFrame,
    totals: dict[str, int],
    window: pd.Timedelta,
    end: pd.Timestamp,
    rng: np.random.Generator,
    controls: str,
    pool_counts: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The pandas part, for the engine frame of one id range: the draw and the assembly.

    Exclusion counts are added to ``totals``; ``rng`` continues the draw of earlier pieces.
    ``pool_counts`` (``region_id, _issued, _n``: see :func:`_treated_pool_counts`) gives the
    regions' treated index dates when ``df`` does not hold all of them (None: it does).
    """
    counts: dict[str, int] = {}
    df["first_sent_at"] = pd.to_datetime(df["first_sent_at"])
    df["_known"] = pd.to_datetime(df["_known"])
    df["_issued"] = pd.to_datetime(df["_issued"])

    treated = df["_issued"].notna()
    fits = df["_issued"] + window <= end
    counts["treated_window_past_as_of"] = int((treated & ~fits).sum())
    keep_t = treated & fits

    # Pool of treated index dates per region (only those whose window fits: controls drawn
    # from it then fit too).
    if pool_counts is None:
        pools = {
            region: np.sort(g.to_numpy(dtype="datetime64[ns]"))
            for region, g in df.loc[keep_t].groupby("region_id")["_issued"]
        }
    else:
        pc = pool_counts.loc[pool_counts["_issued"] + window <= end]
        pools = {
            region: np.repeat(g["_issued"].to_numpy(dtype="datetime64[ns]"), g["_n"].to_numpy())
            for region, g in pc.sort_values(["region_id", "_issued"]).groupby("region_id")
        }
    # Customers first known through their first parcel (sent on the day they became known:
    # walk-ins, prior senders) were never prospects: counted, never control rows.
    known_day = df["_known"].dt.normalize()
    never_prospect = ~treated & (df["first_sent_at"] < known_day + pd.Timedelta(days=1))
    counts["never_prospects"] = int(never_prospect.sum())
    if controls == "never-treated":
        in_cand = ~treated & ~never_prospect
        cand = df.loc[in_cand, ["region_id", "_known", "first_sent_at"]]
        pseudo = _draw_pseudo_index(cand, pools, rng, until_first_send=True)
        counts["controls_never_eligible"] = int(pseudo.isna().sum())
        keep_c = pseudo.notna()
    else:
        # Every prospect (later coupon recipients included) gets a date drawn without looking
        # at their future; the draw is kept only if on that day they were still a prospect
        # without a coupon -- the history up to the index date decides, nothing after it.
        in_cand = ~never_prospect
        cand = df.loc[in_cand, ["region_id", "_known", "first_sent_at", "_issued"]]
        pseudo = _draw_pseudo_index(cand, pools, rng, until_first_send=False)
        no_date = pseudo.isna()
        sent_before = cand["first_sent_at"] < pseudo
        treated_by = cand["_issued"].notna() & (cand["_issued"] <= pseudo)
        counts["control_draws_without_date"] = int(no_date.sum())
        counts["control_draws_already_sent"] = int((~no_date & sent_before).sum())
        counts["control_draws_already_treated"] = int((~no_date & ~sent_before & treated_by).sum())
        keep_c = ~no_date & ~sent_before & ~treated_by
    # Assemble by row positions of ``df`` (one take of the columns, no concat/sort copies):
    # treated then control rows, ordered as a stable sort by customer_id of that
    # concatenation would order them. ``df`` is sorted by customer_id, so its runs of equal
    # ids give the sort key.
    keep_c = keep_c.to_numpy()
    pos_t = np.flatnonzero(keep_t.to_numpy())
    pos_c = np.flatnonzero(in_cand.to_numpy())[keep_c]
    ids = df["customer_id"].to_numpy()
    run = np.zeros(len(df), dtype=np.int64)
    if len(df) > 1:
        np.cumsum(ids[1:] != ids[:-1], out=run[1:])
    pos = np.concatenate([pos_t, pos_c])
    is_control = np.repeat(np.array([False, True]), [len(pos_t), len(pos_c)])
    order = np.lexsort((pos, is_control, run[pos]))
    pos, is_control = pos[order], is_control[order]
    index_date = np.concatenate(
        [df["_issued"].to_numpy()[pos_t], pseudo.to_numpy(dtype="datetime64[ns]")[keep_c]]
    )[order]
    del cand, pseudo, ids, run, in_cand, keep_t, treated, fits, known_day, never_prospect
    # column by column, each dropped from ``df`` once taken: the peak is ``df`` plus one
    # column, not two whole tables (at national scale each is GBs)
    columns = list(df.columns)
    taken = {}
    for col in columns:
        taken[col] = df.pop(col).take(pos)
        taken[col].index = pd.RangeIndex(len(pos))
    del df
    out = pd.DataFrame(taken, copy=False)
    del taken
    out["index_date"] = index_date
    out["got_coupon"] = np.where(is_control, 0, 1)
    treated_rows = np.flatnonzero(~is_control)
    design = np.full(len(out), None, dtype=object)
    design[treated_rows] = design_code(
        out["_threshold"].iloc[treated_rows], out["_face"].iloc[treated_rows]
    ).to_numpy()
    out["design"] = design
    coupon_id = np.full(len(out), None, dtype=object)
    coupon_id[treated_rows] = out["_coupon_id"].to_numpy()[treated_rows]
    out["coupon_id"] = coupon_id
    out["coupon_id"] = out["coupon_id"].where(out["coupon_id"].notna(), None)

    delay = out["first_sent_at"] - out["index_date"]
    inside = delay.notna() & (delay >= pd.Timedelta(0)) & (delay < window)
    out["sent_within_window"] = inside.astype("int64")
    out["revenue_within_window"] = np.where(inside, out["first_revenue"], 0.0)
    # gross (list-price) revenue: what a coupon's face value is paid out of (targeting_value)
    out["list_price_within_window"] = np.where(inside, out["_first_list_price"], 0.0)
    # control rows whose own (first) coupon arrived inside their window: intention-to-treat
    # contamination, small when coupons are rare per window; flagged for sensitivity analyses
    later = out["_issued"] - out["index_date"]
    out["coupon_within_window"] = (
        (out["got_coupon"] == 0) & later.notna() & (later > pd.Timedelta(0)) & (later < window)
    ).astype("int64")
    out["days_to_first_send"] = (
        out["first_sent_at"].dt.normalize() - out["index_date"]
    ).dt.days.astype("Int64")
    out["tenure_days"] = (out["index_date"] - out["_known"]).dt.days.astype("int64")
    out["got_coupon"] = out["got_coupon"].astype("int64")
    out["design"] = out["design"].astype(object).where(out["design"].notna(), None)
    if "parcels_received" not in out.columns:
        out["parcels_received"] = np.nan
    extras = [
        col
        for col in columns
        if col not in FIRST_USE_COLUMNS
        and not col.startswith("_")
        and col not in ("first_sent_at",)
    ]
    # reordered without copying the columns (``out[list]`` would copy the whole table)
    out = pd.DataFrame(
        {col: out[col] for col in FIRST_USE_COLUMNS + extras + ["first_sent_at"]}, copy=False
    )
    for key, n in counts.items():
        totals[key] = totals.get(key, 0) + n
    return out


@dataclass
class FirstUseFile:
    """A first-use table written to Parquet by ``first_use_table(ds, path=...)``.

    Attributes
    ----------
    path : Path
        The Parquet file (one row group per piece of regions).
    rows : int
        Rows written.
    attrs : dict
        What ``DataFrame.attrs`` of the in-memory table holds: ``exclusions`` (the counts,
        summed over the pieces), ``as_of``, ``window_days``, ``seed``, ``controls``.
    """

    path: Path
    rows: int
    attrs: dict[str, Any] = field(default_factory=dict)

    def read(self, columns: list[str] | None = None) -> pd.DataFrame:
        """The table (or some of its columns) as pandas, with :attr:`attrs`."""
        df = pd.read_parquet(self.path, columns=columns)
        df.attrs.update(self.attrs)
        return df

    def __len__(self) -> int:
        return self.rows


def _parquet_schema(out: pd.DataFrame) -> Any:
    import pyarrow as pa

    schema = pa.Schema.from_pandas(out, preserve_index=False)
    for i, f in enumerate(schema):
        # a piece without treated rows has only None in design / coupon_id: strings anyway
        if pa.types.is_null(f.type):
            schema = schema.set(i, pa.field(f.name, pa.string()))
    return schema


def _write_first_use(
    ds: Any,
    path: Path,
    counts: dict[str, int],
    attrs: dict[str, Any],
    window: pd.Timedelta,
    end: pd.Timestamp,
    rng: np.random.Generator,
    controls: str,
) -> FirstUseFile:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    writer = None
    rows = 0
    with _memory_cap(ds, FILE_MEMORY_LIMIT):
        pieces = _pieces(ds, PIECE_CUSTOMERS)
        try:
            def build(df: pd.DataFrame, pool_counts: pd.DataFrame | None) -> pd.DataFrame:
                return _first_use_rows(df, counts, window, end, rng, controls, pool_counts)

            for out in _prospect_frames(ds, pieces, counts, build):
                if writer is None:
                    schema = _parquet_schema(out)
                    writer = pq.ParquetWriter(path, schema)
                # in slices: an Arrow copy of a slice at a time, not of the whole piece
                for start in range(0, len(out), WRITE_ROWS):
                    part = pa.Table.from_pandas(
                        out.iloc[start : start + WRITE_ROWS], schema=schema, preserve_index=False
                    )
                    writer.write_table(part)
                    del part
                rows += len(out)
                del out
        finally:
            if writer is not None:
                writer.close()
    return FirstUseFile(path=path, rows=rows, attrs={"exclusions": counts, **attrs})


_UNITS = {"bytes": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def _size_bytes(text: str) -> float:
    """A DuckDB size setting (``"18.8 GiB"``, ``"2GB"``, ``"500 MB"``) in bytes."""
    m = re.fullmatch(r"\s*([0-9.]+)\s*([A-Za-z]*)\s*", str(text))
    unit = m.group(2).lower() if m else ""
    if m is None or unit not in _UNITS:
        raise ValueError(f"cannot read the DuckDB size {text!r}")
    return float(m.group(1)) * _UNITS[unit]


@contextlib.contextmanager
def _memory_cap(ds: Any, limit: str) -> Iterator[None]:
    """DuckDB's ``memory_limit`` lowered to ``limit`` for the block if it is higher (a cap the
    user set lower stays), then set back. Other engines: unchanged."""
    t = ds.table("customers")
    if not on_duckdb(t):
        yield
        return
    raw = ibis.get_backend(t).con
    current = raw.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
    if _size_bytes(current) <= _size_bytes(limit):
        yield
        return
    raw.execute(f"SET memory_limit = '{limit}'").fetchall()
    try:
        yield
    finally:
        raw.execute(f"SET memory_limit = '{current}'").fetchall()


def experiment_table(
    ds: Any, experiment_id: str | None = None, window_days: int = 30, as_of: Any = None
) -> pd.DataFrame:
    """The analysis table of a randomised coupon test: one row per assigned prospect.

    Parameters
    ----------
    ds : Dataset
        Needs ``assignments``, ``customers`` and ``shipments``.
    experiment_id : str, optional
        Which experiment; required when ``assignments`` holds more than one.
    window_days : int, default 30
        Outcome window after ``assigned_at``.
    as_of : date-like, optional
        As in :func:`first_use_table`; participants whose window does not fit are excluded.

    Returns
    -------
    pandas.DataFrame
        ``experiment_id, customer_id, region_id, arm, assigned_at, sent_within_window,
        revenue_within_window, first_revenue, segment, wechat_contact, parcels_received,
        tenure_days`` (+ extra customer columns). Participants who had already sent before
        ``assigned_at`` are not prospects; they are excluded and counted in
        ``df.attrs["exclusions"]`` (a pre-randomisation criterion, so it cannot bias the arm
        comparison).
    """
    if not ds.has("assignments"):
        raise ValueError("dataset has no 'assignments' table: no randomised test to analyse")
    a = ds.table("assignments")
    _require(a, "assignments", ["experiment_id", "customer_id", "arm", "assigned_at"])
    experiments = sorted(a.select("experiment_id").distinct().to_pandas()["experiment_id"])
    if experiment_id is None:
        if len(experiments) != 1:
            raise ValueError(
                f"'assignments' holds {len(experiments)} experiments {experiments}; "
                "pass experiment_id="
            )
        experiment_id = experiments[0]
    elif experiment_id not in experiments:
        raise ValueError(f"experiment_id {experiment_id!r} not in assignments ({experiments})")
    a = a.filter(a.experiment_id == experiment_id)
    c = ds.table("customers")
    s = ds.table("shipments")
    _require(c, "customers", CUSTOMER_COLUMNS)
    hist = shipment_history(s).select(
        "customer_id", "first_sent_at", "first_revenue", "first_list_price"
    )
    hist = hist.rename(_hid="customer_id")
    ac = a.join(c, a.customer_id == c.customer_id)
    joined = ac.left_join(hist, ac.customer_id == hist._hid)
    df = (
        joined.select(
            *[joined[col] for col in ac.columns if col != "_hid"],
            joined.first_sent_at,
            joined.first_revenue,
            joined.first_list_price,
        )
        .order_by("customer_id")
        .to_pandas()
    )
    n_assigned = int(a.count().to_pandas())
    counts = {"assigned_without_customer_row": n_assigned - len(df)}
    window = pd.Timedelta(days=int(window_days))
    end = _data_end(ds, as_of)
    # nanoseconds whatever the engine returns (DuckDB gives microseconds, Spark nanoseconds)
    df["assigned_at"] = pd.to_datetime(df["assigned_at"]).astype("datetime64[ns]")
    df["first_sent_at"] = pd.to_datetime(df["first_sent_at"])
    known = pd.to_datetime(df["known_since"]).dt.normalize()
    # whole days, as in first_use_table: the window is days a .. a + window_days - 1 of the
    # assignment day a, and only a parcel on an earlier day makes a participant a non-prospect
    day = df["assigned_at"].dt.normalize()
    sent_before = df["first_sent_at"] < day
    counts["sent_before_assignment"] = int(sent_before.sum())
    past = day + window > end
    counts["window_past_as_of"] = int((past & ~sent_before).sum())
    df = df.loc[~sent_before & ~past].copy()
    known, day = known.loc[df.index], day.loc[df.index]
    delay = df["first_sent_at"] - day
    inside = delay.notna() & (delay < window)
    df["sent_within_window"] = inside.astype("int64")
    df["revenue_within_window"] = np.where(inside, df["first_revenue"], 0.0)
    df["list_price_within_window"] = np.where(inside, df["first_list_price"], 0.0)
    df["tenure_days"] = (day - known).dt.days.astype("int64")
    front = [
        "experiment_id",
        "customer_id",
        "region_id",
        "arm",
        "assigned_at",
        "sent_within_window",
        "revenue_within_window",
        "list_price_within_window",
        "first_revenue",
        "segment",
        "wechat_contact",
        "parcels_received",
        "tenure_days",
    ]
    front = [col for col in front if col in df.columns]
    rest = [col for col in df.columns if col not in front]
    df = df[front + rest].reset_index(drop=True)
    df.attrs["exclusions"] = counts
    df.attrs["as_of"] = end
    df.attrs["window_days"] = int(window_days)
    return df
