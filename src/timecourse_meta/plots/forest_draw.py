"""Measure and draw steps of the forest plot (matplotlib; the layout is decided elsewhere).

`Measurer` gives text widths in inches from the Agg renderer at the figure dpi, so the layout
(`forest_layout`) is computed from the sizes the text will have. The draw functions place
every element at the position the layout gave it; each element carries a ``gid`` so tests can
check the geometry of the saved figure.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.lines import Line2D
from matplotlib.patches import Polygon, Rectangle
from matplotlib.text import Text
from matplotlib.ticker import FixedLocator

from timecourse_meta.plots.figures import DPI, PALETTE
from timecourse_meta.plots.forest_layout import (
    LEFT_MARGIN,
    RIGHT_MARGIN,
    ROW_H,
    Columns,
    Vertical,
    flow,
    tick_labels,
)
from timecourse_meta.plots.forest_rows import ROB_LABELS, Row

__all__ = ["Measurer", "draw_notes", "draw_panel", "draw_table", "new_figure", "rob_legend"]

TEXT_PAD = 1.04  # measured widths padded by 4 % (hinting differs slightly by dpi)
SQUARE_COLOUR = PALETTE["blue"]
SUBTOTAL_COLOUR = "0.45"
OVERALL_COLOUR = "black"
PI_COLOUR = PALETTE["blue"]
MAX_SQUARE_PT = 0.72 * ROW_H * 72.0  # side of the square of the heaviest study, points
MIN_SQUARE_PT = 2.5  # floor so that tiny weights stay visible (documented deviation)
ROB_COLOURS = {
    "low": PALETTE["green"],
    "some_concerns": PALETTE["orange"],
    "unclear": PALETTE["orange"],
    "high": PALETTE["red"],
}
ROB_HEAD = "RoB (overall risk of bias):"
# arrowheads with the tip at the marker's anchor, so the tip sits exactly on the axis limit
_ARROW_RIGHT = [(0.0, 0.0), (-1.0, 0.45), (-1.0, -0.45), (0.0, 0.0)]
_ARROW_LEFT = [(0.0, 0.0), (1.0, 0.45), (1.0, -0.45), (0.0, 0.0)]
# outward arrowheads (base at the anchor): beside a diamond that leaves the axis
_OUT_RIGHT = [(0.0, 0.45), (1.0, 0.0), (0.0, -0.45), (0.0, 0.45)]
_OUT_LEFT = [(0.0, 0.45), (-1.0, 0.0), (0.0, -0.45), (0.0, 0.45)]


class Measurer:
    """Text width in inches as the Agg renderer draws it (cached per text and font)."""

    def __init__(self) -> None:
        fig = Figure(dpi=DPI)
        self._renderer = FigureCanvasAgg(fig).get_renderer()
        self._cache: dict[tuple[str, float, str, str], float] = {}

    def __call__(self, s: str, size: float, weight: str = "normal", style: str = "normal") -> float:
        key = (s, size, weight, style)
        if key not in self._cache:
            prop = FontProperties(size=size, weight=weight, style=style)
            w, _, _ = self._renderer.get_text_width_height_descent(s, prop, ismath=False)
            self._cache[key] = w / DPI * TEXT_PAD
        return self._cache[key]


@dataclass(frozen=True)
class Table:
    """What the table shows: rows, column keys, header texts and the font size."""

    body: list[Row]
    footer: list[str]
    left_keys: list[str]
    right_keys: list[str]
    header1: dict[str, str]
    header2: dict[str, str]
    groups: dict[str, list[str]]
    size: float
    footer_size: float


def new_figure(fig_w: float, fig_h: float) -> Figure:
    fig = Figure(figsize=(fig_w, fig_h), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _text(fig: Figure, x: float, y: float, s: str, gid: str, **kw: object) -> Text:
    kw.setdefault("va", "center")
    return fig.text(x, y, s, gid=gid, transform=fig.dpi_scale_trans, clip_on=False, **kw)


def draw_table(fig: Figure, t: Table, cols: Columns, vert: Vertical, title: list[str]) -> None:
    """Cells, headers, group labels, footer lines, rules and the title."""
    for i, row in enumerate(t.body):
        y = vert.row_y(i)
        for key, s in row.cells.items():
            if key != "span" and key not in cols.xpos:
                continue  # column dropped to fit the width
            x = LEFT_MARGIN if key == "span" else cols.xpos[key]
            ha = "left" if key in ("study", "span") else "right"
            _text(fig, x, y, s, f"{key}:{i}", fontsize=t.size, fontweight=row.weight,
                  fontstyle=row.style, ha=ha)  # fmt: skip
        if row.rob:
            _rob_dot(fig, cols.xpos["rob"], y, row.rob, f"rob:{i}")
    for j, s in enumerate(t.footer):
        y = vert.footer_y(j)
        _text(fig, LEFT_MARGIN, y, s, f"footer:{j}", fontsize=t.footer_size, ha="left")
    for key in [*t.left_keys, *t.right_keys, "plot"]:
        for line, hdr, dy in ((1, t.header2, 0.22), (2, t.header1, 1.17)):
            if hdr.get(key):
                ha = "left" if key == "study" else "center" if key in ("plot", "rob") else "right"
                _text(fig, cols.xpos[key], vert.above_y(dy), hdr[key], f"header{line}:{key}",
                      fontsize=t.size, fontweight="bold", va="baseline", ha=ha)  # fmt: skip
    for label, keys in t.groups.items():
        lo_edge = cols.xpos[keys[0]] - cols.widths[keys[0]]
        _text(fig, (lo_edge + cols.xpos[keys[-1]]) / 2, vert.above_y(1.17), label,
              f"group:{keys[-1]}", fontsize=t.size, fontweight="bold", va="baseline",
              ha="center")  # fmt: skip
    for rows, gid in ((2.1, "rule:top"), (0.0, "rule:header")):
        y = vert.above_y(rows)
        fig.add_artist(Line2D([LEFT_MARGIN, cols.fig_w - RIGHT_MARGIN], [y, y], lw=0.6,
                              color="black", transform=fig.dpi_scale_trans, gid=gid))  # fmt: skip
    if title:
        _text(fig, LEFT_MARGIN, vert.fig_h - 0.08, "\n".join(title), "title",
              fontsize=t.size + 1, fontweight="bold", ha="left", va="top",
              linespacing=1.15)  # fmt: skip


def _rob_dot(fig: Figure, x: float, y: float, judgement: str, gid: str) -> None:
    colour = ROB_COLOURS.get(judgement)
    fig.add_artist(
        Line2D([x], [y], marker="o", markersize=5.5, linestyle="none",
               markerfacecolor=colour if colour else "white",
               markeredgecolor=colour if colour else "0.45", markeredgewidth=0.8,
               transform=fig.dpi_scale_trans, gid=gid)
    )  # fmt: skip


def rob_legend(rob: Sequence[str], size: float, measure, max_x: float) -> list[tuple[int, float]]:
    """(line, x) of each legend item (dot + label) after the 'RoB' heading."""
    head = measure(ROB_HEAD, size) + 0.1
    widths = [0.09 + measure(ROB_LABELS.get(v, v), size) for v in rob]
    return flow(widths, LEFT_MARGIN + head, max_x, 0.12)


def draw_notes(
    fig: Figure, notes: Sequence[str], vert: Vertical, size: float, rob: Sequence[str], measure
) -> None:
    """Footnote lines at the bottom; a risk-of-bias legend (dots) on the first line(s)."""
    line = 0
    if rob:
        _text(fig, LEFT_MARGIN, vert.note_y(0), ROB_HEAD, "footnote:rob", fontsize=size, ha="left")
        places = rob_legend(rob, size, measure, fig.get_size_inches()[0] - RIGHT_MARGIN)
        for v, (ln, x) in zip(rob, places, strict=True):
            y = vert.note_y(ln)
            _rob_dot(fig, x + 0.03, y, v, f"rob-legend:{v}")
            _text(fig, x + 0.09, y, ROB_LABELS.get(v, v), f"footnote:rob:{v}", fontsize=size,
                  ha="left")  # fmt: skip
        line = places[-1][0] + 1
    for j, s in enumerate(notes):
        _text(fig, LEFT_MARGIN, vert.note_y(line + j), s, f"footnote:{j}", fontsize=size,
              ha="left")  # fmt: skip


def draw_axis(ax: Axes, xmin: float, xmax: float, ticks: np.ndarray, size: float) -> None:
    ax.set_gid("forest-axes")
    ax.set_xlim(xmin, xmax)
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.set_xticklabels(tick_labels(ticks))
    ax.tick_params(axis="x", length=3, width=0.8, labelsize=size, pad=2)
    ax.set_yticks([])
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    ax.patch.set_visible(False)
    if xmin < 0.0 < xmax:
        ax.axvline(0.0, color="black", lw=0.8, zorder=1, gid="null-line")


def draw_favours(fig: Figure, favours: Sequence[str], xs: tuple[float, float, bool],
                 cols: Columns, vert: Vertical, size: float) -> None:  # fmt: skip
    lx, rx, stacked = xs
    fy = vert.ax_bottom - 1.35 * ROW_H
    if stacked:  # one above the other, centred, the side shown by an arrow
        left, right = f"\u2190 {favours[0]}", f"{favours[1]} \u2192"
        rows = (("left", left, lx, 0.0, "center"), ("right", right, rx, -ROW_H, "center"))
    else:
        rows = (("left", favours[0], lx, 0.0, "right"), ("right", favours[1], rx, 0.0, "left"))
    for side, s, x, dy, ha in rows:
        _text(fig, cols.plot_left + x, fy + dy, s, f"favours:{side}", fontsize=size, va="top",
              ha=ha)  # fmt: skip


def _arrows(ax: Axes, i: int, row: Row, xmin: float, xmax: float) -> None:
    """Arrowheads where an interval leaves the axis: inside for whiskers and prediction
    intervals (metafor), outside the panel for a diamond (else hidden in the diamond)."""
    kw = dict(color="black", markersize=10, clip_on=False, linestyle="none", zorder=4)
    y = -float(i)
    out = row.kind == "pooled"
    if out and not row.overall:
        kw["color"] = SUBTOTAL_COLOUR
    if row.lo < xmin:
        ax.plot([xmin], [y], marker=_OUT_LEFT if out else _ARROW_LEFT, gid=f"arrow:{i}:left", **kw)
    if row.hi > xmax:
        marker = _OUT_RIGHT if out else _ARROW_RIGHT
        ax.plot([xmax], [y], marker=marker, gid=f"arrow:{i}:right", **kw)


def _study(ax: Axes, i: int, row: Row, xmin: float, xmax: float, wmax: float) -> None:
    y = -float(i)
    if math.isfinite(row.lo) and math.isfinite(row.hi) and row.hi >= xmin and row.lo <= xmax:
        ax.plot([max(row.lo, xmin), min(row.hi, xmax)], [y, y], color="black", lw=0.9,
                solid_capstyle="butt", zorder=2, gid=f"ci:{i}")  # fmt: skip
    side = MAX_SQUARE_PT * math.sqrt(row.w / wmax) if math.isfinite(row.w) else 0.0
    if xmin <= row.est <= xmax:  # off-axis estimates are shown by the arrow alone
        ax.scatter([row.est], [y], s=max(side, MIN_SQUARE_PT) ** 2, marker="s",
                   color=SQUARE_COLOUR, edgecolors="none", zorder=3, gid=f"square:{i}")  # fmt: skip


def _diamond(ax: Axes, i: int, row: Row) -> None:
    colour = OVERALL_COLOUR if row.overall else SUBTOTAL_COLOUR
    y, h = -float(i), 0.36
    ax.add_patch(Polygon([(row.lo, y), (row.est, y + h), (row.hi, y), (row.est, y - h)],
                         closed=True, facecolor=colour, edgecolor=colour, lw=0.6, zorder=3,
                         gid=f"diamond:{i}"))  # fmt: skip


def _pi(ax: Axes, i: int, row: Row) -> None:
    y, h = -float(i), 0.13
    ax.add_patch(Rectangle((row.lo, y - h), row.hi - row.lo, 2 * h, facecolor=PI_COLOUR,
                           alpha=0.35, edgecolor="none", zorder=2, gid=f"pi-bar:{i}"))  # fmt: skip
    ax.plot([row.lo, row.hi], [y, y], color=PI_COLOUR, lw=1.0, zorder=3, gid=f"pi-line:{i}")
    for xe in (row.lo, row.hi):
        ax.plot([xe, xe], [y - 1.6 * h, y + 1.6 * h], color=PI_COLOUR, lw=1.0, zorder=3,
                gid=f"pi-cap:{i}")  # fmt: skip


def draw_panel(ax: Axes, body: Sequence[Row], xmin: float, xmax: float, pooled_line: bool) -> None:
    """Squares and whiskers, diamonds, prediction-interval bars, arrows, pooled line."""
    weights = np.array([r.w for r in body if r.kind == "study"], dtype=float)
    wmax = float(np.nanmax(weights)) if np.isfinite(weights).any() else 1.0
    overall: tuple[float, float] | None = None
    for i, row in enumerate(body):
        if row.kind in ("study", "pooled", "pi") and math.isfinite(row.lo):
            _arrows(ax, i, row, xmin, xmax)
        if row.kind == "study" and math.isfinite(row.est):
            _study(ax, i, row, xmin, xmax, wmax)
        elif row.kind == "pooled" and math.isfinite(row.est):
            _diamond(ax, i, row)
            if row.overall:
                overall = (row.est, -float(i))
        elif row.kind == "pi" and math.isfinite(row.lo):
            _pi(ax, i, row)
    if pooled_line and overall is not None and xmin <= overall[0] <= xmax:
        ax.plot([overall[0]] * 2, [0.5, overall[1]], color="0.35", lw=0.7,
                linestyle=(0, (3, 2)), zorder=1, gid="pooled-line")  # fmt: skip
