"""Inline SVG figures of the HTML report: line charts (training history) and memory plans.

Pure functions from numbers to SVG markup (no JavaScript, no external font or image), so the
report stays one self-contained file. Text is escaped here; the caller marks the result safe.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

__all__ = ["PALETTE", "Span", "line_chart", "memory_plan_chart", "nice_ticks"]

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
_FONT = 'font-family="system-ui, sans-serif" font-size="11"'


@dataclass(frozen=True)
class Span:
    """One buffer of a memory plan: bytes ``offset .. offset + size`` alive from step ``first`` to ``last``."""

    label: str
    offset: int
    size: int
    first: int
    last: int


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About ``count`` round tick values from at most ``low`` to at least ``high``, 1, 2 or 5 times a power of ten apart.

    Any finite range works, up to ``-1e308 .. 1e308`` (whose width overflows a float): ticks
    that would pass the largest float are left out, so the first and last may fall inside the
    range. A non-finite end (or an integer beyond the floats) gives ``[0.0]``.
    """
    try:
        low, high = float(low), float(high)
    except OverflowError:
        return [0.0]
    if not (math.isfinite(low) and math.isfinite(high)):
        return [0.0]
    if not high > low:  # one value: up to it + 1, or a quarter of it either side when 1 vanishes next to it
        if low + 1.0 > low:
            high = low + 1.0
        else:
            pad = abs(low) / 4
            low, high = max(low - pad, -sys.float_info.max), min(low + pad, sys.float_info.max)
    count = max(count, 1)
    raw = high / count - low / count  # not (high - low) / count: that overflows for -1e308 .. 1e308
    if not raw > 0:  # subnormal ends: no round step between them
        return [low, high]
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first, last = math.floor(low / step + 1e-9), math.ceil(high / step - 1e-9)
    ticks = [round(i * step, 12) for i in range(first, last + 1)]
    return [tick for tick in ticks if math.isfinite(tick)] or [low, high]


def _number(value: float) -> str:
    return f"{value:g}"


def line_chart(
    series: dict[str, Sequence[float]],
    *,
    title: str,
    x_label: str = "epoch",
    width: int = 420,
    height: int = 240,
) -> str:
    """A line chart of one or more series over 1..N (epochs), with axes, ticks and a legend.

    Args:
        series: legend label -> values (epoch 1 first); empty series are left out.
        title: drawn above the plot and used as the SVG's accessible name.
        x_label: label of the horizontal axis.
        width: SVG width in pixels.
        height: SVG height in pixels.

    Returns:
        The ``<svg>`` element as text.
    """
    series = {name: [float(v) for v in values] for name, values in series.items() if len(values)}
    left, right, top, bottom = 48, 12, 28, 38
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [v for vs in series.values() for v in vs if math.isfinite(v)]
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    ticks = nice_ticks(low, high)
    low, high = min(ticks[0], low), max(ticks[-1], high)
    half_span = (high / 2 - low / 2) or 0.5  # halves: high - low overflows for -1e308 .. 1e308
    epochs = max((len(vs) for vs in series.values()), default=1)

    def x(i: int) -> float:
        return left + (plot_w * i / (epochs - 1) if epochs > 1 else plot_w / 2)

    def y(v: float) -> float:
        return top + plot_h * (1 - (v / 2 - low / 2) / half_span)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{escape(title)}">',
        f'<text x="{left}" y="16" {_FONT} font-weight="bold">{escape(title)}</text>',
    ]
    for tick in ticks:
        ty = y(tick)
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{ty:.1f}" y2="{ty:.1f}" stroke="#e5e5e5"/>')
        parts.append(f'<text x="{left - 6}" y="{ty + 4:.1f}" text-anchor="end" {_FONT}>{_number(tick)}</text>')
    parts.append(f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#999"/>')
    step = max(1, math.ceil(epochs / 10))
    for i in range(0, epochs, step):
        parts.append(f'<text x="{x(i):.1f}" y="{top + plot_h + 14}" text-anchor="middle" {_FONT}>{i + 1}</text>')
    parts.append(f'<text x="{left + plot_w / 2}" y="{height - 6}" text-anchor="middle" {_FONT}>{escape(x_label)}</text>')
    for number, (name, vs) in enumerate(series.items()):
        colour = PALETTE[number % len(PALETTE)]
        points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(vs) if math.isfinite(v))
        parts.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for i, v in enumerate(vs):
            if math.isfinite(v):
                parts.append(
                    f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="2.5" fill="{colour}">'
                    f"<title>{escape(name)}, epoch {i + 1}: {v:.4f}</title></circle>"
                )
        lx = left + 8 + 110 * number
        parts.append(f'<line x1="{lx}" x2="{lx + 14}" y1="{top + 10}" y2="{top + 10}" stroke="{colour}" stroke-width="2"/>')
        parts.append(f'<text x="{lx + 18}" y="{top + 14}" {_FONT}>{escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def memory_plan_chart(
    spans: Sequence[Span],
    *,
    steps: int,
    total_bytes: int,
    title: str,
    step_label: str = "operator",
    width: int = 860,
    height: int = 300,
) -> str:
    """Buffers over time: one rectangle per buffer, x = the steps it lives, y = its bytes in the arena.

    Args:
        spans: the planned buffers.
        steps: length of the time axis (operators or layers).
        total_bytes: the arena size (top of the vertical axis).
        title: drawn above the plot and used as the SVG's accessible name.
        step_label: what one step is (``operator``, ``layer``).
        width: SVG width in pixels.
        height: SVG height in pixels.

    Returns:
        The ``<svg>`` element as text.
    """
    left, right, top, bottom = 70, 12, 28, 38
    plot_w, plot_h = width - left - right, height - top - bottom
    steps = max(steps, 1)
    top_bytes = max(total_bytes, 1)
    col = plot_w / steps

    def y(offset: float) -> float:
        return top + plot_h * (1 - offset / top_bytes)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{escape(title)}">',
        f'<text x="{left}" y="16" {_FONT} font-weight="bold">{escape(title)}</text>',
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="#fafafa" stroke="#999"/>',
    ]
    for tick in nice_ticks(0, top_bytes):
        if tick > top_bytes:
            continue
        ty = y(tick)
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{ty:.1f}" y2="{ty:.1f}" stroke="#e5e5e5"/>')
        parts.append(f'<text x="{left - 6}" y="{ty + 4:.1f}" text-anchor="end" {_FONT}>{int(tick):,}</text>')
    label_every = max(1, math.ceil(steps / 30))
    for step in range(0, steps, label_every):
        parts.append(
            f'<text x="{left + col * (step + 0.5):.1f}" y="{top + plot_h + 14}" text-anchor="middle" {_FONT}>{step}</text>'
        )
    parts.append(
        f'<text x="{left + plot_w / 2}" y="{height - 6}" text-anchor="middle" {_FONT}>{escape(step_label)} '
        f"(bytes of the arena on the vertical axis)</text>"
    )
    for number, span in enumerate(spans):
        if span.size <= 0:
            continue
        colour = PALETTE[number % len(PALETTE)]
        x0 = left + col * span.first
        w = col * (span.last - span.first + 1)
        y1 = y(span.offset + span.size)
        h = max(y(span.offset) - y1, 1.0)
        tip = f"{span.label}: {span.size:,} bytes at offset {span.offset:,}, {step_label}s {span.first}..{span.last}"
        parts.append(
            f'<rect x="{x0 + 1:.1f}" y="{y1:.1f}" width="{max(w - 2, 1):.1f}" height="{h:.1f}" fill="{colour}" '
            f'fill-opacity="0.75" stroke="{colour}"><title>{escape(tip)}</title></rect>'
        )
        if h >= 12 and w >= 40:
            parts.append(
                f'<text x="{x0 + 4:.1f}" y="{y1 + 12:.1f}" {_FONT} fill="#fff">{escape(span.label[:max(3, int(w / 7))])}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)
