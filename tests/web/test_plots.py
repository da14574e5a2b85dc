"""The SVG plots: one mark per point, escaped labels, and nothing a Content-Security-Policy would refuse."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from dbkeeper.web import plots

T0 = datetime(2026, 11, 1, tzinfo=UTC)
SVG = "{http://www.w3.org/2000/svg}"


def pts(values: list[float], label: str = "b") -> list[plots.Point]:
    return [plots.Point(T0 + timedelta(hours=i), v, f"{label}{i}") for i, v in enumerate(values)]


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg.split("<ul", 1)[0])


def test_one_mark_per_point() -> None:
    assert len(parse(plots.scatter(pts([1, 2, 3]), str, "t")).findall(f"{SVG}circle")) == 3
    assert len(parse(plots.bars(pts([1, 0, 3, 4]), str, "t")).findall(f"{SVG}rect")) == 4
    svg = plots.lines({"a": pts([1, 2]), "b": pts([3])}, str, "t")
    assert len(parse(svg).findall(f"{SVG}polyline")) == 2 and svg.count("<li>") == 2


def test_no_points_say_so() -> None:
    assert "no backups to plot" in plots.scatter([], str, "t")
    assert parse(plots.bars([], str, "t")).findall(f"{SVG}rect") == []


def test_one_point_and_all_zero_values_draw_inside_the_plot() -> None:
    for svg in (plots.scatter(pts([5]), str, "t"), plots.bars(pts([0, 0]), str, "t")):
        for mark in parse(svg).iter():
            for attr in ("cx", "cy", "x", "y"):
                if attr in mark.attrib:
                    value = float(mark.attrib[attr])
                    assert 0 <= value <= max(plots.WIDTH, plots.HEIGHT)


@given(st.text(max_size=40), st.lists(st.floats(min_value=0, max_value=1e15), min_size=1, max_size=20))
def test_any_label_is_escaped_and_the_svg_parses(label: str, values: list[float]) -> None:
    label = "".join(c for c in label if c.isprintable())
    svg = plots.lines({label: pts(values, label)}, lambda v: f"{v:.0f}", label)
    root = parse(svg)
    assert len(root.findall(f"{SVG}polyline")) == 1
    assert "style=" not in svg and "<script" not in svg.lower()
    assert not re.search(r"\bon[a-z]+=", svg.split("<title>")[0])
