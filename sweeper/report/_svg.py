"""A small line chart as SVG: no plotting library, shown by browsers, the dashboard and the
HTML report alike."""

from __future__ import annotations

import math
from html import escape

W, H = 560, 320
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 36, 48
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        return [lo]
    return [lo + (hi - lo) * i / (n - 1) for i in range(n)]


def _label(v: float) -> str:
    return f"{v:.3g}"


def line_chart(
    series: dict[str, list[tuple[float, float]]],
    title: str,
    xlabel: str,
    ylabel: str,
    logx: bool = False,
    marks: dict[str, float] | None = None,
) -> str:
    """Lines through (x, y) points, one per series; `marks` draws labelled vertical lines."""
    fx = (lambda v: math.log10(v)) if logx else (lambda v: v)
    pts = [
        (fx(x), y)
        for s in series.values()
        for x, y in s
        if math.isfinite(y) and (x > 0 or not logx)
    ]
    if not pts:
        pts = [(0.0, 0.0), (1.0, 1.0)]
    x0, x1 = min(p[0] for p in pts), max(p[0] for p in pts)
    y0, y1 = min(p[1] for p in pts), max(p[1] for p in pts)
    if x1 == x0:
        x1 = x0 + 1
    if y1 == y0:
        y1 = y0 + 1
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM

    def px(x: float) -> float:
        return LEFT + (x - x0) / (x1 - x0) * pw

    def py(y: float) -> float:
        return TOP + (1 - (y - y0) / (y1 - y0)) * ph

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
        f'viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="11">',
        f'<rect width="{W}" height="{H}" fill="white"/>',
        f'<text x="{W / 2}" y="20" text-anchor="middle" font-size="14">{escape(title)}</text>',
        f'<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>',
    ]
    for t in _ticks(x0, x1):
        label = _label(10**t) if logx else _label(t)
        out.append(f'<text x="{px(t):.1f}" y="{TOP + ph + 16}" text-anchor="middle">{label}</text>')
    for t in _ticks(y0, y1):
        out.append(f'<text x="{LEFT - 6}" y="{py(t) + 4:.1f}" text-anchor="end">{_label(t)}</text>')
        out.append(
            f'<line x1="{LEFT}" x2="{LEFT + pw}" y1="{py(t):.1f}" y2="{py(t):.1f}" stroke="#eee"/>'
        )
    out.append(
        f'<text x="{LEFT + pw / 2}" y="{H - 10}" text-anchor="middle">{escape(xlabel)}</text>'
    )
    out.append(
        f'<text x="14" y="{TOP + ph / 2}" text-anchor="middle" '
        f'transform="rotate(-90 14 {TOP + ph / 2})">{escape(ylabel)}</text>'
    )
    for i, (name, s) in enumerate(series.items()):
        color = COLORS[i % len(COLORS)]
        line = " ".join(
            f"{px(fx(x)):.1f},{py(y):.1f}" for x, y in s if math.isfinite(y) and (x > 0 or not logx)
        )
        out.append(f'<polyline points="{line}" fill="none" stroke="{color}" stroke-width="2"/>')
        out.append(
            f'<text x="{LEFT + pw - 4}" y="{TOP + 14 + 14 * i}" text-anchor="end" '
            f'fill="{color}">{escape(name)}</text>'
        )
    for name, x in (marks or {}).items():
        if logx and x <= 0:
            continue
        xx = px(fx(x))
        out.append(
            f'<line x1="{xx:.1f}" x2="{xx:.1f}" y1="{TOP}" y2="{TOP + ph}" stroke="#888" '
            'stroke-dasharray="4 3"/>'
        )
        out.append(f'<text x="{xx + 3:.1f}" y="{TOP + ph - 6}" fill="#555">{escape(name)}</text>')
    out.append("</svg>")
    return "\n".join(out)
