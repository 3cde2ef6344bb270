"""Line and scatter plots as standalone SVG text (no plotting library, no scripts, no external files).

:func:`svg_plot` draws :class:`Series` (a line with markers, or single points such as the one-step
students next to the teacher's steps curve) and horizontal reference lines (e.g. the real-vs-real
FID floor) on linear or logarithmic axes, with a legend on the right. The SVG is deterministic
text, inlined into the HTML report and written as a file for the Markdown report.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from html import escape

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
           "#bcbd22", "#7f7f7f"]
WIDTH, HEIGHT = 720, 380
LEFT, RIGHT, TOP, BOTTOM = 64, 200, 34, 48


@dataclass
class Series:
    """Points (x, y) drawn as a line with markers (``style="line"``) or as markers only (``"points"``)."""

    label: str
    points: list[tuple[float, float]]
    style: str = "line"  # line | points | dashed
    color: str | None = None


@dataclass
class HLine:
    """A horizontal reference line across the plot."""

    y: float
    label: str
    color: str = "#555555"


@dataclass
class Axis:
    label: str
    log: int | None = None  # None: linear; 2 or 10: logarithmic with that base
    values: list[float] = field(default_factory=list)

    def limits(self) -> tuple[float, float]:
        vals = [v for v in self.values if (v > 0 or not self.log) and math.isfinite(v)]
        if not vals:
            return (1.0, 10.0) if self.log else (0.0, 1.0)
        lo, hi = min(vals), max(vals)
        if self.log:
            lo_e = math.floor(math.log(lo, self.log) + 1e-9)
            hi_e = math.ceil(math.log(hi, self.log) - 1e-9)
            if hi_e == lo_e:
                hi_e += 1
            return float(self.log ** lo_e), float(self.log ** hi_e)
        if hi == lo:
            pad = abs(hi) * 0.1 or 1.0
            return lo - pad, hi + pad
        step = nice_step((hi - lo) / 5)
        lo2 = math.floor(lo / step) * step
        hi2 = math.ceil(hi / step) * step
        if lo >= 0 and lo2 < 0:
            lo2 = 0.0
        return lo2, hi2

    def ticks(self, lo: float, hi: float) -> list[float]:
        if self.log:
            e0, e1 = round(math.log(lo, self.log)), round(math.log(hi, self.log))
            every = max(1, math.ceil((e1 - e0 + 1) / 8))
            return [float(self.log ** e) for e in range(e0, e1 + 1, every)]
        step = nice_step((hi - lo) / 5)
        first = math.ceil(lo / step - 1e-9) * step
        out, v = [], first
        while v <= hi + step * 1e-6:
            out.append(round(v, 12))
            v += step
        return out

    def scale(self, v: float, lo: float, hi: float) -> float:
        """Position of ``v`` in [0, 1] along the axis."""
        if self.log:
            v = max(v, lo)
            return (math.log(v) - math.log(lo)) / (math.log(hi) - math.log(lo))
        return (v - lo) / (hi - lo)


def nice_step(raw: float) -> float:
    """The 1, 2, 2.5 or 5 × 10^k closest above ``raw`` (tick spacing)."""
    if raw <= 0 or not math.isfinite(raw):
        return 1.0
    k = math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if m * 10 ** k >= raw:
            return m * 10 ** k
    return 10 ** (k + 1)


def tick_text(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 1e5 or abs(v) < 1e-3:
        return f"{v:.0e}"
    return f"{v:g}"


def svg_plot(title: str, series: list[Series], xlabel: str, ylabel: str, log_x: int | None = None,
             log_y: int | None = None, hlines: list[HLine] | None = None) -> str:
    """The SVG text of one plot (module docstring). Series without points are listed as "(no data)"."""
    hlines = hlines or []
    xa = Axis(xlabel, log_x, [p[0] for s in series for p in s.points])
    ya = Axis(ylabel, log_y, [p[1] for s in series for p in s.points] + [h.y for h in hlines])
    (x0, x1), (y0, y1) = xa.limits(), ya.limits()
    pw, ph = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def px(x: float) -> float:
        return LEFT + xa.scale(x, x0, x1) * pw

    def py(y: float) -> float:
        return TOP + (1 - ya.scale(y, y0, y1)) * ph

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
           f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="DejaVu Sans, Arial, sans-serif" font-size="12" '
           f'role="img" aria-label="{escape(title)}">',
           f'<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>',
           f'<text x="{LEFT}" y="20" font-size="14" font-weight="bold">{escape(title)}</text>',
           f'<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#333333"/>']
    for t in xa.ticks(x0, x1):
        x = px(t)
        out.append(f'<line x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{TOP + ph}" stroke="#e5e5e5"/>')
        out.append(f'<text x="{x:.1f}" y="{TOP + ph + 16}" text-anchor="middle">{tick_text(t)}</text>')
    for t in ya.ticks(y0, y1):
        y = py(t)
        out.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + pw}" y2="{y:.1f}" stroke="#e5e5e5"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{tick_text(t)}</text>')
    out.append(f'<text x="{LEFT + pw / 2:.1f}" y="{HEIGHT - 10}" text-anchor="middle">{escape(xlabel)}'
               f'{" (log scale)" if log_x else ""}</text>')
    out.append(f'<text transform="translate(16 {TOP + ph / 2:.1f}) rotate(-90)" text-anchor="middle">'
               f'{escape(ylabel)}{" (log scale)" if log_y else ""}</text>')
    legend_y = TOP + 8
    for h in hlines:
        y = py(h.y)
        out.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + pw}" y2="{y:.1f}" stroke="{h.color}" '
                   f'stroke-dasharray="2 3"/>')
        out.append(_legend(legend_y, h.color, h.label, "dotted"))
        legend_y += 18
    for i, s in enumerate(series):
        color = s.color or PALETTE[i % len(PALETTE)]
        pts = [(px(x), py(y)) for x, y in s.points if (x > 0 or not log_x) and (y > 0 or not log_y)]
        if s.style in ("line", "dashed") and len(pts) > 1:
            dash = ' stroke-dasharray="6 4"' if s.style == "dashed" else ""
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
            out.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"{dash}/>')
        r = 5.5 if s.style == "points" else 3.5
        for x, y in pts:
            out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r}" fill="{color}" stroke="#222222" '
                       f'stroke-width="{1 if s.style == "points" else 0}"/>')
        out.append(_legend(legend_y, color, s.label + ("" if pts else " (no data)"), s.style))
        legend_y += 18
    out.append("</svg>")
    return "\n".join(out)


def _legend(y: float, color: str, text: str, style: str) -> str:
    x = WIDTH - RIGHT + 14
    if style == "points":
        mark = f'<circle cx="{x + 10}" cy="{y}" r="5" fill="{color}" stroke="#222222"/>'
    else:
        dash = {"dashed": ' stroke-dasharray="6 4"', "dotted": ' stroke-dasharray="2 3"'}.get(style, "")
        mark = f'<line x1="{x}" y1="{y}" x2="{x + 20}" y2="{y}" stroke="{color}" stroke-width="2"{dash}/>'
    short = text if len(text) <= 26 else text[:25] + "…"
    return f'{mark}<text x="{x + 26}" y="{y + 4}"><title>{escape(text)}</title>{escape(short)}</text>'


__all__ = ["Series", "HLine", "svg_plot", "nice_step", "PALETTE"]
