"""Quarantine: split a dataset into the rows that satisfy the contract and the rows that don't.

Every row of every contract table ends up in exactly one place: the cleaned dataset or the
rejected rows (with all its columns as read and the rules it breaks). Rows whose foreign key
points to a rejected row are rejected too (rule ``cascade``), in the order of the foreign keys
(regions -> customers -> campaigns -> coupons -> shipments -> survey, assignments): a
shipment of a rejected customer, or one redeeming a rejected coupon, is rejected. The
reconciliation checks, per table, input rows = accepted + rejected and, for money columns,
input = accepted + rejected yuan.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import ibis
import ibis.expr.types as ir
import pandas as pd

from promo_analysis.contract.rules import check_table, failing, key_values, table_rules
from promo_analysis.contract.spec import CONTRACT, TABLE_ORDER
from promo_analysis.contract.validation import (
    DataContractError,
    ValidationReport,
    structural_issues,
    validate,
)

if TYPE_CHECKING:
    from promo_analysis.dataset import Dataset

__all__ = ["quarantine", "QuarantineResult", "RULE_COLUMN"]

#: column of a rejected row listing the rules it breaks, e.g. "revenue_formula(revenue)"
RULE_COLUMN = "rule"
#: money reconciles when |input - (accepted + rejected)| is below this (float summation order)
_BALANCE_TOLERANCE = 0.005


@dataclass
class QuarantineResult:
    """What :func:`quarantine` wrote.

    Attributes
    ----------
    path : Path
        The cleaned dataset (loadable with ``load_dataset``); rejected rows are in
        ``path / "rejected" / "<table>.csv"`` and the reconciliation in
        ``path / "rejected" / "reconciliation.csv"``.
    reconciliation : DataFrame
        Per table: ``input_rows, accepted_rows, rejected_rows`` and, for money columns
        (shipments: list_price, discount, revenue), ``input_<col>, accepted_<col>,
        rejected_<col>`` in yuan; ``balanced`` says whether both identities hold.
    by_rule : DataFrame
        Rejected rows per ``table, rule`` (a row breaking two rules counts under both).
    report : ValidationReport
        The validation the split is based on.
    """

    path: Path
    reconciliation: pd.DataFrame
    by_rule: pd.DataFrame
    report: ValidationReport

    @property
    def balanced(self) -> bool:
        return bool(self.reconciliation["balanced"].all())

    @property
    def rejected_rows(self) -> int:
        return int(self.reconciliation["rejected_rows"].sum())

    def to_text(self) -> str:
        lines = [f"quarantine written to {self.path} (rejected rows in {self.path / 'rejected'})"]
        for row in self.reconciliation.itertuples(index=False):
            line = (
                f"  {row.table}: input {row.input_rows:,} = accepted {row.accepted_rows:,}"
                f" + rejected {row.rejected_rows:,}"
            )
            if not pd.isna(getattr(row, "input_revenue", float("nan"))):
                line += (
                    f"; revenue {row.input_revenue:,.2f} = {row.accepted_revenue:,.2f}"
                    f" + {row.rejected_revenue:,.2f} yuan"
                )
            line += "" if row.balanced else "  NOT BALANCED"
            lines.append(line)
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (
            f"<QuarantineResult {self.path}: {self.rejected_rows:,} row(s) rejected, "
            f"{'balanced' if self.balanced else 'NOT balanced'}>"
        )


def _reasons(rules, check, tables) -> ir.StringValue:
    parts = [
        ibis.ifelse(failing(r, check, tables), f"{r.rule}({r.column}); ", "") for r in rules
    ]
    out = ibis.literal("")
    for p in parts:
        out = out + p
    return out


def quarantine(
    ds: Dataset,
    out_dir: str | os.PathLike,
    format: str = "parquet",
    report: ValidationReport | None = None,
) -> QuarantineResult:
    """Write the cleaned dataset and the rejected rows of ``ds`` to ``out_dir``.

    Parameters
    ----------
    ds : Dataset
    out_dir : path
        Folder for the cleaned dataset (written with :func:`~promo_analysis.save_dataset`);
        rejected rows go to ``out_dir/rejected/<table>.csv`` (UTF-8), one row per rejected row
        with all its columns as read plus ``rule`` (the rules it breaks, ``; ``-separated), and
        the reconciliation to ``out_dir/rejected/reconciliation.csv``.
    format : {"parquet", "csv"}
        Format of the cleaned tables.
    report : ValidationReport, optional
        A validation of ``ds`` already computed (else computed here).

    Raises
    ------
    DataContractError
        A required table or a contract column is missing: rows cannot be judged.
    """
    from promo_analysis.dataset import Dataset, save_dataset

    structural = structural_issues(ds)
    if structural:
        raise DataContractError(
            "cannot quarantine: "
            + "; ".join(f"{i['table']}.{i['column']}: {i['message']}" for i in structural)
        )
    if report is None:
        report = validate(ds)
    con = ds.con
    tag = uuid.uuid4().hex[:8]
    tables = {t: ds.table(t) for t in TABLE_ORDER if ds.has(t)}
    accepted: dict[str, ir.Table] = {}
    rejected: dict[str, ir.Table] = {}
    recon, by_rule = [], []
    for t in TABLE_ORDER:
        if not ds.has(t):
            continue
        raw = ds.raw_table(t)
        check = check_table(raw, t, tables)
        rules, _ = table_rules(t, check, tables)
        reasons = _reasons(rules, check, tables)
        # cascade: a foreign key that resolves in the input but not among accepted rows
        for c, col in CONTRACT[t].columns.items():
            if col.references and col.references[0] in accepted:
                ref_t, ref_c = col.references
                cascade = (
                    check[c].notnull()
                    & check[c].isin(key_values(tables[ref_t], ref_c))
                    & ~check[c].isin(key_values(accepted[ref_t], ref_c))
                ).fill_null(False)
                reasons = reasons + ibis.ifelse(cascade, f"cascade({c} -> rejected {ref_t}); ", "")
        flagged = check.mutate(__reasons=reasons)
        flagged = con.create_table(f"__quarantine_{t}_{tag}", flagged)
        base_cols = list(raw.columns)
        good = flagged.filter(flagged.__reasons == "")
        accepted[t] = good.select(*base_cols)
        bad = flagged.filter(flagged.__reasons != "")
        shown = {
            c: (bad[f"__raw_{c}"] if f"__raw_{c}" in bad.columns else bad[c]) for c in base_cols
        }
        rejected[t] = bad.select(
            **shown, **{RULE_COLUMN: bad.__reasons.re_replace(r";\s*$", "")}
        )
        money = [m for m in CONTRACT[t].money if m in base_cols]
        aggs = {
            "input_rows": flagged.count(),
            "rejected_rows": (flagged.__reasons != "").cast("int64").sum(),
        }
        for m in money:
            aggs[f"input_{m}"] = flagged[m].sum()
            aggs[f"rejected_{m}"] = (
                ibis.ifelse(flagged.__reasons != "", flagged[m], 0.0).sum()
            )
            aggs[f"accepted_{m}"] = (
                ibis.ifelse(flagged.__reasons == "", flagged[m], 0.0).sum()
            )
        # sums over no rows are NULL (NaN here): zero rows, zero yuan
        row = {
            k: (0 if pd.isna(v) else v)
            for k, v in flagged.aggregate(**aggs).to_pandas().iloc[0].to_dict().items()
        }
        rec = {"table": t, "input_rows": int(row["input_rows"])}
        rec["rejected_rows"] = int(row["rejected_rows"])
        rec["accepted_rows"] = int(accepted[t].count().to_pandas())
        balanced = rec["input_rows"] == rec["accepted_rows"] + rec["rejected_rows"]
        for m in money:
            vals = {k: float(row[f"{k}_{m}"]) for k in ("input", "accepted", "rejected")}
            for k, v in vals.items():
                rec[f"{k}_{m}"] = v
            balanced &= abs(vals["input"] - vals["accepted"] - vals["rejected"]) < (
                _BALANCE_TOLERANCE
            )
        rec["balanced"] = bool(balanced)
        recon.append(rec)
        if rec["rejected_rows"]:
            names = rejected[t][RULE_COLUMN].split("; ").unnest().name("rule_name")
            counts = (
                rejected[t].select(rule_name=names)
                .group_by("rule_name").agg(rows=ibis._.count()).to_pandas()
            )
            for r in counts.itertuples(index=False):
                by_rule.append({"table": t, "rule": r.rule_name, "rows": int(r.rows)})

    for t in ds.tables:
        if t not in CONTRACT:
            accepted[t] = ds.raw_table(t)
    meta = {
        **ds.meta,
        "quarantine": {
            "source": str(ds.path) if ds.path else ds.meta.get("name"),
            "rejected_rows": {r["table"]: r["rejected_rows"] for r in recon},
        },
    }
    clean = Dataset(con, accepted, meta=meta, truth=ds.truth, engine=ds.engine)
    path = save_dataset(clean, out_dir, format=format)
    rej_dir = Path(path) / "rejected"
    rej_dir.mkdir(exist_ok=True)
    reconciliation = pd.DataFrame(recon)
    first = ["table", "input_rows", "accepted_rows", "rejected_rows"]
    reconciliation = reconciliation[
        first + [c for c in reconciliation.columns if c not in first]
    ]
    for t, expr in rejected.items():
        expr.to_csv(str(rej_dir / f"{t}.csv"))
    reconciliation.to_csv(rej_dir / "reconciliation.csv", index=False)
    for t in rejected:
        # ibis's drop_table renders invalid SQL with this sqlglot; the statement is plain SQL
        con.raw_sql(f'DROP TABLE IF EXISTS "__quarantine_{t}_{tag}"')
    return QuarantineResult(
        path=Path(path),
        reconciliation=reconciliation,
        by_rule=pd.DataFrame(by_rule, columns=["table", "rule", "rows"]),
        report=report,
    )
