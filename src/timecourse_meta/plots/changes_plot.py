"""Before/after time-course figure of the living review (results/figures/changes_timecourse.png).

Per window, the pooled estimate with its CI from the baseline (faint grey, hollow, shifted
left) and from this run (solid, shifted right), so a reader sees at a glance which windows a
new trial moved. Under each window: the number of studies, baseline -> this run; windows
whose estimate, CI or k changed are labelled in bold. The figure draws the two tables it is
given (pooled rows of the primary outcome); it never refits anything.
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


def _draw_series(ax, rows, order, shift, *, colour, hollow, alpha, label) -> None:  # noqa: ANN001
    xs, ys, lo, hi = [], [], [], []
    for i, window in enumerate(order):
        r = rows.get(window)
        if r is None or not np.isfinite(float(r["estimate"])):
            continue
        xs.append(i + shift)
        ys.append(float(r["estimate"]))
        lo.append(float(r["estimate"]) - float(r["ci_low"]))
        hi.append(float(r["ci_high"]) - float(r["estimate"]))
    if not xs:
        return
    ax.errorbar(
        xs, ys, yerr=[lo, hi], fmt="o", color=colour, alpha=alpha, capsize=2.5,
        markersize=5, markerfacecolor="white" if hollow else colour, elinewidth=1.2,
        markeredgewidth=1.2, label=label, zorder=3 if not hollow else 2,
    )  # fmt: skip


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
        _draw_series(ax, b, order, -DODGE, colour=BASELINE_COLOUR, hollow=True, alpha=0.55,
                     label="baseline")  # fmt: skip
        _draw_series(ax, a, order, DODGE, colour=CURRENT_COLOUR, hollow=False, alpha=1.0,
                     label="this run")  # fmt: skip
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
        ax.set_xlabel("time after dose (window); bold: changed since the baseline")
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
