"""The sections of a regional report, built from a region's inputs (no notebook logic).

Each function takes a :class:`~promo_analysis.report.inputs.RegionInputs` and returns a
:class:`Section`: a heading, prose, tables and figures that render to HTML in the notebook.
Statistics come from the analysis modules (``campaigns``, ``experiments``, ``causal``,
``retention``, ``survey``); this module only arranges their results, applies small-cell
suppression and labels everything in the report language (names always in both).
"""

from __future__ import annotations

import base64
import html
import io
import math
from dataclasses import dataclass, field
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from promo_analysis.calendar import THEMES
from promo_analysis.report.inputs import RegionInputs
from promo_analysis.report.kpis import channel_mix, kpi_table, monthly_revenue
from promo_analysis.report.params import LANGS
from promo_analysis.report.privacy import DEFAULT_K, suppressed_marker

__all__ = [
    "Section",
    "SECTION_KEYS",
    "headline",
    "campaign_calendar",
    "data_quality",
    "provenance",
    "label",
]

#: section key -> (title_zh, title_en), in report order
SECTION_KEYS: dict[str, tuple[str, str]] = {
    "headline": ("核心指标", "Headline KPIs"),
    "campaigns": ("活动日历", "Campaign calendar"),
    "campaign-effects": ("活动效果与投资回报", "Campaign effects and ROI"),
    "first-use": ("优惠券对首次寄件的效果", "Coupon effect on first-time use"),
    "retention": ("留存与习惯养成", "Retention and habit formation"),
    "survey": ("市场调查", "Survey"),
    "data-quality": ("数据质量", "Data quality"),
    "provenance": ("方法与来源", "Methods and provenance"),
}


def label(zh: str, en: str, lang: str) -> str:
    """A label in the report language."""
    if lang not in LANGS:
        raise ValueError(f"lang must be one of {LANGS}, got {lang!r}")
    return zh if lang == "zh" else en


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, np.bool_)):
        return "✓" if value else "✗"
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    if isinstance(value, pd.Timestamp):
        return f"{value:%Y-%m-%d}"
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(v):
        return "—"
    if v == int(v) and abs(v) >= 1:
        return f"{v:,.0f}"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) < 0.01 and v != 0:
        return f"{v:.2e}"
    return f"{v:,.{digits}f}"


def _table_html(df: pd.DataFrame, index: bool = True) -> str:
    cols = list(df.columns)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in cols)
    if index:
        head = f"<th>{html.escape(str(df.index.name or ''))}</th>" + head
    rows = []
    for idx, row in df.iterrows():
        cells = []
        if index:
            cells.append(f"<th>{html.escape(_fmt(idx))}</th>")
        for c in cols:
            text = _fmt(row[c])
            cls = ' class="pa-suppressed"' if "suppressed" in text else ""
            cells.append(f"<td{cls}>{html.escape(text)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return (
        '<table class="dataframe"><thead><tr>' + head + "</tr></thead><tbody>"
        + "".join(rows) + "</tbody></table>"
    )


def _figure_html(fig: plt.Figure) -> str:
    buf = io.BytesIO()
    # tight: plots from other modules may place titles and labels outside the axes box
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" style="max-width:100%"/>'


@dataclass
class Section:
    """One report section: title, prose paragraphs, tables and figures, in order.

    ``blocks`` holds ``("text", str)``, ``("table", caption, DataFrame)`` and
    ``("figure", caption, Figure)``; figures are rendered to embedded PNG in the HTML.
    """

    key: str
    lang: str = "zh"
    blocks: list[tuple[Any, ...]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)

    @property
    def title(self) -> str:
        zh, en = SECTION_KEYS[self.key]
        return f"{zh} {en}"

    def text(self, zh: str, en: str) -> Section:
        self.blocks.append(("text", label(zh, en, self.lang)))
        return self

    def table(self, name: str, caption: str, df: pd.DataFrame, index: bool = True) -> Section:
        self.tables[name] = df
        self.blocks.append(("table", caption, df, index))
        return self

    def figure(self, caption: str, ax_or_fig: Any) -> Section:
        fig = ax_or_fig.figure if hasattr(ax_or_fig, "figure") else ax_or_fig
        self.blocks.append(("figure", caption, fig))
        return self

    def note(self, zh: str, en: str) -> Section:
        self.notes.append(label(zh, en, self.lang))
        return self

    def _repr_html_(self) -> str:
        parts = [f'<section class="pa-section" id="section-{self.key}">',
                 f"<h2>{html.escape(self.title)}</h2>"]
        for block in self.blocks:
            kind = block[0]
            if kind == "text":
                parts.append(f"<p>{html.escape(block[1])}</p>")
            elif kind == "table":
                parts.append(f"<h4>{html.escape(block[1])}</h4>")
                parts.append(_table_html(block[2], index=block[3]))
            elif kind == "figure":
                parts.append(f"<figure>{_figure_html(block[2])}"
                             f"<figcaption class='pa-note'>{html.escape(block[1])}</figcaption>"
                             "</figure>")
        if self.notes:
            parts.append("<ul class='pa-note'>"
                         + "".join(f"<li>{html.escape(n)}</li>" for n in self.notes) + "</ul>")
        parts.append("</section>")
        return "".join(parts)

    def __repr__(self) -> str:
        return f"<Section {self.key}: {len(self.blocks)} blocks, tables={list(self.tables)}>"


def _region_name(inp: RegionInputs) -> str:
    return f"{inp.meta['name_zh']} {inp.meta['name_en']}"


def headline(inp: RegionInputs, lang: str = "zh", k: int = DEFAULT_K) -> Section:
    """Walk-in revenue and growth, channel mix, coupons used and new customers vs. last year."""
    sec = Section("headline", lang)
    period, compare = inp.period, inp.compare
    data_start = pd.to_datetime(inp.daily["date"]).min()
    kpis = kpi_table(inp.daily, inp.new_customers, inp.period_customers, period, compare, k=k,
                     data_start=data_start)
    rev = kpis.loc["revenue"]
    if isinstance(rev["current"], float) and isinstance(rev["growth_pct"], float) and not (
        math.isnan(rev["growth_pct"])
    ):
        sec.text(
            f"{_region_name(inp)} 在 {period.label()} 的散户收入为 {_fmt(rev['current'])} 元，"
            f"较对比期 {compare.label() if compare else ''} 变化 {rev['growth_pct']:+.1f}%。",
            f"Walk-in revenue of {_region_name(inp)} in {period.label()} was "
            f"{_fmt(rev['current'])} yuan, {rev['growth_pct']:+.1f}% against "
            f"{compare.label() if compare else 'no comparison'}.",
        )
    shown = pd.DataFrame(
        {
            label("指标", "metric", lang): [f"{r.name_zh} {r.name_en}" for r in kpis.itertuples()],
            label("单位", "unit", lang): kpis["unit"].to_numpy(),
            label("本期", "current period", lang): kpis["current"].to_numpy(),
            label("对比期", "comparison period", lang): kpis["previous"].to_numpy(),
            label("增长 %", "growth %", lang): kpis["growth_pct"].to_numpy(),
        }
    )
    sec.table("kpis", label("核心指标（全量统计）", "Headline KPIs (census totals)", lang),
              shown, index=False)
    sec.tables["kpis_raw"] = kpis

    mix = channel_mix(inp.daily, inp.period_customers, period, compare, k=k)
    mix_shown = pd.DataFrame(
        {
            label("渠道", "channel", lang): [f"{a} {b}" for a, b in zip(mix["name_zh"],
                                                                      mix["name_en"], strict=True)],
            label("本期收入（元）", "revenue, current (yuan)", lang): mix["revenue_current"].to_numpy(),
            label("本期占比 %", "share, current %", lang): mix["share_current_pct"].to_numpy(),
            label("对比期收入（元）", "revenue, comparison (yuan)", lang):
                mix["revenue_previous"].to_numpy(),
            label("增长 %", "growth %", lang): mix["growth_pct"].to_numpy(),
        }
    )
    sec.table("channel_mix", label("渠道结构", "Channel mix", lang), mix_shown, index=False)
    sec.tables["channel_mix_raw"] = mix

    from promo_analysis.plots.report import channel_mix_plot, monthly_revenue_plot

    monthly = monthly_revenue(inp.daily, period, compare)
    sec.figure(label("月度散户收入，本期与对比期", "Monthly walk-in revenue, both periods", lang),
               monthly_revenue_plot(monthly, _region_name(inp)))
    sec.figure(label("各渠道收入占比", "Revenue share by channel", lang),
               channel_mix_plot(mix, _region_name(inp)))
    sec.note(f"少于 {k} 位客户的单元格已隐藏。",
             f"Cells describing fewer than {k} customers are suppressed.")
    sec.note(f"新客户 = 首次寄件在数据中的客户；数据始于 {data_start:%Y-%m-%d}，始于该日的时期不计新客户。",
             f"New customer = first parcel in the data; the data start on {data_start:%Y-%m-%d}, "
             "so a period starting then has no new-customer count.")
    return sec


def _period_campaigns(inp: RegionInputs) -> pd.DataFrame:
    c = inp.get("campaigns")
    if c is None or c.empty:
        return pd.DataFrame(columns=["campaign_id", "name", "theme", "start_date", "end_date"])
    p = inp.period
    mask = (c["end_date"] >= pd.Timestamp(p.start)) & (c["start_date"] <= pd.Timestamp(p.end))
    return c.loc[mask].sort_values("start_date").reset_index(drop=True)


def campaign_calendar(inp: RegionInputs, lang: str = "zh") -> Section:
    """The campaigns running in the region during the period, on a chart of daily revenue."""
    sec = Section("campaigns", lang)
    camps = _period_campaigns(inp)
    n_nat = int((camps.get("level", pd.Series(dtype=str)) == "national").sum())
    sec.text(
        f"本期共 {len(camps)} 场活动（其中全国性 {n_nat} 场）。",
        f"{len(camps)} campaigns ran in the period ({n_nat} of them national).",
    )
    if len(camps):
        theme = camps["theme"].map(lambda t: " ".join(THEMES.get(t, (t, t))))
        cal = pd.DataFrame(
            {
                label("活动", "campaign", lang): camps["name"].astype(str).to_numpy(),
                label("主题", "theme", lang): theme.to_numpy(),
                label("级别", "level", lang): camps.get("level", pd.Series([None] * len(camps)))
                .to_numpy(),
                label("开始", "start", lang): camps["start_date"].dt.strftime("%Y-%m-%d").to_numpy(),
                label("结束", "end", lang): camps["end_date"].dt.strftime("%Y-%m-%d").to_numpy(),
                label("门槛（元）", "threshold (yuan)", lang): camps.get("coupon_threshold"),
                label("面额（元）", "face value (yuan)", lang): camps.get("coupon_face_value"),
            }
        )
        sec.table("calendar", label("活动日历", "Campaign calendar", lang), cal, index=False)
    from promo_analysis.plots.report import campaign_calendar_plot

    d = inp.daily
    p = inp.period
    dd = d[(d["date"] >= pd.Timestamp(p.start)) & (d["date"] <= pd.Timestamp(p.end))]
    series = dd.groupby("date")["revenue"].sum()
    sec.figure(label("日收入（7日均值）与活动期", "Daily revenue (7-day mean) and campaign dates",
                     lang), campaign_calendar_plot(series, camps, _region_name(inp)))
    return sec


def data_quality(inp: RegionInputs, lang: str = "zh") -> Section:
    """Rows per table for the region and the validation issues that concern it."""
    sec = Section("data-quality", lang)
    counts = inp.meta.get("row_counts", {})
    sec.table(
        "row_counts",
        label("本地区各表行数", "Rows per table in this region", lang),
        pd.DataFrame(
            {label("表", "table", lang): list(counts), label("行数", "rows", lang): list(
                counts.values())}
        ),
        index=False,
    )
    ok = inp.meta.get("validation_ok")
    issues = inp.get("validation")
    n_issues = 0 if issues is None else len(issues)
    if ok is None:
        sec.text("本次运行未做数据校验。", "The data were not validated in this run.")
    else:
        sec.text(
            f"数据契约校验：{'通过' if ok else '未通过'}，涉及本地区的问题 {n_issues} 条。",
            f"Data-contract validation: {'passed' if ok else 'failed'}; {n_issues} issue(s) "
            "concern this region.",
        )
    if issues is not None and n_issues:
        sec.table("issues", label("校验问题", "Validation issues", lang),
                  issues.drop(columns=[c for c in ("example", "examples") if c in issues.columns]),
                  index=False)
    return sec


def provenance(inp: RegionInputs, params: dict[str, Any], lang: str = "zh") -> Section:
    """Package version, dataset fingerprint and the parameters the report ran with."""
    from promo_analysis import __version__

    sec = Section("provenance", lang)
    meta = inp.meta
    rows = {
        label("软件包版本", "package version", lang): f"promo-analysis {__version__}",
        label("数据集", "dataset", lang): str(meta.get("dataset_name", "")),
        label("数据集指纹", "dataset fingerprint", lang): str(meta.get("fingerprint", "")),
        label("运行编号", "run id", lang): str(meta.get("run_id", "")),
        label("报告期", "period", lang): inp.period.label(),
        label("对比期", "comparison period", lang): inp.compare.label() if inp.compare else "—",
    }
    for key, value in params.items():
        rows[f"{label('参数', 'parameter', lang)} {key}"] = str(value)
    sec.table(
        "provenance",
        label("来源", "Provenance", lang),
        pd.DataFrame({label("项目", "item", lang): list(rows), label("值", "value", lang): list(
            rows.values())}),
        index=False,
    )
    sec.text(
        "方法说明见 docs/methods.md：收入、件数与客户数为全量统计；效果估计给出 95% 置信区间。",
        "Methods are documented in docs/methods.md: revenue, parcels and customer counts are "
        "census totals; effect estimates carry 95% confidence intervals.",
    )
    return sec



# --------------------------------------------------------------------------- helpers
def title_html(inp: RegionInputs, lang: str = "zh") -> str:
    """The report's title block: region names in both languages, period, comparison."""
    name = html.escape(_region_name(inp))
    cmp_label = inp.compare.label() if inp.compare else "—"
    sub = label(f"报告期 {inp.period.label()}，对比期 {cmp_label}",
                f"Period {inp.period.label()}, compared with {cmp_label}", lang)
    toc = "".join(
        f"<li><a href='#section-{key}'>{html.escape(zh)} {html.escape(en)}</a></li>"
        for key, (zh, en) in SECTION_KEYS.items()
    )
    return (f"<h1>{name} · 地区报告 Regional report</h1><p>{html.escape(sub)}</p>"
            f"<ol class='pa-toc'>{toc}</ol>")


def _missing(sec: Section, zh: str, en: str) -> Section:
    """Mark a section whose analysis cannot run on this region's data, saying why."""
    sec.blocks.append(("text", "⚠ " + label(zh, en, sec.lang)))
    return sec


def _ci(est: Any, lo: Any, hi: Any, digits: int = 3) -> str:
    vals = [pd.to_numeric(v, errors="coerce") for v in (est, lo, hi)]
    if any(pd.isna(v) for v in vals):
        return "—"
    e, a, b = (float(v) for v in vals)
    return f"{e:,.{digits}f} [{a:,.{digits}f}, {b:,.{digits}f}]"


def _region_daily(inp: RegionInputs) -> pd.DataFrame:
    """Daily revenue and new customers of the region (all channels and products)."""
    d = inp.daily.groupby("date", as_index=False)[["revenue", "shipments"]].sum()
    nc = inp.new_customers.groupby("date", as_index=False)["new_customers"].sum()
    d = d.merge(nc, on="date", how="left").fillna({"new_customers": 0})
    d["region_id"] = inp.region
    return d


# --------------------------------------------------------------------------- campaigns
def campaign_effects(inp: RegionInputs, lang: str = "zh", k: int = DEFAULT_K) -> Section:
    """Incremental revenue, cost and ROI of each campaign of the period (ITS counterfactual)."""
    from promo_analysis.campaigns import estimate_campaign_effects

    sec = Section("campaign-effects", lang)
    camps = _period_campaigns(inp)
    if camps.empty:
        return _missing(sec, "本期本地区没有活动。", "No campaign ran in this region in the period.")
    daily = _region_daily(inp)
    camps = camps.copy()
    camps["region_id"] = camps["region_id"].where(camps["region_id"].notna(), None)
    discounts = inp.get("campaign_discounts")
    # new customers per campaign would need a second ITS fit per region (several seconds per
    # report at sample scale); the headline section reports new customers for the period
    res = estimate_campaign_effects(
        daily, camps, metric="revenue", discount_cost=discounts, short_pre="skip",
        new_customers=None,
    )
    t = res.table.reset_index()
    names = camps.set_index("campaign_id")["name"].astype(str)
    themes = camps.set_index("campaign_id")["theme"]
    shipments = (
        discounts.set_index("campaign_id")["campaign_shipments"]
        if discounts is not None and "campaign_shipments" in discounts.columns
        else pd.Series(dtype=float)
    )
    rows = []
    marker = suppressed_marker(k)
    for r in t.itertuples():
        few = float(shipments.get(r.campaign_id, 0)) < k
        theme = " ".join(THEMES.get(themes.get(r.campaign_id), ("", "")))
        rows.append({
            label("活动", "campaign", lang): f"{names.get(r.campaign_id, r.campaign_id)}",
            label("主题", "theme", lang): theme,
            label("增量收入（元）[95% CI]", "incremental revenue (yuan) [95% CI]", lang):
                _ci(r.estimate, r.ci_low, r.ci_high, 0),
            label("优惠成本（元）", "discount cost (yuan)", lang):
                marker if few else getattr(r, "discount_cost", np.nan),
            label("总成本（元）", "total cost (yuan)", lang):
                marker if few else getattr(r, "cost", np.nan),
            label("投资回报率 [95% CI]", "ROI [95% CI]", lang):
                marker if few else _ci(getattr(r, "roi", np.nan), getattr(r, "roi_ci_low", np.nan),
                                       getattr(r, "roi_ci_high", np.nan), 2),
        })
    sec.text(
        "增量收入 = 活动期（含活动后提前消费回落期）实际收入减去反事实基线（季节、星期、趋势的中断时间序列模型），"
        "已扣除本来就会寄出的包裹所用的优惠。成本 = 优惠金额 + 固定成本；ROI = （增量收入 − 固定成本）/ 成本。",
        "Incremental revenue = actual revenue over the campaign window (including the "
        "post-campaign pull-forward dip) minus an interrupted-time-series counterfactual "
        "(season, weekday, trend), net of discounts on parcels that would have been sent anyway. "
        "Cost = discounts paid + fixed cost; ROI = (incremental revenue − fixed cost) / cost.",
    )
    sec.table("effects", label("活动效果", "Campaign effects", lang), pd.DataFrame(rows),
              index=False)
    sec.tables["effects_raw"] = res.table
    plot_t = t.assign(name=[f"{names.get(c, c)}" for c in t["campaign_id"]])
    from promo_analysis.plots.report import effect_interval_plot

    sec.figure(
        label("各活动增量收入及 95% 置信区间", "Incremental revenue per campaign, 95% CI", lang),
        effect_interval_plot(plot_t, "name",
                             f"{_region_name(inp)} 活动增量收入 incremental revenue per campaign",
                             "增量收入 incremental revenue (元 yuan)"),
    )
    for w in res.warnings:
        sec.notes.append(str(w))
    return sec


# --------------------------------------------------------------------------- first use
_FIRST_USE_COVARIATES = ("segment", "wechat_contact", "parcels_received", "tenure_days")

#: The columns of the per-customer input frames that the sections read: a report notebook
#: loads only these (``open_inputs``). A big region's first-use table has millions of rows,
#: and its other columns (dates, revenues, region and design strings) were most of a
#: kernel's memory.
INPUT_COLUMNS: dict[str, tuple[str, ...]] = {
    "first_use": ("got_coupon", "sent_within_window", *_FIRST_USE_COVARIATES, "customer_id",
                  "person"),
}


def first_use(inp: RegionInputs, lang: str = "zh", k: int = DEFAULT_K) -> Section:
    """Effect of a coupon on sending a first parcel within 30 days.

    Randomized tests of the region are analysed with ``experiments.compare_arms``; the
    observational first-use table with ``causal.estimate_effect`` (cross-fitted AIPW, ATT,
    adjusted for the covariates couriers select on), next to the naive difference.
    """
    from promo_analysis.causal import estimate_effect
    from promo_analysis.experiments import compare_arms
    from promo_analysis.plots.report import effect_interval_plot

    sec = Section("first-use", lang)
    plot_rows = []
    exp = inp.get("experiments")
    if exp is not None and len(exp):
        for eid, g in exp.groupby("experiment_id"):
            res = compare_arms(g, arm="arm", outcome="sent_within_window")
            tab = res.table.reset_index()
            shown = pd.DataFrame({
                label("组别", "arm", lang): tab[tab.columns[0]].astype(str),
                label("发券组人数", "n (arm)", lang): tab["n_arm"],
                label("对照组人数", "n (control)", lang): tab["n_control"],
                label("发券组首寄率", "first-send rate, arm", lang): tab["mean_arm"],
                label("对照组首寄率", "first-send rate, control", lang): tab["mean_control"],
                label("差异 [95% CI]", "difference [95% CI]", lang):
                    [_ci(a, b, c) for a, b, c in zip(tab["estimate"], tab["ci_low"],
                                                      tab["ci_high"], strict=True)],
                "n": np.minimum(tab["n_arm"], tab["n_control"]),
            })
            from promo_analysis.report.privacy import suppress_small_cells

            shown = suppress_small_cells(shown, "n", k=k).drop(columns=["n", "suppressed"])
            sec.table(f"experiment_{eid}",
                      label(f"随机试验 {eid}：30 天内首次寄件率差异",
                            f"Randomized test {eid}: difference in 30-day first-send rate",
                            lang), shown, index=False)
            for r in tab.itertuples():
                if min(r.n_arm, r.n_control) >= k:
                    plot_rows.append({"name": f"{eid} {r[1]} 随机 randomized",
                                      "estimate": r.estimate, "ci_low": r.ci_low,
                                      "ci_high": r.ci_high})
    else:
        sec.text("本地区没有随机发券试验，下表为协变量调整后的观察性估计。",
                 "No randomized coupon test in this region; the adjusted observational "
                 "estimate follows.")
    fu = inp.get("first_use")
    if fu is None or fu.empty:
        return _missing(sec, "没有潜在客户数据，无法估计。", "No prospect data: nothing to estimate.")
    n_t, n_c = int(fu["got_coupon"].sum()), int((1 - fu["got_coupon"]).sum())
    if min(n_t, n_c) < k:
        return _missing(sec, f"发券组或对照组少于 {k} 人，结果已隐藏。",
                        f"Fewer than {k} prospects with or without a coupon: suppressed.")
    covs = [c for c in _FIRST_USE_COVARIATES if c in fu.columns and fu[c].nunique() > 1]
    # a customer can be a not-yet-treated control and later a recipient: cluster the SEs
    # (the inputs carry an anonymous ``person`` code for this, the ids being dropped)
    cluster = next((c for c in ("customer_id", "person") if c in fu.columns), None)
    rows = []
    for method in ("naive", "aipw"):
        est = estimate_effect(fu, treatment="got_coupon", outcome="sent_within_window",
                              covariates=() if method == "naive" else covs, method=method,
                              estimand="att", cluster=cluster)
        name = label("未调整（有偏）", "naive (biased)", lang) if method == "naive" else label(
            "调整后 AIPW", "adjusted AIPW", lang)
        rows.append({label("方法", "method", lang): name,
                     label("效果（首寄概率差）[95% CI]", "effect (difference in probability) "
                           "[95% CI]", lang): _ci(est.estimate, est.ci_low, est.ci_high),
                     "n": est.n})
        plot_rows.append({"name": f"观察性 observational: {method}", "estimate": est.estimate,
                          "ci_low": est.ci_low, "ci_high": est.ci_high})
        if method == "aipw":
            sec.notes.extend(str(w) for w in est.warnings)
    sec.text(
        f"发券 {n_t:,} 人，未发券 {n_c:,} 人。快递员挑选可能寄件的人发券，未调整比较会高估效果；"
        f"调整变量：{', '.join(covs)}。",
        f"{n_t:,} prospects got a coupon, {n_c:,} did not. Couriers hand coupons to likely "
        f"senders, so the naive comparison overstates the effect; adjusted for: "
        f"{', '.join(covs)}.",
    )
    sec.table("observational", label("观察性估计（对发券者的平均效果 ATT）",
                                     "Observational estimate (effect on the treated, ATT)", lang),
              pd.DataFrame(rows), index=False)
    sec.figure(
        label("优惠券对 30 天首寄率的效果及 95% 置信区间",
              "Coupon effect on the 30-day first-send rate, 95% CI", lang),
        effect_interval_plot(pd.DataFrame(plot_rows), "name",
                             f"{_region_name(inp)} 优惠券对首次寄件的效果 coupon effect on "
                             "first-time use", "首寄概率差 difference in probability (0-1)"),
    )
    return sec


# --------------------------------------------------------------------------- retention
def retention_frame(customers: pd.DataFrame, period_start: Any, end: Any) -> pd.DataFrame:
    """Customers acquired from ``period_start`` on, with days to their second parcel.

    ``event`` is 1 when a second parcel was sent before ``end`` (exclusive), else the customer
    is censored at ``end``; ``acquired`` is ``coupon`` or ``organic`` by the first parcel.
    """
    c = customers[customers["first_sent_at"].notna()].copy()
    c["first_sent_at"] = pd.to_datetime(c["first_sent_at"])
    c = c[c["first_sent_at"] >= pd.Timestamp(period_start)]
    end = pd.Timestamp(end)
    second = pd.to_datetime(c["second_sent_at"])
    event = second.notna() & (second < end)
    stop = second.where(event, end)
    c["days"] = (stop - c["first_sent_at"]).dt.total_seconds() / 86400
    c["event"] = event.astype(int)
    c["acquired"] = np.where(c["first_used_coupon"].astype(bool), "coupon", "organic")
    c["coupon_acquired"] = (c["acquired"] == "coupon").astype(int)
    return c[c["days"] >= 0]


def retention(inp: RegionInputs, lang: str = "zh", k: int = DEFAULT_K) -> Section:
    """Second-parcel curves, hazard ratio and full-price share: coupon-acquired vs organic."""
    from promo_analysis.retention import cox, kaplan_meier

    sec = Section("retention", lang)
    cust = inp.get("customers")
    if cust is None or cust.empty:
        return _missing(sec, "没有客户数据。", "No customer data.")
    end = pd.to_datetime(inp.daily["date"]).max() + pd.Timedelta(days=1)
    rf = retention_frame(cust, inp.period.start, end)
    sizes = rf["acquired"].value_counts()
    small = [g for g in ("coupon", "organic") if sizes.get(g, 0) < k]
    if small:
        return _missing(sec, f"获客组人数少于 {k}，结果已隐藏。",
                        f"A customer group has fewer than {k} customers: suppressed.")
    km = kaplan_meier(rf, "days", "event", group="acquired")
    at = km.at([30, 90, 180])
    tab = pd.DataFrame({
        label("获客方式", "acquired", lang): at["group"].map(
            {"coupon": "用券获客 coupon-acquired", "organic": "自然获客 organic"}),
        label("天数", "days", lang): at["time"].astype(int),
        label("已寄第二件的比例 [95% CI]", "share with a second parcel [95% CI]", lang):
            [_ci(1 - s, 1 - hi, 1 - lo) for s, lo, hi in zip(at["survival"], at["ci_low"],
                                                             at["ci_high"], strict=True)],
        label("风险集人数", "at risk", lang): at["at_risk"],
    })
    tab = tab[at["at_risk"].to_numpy() >= k].reset_index(drop=True)
    sec.table("second_parcel", label("第二次寄件（Kaplan-Meier）", "Second parcel (Kaplan-Meier)",
                                     lang), tab, index=False)
    covs = ["coupon_acquired"] + [c for c in ("segment", "wechat_contact")
                                  if c in rf.columns and rf[c].nunique() > 1]
    fit = cox(rf, "days", "event", covariates=covs)
    hr = fit.hazard_ratio("coupon_acquired")
    sec.text(
        f"用券获客客户寄第二件的风险比（相对自然获客，控制客群与微信联系）：{_ci(hr.estimate, hr.ci_low, hr.ci_high, 2)}。",
        f"Hazard ratio of a second parcel, coupon-acquired vs organic (adjusted for segment and "
        f"WeChat contact): {_ci(hr.estimate, hr.ci_low, hr.ci_high, 2)}.",
    )
    from promo_analysis.retention.habit import ratio_share

    later = (rf["n_shipments"] - 1).clip(lower=0)
    # "Full price" is "without a coupon", as in retention.habit_formation and the truth; the
    # first parcel is not a later one (it is coupon-free exactly for organic customers).
    full_later = (rf["n_shipments"] - rf["n_coupon_shipments"]) - (
        ~rf["first_used_coupon"].astype(bool)
    ).astype(int)
    habit = []
    for g in ("coupon", "organic"):
        idx = rf.index[rf["acquired"] == g]
        est = ratio_share(full_later[idx].to_numpy(), later[idx].to_numpy())
        habit.append({label("获客方式", "acquired", lang):
                      "用券获客 coupon-acquired" if g == "coupon" else "自然获客 organic",
                      label("有后续寄件的客户", "customers with later parcels", lang): est.n,
                      label("后续寄件数", "later parcels", lang): later[idx].sum(),
                      label("后续原价寄件占比 [95% CI]", "full-price share of later parcels "
                            "[95% CI]", lang): _ci(est.estimate, est.ci_low, est.ci_high),
                      "n": est.n})
    from promo_analysis.report.privacy import suppress_small_cells

    habit_t = suppress_small_cells(pd.DataFrame(habit), "n", k=k).drop(
        columns=["n", "suppressed"])
    sec.table("habit", label("习惯养成：后续寄件中原价（未用券）的比例",
                             "Habit formation: share of later parcels sent at full price", lang),
              habit_t, index=False)
    from promo_analysis.plots.fonts import use_cjk_font

    use_cjk_font()
    fig, ax = plt.subplots(figsize=(8, 3.8), layout="constrained")
    for g, color in (("coupon", "#e76f51"), ("organic", "#1f6fb2")):
        c = km.curve(g)
        ax.step(c["time"], 1 - c["survival"], where="post", color=color,
                label="用券获客 coupon-acquired" if g == "coupon" else "自然获客 organic")
        ax.fill_between(c["time"], 1 - c["ci_high"], 1 - c["ci_low"], step="post", color=color,
                        alpha=0.2)
    ax.set_xlabel("首寄后天数 days since first parcel")
    ax.set_ylabel("已寄第二件比例 share with a 2nd parcel")
    ax.set_xlim(0, 365)
    ax.set_title(f"{_region_name(inp)} 第二次寄件 time to second parcel (Kaplan-Meier, 95% CI)",
                 fontsize=10)
    # the cumulative curves rise from the lower left, so the upper left is free (where "best"
    # put it); "best" scores every vertex of both curves -- half the section's plotting time
    # with a curve point per customer
    ax.legend(fontsize=8, loc="upper left")
    sec.figure(label("首寄后寄出第二件的累计比例（阴影为 95% 置信区间）",
                     "Cumulative share sending a second parcel (shaded: 95% CI)", lang), fig)
    return sec


# --------------------------------------------------------------------------- survey
_SURVEY_VARS = {
    "coupon_influenced": ("优惠券影响快递公司选择", "Coupons influence the choice of courier"),
    "aware_of_campaign": ("知晓活动", "Aware of a campaign"),
    "first_time_sender": ("首次寄件", "First-time sender"),
    "satisfaction": ("满意度（1-5）", "Satisfaction (1-5)"),
}


def survey(inp: RegionInputs, lang: str = "zh", k: int = DEFAULT_K) -> Section:
    """Design-based shares and means of the region's market survey, next to unweighted ones.

    Uses ``survey.weighting_comparison`` (weights, strata, clusters; logit intervals for
    shares) and ``plots.survey.weighting_plot``. Questions with fewer than ``k`` answers are
    left out.
    """
    from promo_analysis import survey as sv
    from promo_analysis.plots.survey import weighting_plot

    sec = Section("survey", lang)
    s = inp.get("survey")
    if s is None or s.empty:
        return _missing(sec, "本地区没有调查数据。", "No survey in this region.")
    if len(s) < k:
        return _missing(sec, f"受访者少于 {k} 人，结果已隐藏。",
                        f"Fewer than {k} respondents: suppressed.")
    design = sv.survey_design(s)
    questions = [q for q in _SURVEY_VARS if q in s.columns and s[q].notna().sum() >= k]
    skipped = [q for q in _SURVEY_VARS if q in s.columns and q not in questions]
    comp = sv.weighting_comparison(design, questions)
    rows = []
    for q in questions:
        w = comp[(comp["variable"] == q) & (comp["analysis"] == "weighted")].iloc[0]
        u = comp[(comp["variable"] == q) & (comp["analysis"] == "unweighted")].iloc[0]
        zh, en = _SURVEY_VARS[q]
        rows.append({
            label("问题", "question", lang): f"{zh} {en}",
            label("统计量", "statistic", lang): w["statistic"],
            label("加权估计 [95% CI]", "design-based estimate [95% CI]", lang):
                _ci(w["estimate"], w["ci_low"], w["ci_high"]),
            label("未加权（忽略抽样设计）", "unweighted (ignoring the design)", lang):
                _ci(u["estimate"], u["ci_low"], u["ci_high"]),
            label("设计效应", "design effect", lang): w["deff"],
            label("回答人数", "respondents", lang): int(w["n"]),
        })
    sec.text(f"共 {len(s):,} 份问卷；按抽样设计（权重、分层、整群）估计总体比例与均值。",
             f"{len(s):,} responses; population shares and means estimated from the design "
             "(weights, strata, clusters).")
    sec.table("shares", label("调查结果", "Survey results", lang), pd.DataFrame(rows),
              index=False)
    ax = weighting_plot(comp, title=f"{_region_name(inp)} 市场调查 market survey (95% CI)")
    sec.figure(label("调查估计及 95% 置信区间", "Survey estimates, 95% CI", lang), ax)
    if skipped:
        sec.note(f"回答少于 {k} 人的问题未显示：{', '.join(skipped)}。",
                 f"Questions with fewer than {k} answers are not shown: {', '.join(skipped)}.")
    sec.notes.extend(str(w) for w in getattr(design, "warnings", []))
    return sec
