"""Measure and lay out the time-course figure: pure functions, no drawing.

Everything the figure needs to know before a line is drawn is computed here from numbers:
time units and tick labels on the log time axis, the y range (capped, with what runs beyond
it marked by arrows), marker sizes from study weights, the figure and axes geometry in points,
and the placement of the onset/peak/duration labels so that they collide with nothing. Text
extents are estimated from the number of characters (DejaVu Sans: mean advance about 0.6 em,
:data:`CHAR_EM`), so all of it is testable without a renderer; the tests check the drawn result
with the real renderer's bounding boxes.

Times are hours throughout; a display unit only changes tick positions and labels.
"""

from __future__ import annotations

import math
import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from timecourse_meta.schema import TIME_UNIT_HOURS, TIME_UNIT_SYMBOLS

__all__ = [
    "TIME_UNITS",
    "UNIT_HOURS",
    "Box",
    "Geometry",
    "dodged",
    "format_time",
    "format_timepoint",
    "geometry",
    "leader",
    "log_x_pt",
    "marker_areas",
    "place_labels",
    "room_around",
    "text_box",
    "time_axis_label",
    "time_ticks",
    "x_limits",
    "y_limits",
]

#: Hours per display unit: the package's one table (schema.TIME_UNIT_HOURS; a month is a
#: twelfth of a Julian year, 365.25 d / 12 = 30.4375 d).
UNIT_HOURS: dict[str, float] = TIME_UNIT_HOURS
UNIT_SYMBOL = TIME_UNIT_SYMBOLS
#: 'auto' labels times under 48 h in hours (under 1 h in minutes) and longer times in days.
TIME_UNITS = ("auto", *UNIT_HOURS)

CHAR_EM = 0.6  # mean advance of a DejaVu Sans character, in em (estimate for layout)
CAP_WIDTHS = 1.0  # y axis cap: this many estimate ranges beyond the estimates
X_MARGIN = 1.6  # the time axis runs from the first time / X_MARGIN to the last * X_MARGIN
DODGE = 0.014  # horizontal dodge between series drawn at one time, fraction of the log range

# Candidate tick values per unit with a rank (1 = always preferred, 3 = only if room).
_NICE: dict[str, dict[float, int]] = {
    "minutes": {1: 1, 2: 2, 5: 2, 10: 1, 15: 3, 20: 3, 30: 2, 60: 1, 120: 2, 240: 3, 480: 3},
    "hours": {1: 1, 2: 2, 4: 2, 6: 3, 8: 3, 12: 2, 24: 1, 48: 2, 72: 3, 168: 1, 336: 2, 720: 2},
    "days": {1: 1, 2: 2, 3: 3, 5: 3, 7: 1, 14: 2, 21: 3, 28: 2, 56: 3, 90: 2, 180: 2, 365: 1},
    "weeks": {1: 1, 2: 2, 3: 3, 4: 2, 6: 3, 8: 2, 12: 2, 16: 3, 26: 2, 52: 1},
    "months": {1: 1, 2: 2, 3: 2, 6: 2, 9: 3, 12: 1, 18: 3, 24: 2, 36: 3},
}
# 'auto': (hours, rank) -- minutes under 1 h, hours under 48 h, days from 2 d
_AUTO: dict[float, int] = {
    5 / 60: 2, 10 / 60: 3, 15 / 60: 2, 30 / 60: 1, 1: 1, 2: 2, 4: 2, 6: 3, 8: 3, 12: 2, 24: 1,
    48: 2, 72: 2, 120: 3, 168: 1, 336: 2, 504: 3, 672: 1, 1344: 2, 2160: 2, 4320: 1, 8766: 1,
}  # fmt: skip


def format_timepoint(label: object, hours: float | None = None) -> str:
    """'4h' -> '4 h', '3d' -> '3 d', '14 d' stays; unlabelled hours: '< 48 h' in h, else d."""
    if isinstance(label, str) and label.strip():
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]+)\s*", label)
        return f"{m.group(1)} {m.group(2)}" if m else label.strip()
    if hours is None or not math.isfinite(hours):
        return "?"
    return f"{hours:g} h" if hours < 48 else f"{hours / 24:g} d"


def _check_unit(unit: str) -> None:
    if unit not in TIME_UNITS:
        raise ValueError(f"time_unit {unit!r} is not one of {list(TIME_UNITS)}")


def _num(v: float, digits: int | None) -> str:
    if digits is None:
        return f"{v:g}"
    return f"{float(f'{v:.{digits}g}'):g}"


def format_time(hours: float, unit: str = "auto", digits: int | None = None) -> str:
    """A time in hours shown in the display unit: '4 h', '3 d', '2 wk'; ``digits``: significant.

    'auto': minutes under 1 h, hours under 48 h, days from 48 h on (as the window labels).
    """
    _check_unit(unit)
    if not math.isfinite(hours):
        return "?"
    if unit == "auto":
        if hours < 1.0 - 1e-9:
            unit = "minutes"
        elif hours < 48.0 - 1e-9:
            unit = "hours"
        else:
            unit = "days"
    return f"{_num(hours / UNIT_HOURS[unit], digits)} {UNIT_SYMBOL[unit]}"


def time_axis_label(unit: str, text: str = "Time after dose") -> str:
    """Axis title: the unit is named unless the labels mix hours and days ('auto')."""
    _check_unit(unit)
    return f"{text} (log scale)" if unit == "auto" else f"{text}, {unit} (log scale)"


def text_width_pt(text: str, size_pt: float) -> float:
    """Estimated width of one line of text in points (longest line if several)."""
    return CHAR_EM * size_pt * max((len(s) for s in text.split("\n")), default=0)


def _candidates(lo_h: float, hi_h: float, unit: str) -> list[tuple[float, int]]:
    """(hours, rank) of the nice tick values of ``unit`` within [lo_h, hi_h]."""
    if unit == "auto":
        nice = dict(_AUTO)
        scale = 1.0
    else:
        nice = dict(_NICE[unit])
        scale = UNIT_HOURS[unit]
    # beyond the listed values: 1-2-5 steps over the decades (rank 1 for powers of ten)
    first, last = min(nice), max(nice)
    for e in range(-4, 7):
        for m, r in ((1, 1), (2, 2), (5, 2)):
            v = m * 10.0**e
            if v < first or v > last:
                nice.setdefault(v, r)
    out = [(v * scale, r) for v, r in nice.items() if lo_h <= v * scale <= hi_h]
    return sorted(out)


def time_ticks(
    lo_h: float,
    hi_h: float,
    unit: str = "auto",
    *,
    axis_width_pt: float,
    font_pt: float,
    gap_pt: float = 6.0,
) -> list[tuple[float, str]]:
    """Ticks (hours, label) on a log axis over [lo_h, hi_h] whose labels do not collide.

    The finest rank of nice values (:data:`_NICE`) whose labels, estimated by
    :func:`text_width_pt`, keep ``gap_pt`` apart is used; with too little room, a greedy pick
    from the preferred values. At least the two ends' nearest nice values are kept if they fit.
    """
    _check_unit(unit)
    if not (0 < lo_h < hi_h):
        raise ValueError(f"time range must satisfy 0 < low < high, got {lo_h}, {hi_h}")
    cand = _candidates(lo_h, hi_h, unit)
    span = math.log(hi_h / lo_h)

    def pos(h: float) -> float:
        return math.log(h / lo_h) / span * axis_width_pt

    def fits(ticks: list[tuple[float, str]]) -> bool:
        for (h1, s1), (h2, s2) in zip(ticks, ticks[1:], strict=False):
            need = (text_width_pt(s1, font_pt) + text_width_pt(s2, font_pt)) / 2 + gap_pt
            if pos(h2) - pos(h1) < need:
                return False
        return True

    for rank in (3, 2, 1):
        ticks = [(h, format_time(h, unit)) for h, r in cand if r <= rank]
        if len(ticks) >= 2 and fits(ticks):
            return ticks
    picked: list[tuple[float, str]] = []  # greedy: preferred values first, left to right
    for h, _ in sorted(cand, key=lambda c: (c[1], c[0])):
        trial = sorted([*picked, (h, format_time(h, unit))])
        if fits(trial):
            picked = trial
    return picked


def x_limits(hours: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """Time-axis range: the finite positive times widened by :data:`X_MARGIN` on each side."""
    h = np.asarray(hours, dtype=float)
    h = h[np.isfinite(h) & (h > 0)]
    if h.size == 0:
        raise ValueError("no positive finite time to place on the log time axis")
    return float(h.min()) / X_MARGIN, float(h.max()) * X_MARGIN


def dodged(
    hours: Sequence[float] | np.ndarray, xlim: tuple[float, float], *, direction: int = -1
) -> np.ndarray:
    """Positions that keep series at the same time apart: the n-th at one time moves n steps.

    One step is :data:`DODGE` of the log10 time range; ``direction`` -1 moves left. The first
    series at a time moves one step too (the pooled estimate itself stays on the time).
    """
    h = np.asarray(hours, dtype=float)
    slot = np.zeros(h.size)
    seen: dict[float, int] = {}
    for i, v in enumerate(h):
        seen[v] = seen.get(v, 0) + 1
        slot[i] = seen[v]
    step = DODGE * math.log10(xlim[1] / xlim[0])
    return h * 10.0 ** (direction * step * slot)


def y_limits(
    core: Sequence[float] | np.ndarray,
    extent: Sequence[float] | np.ndarray,
    *,
    null: float = 0.0,
    bottom_band: float = 0.0,
    pad_fraction: float = 0.06,
) -> tuple[float, float, float]:
    """(ymin, ymax, data_low): y range around the estimates and as much of their CIs as fits.

    ``core``: the estimates (points and curve); ``extent``: every value that should be seen
    (CI ends). The range spans core, extent and the null, but extent is cut at
    :data:`CAP_WIDTHS` core ranges (at least 0.5) beyond the core: an interval from very few
    studies (Knapp-Hartung with k = 2) can be many times wider than everything else and would
    flatten the plot; what runs beyond is marked with arrows. A pad of ``pad_fraction`` is added
    and ``bottom_band`` (fraction of the height) kept free below ``data_low`` for labels.
    """
    c = np.asarray(core, dtype=float)
    c = np.append(c[np.isfinite(c)], null)
    e = np.asarray(extent, dtype=float)
    e = np.concatenate([e[np.isfinite(e)], c])
    width = max(float(c.max() - c.min()), 0.5)
    lo = max(float(e.min()), float(c.min()) - CAP_WIDTHS * width)
    hi = min(float(e.max()), float(c.max()) + CAP_WIDTHS * width)
    pad = pad_fraction * max(hi - lo, 0.5)
    top = hi + pad
    data_low = lo - pad
    total = (top - data_low) / (1.0 - bottom_band)
    return top - total, top, data_low


def room_around(
    ymin: float, ymax: float, null: float, height_pt: float, up_pt: float, down_pt: float
) -> tuple[float, float]:
    """Widen (ymin, ymax) until ``up_pt`` points fit above ``null`` and ``down_pt`` below it.

    The 'favours' labels run along the y axis from the null line outwards; each side of the
    null must be at least as tall as its label. Solving (ymax - null) / (ymax - ymin) >= a with
    a = up_pt / height_pt for ymax gives ymax = (null - a ymin) / (1 - a), likewise for ymin;
    a few alternating passes settle both. Unchanged if the labels cannot fit (a + b >= 1).
    """
    a, b = up_pt / height_pt, down_pt / height_pt
    if a + b >= 1.0:
        return ymin, ymax
    for _ in range(20):
        if (ymax - null) < a * (ymax - ymin) - 1e-12:
            ymax = (null - a * ymin) / (1.0 - a)
        if (null - ymin) < b * (ymax - ymin) - 1e-12:
            ymin = (null - b * ymax) / (1.0 - b)
    return ymin, ymax


def marker_areas(
    vi: Sequence[float] | np.ndarray, *, largest: float = 80.0, smallest: float = 6.0
) -> np.ndarray:
    """Marker areas (pt^2) proportional to the inverse-variance weight 1/vi.

    The largest weight gets ``largest``; areas stay proportional to weight but never fall below
    ``smallest`` (so that a tiny study remains visible). Non-finite or non-positive vi: NaN.
    """
    v = np.asarray(vi, dtype=float)
    w = np.where(np.isfinite(v) & (v > 0), 1.0 / np.where(v > 0, v, np.nan), np.nan)
    if not np.isfinite(w).any():
        return np.full(v.shape, np.nan)
    return np.maximum(largest * w / np.nanmax(w), smallest)


@dataclass(frozen=True)
class Box:
    """Axis-aligned box in points (figure coordinates, origin bottom left)."""

    x0: float
    y0: float
    x1: float
    y1: float

    def overlaps(self, other: Box, tol: float = 0.0) -> bool:
        return (min(self.x1, other.x1) - max(self.x0, other.x0) > tol) and (
            min(self.y1, other.y1) - max(self.y0, other.y0) > tol
        )

    def inside(self, other: Box) -> bool:
        return (
            self.x0 >= other.x0
            and self.y0 >= other.y0
            and self.x1 <= other.x1
            and self.y1 <= other.y1
        )


def text_box(x: float, y: float, text: str, size_pt: float, ha: str, va: str) -> Box:
    """Estimated box of ``text`` anchored at (x, y) points with the given alignment."""
    w = text_width_pt(text, size_pt)
    h = 1.25 * size_pt * (text.count("\n") + 1)
    x0 = {"left": x, "center": x - w / 2, "right": x - w}[ha]
    y0 = {"bottom": y, "center": y - h / 2, "top": y - h}[va]
    return Box(x0, y0, x0 + w, y0 + h)


# (dx, dy, ha, va) in units of the offset distance: where a label may go around its anchor
_SPOTS = (
    (1, 1, "left", "bottom"),
    (-1, 1, "right", "bottom"),
    (1, -1, "left", "top"),
    (-1, -1, "right", "top"),
    (0, 1.4, "center", "bottom"),
    (0, -1.4, "center", "top"),
    (1.4, 0, "left", "center"),
    (-1.4, 0, "right", "center"),
)


def place_labels(
    anchors: Sequence[tuple[float, float]],
    texts: Sequence[str],
    *,
    size_pt: float,
    bounds: Box,
    obstacles: Sequence[Box] = (),
    distance: float = 5.0,
) -> list[tuple[float, float, str, str]]:
    """Positions (x, y, ha, va), in points, for labels next to their anchor points.

    Greedy, in the given order: the first spot of :data:`_SPOTS` (at ``distance`` and, failing
    that, 2, 3, 4.5 and 6 times as far) whose box stays within ``bounds`` and overlaps neither an
    obstacle nor a label placed before. If none is free, the spot with the least overlap.
    """
    placed: list[Box] = []
    out: list[tuple[float, float, str, str]] = []
    for (ax, ay), text in zip(anchors, texts, strict=True):
        best: tuple[float, tuple[float, float, str, str], Box] | None = None
        for mult in (1.0, 2.0, 3.0, 4.5, 6.0):
            for dx, dy, ha, va in _SPOTS:
                x, y = ax + dx * distance * mult, ay + dy * distance * mult
                b = text_box(x, y, text, size_pt, ha, va)
                if not b.inside(bounds):
                    continue
                cost = sum(_overlap_area(b, o) for o in (*obstacles, *placed))
                if best is None or cost < best[0]:
                    best = (cost, (x, y, ha, va), b)
                if cost == 0:
                    break
            if best is not None and best[0] == 0:
                break
        if best is None:  # nothing fits inside: right of the anchor, clamped by the caller
            x, y = ax + distance, ay + distance
            best = (0.0, (x, y, "left", "bottom"), text_box(x, y, text, size_pt, "left", "bottom"))
        out.append(best[1])
        placed.append(best[2])
    return out


def leader(
    anchor: tuple[float, float], box: Box, min_length: float
) -> tuple[float, float, float, float] | None:
    """Line (x0, y0, x1, y1) from ``anchor`` to the nearest point of ``box``, if that is far.

    A label pushed away from its marker by obstacles is tied back to it; labels within
    ``min_length`` points need no line (None).
    """
    ax, ay = anchor
    nx, ny = min(max(ax, box.x0), box.x1), min(max(ay, box.y0), box.y1)
    if math.hypot(nx - ax, ny - ay) <= min_length:
        return None
    return (ax, ay, nx, ny)


def _overlap_area(a: Box, b: Box) -> float:
    w = min(a.x1, b.x1) - max(a.x0, b.x0)
    h = min(a.y1, b.y1) - max(a.y0, b.y0)
    return w * h if w > 0 and h > 0 else 0.0


def log_x_pt(hours: np.ndarray | float, lo_h: float, hi_h: float, x0: float, width: float):
    """Horizontal position in points of ``hours`` on a log axis [lo_h, hi_h] at x0..x0+width."""
    return x0 + np.log(np.asarray(hours, dtype=float) / lo_h) / math.log(hi_h / lo_h) * width


@dataclass(frozen=True)
class Geometry:
    """Figure size and axes rectangle in inches, title lines, legend column."""

    width: float
    height: float
    ax_left: float
    ax_bottom: float
    ax_width: float
    ax_height: float
    legend_left: float
    title_lines: tuple[str, ...]
    legend_wrap: int

    @property
    def axes_rect(self) -> tuple[float, float, float, float]:
        """[left, bottom, width, height] as fractions of the figure (for Figure.add_axes)."""
        return (
            self.ax_left / self.width,
            self.ax_bottom / self.height,
            self.ax_width / self.width,
            self.ax_height / self.height,
        )


def geometry(
    title: str | None,
    legend_entries: Sequence[str],
    *,
    font_pt: float,
    width: float = 7.5,
    ax_height: float = 3.0,
    legend_width: float = 2.05,
) -> Geometry:
    """Figure geometry: fixed margins around the axes, a legend column on the right.

    The title is wrapped to the figure width; the figure grows in height if the legend
    (entries wrapped to the column width, estimated at ``font_pt - 0.5``) needs more room than
    the axes height.
    """
    ax_left, ax_bottom, gap = 1.0, 0.6, 0.2
    ax_width = width - ax_left - gap - legend_width
    leg_pt = font_pt - 0.5
    wrap = max(int((legend_width * 72.0 - 28.0) / (CHAR_EM * leg_pt)), 12)
    lines = sum(len(textwrap.wrap(e, wrap)) or 1 for e in legend_entries)
    legend_h = (lines * 1.3 * leg_pt + len(legend_entries) * 0.5 * leg_pt + 8.0) / 72.0
    title_lines: tuple[str, ...] = ()
    if title:
        title_pt = font_pt + 1
        title_wrap = max(int((width * 72.0 - 12.0) / (CHAR_EM * title_pt)), 20)
        title_lines = tuple(textwrap.wrap(title, title_wrap))
    top = 0.2 + len(title_lines) * (font_pt + 1) * 1.3 / 72.0
    height = ax_bottom + max(ax_height, legend_h) + top
    return Geometry(
        width=width,
        height=height,
        ax_left=ax_left,
        ax_bottom=ax_bottom,
        ax_width=ax_width,
        ax_height=height - ax_bottom - top,
        legend_left=ax_left + ax_width + gap,
        title_lines=title_lines,
        legend_wrap=wrap,
    )
