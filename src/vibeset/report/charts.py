"""Hand-written SVG charts for the report: a few KB each, no plotting dependency, no fonts embedded.

Every label passes through ``html.escape``, so attribute names, run ids and titles can never
inject markup into the document. Colours come from CSS classes (``s0``..``s7``) so the report
and the web UI share one palette and print well.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape
from typing import Mapping, Sequence

SERIES = 8  # CSS classes s0..s7


@dataclass(frozen=True)
class Bar:
    """One bar: a value and an optional 95% interval."""

    value: float
    low: float | None = None
    high: float | None = None


def _finite(x: float | None) -> bool:
    return x is not None and isinstance(x, (int, float)) and math.isfinite(x)


def _fmt(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".") if abs(x - round(x, 1)) < 1e-9 else f"{x:.2f}"


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    span = high - low
    if span <= 0:
        return [low]
    raw = span / count
    step = 10 ** math.floor(math.log10(raw))
    for mult in (1, 2, 2.5, 5, 10):
        if raw <= mult * step:
            step *= mult
            break
    first = math.ceil(low / step) * step
    return [round(first + i * step, 10) for i in range(int((high - first) / step + 1e-9) + 1)]


def _colour(palette: Mapping[str, int] | None, name: str, position: int) -> int:
    return (palette or {}).get(name, position) % SERIES


def _legend(names: Sequence[str], x: float, y: float, palette: Mapping[str, int] | None = None) -> list[str]:
    parts, offset = [], 0.0
    for i, name in enumerate(names):
        parts.append(f'<rect class="s{_colour(palette, name, i)}" x="{x + offset:.1f}" y="{y - 9}" width="10" height="10"/>')
        parts.append(f'<text x="{x + offset + 14:.1f}" y="{y}">{escape(name)}</text>')
        offset += 24 + 6.5 * len(name)
    return parts


def _open(width: float, height: float, title: str) -> list[str]:
    return [
        f'<svg class="chart" viewBox="0 0 {width:.0f} {height:.0f}" '
        f'width="{width:.0f}" height="{height:.0f}" role="img">',
        f"<title>{escape(title)}</title>",
    ]


def bar_chart(
    categories: Sequence[str],
    series: dict[str, Sequence[Bar | None]],
    *,
    title: str,
    axis: str,
    domain: tuple[float, float] | None = None,
    width: int = 760,
    palette: Mapping[str, int] | None = None,
    muted: Sequence[bool] | None = None,
) -> str:
    """Horizontal grouped bars, one row per category, one bar per series, with CI whiskers.

    ``domain`` defaults to the data's range including 0 and every interval end; ``palette``
    maps a series name to its colour index so one annotator keeps its colour across charts;
    rows flagged in ``muted`` are drawn grey (too few observations to read).
    """
    names = list(series)
    values = [b for bars in series.values() for b in bars if b is not None and _finite(b.value)]
    if domain is None:
        ends = [0.0] + [x for b in values for x in (b.value, b.low, b.high) if _finite(x)]
        low, high = min(ends), max(ends)
        domain = (low, high if high > low else low + 1.0)
    low, high = domain
    label_w = min(max(80, 6.2 * max((len(c) for c in categories), default=0) + 12), 320)
    bar_h, gap, top = 7 if len(names) > 1 else 12, 8, 34
    row_h = bar_h * len(names) + gap
    plot_w = width - label_w - 20
    height = top + row_h * len(categories) + 30

    def sx(x: float) -> float:
        return label_w + (min(max(x, low), high) - low) / (high - low) * plot_w

    out = _open(width, height, title)
    out += _legend(names, label_w, 14, palette)
    for tick in _ticks(low, high):
        x = sx(tick)
        out.append(f'<line class="grid" x1="{x:.1f}" y1="{top - 6}" x2="{x:.1f}" y2="{height - 24}"/>')
        out.append(f'<text class="tick" x="{x:.1f}" y="{height - 10}" text-anchor="middle">{_fmt(tick)}</text>')
    if low < 0 < high:
        out.append(f'<line class="zero" x1="{sx(0):.1f}" y1="{top - 6}" x2="{sx(0):.1f}" y2="{height - 24}"/>')
    out.append(f'<text class="axis" x="{width - 20}" y="14" text-anchor="end">{escape(axis)}</text>')
    for row, category in enumerate(categories):
        y0 = top + row * row_h
        grey = bool(muted and muted[row])
        out.append('<g class="muted">' if grey else "<g>")
        out.append(f'<text x="{label_w - 6}" y="{y0 + row_h / 2 + 1:.1f}" text-anchor="end">{escape(category)}</text>')
        for i, name in enumerate(names):
            bar = series[name][row]
            if bar is None or not _finite(bar.value):
                continue
            y = y0 + i * bar_h
            x0, x1 = sorted((sx(0.0 if low <= 0 <= high else low), sx(bar.value)))
            tip = f"{category} / {name}: {bar.value:.3f}"
            if _finite(bar.low) and _finite(bar.high):
                tip += f" [{bar.low:.3f}, {bar.high:.3f}]"
            out.append(
                f'<rect class="s{_colour(palette, name, i)}" x="{x0:.1f}" y="{y:.1f}" width="{max(x1 - x0, 0.5):.1f}" '
                f'height="{bar_h - 1}"><title>{escape(tip)}</title></rect>'
            )
            if _finite(bar.low) and _finite(bar.high):
                mid = y + (bar_h - 1) / 2
                a, b = sx(bar.low), sx(bar.high)  # type: ignore[arg-type]
                out.append(
                    f'<path class="ci" d="M{a:.1f} {mid:.1f}H{b:.1f}M{a:.1f} {mid - 2.5:.1f}v5M{b:.1f} {mid - 2.5:.1f}v5"/>'
                )
        out.append("</g>")
    out.append("</svg>")
    return "".join(out)


def line_chart(
    lines: dict[str, tuple[Sequence[float], Sequence[float]]],
    *,
    title: str,
    x_axis: str,
    y_axis: str,
    points: dict[str, tuple[float, float]] | None = None,
    baseline: float | None = None,
    size: tuple[int, int] = (380, 300),
    legend: bool = True,
    palette: Mapping[str, int] | None = None,
) -> str:
    """Lines (and single operating points) on the unit square, e.g. precision-recall curves.

    Colours follow ``palette`` by name, else position (lines first, then points).
    """
    width, height = size
    left, right, top, bottom = 40, 10, 26 if legend else 10, 34
    plot_w, plot_h = width - left - right, height - top - bottom

    def sx(x: float) -> float:
        return left + min(max(x, 0.0), 1.0) * plot_w

    def sy(y: float) -> float:
        return top + (1.0 - min(max(y, 0.0), 1.0)) * plot_h

    out = _open(width, height, title)
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        out.append(f'<line class="grid" x1="{sx(tick):.1f}" y1="{top}" x2="{sx(tick):.1f}" y2="{top + plot_h}"/>')
        out.append(f'<line class="grid" x1="{left}" y1="{sy(tick):.1f}" x2="{left + plot_w}" y2="{sy(tick):.1f}"/>')
        out.append(f'<text class="tick" x="{sx(tick):.1f}" y="{top + plot_h + 13}" text-anchor="middle">{_fmt(tick)}</text>')
        out.append(f'<text class="tick" x="{left - 4}" y="{sy(tick) + 3:.1f}" text-anchor="end">{_fmt(tick)}</text>')
    out.append(f'<text class="axis" x="{left + plot_w / 2:.1f}" y="{height - 4}" text-anchor="middle">{escape(x_axis)}</text>')
    out.append(
        f'<text class="axis" x="10" y="{top + plot_h / 2:.1f}" text-anchor="middle" '
        f'transform="rotate(-90 10 {top + plot_h / 2:.1f})">{escape(y_axis)}</text>'
    )
    if _finite(baseline):
        out.append(
            f'<line class="baseline" x1="{left}" y1="{sy(baseline):.1f}" x2="{left + plot_w}" y2="{sy(baseline):.1f}">'  # type: ignore[arg-type]
            f"<title>prevalence {baseline:.3f}</title></line>"
        )
    names = list(lines) + list(points or {})
    for i, (name, (xs, ys)) in enumerate(lines.items()):
        d = " ".join(f"{'M' if j == 0 else 'L'}{sx(x):.1f} {sy(y):.1f}" for j, (x, y) in enumerate(zip(xs, ys)))
        if d:
            out.append(f'<path class="line l{_colour(palette, name, i)}" d="{d}"><title>{escape(name)}</title></path>')
    for i, (name, (x, y)) in enumerate((points or {}).items(), start=len(lines)):
        if _finite(x) and _finite(y):
            out.append(
                f'<circle class="s{_colour(palette, name, i)}" cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="4">'
                f"<title>{escape(f'{name}: recall {x:.3f}, precision {y:.3f}')}</title></circle>"
            )
    if legend:
        out += _legend(names, left, 14, palette)
    out.append("</svg>")
    return "".join(out)
