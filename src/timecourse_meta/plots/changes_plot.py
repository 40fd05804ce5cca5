"""Before/after time-course figure of the living review (results/figures/changes_timecourse.png).

Per window, the pooled estimate with its CI from the baseline (faint grey, hollow, shifted
left) and from this run (solid, shifted right), so a reader sees at a glance which windows a
new trial moved. Under each window: the number of studies, baseline -> this run; windows
whose estimate, CI or k changed are labelled in bold. The y axis is capped around the
estimates (as in the main time-course figure); an interval running beyond it ends in a
triangle. The figure draws the two tables it is given (pooled rows of the primary outcome);
it never refits anything.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from timecourse_meta.plots.figures import DPI, PALETTE, style_context

__all__ = ["changes_timecourse_plot"]

BASELINE_COLOUR = "0.55"
CURRENT_COLOUR = PALETTE["blue"]
DODGE = 0.14  # horizontal shift of each series from the window's position (axis units)
CAP_WIDTHS = 2.0  # y axis: at most this many estimate ranges beyond the estimates
_COLS = ("timepoint", "k", "estimate", "ci_low", "ci_high")


def _label(window: str) -> str:
    head = window.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = window[len(head) :]
    return f"{head} {unit}" if head and unit else window


def _k(value: object) -> str:
    try:
        x = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "–"
    return "–" if math.isnan(x) else str(int(x))


def _rows(frame: pd.DataFrame) -> dict[str, dict[str, object]]:
    missing = [c for c in _COLS if c not in frame.columns]
    if missing:
        raise ValueError(f"pooled table lacks column(s) {missing}")
    return {str(r["timepoint"]): r for r in frame[list(_COLS)].to_dict("records")}


def _same(a: dict[str, object] | None, b: dict[str, object] | None) -> bool:
    if a is None or b is None:
        return a is b
    for column in _COLS[1:]:
        x, y = float(a[column]), float(b[column])  # type: ignore[arg-type]
        if not ((math.isnan(x) and math.isnan(y)) or x == y):
            return False
    return True


def _axis_limits(series: Sequence[dict[str, dict[str, object]]]) -> tuple[float, float]:
    """y limits: every CI, but capped at CAP_WIDTHS estimate ranges beyond the estimates (a
    k = 2 Knapp-Hartung interval can be ten times wider than all others and flatten them)."""
    est, lows, highs = [], [], []
    for rows in series:
        for r in rows.values():
            e, lo, hi = (float(r[c]) for c in ("estimate", "ci_low", "ci_high"))  # type: ignore[arg-type]
            if np.isfinite(e):
                est.append(e)
                lows.append(lo if np.isfinite(lo) else e)
                highs.append(hi if np.isfinite(hi) else e)
    if not est:
        return -1.0, 1.0
    width = max(max(est) - min(est), 0.5)
    low = max(min(lows + [0.0]), min(est) - CAP_WIDTHS * width)
    high = min(max(highs + [0.0]), max(est) + CAP_WIDTHS * width)
    return low, high


def _draw_series(ax, rows, order, shift, limits, *, colour, hollow, alpha) -> None:  # noqa: ANN001
    """Estimates with CIs; an interval beyond the axis is cut there and marked by a triangle."""
    low, high = limits
    face = "white" if hollow else colour
    for i, window in enumerate(order):
        r = rows.get(window)
        if r is None or not np.isfinite(float(r["estimate"])):
            continue
        x, e = i + shift, float(r["estimate"])
        lo, hi = float(r["ci_low"]), float(r["ci_high"])
        ax.plot([x, x], [max(lo, low), min(hi, high)], color=colour, alpha=alpha, lw=1.2, zorder=2)
        for end, limit, marker in ((lo, low, "v"), (hi, high, "^")):
            if (end < low) if marker == "v" else (end > high):
                ax.plot([x], [limit], marker=marker, color=colour, alpha=alpha, ms=4, zorder=3)
            else:
                ax.plot([x - 0.05, x + 0.05], [end, end], color=colour, alpha=alpha, lw=1.2)
        ax.plot([x], [e], "o", color=colour, alpha=alpha, markerfacecolor=face, ms=5, mew=1.2,
                zorder=4)  # fmt: skip


def changes_timecourse_plot(
    before: pd.DataFrame,
    after: pd.DataFrame,
    *,
    timepoints: Sequence[str],
    outcome: str,
    measure: str,
) -> Figure:
    """Figure: per-window estimate and CI, baseline (faint) beside this run (solid).

    `before`, `after`: one row per window with `timepoint`, `k`, `estimate`, `ci_low`,
    `ci_high` (NaN where a window has no estimate). Windows are shown in `timepoints` order,
    then any window only the baseline has.
    """
    b, a = _rows(before), _rows(after)
    order = list(timepoints) + [w for w in b if w not in timepoints]
    order += [w for w in a if w not in order]
    with style_context():
        fig = Figure(figsize=(max(3.6, 0.9 * len(order) + 1.4), 3.0), dpi=DPI)
        FigureCanvasAgg(fig)
        ax = fig.add_axes((0.14, 0.27, 0.83, 0.62))
        ax.axhline(0, color="0.3", linewidth=0.8, linestyle="--", zorder=1)
        limits = _axis_limits([b, a])
        _draw_series(ax, b, order, -DODGE, limits, colour=BASELINE_COLOUR, hollow=True,
                     alpha=0.55)  # fmt: skip
        _draw_series(ax, a, order, DODGE, limits, colour=CURRENT_COLOUR, hollow=False, alpha=1.0)
        pad = 0.06 * (limits[1] - limits[0])
        ax.set_ylim(limits[0] - pad, limits[1] + pad)
        ax.set_xlim(-0.6, len(order) - 0.4)
        ax.set_xticks(range(len(order)))
        labels = []
        for window in order:
            kb = _k(b[window]["k"]) if window in b else "–"
            ka = _k(a[window]["k"]) if window in a else "–"
            labels.append(
                f"{_label(window)}\nk {kb} → {ka}" if kb != ka else f"{_label(window)}\nk {ka}"
            )
        ax.set_xticklabels(labels)
        for tick, window in zip(ax.get_xticklabels(), order, strict=True):
            if not _same(b.get(window), a.get(window)):
                tick.set_fontweight("bold")
        ax.set_xlabel("time after dose (window); bold: changed since the baseline; "
                      "▲▼ CI beyond the axis")  # fmt: skip
        ax.set_ylabel(f"{outcome} ({measure}), 95% CI")
        ax.set_title(f"{outcome} ({measure}) per window: baseline vs this run", loc="left")
        handles = [
            Line2D([], [], color=BASELINE_COLOUR, marker="o", markerfacecolor="white",
                   alpha=0.55, label="baseline"),
            Line2D([], [], color=CURRENT_COLOUR, marker="o", label="this run"),
        ]  # fmt: skip
        ax.legend(handles=handles, loc="upper right", ncol=2)
        ax.spines[["top", "right"]].set_visible(False)
    return fig
