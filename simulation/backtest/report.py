"""The backtest report: ``report.md`` and a self-contained ``report.html`` from the JSON.

Reads only the backtest result (the JSON contract of ``routecast backtest``): per policy
KPIs with 95 % intervals, the ``daily`` series, the perfect-foresight ``bound`` and the
``gap_closed``. Plots are matplotlib figures built without pyplot (no global state, any backend) and saved
as PNGs — written beside ``report.md`` and embedded as
base64 in ``report.html``, so the HTML opens anywhere without a network.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

#: how each KPI reads in the report; "better" says which direction is good
KPI_LABELS: dict[str, tuple[str, str]] = {
    "cost_per_order": ("cost per order", "lower"),
    "total_cost_per_order": ("total cost per order, with lateness", "lower"),
    "on_time_rate": ("on-time rate", "higher"),
    "late_rate": ("late rate", "lower"),
    "rejection_rate": ("rejection rate", "lower"),
    "reroutes_per_100": ("reroutes per 100 orders", "lower"),
    "shipments_per_order": ("shipments per order", "lower"),
    "unfilled_units": ("units unfilled", "lower"),
    "unfilled_rate": ("unfilled rate", "lower"),
    "mean_km": ("mean km per shipment", "lower"),
    "co2_kg_per_order": ("CO₂ proxy, kg per order", "lower"),
    "decision_p50_ms": ("decision p50, ms", "lower"),
    "decision_p99_ms": ("decision p99, ms", "lower"),
}
#: the day-by-day series worth a panel each
DAILY_KPIS = ("cost_per_order", "on_time_rate", "rejection_rate", "shipments_per_order")
_SKIP = {"ci95", "totals"}


def kpi_names(result: Mapping[str, Any]) -> list[str]:
    """KPIs present for every policy, in the order the result lists them."""
    pols = list(result["policies"].values())
    names = [
        k
        for k, v in pols[0].items()
        if k not in _SKIP and isinstance(v, int | float) and not isinstance(v, bool)
    ]
    return [k for k in names if all(k in p for p in pols)]


def _label(k: str) -> str:
    return KPI_LABELS.get(k, (k.replace("_", " "), ""))[0]


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e5 else f"{v:,.0f}"
    return str(v)


def _colour(i: int) -> str:
    return f"C{i % 10}"


def kpi_figure(result: Mapping[str, Any]) -> Figure:
    """One panel per KPI: a bar per policy with its bootstrap 95 % interval."""
    names = kpi_names(result)
    pols = list(result["policies"])
    cols = 3
    rows = max(1, math.ceil(len(names) / cols))
    fig = Figure(figsize=(4.2 * cols, 2.8 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax, k in zip(axes.flat, names, strict=False):
        vals, lo, hi = [], [], []
        for p in pols:
            v = float(result["policies"][p][k])
            ci = result["policies"][p].get("ci95", {}).get(k, [v, v])
            vals.append(v)
            lo.append(max(v - float(ci[0]), 0.0) if math.isfinite(ci[0]) else 0.0)
            hi.append(max(float(ci[1]) - v, 0.0) if math.isfinite(ci[1]) else 0.0)
        ax.bar(pols, vals, yerr=[lo, hi], capsize=3, color=[_colour(i) for i in range(len(pols))])
        block = result.get("bound") or {}
        bound = block.get(k, (block.get("realised") or {}).get(k))
        if isinstance(bound, int | float) and math.isfinite(bound):
            ax.axhline(bound, color="black", linestyle="--", linewidth=1, label="bound")
            ax.legend(fontsize=7, loc="lower right")
        better = KPI_LABELS.get(k, ("", ""))[1]
        ax.set_title(_label(k) + (f" ({better} is better)" if better else ""), fontsize=9)
        ax.tick_params(axis="x", labelrotation=30, labelsize=8)
        ax.tick_params(axis="y", labelsize=8)
    for ax in list(axes.flat)[len(names) :]:
        ax.set_visible(False)
    fig.suptitle("KPIs per policy (bars: bootstrap 95 % interval over days)", fontsize=11)
    fig.tight_layout()
    return fig


def daily_figure(result: Mapping[str, Any]) -> Figure:
    """Day-by-day KPIs per policy; the bound's daily cost beside the cost panel."""
    daily: Mapping[str, Sequence[Mapping[str, Any]]] = result.get("daily") or {}
    present = [k for k in DAILY_KPIS if any(k in d for rows in daily.values() for d in rows)]
    present = present or [k for k in kpi_names(result)[:2]]
    fig = Figure(figsize=(9, 2.4 * len(present)))
    axes = fig.subplots(len(present), 1, squeeze=False, sharex=True)
    for ax, k in zip(axes[:, 0], present, strict=True):
        for i, (p, rows) in enumerate(daily.items()):
            xs = [r.get("day", j) for j, r in enumerate(rows)]
            ys = [r.get(k, math.nan) for r in rows]
            ax.plot(range(len(xs)), ys, marker="o", markersize=3, label=p, color=_colour(i))
        bound_days = (result.get("bound") or {}).get("daily") or []
        if k == "cost_per_order" and bound_days:
            ax.plot(
                range(len(bound_days)),
                [b.get("cost_per_order", math.nan) for b in bound_days],
                color="black",
                linestyle="--",
                label="bound",
            )
        ax.set_ylabel(_label(k), fontsize=8)
        ax.tick_params(labelsize=8)
    first = next(iter(daily.values()), [])
    ticks = [str(r.get("day", j)) for j, r in enumerate(first)]
    if ticks:
        step = max(1, len(ticks) // 10)
        axes[-1, 0].set_xticks(range(0, len(ticks), step))
        axes[-1, 0].set_xticklabels(ticks[::step], rotation=30, fontsize=7)
    axes[0, 0].legend(fontsize=7, ncol=min(6, len(daily) + 1), loc="best")
    fig.suptitle("Daily series", fontsize=11)
    fig.tight_layout()
    return fig


def gap_figure(result: Mapping[str, Any]) -> Figure:
    """Share of the distance→bound gap each policy closes (1 = as good as foresight)."""
    gaps: Mapping[str, Any] = result.get("gap_closed") or {}
    fig = Figure(figsize=(6.5, 2.8))
    ax = fig.subplots()
    pols = list(gaps)
    vals = [float(v) if v is not None else math.nan for v in gaps.values()]
    ax.bar(pols, vals, color=[_colour(list(result["policies"]).index(p)) for p in pols])
    ax.axhline(0.0, color="grey", linewidth=0.8)
    ax.axhline(1.0, color="black", linestyle="--", linewidth=1, label="perfect foresight")
    for i, v in enumerate(vals):
        if math.isfinite(v):
            ax.annotate(f"{v:.0%}", (i, v), ha="center", va="bottom", fontsize=8)
    ax.set_ylabel("gap closed", fontsize=9)
    ax.set_title("Share of the distance → bound cost gap closed", fontsize=10)
    ax.legend(fontsize=7)
    ax.tick_params(labelsize=8)
    fig.tight_layout()
    return fig


def figures(result: Mapping[str, Any]) -> dict[str, Figure]:
    """Every plot of the report, by name (the notebook shows them inline)."""
    out = {"kpis": kpi_figure(result), "daily": daily_figure(result)}
    if result.get("gap_closed"):
        out["gap_closed"] = gap_figure(result)
    return out


def to_png(fig: Figure) -> bytes:
    """PNG bytes of a report figure (for the HTML, files, or a notebook's display)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()


_PARAMS = (
    "scale",
    "seed",
    "days",
    "start",
    "history_days",
    "inventory_accuracy",
    "orders",
    "workers",
    "seconds",
    "seconds_prepare",
)


def _parameters(result: Mapping[str, Any]) -> list[tuple[str, str]]:
    rows = [(k, _fmt(result[k])) for k in _PARAMS if k in result]
    if "inventory_accuracy" in result and result["inventory_accuracy"] is None:
        rows = [(k, "world's own counting" if k == "inventory_accuracy" else v) for k, v in rows]
    rows.append(("policies", ", ".join(result["policies"])))
    for name, version in (result.get("models") or {}).items():
        rows.append((f"model {name}", _fmt(version)))
    return rows


def _kpi_rows(result: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    names = kpi_names(result)
    head = ["policy", *(_label(k) for k in names)]
    body = []
    for p, kp in result["policies"].items():
        cells = [p]
        for k in names:
            ci = kp.get("ci95", {}).get(k)
            cell = _fmt(kp[k])
            if ci is not None:
                cell += f" [{_fmt(ci[0])}, {_fmt(ci[1])}]"
            cells.append(cell)
        body.append(cells)
    bound = result.get("bound") or {}
    if bound:
        solver = f"bound, solver ({bound.get('method', '?')})"
        body.append([solver, *(_fmt(bound.get(k)) for k in names)])
        played = bound.get("realised")
        if isinstance(played, Mapping):
            body.append(["bound, plan played", *(_fmt(played.get(k)) for k in names)])
    return head, body


def _bound_lines(result: Mapping[str, Any]) -> list[str]:
    bound = result.get("bound")
    if not bound:
        return ["No perfect-foresight bound in this result."]
    mip, lp = bound.get("days_mip", 0), bound.get("days_lp", 0)
    out = [
        f"Perfect-foresight bound: {_fmt(bound.get('cost_per_order'))} per order "
        f"(method **{bound.get('method')}**: {mip} day(s) solved as MIP to proven optimality, "
        f"{lp} day(s) by the LP relaxation — a looser but still valid lower bound), "
        f"solved in {_fmt(bound.get('seconds'))} s. The *solver* row holds its figures; the "
        "*plan played* row the outcomes of playing its plan in its own copy of the world.",
    ]
    if bound.get("basis"):
        out.append(f"Costs compared on: {bound['basis']}.")
    gaps = result.get("gap_closed") or {}
    if gaps:
        out.append(
            "Gap closed (share of the distance → bound gap): "
            + ", ".join(f"{p} {_fmt(v)}" for p, v in gaps.items())
            + "."
        )
    return out


def _md_table(head: Sequence[str], body: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in body]
    return "\n".join(lines)


def _title(result: Mapping[str, Any]) -> str:
    return (
        f"Backtest: {result.get('scale', '?')} world, seed {result.get('seed', '?')}, "
        f"{result.get('days', '?')} days"
    )


def render_markdown(result: Mapping[str, Any], images: Mapping[str, str]) -> str:
    """Markdown report; ``images`` maps plot names to paths relative to the report."""
    head, body = _kpi_rows(result)
    parts = [
        f"# {_title(result)}",
        "",
        "Every figure is measured on simulated outcomes (what nodes accepted, what carriers "
        "delivered) for one identical order stream; intervals are bootstrap 95 % over days.",
        "",
        "## KPIs",
        "",
        _md_table(head, body),
        "",
        f"![KPIs per policy]({images['kpis']})",
        "",
        "## Perfect-foresight bound and gap closed",
        "",
        *_bound_lines(result),
        "",
    ]
    if "gap_closed" in images:
        parts += [f"![Gap closed]({images['gap_closed']})", ""]
    parts += ["## Daily series", "", f"![Daily series]({images['daily']})", ""]
    parts += ["## Parameters", "", _md_table(["parameter", "value"], _parameters(result)), ""]
    return "\n".join(parts)


def _html_table(head: Sequence[str], body: Sequence[Sequence[str]]) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    trs = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in body
    )
    return f"<table><thead><tr>{th}</tr></thead><tbody>{trs}</tbody></table>"


def render_html(result: Mapping[str, Any], pngs: Mapping[str, bytes]) -> str:
    """Self-contained HTML: inline CSS, plots as base64 PNG, no external resources."""

    def img(name: str, alt: str) -> str:
        data = base64.b64encode(pngs[name]).decode("ascii")
        return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'

    head, body = _kpi_rows(result)
    bound = "".join(
        f"<p>{html.escape(line).replace('**', '')}</p>" for line in _bound_lines(result)
    )
    gap = img("gap_closed", "Gap closed") if "gap_closed" in pngs else ""
    title = html.escape(_title(result))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; max-width: 1200px; }}
table {{ border-collapse: collapse; font-size: 0.85rem; margin: 1rem 0; }}
th, td {{ border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
img {{ max-width: 100%; }}
</style></head><body>
<h1>{title}</h1>
<p>Every figure is measured on simulated outcomes (what nodes accepted, what carriers
delivered) for one identical order stream; intervals are bootstrap 95 % over days.</p>
<h2>KPIs</h2>
{_html_table(head, body)}
{img("kpis", "KPIs per policy")}
<h2>Perfect-foresight bound and gap closed</h2>
{bound}
{gap}
<h2>Daily series</h2>
{img("daily", "Daily series")}
<h2>Parameters</h2>
{_html_table(["parameter", "value"], _parameters(result))}
</body></html>
"""


def write_report(result: Mapping[str, Any], out_dir: Path) -> dict[str, Path]:
    """Write ``report.md`` (+ its PNGs under ``plots/``) and ``report.html`` into ``out_dir``."""
    out_dir = Path(out_dir)
    plots = out_dir / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    pngs = {name: to_png(fig) for name, fig in figures(result).items()}
    images: dict[str, str] = {}
    for name, data in pngs.items():
        (plots / f"{name}.png").write_bytes(data)
        images[name] = f"plots/{name}.png"
    md = out_dir / "report.md"
    md.write_text(render_markdown(result, images), encoding="utf-8")
    page = out_dir / "report.html"
    page.write_text(render_html(result, pngs), encoding="utf-8")
    return {"markdown": md, "html": page, **{n: plots / f"{n}.png" for n in pngs}}
