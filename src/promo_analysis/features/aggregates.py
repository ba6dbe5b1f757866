"""Streaming per-group aggregates that Ibis has no portable, fast spelling for.

Ibis compiles ``x.argmin(key)`` on DuckDB to ``FIRST(x ORDER BY key)``, an *ordered* aggregate:
DuckDB buffers and sorts the rows of every group. DuckDB's own ``arg_min(x, key)`` and
``min(x, n)`` keep one (or ``n``) candidate per group while streaming, which is what the
per-customer first/second shipment needs on tens of millions of shipments. These helpers
emit those DuckDB functions (as Ibis builtin aggregate UDFs, so the result stays a lazy Ibis
expression); callers use them only when :func:`on_duckdb` is true and keep a portable Ibis
expression for other engines (the Spark parity tests compare both).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from typing import Any

import ibis
import ibis.expr.datatypes as dt

__all__ = [
    "on_duckdb", "arg_min", "struct_min", "smallest", "bit_or", "scalar", "epoch_us", "bucket",
    "materialized",
]


def on_duckdb(expr: Any) -> bool:
    """Whether ``expr`` (an Ibis table or column) is bound to a DuckDB backend."""
    try:
        return ibis.get_backend(expr).name == "duckdb"
    except Exception:  # unbound expressions (memtables only) run on Ibis's default, DuckDB
        return False


# the bodies of builtin UDFs are never called; their parameters name the arguments
def _value_key(value: Any, key: Any) -> None: ...


def _value_n(value: Any, n: Any) -> None: ...


def arg_min(value: Any, key: Any, where: Any = None) -> Any:
    """DuckDB ``arg_min(value, key)``: ``value`` of the row with the smallest ``key``.

    ``key`` may be a struct (compared field by field, e.g. ``(sent_at, shipment_id)`` for a
    deterministic tie-break); ``value`` may be a struct to fetch several columns of that row in
    one aggregate. Rows with a NULL ``key`` are skipped, and so are rows where the boolean
    ``where`` is not true (``FILTER (WHERE ...)``).
    """
    fn = ibis.udf.agg.builtin(
        _value_key, name="arg_min", signature=((value.type(), key.type()), value.type())
    )
    return fn(value, key, where=where)


def struct_min(value: Any, where: Any = None) -> Any:
    """DuckDB ``min`` of a struct column, compared field by field (Ibis has no ``min`` for
    structs). Unlike ``arg_min`` of structs, whose states DuckDB cannot spill, it spills like
    any group-by under a ``memory_limit``. Rows where the boolean ``where`` is not true are
    skipped (``FILTER (WHERE ...)``); NULL for a group without such rows."""
    fn = ibis.udf.agg.builtin(_value, name="min", signature=((value.type(),), value.type()))
    return fn(value, where=where)


def smallest(value: Any, n: int) -> Any:
    """DuckDB ``min(value, n)``: the ``n`` smallest non-null values of the group, ascending,
    as an array (shorter when the group has fewer values)."""
    fn = ibis.udf.agg.builtin(
        _value_n,
        name="min",
        signature=((value.type(), dt.int64), dt.Array(value.type())),
    )
    return fn(value, ibis.literal(int(n), type="int64"))


def _value(value: Any) -> None: ...


def _pair(a: Any, b: Any) -> None: ...


_ARITY = {1: _value, 2: _pair}


def bit_or(value: Any, where: Any = None) -> Any:
    """Bitwise OR of the BIGINT ``value`` over the group (``bit_or``: DuckDB and Spark both
    have it; Ibis's ``IntegerColumn.bit_or`` does not compile on Spark). NULL for a group
    without rows (or none where ``where`` is true)."""
    fn = ibis.udf.agg.builtin(_value, name="bit_or", signature=((dt.int64,), dt.int64))
    return fn(value, where=where)


def scalar(name: str, *args: Any, output: Any) -> Any:
    """The engine's scalar function ``name`` applied to ``args`` (one or two Ibis expressions),
    as an Ibis builtin UDF returning ``output``: for functions with no Ibis spelling that
    compiles to them (e.g. DuckDB ``list_position``, integer ``divide``)."""
    fn = ibis.udf.scalar.builtin(
        _ARITY[len(args)], name=name, signature=(tuple(a.type() for a in args), output)
    )
    return fn(*args)


def bucket(value: Any, n: int) -> Any:
    """The hash partition (``0 .. n-1``) of ``value``: equal values share a partition.

    Spark's ``hash`` is a signed 32-bit integer (DuckDB's is reinterpreted as signed 64-bit),
    hence the sign-safe modulo.
    """
    return ((value.hash() % n) + n) % n


def epoch_us(ts: Any) -> Any:
    """DuckDB ``epoch_us(ts)``: microseconds since 1970-01-01 as BIGINT (exact, unlike Ibis's
    ``epoch_seconds``)."""
    return scalar("epoch_us", ts, output=dt.int64)


@contextlib.contextmanager
def materialized(expr: Any, *more: Any) -> Iterator[Any]:
    """``expr`` computed once into a DuckDB temporary table for the ``with`` block.

    Ibis inlines a sub-expression used twice in one query as two subqueries, and DuckDB then
    computes it twice (e.g. the per-customer history: two scans of the shipments). On DuckDB the
    block gets a temporary table, dropped at the end (with DuckDB's own ``DROP``: Ibis 12's
    ``drop_table``/``cache`` emit SQL that DuckDB 2.0 rejects); on other engines ``expr``
    itself. Expressions in ``more`` (same schema) are appended to the table one query each,
    in order -- a result too big for one query built part by part; elsewhere the union of all.
    """
    if not on_duckdb(expr):
        yield ibis.union(expr, *more, distinct=False) if more else expr
        return
    con = ibis.get_backend(expr)
    name = f"_promo_tmp_{uuid.uuid4().hex[:12]}"
    try:
        table = con.create_table(name, expr, temp=True)
        for part in more:
            con.insert(name, part)
        yield table
    finally:
        con.con.execute(f'DROP TABLE IF EXISTS temp."{name}"')
