"""The run's ``index.html``: every region side by side, links, a cross-region chart.

Written by the orchestrator from the same small inputs the notebooks read, so the index is
complete even when a region's notebook failed (its error is shown instead of a link).
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

import pandas as pd

from promo_analysis.report.inputs import RegionInputs
from promo_analysis.report.kpis import kpi_table
from promo_analysis.report.privacy import DEFAULT_K

__all__ = ["region_kpis", "index_html", "KPI_FRAMES"]

#: the input frames :func:`region_kpis` reads (``load_inputs(folder, frames=KPI_FRAMES)``)
KPI_FRAMES = ("daily", "new_customers", "period_customers")

_INDEX_METRICS = ("revenue", "shipments", "coupons_used", "new_customers", "active_customers")


def region_kpis(inputs: Mapping[str, RegionInputs], k: int = DEFAULT_K) -> pd.DataFrame:
    """One row per region: bilingual name and the headline KPIs of both periods."""
    rows = []
    for region, inp in inputs.items():
        kp = kpi_table(inp.daily, inp.new_customers, inp.period_customers, inp.period,
                       inp.compare, k=k)
        row: dict[str, Any] = {"region": region, "name": f"{inp.meta['name_zh']} "
                               f"{inp.meta['name_en']}"}
        for m in _INDEX_METRICS:
            row[f"{m}_current"] = kp.loc[m, "current"]
            row[f"{m}_previous"] = kp.loc[m, "previous"]
        row["growth_pct"] = kp.loc["revenue", "growth_pct"]
        rows.append(row)
    return pd.DataFrame(rows)


def _fmt(v: Any) -> str:
    if isinstance(v, str):
        return v
    if v is None or pd.isna(v):
        return "—"
    return f"{float(v):,.0f}"


def index_html(
    run: Mapping[str, Any],
    kpis: pd.DataFrame,
    chart_png_b64: str | None,
) -> str:
    """The index page of a run.

    Parameters
    ----------
    run : mapping
        The manifest dict (``run_id``, ``parameters``, ``regions`` with status, seconds,
        html file name and error per region).
    kpis : DataFrame
        :func:`region_kpis`' frame.
    chart_png_b64 : str, optional
        The cross-region comparison chart, base64 PNG.
    """
    e = html.escape
    period = run["parameters"].get("period_start"), run["parameters"].get("period_end")
    head = (
        "<!DOCTYPE html><html lang='zh'><head><meta charset='utf-8'/>"
        f"<title>地区报告 Regional reports {e(run['run_id'])}</title>"
        "<style>body{font-family:'Noto Sans CJK SC','Noto Sans SC',sans-serif;max-width:1100px;"
        "margin:auto;padding:1.5em}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
        "padding:4px 8px;text-align:right}th{background:#f0f4f8}.failed{color:#b00020}"
        ".pa-note{color:#555;font-size:12px}</style></head><body>"
    )
    parts = [head, "<h1>促销效果地区报告 Regional promotion reports</h1>",
             f"<p class='pa-note'>运行 run {e(run['run_id'])} · 报告期 period "
             f"{e(str(period[0]))} – {e(str(period[1]))} · 数据集指纹 dataset fingerprint "
             f"{e(str(run.get('dataset', {}).get('fingerprint', '')))}</p>"]
    metrics = [
        ("revenue", "散户收入（元）walk-in revenue (yuan)"),
        ("shipments", "寄件量 parcels"),
        ("coupons_used", "用券件数 coupons used"),
        ("new_customers", "新客户 new customers"),
        ("active_customers", "活跃客户 active senders"),
    ]
    by_region = kpis.set_index("region") if len(kpis) else kpis
    regions = list(run["regions"])
    header = "<tr><th>指标 metric</th>" + "".join(
        f"<th>{e(str(by_region.loc[r, 'name']) if r in by_region.index else r)}</th>"
        for r in regions
    ) + "</tr>"
    body = []
    for key, name in metrics:
        for which, tag in (("current", "本期 current"), ("previous", "对比期 comparison")):
            cells = "".join(
                f"<td>{e(_fmt(by_region.loc[r, f'{key}_{which}']))}</td>"
                if r in by_region.index else "<td>—</td>"
                for r in regions
            )
            body.append(f"<tr><th>{e(name)} · {tag}</th>{cells}</tr>")
    growth = "".join(
        f"<td>{e(_fmt_pct(by_region.loc[r, 'growth_pct']))}</td>" if r in by_region.index
        else "<td>—</td>" for r in regions
    )
    body.append(f"<tr><th>收入增长 revenue growth</th>{growth}</tr>")
    links = []
    for r in regions:
        info = run["regions"][r]
        if info.get("status") == "ok":
            links.append(f"<td><a href='{e(info['html'])}'>报告 report</a> "
                         f"({info.get('seconds', 0):.1f} s)</td>")
        else:
            links.append(f"<td class='failed'>失败 failed: {e(str(info.get('error', '')))}</td>")
    body.append("<tr><th>报告 report</th>" + "".join(links) + "</tr>")
    parts.append("<table>" + header + "".join(body) + "</table>")
    k = run["parameters"].get("k", DEFAULT_K)
    parts.append(f"<p class='pa-note'>全量统计，无抽样误差；少于 {k} 位客户的单元格已隐藏。"
                 f"Census totals, no sampling error; cells describing fewer than {k} customers "
                 "are suppressed.</p>")
    if chart_png_b64:
        parts.append(f"<figure><img alt='各地区散户收入对比 walk-in revenue by region' "
                     f"src='data:image/png;base64,{chart_png_b64}' style='max-width:100%'/>"
                     "</figure>")
    parts.append("</body></html>")
    return "".join(parts)


def _fmt_pct(v: Any) -> str:
    if isinstance(v, str):
        return v
    if v is None or pd.isna(v):
        return "—"
    return f"{float(v):+.1f}%"
