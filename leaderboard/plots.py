"""Inline SVG plots: no plotting library, no CDN, nothing fetched by the page.

Every text that reaches the SVG goes through ``Markup.format``, which escapes it, so a policy
name cannot inject markup. Colours are presentation attributes (not ``style``), which the
site's content security policy allows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup

WIDTH, HEIGHT = 800, 340
LEGEND_CHARS = 38
"""Characters of a legend label; the full label is in the mark's tooltip."""
LEFT, RIGHT, TOP, BOTTOM = 64, 250, 20, 52
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2")
TRACK_MARKS = {"control": "square", "fixed-reader": "circle", "open": "diamond"}


@dataclass(frozen=True)
class Point:
    label: str
    x: float
    y: float
    low: float | None
    high: float | None
    track: str
    href: str


@dataclass(frozen=True)
class Series:
    label: str
    values: Sequence[float | None]
    href: str


def nice_ticks(top: float, count: int = 5) -> list[float]:
    """Round tick values from 0 to at least ``top`` (steps of 1, 2 or 5 × 10^k)."""
    if top <= 0:
        return [0.0, 1.0]
    raw = top / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    return [i * step for i in range(math.ceil(top / step - 1e-9) + 1)]


def _frame(title: str, x_label: str, y_label: str) -> list[Markup]:
    """The SVG opening, y grid (accuracy 0-100 %) and axis labels."""
    bottom = HEIGHT - BOTTOM
    parts = [
        Markup('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {} {}" width="{}" '
               'height="{}" role="img" aria-label="{}" class="plot">').format(
            WIDTH, HEIGHT, WIDTH, HEIGHT, title),
        Markup("<title>{}</title>").format(title),
    ]
    for pct in range(0, 101, 20):
        y = _y(pct / 100)
        parts.append(Markup('<line x1="{}" y1="{:.1f}" x2="{}" y2="{:.1f}" stroke="#ddd"/>'
                            '<text x="{}" y="{:.1f}" text-anchor="end" font-size="11">{}</text>')
                     .format(LEFT, y, WIDTH - RIGHT, y, LEFT - 6, y + 4, pct))
    parts.append(Markup('<text x="{}" y="{}" text-anchor="middle" font-size="12">{}</text>'
                        '<text x="14" y="{}" text-anchor="middle" font-size="12" '
                        'transform="rotate(-90 14 {})">{}</text>').format(
        (LEFT + WIDTH - RIGHT) / 2, bottom + 40, x_label, (TOP + bottom) / 2,
        (TOP + bottom) / 2, y_label))
    return parts


def _y(value: float) -> float:
    return TOP + (1 - value) * (HEIGHT - TOP - BOTTOM)


def _mark(kind: str, x: float, y: float, colour: str) -> Markup:
    if kind == "square":
        return Markup('<rect x="{:.1f}" y="{:.1f}" width="9" height="9" fill="{}"/>').format(
            x - 4.5, y - 4.5, colour)
    if kind == "diamond":
        return Markup('<polygon points="{:.1f},{:.1f} {:.1f},{:.1f} {:.1f},{:.1f} {:.1f},{:.1f}" '
                      'fill="{}"/>').format(x, y - 6, x + 6, y, x, y + 6, x - 6, y, colour)
    return Markup('<circle cx="{:.1f}" cy="{:.1f}" r="5" fill="{}"/>').format(x, y, colour)


def _legend(index: int, label: str, href: str, colour: str, mark: str) -> Markup:
    y = TOP + 8 + 18 * index
    x = WIDTH - RIGHT + 16
    return Markup('<a href="{}">{}<text x="{}" y="{:.1f}" font-size="11">{}</text></a>').format(
        href, _mark(mark, x, y, colour), x + 12, y + 4,
        label if len(label) <= LEGEND_CHARS else label[: LEGEND_CHARS - 1] + "…")


def accuracy_vs_memory(points: Sequence[Point]) -> Markup:
    """Acc (with its 95 % interval) against memory tokens per video-hour, one mark per run."""
    parts = _frame("Accuracy vs memory size", "memory tokens per video-hour", "Acc (%)")
    ticks = nice_ticks(max((p.x for p in points), default=0.0))
    span = ticks[-1] or 1.0
    bottom = HEIGHT - BOTTOM

    def x_of(value: float) -> float:
        return LEFT + value / span * (WIDTH - LEFT - RIGHT)

    for tick in ticks:
        parts.append(Markup('<text x="{:.1f}" y="{}" text-anchor="middle" font-size="11">{}</text>')
                     .format(x_of(tick), bottom + 16, f"{tick:,.0f}"))
    parts.append(Markup('<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#999"/>').format(
        LEFT, bottom, WIDTH - RIGHT, bottom))
    for i, p in enumerate(points):
        colour = PALETTE[i % len(PALETTE)]
        x, y = x_of(p.x), _y(p.y)
        whisker = Markup("")
        if p.low is not None and p.high is not None:
            whisker = Markup('<line x1="{:.1f}" y1="{:.1f}" x2="{:.1f}" y2="{:.1f}" stroke="{}"/>'
                             ).format(x, _y(p.low), x, _y(p.high), colour)
        parts.append(Markup('<a href="{}"><title>{}: Acc {:.1f} %, {:,.0f} tokens/h</title>{}{}</a>')
                     .format(p.href, p.label, 100 * p.y, p.x, whisker,
                             _mark(TRACK_MARKS.get(p.track, "circle"), x, y, colour)))
        parts.append(_legend(i, p.label, p.href, colour, TRACK_MARKS.get(p.track, "circle")))
    parts.append(Markup("</svg>"))
    return Markup("").join(parts)


def accuracy_by_group(groups: Sequence[str], series: Sequence[Series], x_label: str) -> Markup:
    """Acc per group (e.g. evidence-delay bucket), one line per run; gaps where a run has no
    question in a group."""
    parts = _frame(f"Accuracy by {x_label.lower()}", x_label, "Acc (%)")
    bottom = HEIGHT - BOTTOM
    step = (WIDTH - LEFT - RIGHT) / max(len(groups), 1)

    def x_of(index: int) -> float:
        return LEFT + step * (index + 0.5)

    for i, group in enumerate(groups):
        parts.append(Markup('<text x="{:.1f}" y="{}" text-anchor="middle" font-size="11">{}</text>')
                     .format(x_of(i), bottom + 16, group))
    parts.append(Markup('<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#999"/>').format(
        LEFT, bottom, WIDTH - RIGHT, bottom))
    for k, s in enumerate(series):
        colour = PALETTE[k % len(PALETTE)]
        points = [(x_of(i), _y(v)) for i, v in enumerate(s.values) if v is not None]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        parts.append(Markup('<a href="{}"><title>{}</title><polyline points="{}" fill="none" '
                            'stroke="{}" stroke-width="2"/>{}</a>').format(
            s.href, s.label, path, colour,
            Markup("").join(_mark("circle", x, y, colour) for x, y in points)))
        parts.append(_legend(k, s.label, s.href, colour, "circle"))
    parts.append(Markup("</svg>"))
    return Markup("").join(parts)
