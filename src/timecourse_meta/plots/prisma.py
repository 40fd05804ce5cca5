"""PRISMA 2020 flow diagram (Page et al. 2021, BMJ 372:n71, Figure 1: new systematic reviews
with searches of databases and registers), extended by the workflow's own steps.

Draws the box table of ``pipeline.prisma.prisma_boxes`` as given: the review team's counts
(config; "not reported" where absent) in the PRISMA phases Identification, Screening and
Included, then the analysis phase the workflow counted itself (studies excluded by the
configuration, rows and studies not analysed, with their reasons). Layout is measured first
(wrapped text -> box heights), then drawn, so no text leaves its box.
"""

from __future__ import annotations

import textwrap

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, Rectangle

from timecourse_meta.plots.figures import DPI, FONT_SIZE, style_context

__all__ = ["ROWS", "prisma_plot"]

#: (phase label, main box, side box or None) from top to bottom.
ROWS: tuple[tuple[str, str, str | None], ...] = (
    ("Identification", "records_identified", "records_removed_before_screening"),
    ("Screening", "records_screened", "records_excluded"),
    ("Screening", "reports_sought", "reports_not_retrieved"),
    ("Screening", "reports_assessed", "reports_excluded"),
    ("Included", "studies_included", None),
    ("Analysis (this workflow)", "sheet_studies", "excluded_by_config"),
    ("Analysis (this workflow)", "studies_analysed", "not_analysed"),
)
_FS = FONT_SIZE - 0.5
_LINE = _FS * 1.35 / 72  # inches per text line
_MAIN_X, _MAIN_W, _SIDE_X, _SIDE_W = 0.55, 2.6, 3.55, 3.3
_CHARS = {"main": 44, "side": 54}


def _box_lines(boxes: pd.DataFrame, key: str, kind: str) -> list[str]:
    if key == "not_analysed":  # rows not analysed + studies left with none, one box
        a = boxes.set_index("box").loc["rows_excluded"]
        b = boxes.set_index("box").loc["studies_without_effect"]
        parts = [
            (f"{a['text']} (n = {a['n']})", a["detail"]),
            (f"{b['text']} (n = {b['n']})", b["detail"]),
        ]
    else:
        r = boxes.set_index("box").loc[key]
        parts = [(f"{r['text']} (n = {r['n']})", r["detail"])]
    lines: list[str] = []
    for head, detail in parts:
        lines += textwrap.wrap(head, _CHARS[kind])
        for item in [d for d in str(detail).split("; ") if d]:
            lines += textwrap.wrap(
                item, _CHARS[kind], initial_indent="\u2022 ", subsequent_indent="   "
            )
    return lines


def prisma_plot(boxes: pd.DataFrame, *, title: str = "PRISMA 2020 flow diagram") -> Figure:
    """The flow diagram of `boxes` (columns box, text, n, detail)."""
    layout = []
    for phase, main, side in ROWS:
        m = _box_lines(boxes, main, "main")
        s = _box_lines(boxes, side, "side") if side else []
        h = max(len(m), len(s), 1) * _LINE + 0.12
        layout.append([phase, main, side, m, s, h])
    gap = 0.22
    for phase in dict.fromkeys(r[0] for r in layout):  # a phase band must fit its label
        rows = [r for r in layout if r[0] == phase]
        need = len(phase) * _FS * 0.62 / 72 + 0.15
        have = sum(r[-1] for r in rows) + gap * (len(rows) - 1)
        if have < need:
            rows[0][-1] += need - have
    height = 0.45 + sum(x[-1] for x in layout) + gap * (len(layout) - 1) + 0.25
    width = 7.0
    with style_context():
        fig = Figure(figsize=(width, height), dpi=DPI)
        FigureCanvasAgg(fig)
        ax = fig.add_axes((0, 0, 1, 1))
        ax.set_xlim(0, width)
        ax.set_ylim(0, height)
        ax.axis("off")
        ax.text(
            width / 2,
            height - 0.15,
            title,
            ha="center",
            va="top",
            fontsize=FONT_SIZE + 1,
            fontweight="bold",
        )
        y = height - 0.45
        spans: dict[str, list[float]] = {}
        previous_bottom = None
        for phase, _main, side, m, s, h in layout:
            top, bottom = y, y - h
            spans.setdefault(phase, [top, bottom])[1] = bottom
            _draw_box(ax, _MAIN_X, bottom, _MAIN_W, h, m)
            if side:
                _draw_box(ax, _SIDE_X, bottom, _SIDE_W, h, s)
                _arrow(ax, (_MAIN_X + _MAIN_W, bottom + h / 2), (_SIDE_X, bottom + h / 2))
            if previous_bottom is not None:
                _arrow(ax, (_MAIN_X + _MAIN_W / 2, previous_bottom), (_MAIN_X + _MAIN_W / 2, top))
            previous_bottom = bottom
            y = bottom - gap
        for phase, (top, bottom) in spans.items():
            ax.add_patch(
                Rectangle((0.08, bottom), 0.3, top - bottom, facecolor="#DCE6F2", edgecolor="none")
            )
            ax.text(
                0.23,
                (top + bottom) / 2,
                phase,
                rotation=90,
                ha="center",
                va="center",
                fontsize=_FS,
                fontweight="bold",
            )
    return fig


def _draw_box(ax: object, x: float, y: float, w: float, h: float, lines: list[str]) -> None:
    ax.add_patch(Rectangle((x, y), w, h, facecolor="white", edgecolor="black", linewidth=0.7))  # type: ignore[attr-defined]
    ax.text(
        x + 0.08,
        y + h - 0.06,
        "\n".join(lines),
        ha="left",
        va="top",
        fontsize=_FS,  # type: ignore[attr-defined]
        linespacing=1.2,
    )


def _arrow(ax: object, start: tuple[float, float], end: tuple[float, float]) -> None:
    ax.add_patch(
        FancyArrowPatch(
            start,
            end,
            arrowstyle="-|>",
            mutation_scale=8,  # type: ignore[attr-defined]
            linewidth=0.7,
            color="black",
            shrinkA=0,
            shrinkB=0,
        )
    )
