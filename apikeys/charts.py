"""The geometry of the key detail page's requests-per-day chart, drawn by the template as inline
SVG: no chart library, and nothing the Content Security Policy forbids (no `style=`, no script;
colours come from classes in static/css/app.css).

Coordinates are in the SVG's own units (its `viewBox`); the CSS scales the whole drawing to the
page's width. Numbers are formatted here, not by the template, so localisation never turns
`12.5` into `12,5` inside an attribute.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

WIDTH = 640
HEIGHT = 180
LEFT = 44  # room for the peak's label
RIGHT = 8
TOP = 12
BOTTOM = 24  # room for the date labels
PLOT_WIDTH = WIDTH - LEFT - RIGHT
PLOT_HEIGHT = HEIGHT - TOP - BOTTOM
BAR_SHARE = 0.7  # of each day's slot; the rest is the gap between bars
MIN_BAR = 1.0  # a day with requests stays visible next to a much busier one


def _num(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


@dataclass(frozen=True, slots=True)
class Bar:
    day: date
    count: int
    x: str
    y: str
    width: str
    height: str


@dataclass(frozen=True, slots=True)
class Label:
    text: str
    x: str
    anchor: str  # SVG text-anchor: start, middle or end


@dataclass(frozen=True, slots=True)
class DailyBarChart:
    bars: list[Bar]
    date_labels: list[Label]
    peak: int
    total: int
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    right: int = WIDTH - RIGHT
    top: int = TOP
    baseline: int = HEIGHT - BOTTOM

    @property
    def busiest(self) -> Bar | None:
        return max(self.bars, key=lambda bar: bar.count) if self.total else None


def daily_bar_chart(days: list[tuple[date, int]]) -> DailyBarChart:
    """One bar per day, oldest on the left; the busiest day reaches the top of the plot and every
    other bar is in proportion to it (at least `MIN_BAR` high when it had any request)."""
    peak = max((count for _day, count in days), default=0)
    slot = PLOT_WIDTH / max(len(days), 1)
    bar_width = slot * BAR_SHARE
    baseline = HEIGHT - BOTTOM
    bars = []
    for index, (day, count) in enumerate(days):
        height = PLOT_HEIGHT * count / peak if peak else 0.0
        if count:
            height = max(height, MIN_BAR)
        x = LEFT + index * slot + (slot - bar_width) / 2
        bars.append(
            Bar(day=day, count=count, x=_num(x), y=_num(baseline - height),
                width=_num(bar_width), height=_num(height))
        )
    # The first, middle and last days under the axis, aligned so none runs off the drawing.
    labels = []
    if days:
        last = len(days) - 1
        for index, anchor in sorted({0: "start", last // 2: "middle", last: "end"}.items()):
            day = days[index][0]
            edge = {"start": 0.0, "middle": 0.5, "end": 1.0}[anchor]
            labels.append(
                Label(text=f"{day:%b} {day.day}", x=_num(LEFT + (index + edge) * slot),
                      anchor=anchor)
            )
    return DailyBarChart(
        bars=bars, date_labels=labels, peak=peak, total=sum(count for _day, count in days)
    )
