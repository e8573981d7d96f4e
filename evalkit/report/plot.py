"""Inline SVG plots (no plotting library, no scripts, nothing fetched): one row of the card
across a series of checkpoints, with its 95% interval as error bars.

The SVG is written into the HTML as markup, so every piece of text in it is escaped here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from markupsafe import Markup, escape

_W, _H = 300, 170
_LEFT, _RIGHT, _TOP, _BOTTOM = 44, 12, 22, 28
_XPAD = 14  # keeps the first and last points (and their error bars) off the axes
_COLOURS = {"worse": "#cf222e", "better": "#1a7f37", "same": "#0969da"}


@dataclass(frozen=True)
class Point:
    """One checkpoint's value of a row; ``state``: same | worse | better (significant change
    against the first run), ``tip``: the hover text."""

    x_label: str
    value: float | None
    ci: float | None
    state: str = "same"
    tip: str = ""
    x: float | None = None  # position on a numeric axis (a training step); None = evenly spaced


def series_svg(title: str, points: list[Point], reference: float | None = None, baseline: float | None = None) -> Markup:
    """A small line plot of ``points`` in order; ``reference`` draws a dashed line (the card),
    ``baseline`` a solid one (the run every point is compared with)."""
    vals = [(p.value, p.ci or 0.0) for p in points if p.value is not None and not math.isnan(p.value)]
    if not vals:
        return Markup("")
    lo = min([v - c for v, c in vals] + ([baseline] if baseline is not None else []))
    hi = max([v + c for v, c in vals] + ([baseline] if baseline is not None else []))
    if reference is not None and lo - 25 <= reference <= hi + 25:  # only when it does not squash the data
        lo, hi = min(lo, reference), max(hi, reference)
    if hi - lo < 1e-9:
        lo, hi = lo - 1, hi + 1
    pad = (hi - lo) * 0.08
    lo, hi = lo - pad, hi + pad
    pw, ph = _W - _LEFT - _RIGHT, _H - _TOP - _BOTTOM

    inner = pw - 2 * _XPAD
    xs = [p.x for p in points]
    numeric = all(v is not None for v in xs) and len(set(xs)) > 1

    def x(i: int) -> float:
        if numeric:
            return _LEFT + _XPAD + inner * (xs[i] - min(xs)) / (max(xs) - min(xs))  # type: ignore[operator]
        return _LEFT + _XPAD + (inner * i / (len(points) - 1) if len(points) > 1 else inner / 2)

    def y(v: float) -> float:
        return _TOP + ph * (1 - (v - lo) / (hi - lo))

    parts = [f'<svg class="series" role="img" width="{_W}" height="{_H}" viewBox="0 0 {_W} {_H}">',
             f"<title>{escape(title)}</title>",
             f'<text x="{_LEFT}" y="14" class="t">{escape(title)}</text>',
             f'<line x1="{_LEFT}" y1="{_TOP}" x2="{_LEFT}" y2="{_TOP + ph}" class="axis"/>',
             f'<line x1="{_LEFT}" y1="{_TOP + ph}" x2="{_LEFT + pw}" y2="{_TOP + ph}" class="axis"/>']
    for v in (lo + pad, (lo + hi) / 2, hi - pad):
        parts.append(f'<text x="{_LEFT - 4}" y="{y(v) + 3:.1f}" class="tick" text-anchor="end">{v:.1f}</text>')
        parts.append(f'<line x1="{_LEFT}" y1="{y(v):.1f}" x2="{_LEFT + pw}" y2="{y(v):.1f}" class="grid"/>')
    if reference is not None and lo <= reference <= hi:
        parts.append(f'<line x1="{_LEFT}" y1="{y(reference):.1f}" x2="{_LEFT + pw}" y2="{y(reference):.1f}" class="ref">'
                     f"<title>card: {reference:.2f}</title></line>")
    if baseline is not None:
        parts.append(f'<line x1="{_LEFT}" y1="{y(baseline):.1f}" x2="{_LEFT + pw}" y2="{y(baseline):.1f}" class="base">'
                     f"<title>baseline: {baseline:.2f}</title></line>")
    line = [f"{x(i):.1f},{y(p.value):.1f}" for i, p in enumerate(points) if p.value is not None and not math.isnan(p.value)]
    if len(line) > 1:
        parts.append(f'<polyline points="{" ".join(line)}" class="line"/>')
    for i, p in enumerate(points):
        parts.append(f'<text x="{x(i):.1f}" y="{_H - 10}" class="tick" text-anchor="middle">{escape(p.x_label)}</text>')
        if p.value is None or math.isnan(p.value):
            continue
        colour = _COLOURS.get(p.state, _COLOURS["same"])
        if p.ci:
            parts.append(f'<line x1="{x(i):.1f}" y1="{y(p.value - p.ci):.1f}" x2="{x(i):.1f}" '
                         f'y2="{y(p.value + p.ci):.1f}" stroke="{colour}" class="err"/>')
        parts.append(f'<circle cx="{x(i):.1f}" cy="{y(p.value):.1f}" r="4" fill="{colour}" data-state="{p.state}">'
                     f"<title>{escape(p.tip)}</title></circle>")
    parts.append("</svg>")
    return Markup("".join(parts))
