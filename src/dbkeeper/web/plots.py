"""SVG charts rendered on the server: no script, no external file, so a page reads the same offline and in any
browser. Each backup is one mark (``<circle class="point">`` or ``<rect class="bar">``) with a ``<title>``
that a browser shows on hover; a line chart draws one ``<polyline class="line">`` per series.

Colours and fonts come from the page's style sheet (classes only): the dashboard's Content-Security-Policy
allows no inline style.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape

WIDTH, HEIGHT = 720, 200
LEFT, RIGHT, TOP, BOTTOM = 64, 12, 12, 28
LINE_CLASSES = 6  # .line-0 … .line-5 in the style sheet


@dataclass(frozen=True)
class Point:
    when: datetime
    value: float
    label: str  # what the mark's tooltip says (the backup's name)


Format = Callable[[float], str]


def scatter(points: Sequence[Point], fmt: Format, title: str) -> str:
    """One dot per point over time (the size trend)."""
    return _chart(title, [points], fmt, _dots)


def bars(points: Sequence[Point], fmt: Format, title: str) -> str:
    """One bar per point over time (the duration of each backup)."""
    return _chart(title, [points], fmt, _bars)


def lines(series: Mapping[str, Sequence[Point]], fmt: Format, title: str) -> str:
    """One line per named series over time (the rows of the biggest tables), with a legend."""
    names = list(series)
    svg = _chart(title, [series[n] for n in names], fmt, _polylines)
    legend = "".join(
        f'<li><span class="swatch line-{i % LINE_CLASSES}"></span>{escape(name)}</li>' for i, name in enumerate(names)
    )
    return svg + (f'<ul class="legend">{legend}</ul>' if names else "")


Marks = Callable[[list[Sequence[Point]], Callable[[datetime], float], Callable[[float], float], Format], str]


def _chart(title: str, groups: list[Sequence[Point]], fmt: Format, marks: Marks) -> str:
    every = [p for g in groups for p in g]
    head = (
        f'<svg class="plot" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img"'
        f' aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
    )
    if not every:
        return head + f'<text class="empty" x="{WIDTH / 2}" y="{HEIGHT / 2}">no backups to plot</text></svg>'
    t0 = min(p.when for p in every).timestamp()
    t1 = max(p.when for p in every).timestamp()
    top = max(p.value for p in every) or 1.0
    span = (t1 - t0) or 1.0
    inner_w, inner_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(when: datetime) -> float:
        if t1 == t0:
            return LEFT + inner_w / 2
        return LEFT + (when.timestamp() - t0) / span * inner_w

    def y(value: float) -> float:
        return TOP + inner_h - max(value, 0.0) / top * inner_h

    axes = [f'<line class="axis" x1="{LEFT}" y1="{TOP + inner_h}" x2="{WIDTH - RIGHT}" y2="{TOP + inner_h}"/>']
    for i in range(1, 5):
        value = top * i / 4
        gy = y(value)
        axes.append(f'<line class="grid" x1="{LEFT}" y1="{gy:.1f}" x2="{WIDTH - RIGHT}" y2="{gy:.1f}"/>')
        axes.append(f'<text class="tick" x="{LEFT - 6}" y="{gy + 4:.1f}" text-anchor="end">{escape(fmt(value))}</text>')
    first, last = min(p.when for p in every), max(p.when for p in every)
    axes.append(f'<text class="tick" x="{LEFT}" y="{HEIGHT - 8}">{first:%Y-%m-%d %H:%M}</text>')
    if last != first:
        axes.append(
            f'<text class="tick" x="{WIDTH - RIGHT}" y="{HEIGHT - 8}" text-anchor="end">{last:%Y-%m-%d %H:%M}</text>'
        )
    return head + "".join(axes) + marks(groups, x, y, fmt) + "</svg>"


def _tip(p: Point, fmt: Format) -> str:
    return f"<title>{escape(p.label)}: {escape(fmt(p.value))}</title>"


def _dots(
    groups: list[Sequence[Point]], x: Callable[[datetime], float], y: Callable[[float], float], fmt: Format
) -> str:
    return "".join(
        f'<circle class="point" cx="{x(p.when):.1f}" cy="{y(p.value):.1f}" r="3">{_tip(p, fmt)}</circle>'
        for g in groups
        for p in g
    )


def _bars(
    groups: list[Sequence[Point]], x: Callable[[datetime], float], y: Callable[[float], float], fmt: Format
) -> str:
    count = sum(len(g) for g in groups)
    width = max(1.0, min(12.0, (WIDTH - LEFT - RIGHT) / max(count, 1) * 0.8))
    base = y(0.0)
    out = []
    for g in groups:
        for p in g:
            top = y(p.value)
            out.append(
                f'<rect class="bar" x="{x(p.when) - width / 2:.1f}" y="{top:.1f}" width="{width:.1f}"'
                f' height="{max(base - top, 0.5):.1f}">{_tip(p, fmt)}</rect>'
            )
    return "".join(out)


def _polylines(
    groups: list[Sequence[Point]], x: Callable[[datetime], float], y: Callable[[float], float], fmt: Format
) -> str:
    out = []
    for i, g in enumerate(groups):
        coords = " ".join(f"{x(p.when):.1f},{y(p.value):.1f}" for p in g)
        out.append(f'<polyline class="line line-{i % LINE_CLASSES}" points="{coords}"/>')
    return "".join(out)
