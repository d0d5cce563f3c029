"""Charts drawn on the server as inline SVG: the order map and stacked cost bars.

No script and no fetched asset: the browser gets finished markup, every text escaped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup, escape

#: Cost terms of a candidate, in stacking order, with their legend label and colour.
TERMS: tuple[tuple[str, str, str], ...] = (
    ("shipping", "shipping", "#2f6db5"),
    ("handling", "handling", "#7aa6d8"),
    ("stockout_risk_cost", "stockout risk", "#d9822b"),
    ("late_cost", "lateness", "#b23b3b"),
)


@dataclass(frozen=True, slots=True)
class MapPoint:
    label: str
    lat: float
    lon: float
    kind: str  # "destination", "chosen", "eligible", "fenced"
    note: str = ""


_MAP_STYLE = {
    "destination": ("#111", 7),
    "chosen": ("#1d7a36", 7),
    "eligible": ("#2f6db5", 5),
    "fenced": ("#999", 4),
}


def order_map(points: Sequence[MapPoint], width: int = 640, height: int = 380) -> Markup:
    """Destination and candidate nodes on an equirectangular projection of their bounding
    box; lines join the destination to the chosen nodes."""
    if not points:
        return Markup("")
    pad, right = 30.0, 70.0  # room on the right for labels
    lats = [p.lat for p in points]
    lons = [p.lon for p in points]
    lat0, lat1 = min(lats), max(lats)
    lon0, lon1 = min(lons), max(lons)
    span = max(lat1 - lat0, lon1 - lon0, 1.0)
    sx = (width - pad - right) / max(lon1 - lon0, span * 0.5)
    sy = (height - 2 * pad) / max(lat1 - lat0, span * 0.5)
    s = min(sx, sy)

    def xy(p: MapPoint) -> tuple[float, float]:
        return pad + (p.lon - lon0) * s, height - pad - (p.lat - lat0) * s

    dest = [p for p in points if p.kind == "destination"]
    parts = [
        f'<svg class="map" viewBox="0 0 {width} {height}" role="img" '
        'aria-labelledby="map-title map-desc" xmlns="http://www.w3.org/2000/svg">',
        '<title id="map-title">Map of the destination and candidate nodes</title>',
        f'<desc id="map-desc">{len(points) - len(dest)} candidate nodes; chosen nodes in green, '
        "fenced nodes in grey, the destination in black.</desc>",
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#f7f8fa" />',
    ]
    for d in dest:
        dx, dy = xy(d)
        for p in points:
            if p.kind == "chosen":
                px, py = xy(p)
                parts.append(
                    f'<line x1="{px:.1f}" y1="{py:.1f}" x2="{dx:.1f}" y2="{dy:.1f}" '
                    'stroke="#1d7a36" stroke-width="2" stroke-dasharray="5 3" />'
                )
    order = {"fenced": 0, "eligible": 1, "destination": 2, "chosen": 3}
    for p in sorted(points, key=lambda q: order.get(q.kind, 0)):
        x, y = xy(p)
        colour, r = _MAP_STYLE.get(p.kind, ("#555", 4))
        tip = escape(f"{p.label} ({p.kind}){': ' + p.note if p.note else ''}")
        if p.kind == "destination":
            parts.append(
                f'<rect x="{x - r:.1f}" y="{y - r:.1f}" width="{2 * r}" height="{2 * r}" '
                f'fill="{colour}"><title>{tip}</title></rect>'
            )
        else:
            parts.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r}" fill="{colour}">'
                f"<title>{tip}</title></circle>"
            )
        if p.kind != "fenced":
            below = p.kind == "destination"  # chosen nodes are often next to it
            tx, ty = (x - r, y + r + 13) if below else (x + r + 3, y + 4)
            weight = ' font-weight="bold"' if p.kind in ("chosen", "destination") else ""
            parts.append(
                f'<text x="{tx:.1f}" y="{ty:.1f}" font-size="12"{weight}>{escape(p.label)}</text>'
            )
    parts.append("</svg>")
    return Markup("".join(parts))


def cost_bars(rows: Sequence[Mapping[str, Any]], width: int = 640) -> Markup:
    """One horizontal bar per candidate (``node_id`` and the four cost terms), stacked by
    term, all on one scale, with the total at the end and a legend."""
    rows = [r for r in rows if any(r.get(k) is not None for k, _, _ in TERMS)]
    if not rows:
        return Markup("")
    label_w, total_w, bar_h, gap = 110, 70, 18, 8
    plot_w = width - label_w - total_w
    totals = [sum(max(float(r.get(k) or 0.0), 0.0) for k, _, _ in TERMS) for r in rows]
    top = max(max(totals), 1e-9)
    height = len(rows) * (bar_h + gap) + 34
    parts = [
        f'<svg class="bars" viewBox="0 0 {width} {height}" role="img" '
        'xmlns="http://www.w3.org/2000/svg" aria-label="Cost terms per candidate node">'
    ]
    for i, (r, total) in enumerate(zip(rows, totals, strict=True)):
        y = i * (bar_h + gap)
        parts.append(
            f'<text x="0" y="{y + bar_h - 4}" font-size="12">{escape(str(r["node_id"]))}</text>'
        )
        x = float(label_w)
        for key, label, colour in TERMS:
            v = max(float(r.get(key) or 0.0), 0.0)
            w = plot_w * v / top
            if w > 0:
                parts.append(
                    f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{colour}">'
                    f"<title>{escape(str(r['node_id']))} {label}: {v:.2f}</title></rect>"
                )
            x += w
        parts.append(f'<text x="{x + 4:.1f}" y="{y + bar_h - 4}" font-size="12">{total:.2f}</text>')
    y = len(rows) * (bar_h + gap) + 8
    x = float(label_w)
    for _, label, colour in TERMS:
        parts.append(f'<rect x="{x:.0f}" y="{y}" width="12" height="12" fill="{colour}" />')
        parts.append(f'<text x="{x + 16:.0f}" y="{y + 11}" font-size="12">{label}</text>')
        x += 16 + 8 * len(label) + 18
    parts.append("</svg>")
    return Markup("".join(parts))
