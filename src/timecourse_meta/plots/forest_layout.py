"""Geometry of the forest plot: column positions, axis limits, ticks, vertical positions.

Pure functions over measured text widths (inches) and row counts: nothing here draws, so the
layout rules can be tested directly. Geometry is in inches with a constant row height so that
0 to 80+ studies stay legible; the figure width is a journal column width (single 85 mm,
double 174 mm; e.g. BMJ, Lancet and Elsevier artwork guides) and the plot panel gets what
the text columns leave.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.ticker import MaxNLocator

from timecourse_meta.plots.forest_text import num

__all__ = [
    "JOURNAL_WIDTH_MM",
    "ROW_H",
    "Columns",
    "Vertical",
    "auto_xlim",
    "favours_x",
    "figure_width",
    "flow",
    "layout_columns",
    "layout_vertical",
    "tick_labels",
    "ticks_for",
    "wrap_text",
]

# ---- geometry (inches) -------------------------------------------------------------------
ROW_H = 0.19  # height of one table row; 8 pt text is ~0.13 in tall
LEFT_MARGIN = 0.08
RIGHT_MARGIN = 0.08
TOP_MARGIN = 0.10
BOTTOM_MARGIN = 0.08
COL_GAP = 0.12  # between text columns
PLOT_GAP = 0.14  # between the text blocks and the plot
MIN_PLOT_W = 1.6  # narrowest plot panel before columns are dropped or labels shortened
TICK_SPACING = 0.32  # inches per tick label, so that tick labels never touch
NOTE_LINE = 0.85  # footnote line height, rows
TITLE_LINE = 0.85  # title line height, rows
MM_PER_IN = 25.4
JOURNAL_WIDTH_MM = {"single": 85.0, "double": 174.0}


def figure_width(width: str | float) -> float:
    """Figure width in inches: 'single' (85 mm), 'double' (174 mm) or a width in mm."""
    if isinstance(width, str):
        if width not in JOURNAL_WIDTH_MM:
            raise ValueError(f"forest width {width!r}: use single, double or a number of mm")
        return JOURNAL_WIDTH_MM[width] / MM_PER_IN
    mm = float(width)
    if not 40.0 <= mm <= 400.0:
        raise ValueError(f"forest width {mm:g} mm: expected 40 to 400 mm")
    return mm / MM_PER_IN


def _tokens(text: str) -> list[str]:
    """Words to wrap between: spaces only (a no-break space holds), and 'x = y', 'p < 0.001'
    stay together."""
    out: list[str] = []
    glue = False
    for word in (w for w in text.split(" ") if w):
        if out and (glue or word in ("=", "<", ">")):
            out[-1] += " " + word
        else:
            out.append(word)
        glue = word in ("=", "<", ">")
    return out


def wrap_text(text: str, max_w: float, measure: Callable[[str], float]) -> list[str]:
    """Greedy word wrap of ``text`` into lines no wider than ``max_w`` (as ``measure`` says).

    A single word wider than ``max_w`` stays on its own line (never split inside a word).
    """
    words = _tokens(text)
    lines: list[str] = []
    cur = ""
    for word in words:
        trial = f"{cur} {word}" if cur else word
        if cur and measure(trial) > max_w:
            lines.append(cur)
            cur = word
        else:
            cur = trial
    if cur:
        lines.append(cur)
    return lines or [""]


def flow(
    widths: Sequence[float], start: float, max_x: float, gap: float
) -> list[tuple[int, float]]:
    """(line, x) of items of the given widths laid left to right from ``start``, wrapping to
    ``LEFT_MARGIN`` on a new line when an item would pass ``max_x`` (legend rows)."""
    out, line, x = [], 0, start
    for w in widths:
        if x + w > max_x and x > LEFT_MARGIN:
            line, x = line + 1, LEFT_MARGIN
        out.append((line, x))
        x += w + gap
    return out


# ---- axis limits and ticks ---------------------------------------------------------------
def _locator(nbins: int) -> MaxNLocator:
    return MaxNLocator(nbins=max(2, nbins), steps=[1, 2, 2.5, 5, 10])


def nice_limits(lo: float, hi: float, nbins: int = 6) -> tuple[float, float, float]:
    """Limits on a 'nice' tick grid (matplotlib MaxNLocator) covering [lo, hi]; returns step."""
    ticks = _locator(nbins).tick_values(lo, hi)
    step = float(ticks[1] - ticks[0])
    xmin = step * math.floor(lo / step + 1e-9)
    xmax = step * math.ceil(hi / step - 1e-9)
    return xmin, xmax, step


def auto_xlim(
    lows: Sequence[float],
    highs: Sequence[float],
    centres: Sequence[float],
    *,
    min_side: tuple[float, float] = (0.0, 0.0),
    nbins: int = 6,
) -> tuple[float, float, float]:
    """Data-driven x limits (xmin, xmax, tick step), always including the null line at 0.

    ``lows``/``highs`` are the study CI ends and ``centres`` the study estimates and the pooled
    estimate; pooled CIs and prediction intervals do not widen the axis (their ends beyond it
    get arrows). The 'core' is the centres and 0; study CI ends are included up to
    max(core span, 1.5 x median study CI width) beyond the core, so one very imprecise study
    gets arrows instead of shrinking all others (metafor ``alim``). Each side of 0 is then
    widened to at least ``min_side`` (fractions of the axis) so the 'favours' labels fit.
    """
    core = np.array([0.0, *centres], dtype=float)
    core = core[np.isfinite(core)]
    c_lo, c_hi = float(core.min()), float(core.max())
    lo_a, hi_a = np.asarray(lows, dtype=float), np.asarray(highs, dtype=float)
    widths = (hi_a - lo_a)[np.isfinite(hi_a - lo_a)] if len(lo_a) == len(hi_a) else np.array([])
    reach = max(c_hi - c_lo, 1.5 * float(np.median(widths)) if len(widths) else 0.0, 0.25)
    lo = min(c_lo, float(np.nanmin(lo_a, initial=c_lo)))
    hi = max(c_hi, float(np.nanmax(hi_a, initial=c_hi)))
    lo, hi = max(lo, c_lo - reach), min(hi, c_hi + reach)
    xmin, xmax, step = nice_limits(lo, hi, nbins)
    # widen only when the labels can fit beside the null line; else they go to the panel ends
    side = min_side if max(min_side) <= 0.4 else (0.0, 0.0)
    for _ in range(20):  # widen the short side until both favours labels fit
        width = xmax - xmin
        if -xmin < side[0] * width - 1e-9:
            xmin -= step
        elif xmax < side[1] * width - 1e-9:
            xmax += step
        else:
            break
        if (xmax - xmin) / step > nbins + 2:  # too many ticks: coarser grid
            xmin, xmax, step = nice_limits(xmin, xmax, nbins)
    return xmin, xmax, step


def ticks_for(xmin: float, xmax: float, step: float | None = None, nbins: int = 6) -> np.ndarray:
    """Tick positions: the auto grid (with ``step``) or MaxNLocator ticks inside user limits."""
    if step is not None:
        ticks = np.arange(xmin, xmax + step / 2, step)
    else:
        ticks = _locator(nbins).tick_values(xmin, xmax)
        ticks = ticks[(ticks >= xmin - 1e-9) & (ticks <= xmax + 1e-9)]
    return np.where(np.abs(ticks) < 1e-12, 0.0, ticks)


def tick_labels(ticks: np.ndarray) -> list[str]:
    """Labels with one decimal, two when a tick needs them (e.g. 0.25 steps)."""
    two = bool(np.any(np.abs(np.round(ticks * 10) - ticks * 10) > 1e-6))
    return [num(v, 2 if two else 1) for v in ticks]


def tick_bins(plot_w: float) -> int:
    """Number of tick intervals that fit the panel width without touching labels."""
    return max(2, min(6, int(plot_w / TICK_SPACING)))


# ---- columns -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Columns:
    """Horizontal layout (inches from the figure's left edge)."""

    xpos: dict[str, float]  # anchor x of each column (left edge for 'study', right otherwise)
    widths: dict[str, float]
    plot_left: float
    plot_w: float
    fig_w: float

    @property
    def plot_right(self) -> float:
        return self.plot_left + self.plot_w

    @property
    def left_block(self) -> float:
        """Right edge of the left text block."""
        return self.plot_left - PLOT_GAP


def layout_columns(
    widths: Mapping[str, float],
    left_keys: Sequence[str],
    right_keys: Sequence[str],
    fig_w: float,
    *,
    groups: Mapping[str, tuple[Sequence[str], float]] | None = None,
    span_need: float = 0.0,
    min_plot_w: float = MIN_PLOT_W,
) -> Columns | None:
    """Place the columns in a figure ``fig_w`` wide; None if the panel would be < min width.

    ``groups``: label -> (the columns it spans, its width); the last spanned column widens so
    the label fits. ``span_need``: width of text that runs across the whole left block.
    """
    w = {k: float(widths.get(k, 0.0)) for k in [*left_keys, *right_keys]}
    for keys, gw in (groups or {}).values():
        have = sum(w[k] for k in keys) + COL_GAP * (len(keys) - 1)
        w[keys[-1]] += max(0.0, gw - have)
    left = sum(w[k] for k in left_keys) + COL_GAP * (len(left_keys) - 1)
    w["study"] += max(0.0, span_need - left)
    left = max(left, span_need)
    right = sum(w[k] for k in right_keys) + COL_GAP * (len(right_keys) - 1)
    plot_w = fig_w - LEFT_MARGIN - RIGHT_MARGIN - left - right - 2 * PLOT_GAP
    if plot_w < min_plot_w:
        return None
    xpos: dict[str, float] = {}
    x = LEFT_MARGIN
    for key in left_keys:
        xpos[key] = x if key == "study" else x + w[key]
        x += w[key] + COL_GAP
    plot_left = LEFT_MARGIN + left + PLOT_GAP
    x = plot_left + plot_w + PLOT_GAP
    for key in right_keys:
        xpos[key] = x + w[key] if key != "rob" else x + w[key] / 2
        x += w[key] + COL_GAP
    xpos["plot"] = plot_left + plot_w / 2
    return Columns(xpos, w, plot_left, plot_w, fig_w)


def favours_x(
    xmin: float, xmax: float, fav_w: Sequence[float], plot_w: float
) -> tuple[float, float, bool]:
    """Anchor x (inches from the panel's left) of the left label's right end and the right
    label's left end, and whether the right label must go one row lower.

    Preferred: either side of the null line (RevMan). If a label would leave the panel (user
    xlim, or 0 outside the axis) both go to the panel ends; if they still collide, stacked.
    """
    gap = 0.06
    if xmin < 0.0 < xmax:
        fx = (0.0 - xmin) / (xmax - xmin) * plot_w
        lx, rx = fx - gap, fx + gap
        if lx - fav_w[0] >= -gap and rx + fav_w[1] <= plot_w + gap:
            return lx, rx, False
    lx, rx = fav_w[0], plot_w - fav_w[1]
    if lx + 2 * gap > rx:  # stacked: both centred under the panel (arrows give the side)
        return plot_w / 2, plot_w / 2, True
    return lx, rx, False


# ---- vertical layout ---------------------------------------------------------------------
@dataclass(frozen=True)
class Vertical:
    """Vertical layout: figure height and the panel's bottom (inches), row units above it."""

    fig_h: float
    ax_bottom: float
    n_body: int
    note_h: float
    footer_top: float = 0.4

    def footer_y(self, line: int) -> float:
        """Centre of footer line ``line`` (heterogeneity, tests) under the body."""
        return self.ax_bottom - (self.footer_top + 0.5 + line) * ROW_H

    def row_y(self, row: float) -> float:
        """Inches from the figure bottom of body row ``row`` (0 = first; negative: above)."""
        return self.ax_bottom + (self.n_body - 0.5 - row) * ROW_H

    def above_y(self, rows: float) -> float:
        """Inches of a position ``rows`` row heights above the top of the body."""
        return self.ax_bottom + (self.n_body + rows) * ROW_H

    def note_y(self, line: int) -> float:
        """Centre of footnote line ``line`` (0 = first)."""
        return BOTTOM_MARGIN + self.note_h - (line + 0.5) * NOTE_LINE * ROW_H


def layout_vertical(
    n_body: int,
    *,
    n_title: int,
    n_footer: int,
    n_notes: int,
    fav_stacked: bool,
    footer_below: bool = False,
) -> Vertical:
    """Row-height grid: title lines, two header lines and rules, the body (one row per
    table row), then tick labels, favours labels and footer lines (beside the axis, or under
    the favours labels when ``footer_below``), then the footnotes."""
    above = 2.75 + (n_title * TITLE_LINE if n_title else 0.0)
    axis_rows = 2.6 + fav_stacked
    if footer_below:
        below = axis_rows + n_footer + 0.3
    else:
        below = max(0.9 + n_footer - 0.5, axis_rows) + 0.3
    note_h = n_notes * NOTE_LINE * ROW_H
    fig_h = TOP_MARGIN + (above + n_body + below) * ROW_H + note_h + BOTTOM_MARGIN
    ax_bottom = BOTTOM_MARGIN + note_h + below * ROW_H
    footer_top = axis_rows + 0.1 if footer_below else 0.4  # rows below the axis, first line
    return Vertical(fig_h, ax_bottom, n_body, note_h, footer_top)
