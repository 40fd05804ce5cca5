"""Contour-enhanced funnel plot (Peters et al. 2008, J Clin Epidemiol 61:991-996).

The geometry follows metafor 3.8.1 ``funnel.rma(res, level = c(90, 95, 99), refline = 0)``
line by line (tests/fixtures/metafor/publication_golden.json, key ``funnel``, and
README_publication.md): standard error on a reversed y axis from max(sei) to 0 with five ticks;
contours refline -/+ z_(alpha/2) * sqrt(sei^2 + tau2) (tau2 = 0: metafor's ``addtau2 = FALSE``)
drawn from 1.1 * max(sei) to 0; x limits cover the widest contour at max(sei) and every yi,
widened by 10% of their range on each side; R's axis style "r" adds 4% to both axes.

Shading as the golden call ``shade = c("white", "gray55", "gray75")``: inside the 90% contour
white, 90-95% gray55, 95-99% gray75; outside the 99% contour (p < 0.01) a light tint so that it
is not confused with the white centre. The figure draws the effects it is given (yi, sei) and
the pooled estimate it is given; it fits nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Polygon
from numpy.typing import ArrayLike

from timecourse_meta.distributions import norm_isf
from timecourse_meta.plots.figures import DPI, FONT_SIZE, PALETTE, style_context

__all__ = ["funnel_geometry", "funnel_plot"]

SHADES = ("#FFFFFF", "#8C8C8C", "#BFBFBF")  # R white, gray55, gray75
OUTSIDE = "#EEF3F8"


#: Above this many studies the points are drawn small and translucent, so that their density
#: shows instead of one black area hiding the contours, and the PDF holds them as one 300-dpi
#: image (matplotlib's ``rasterized``): 100 000 vector markers take about 4 s to write and
#: make a PDF that readers draw slowly.
VECTOR_POINTS_MAX = 2_000
#: marker area (pt^2) and opacity of the points above VECTOR_POINTS_MAX (below: 18, opaque)
DENSE_POINTS = {"s": 2.0, "alpha": 0.15, "linewidths": 0.0}


def funnel_geometry(
    yi: ArrayLike,
    sei: ArrayLike,
    *,
    levels: Sequence[float] = (90, 95, 99),
    refline: float = 0.0,
    tau2: float = 0.0,
) -> dict[str, object]:
    """Axis limits, ticks and contour end points of metafor's contour-enhanced funnel plot.

    Returns ``xlim``, ``ylim_plot`` (max sei, 0), ``y_ticks``, ``ylim_contour``, ``usr`` (the
    limits with R's 4% axis extension) and ``contours``: per level (as given) alpha, z and the
    contour's x at the top of the contour range, at max(sei) and at 0.
    """
    y, s = np.asarray(yi, float), np.asarray(sei, float)
    alpha = np.array([(100 - lv) / 100 if lv >= 1 else 1 - lv for lv in levels])
    z = norm_isf(alpha / 2)
    max_sei = float(s.max())
    ylim_plot = (max_sei, 0.0)
    y_ticks = np.linspace(max_sei, 0.0, 5)
    span = ylim_plot[0] - ylim_plot[1]
    ylim_contour = (ylim_plot[0] + 0.1 * span, max(0.0, ylim_plot[1] - 0.1 * span))
    z_max = float(norm_isf(alpha.min() / 2))
    half = z_max * np.sqrt(max_sei**2 + tau2)
    lo, hi = min(refline - half, float(y.min())), max(refline + half, float(y.max()))
    xlim = (lo - 0.1 * (hi - lo), hi + 0.1 * (hi - lo))
    usr = (
        xlim[0] - 0.04 * (xlim[1] - xlim[0]),
        xlim[1] + 0.04 * (xlim[1] - xlim[0]),
        ylim_plot[0] + 0.04 * span,
        ylim_plot[1] - 0.04 * span,
    )

    def at(zz: float, se: float) -> tuple[float, float]:
        w = zz * np.sqrt(se**2 + tau2)
        return refline - w, refline + w

    contours = [
        {
            "level": float(lv),
            "alpha": float(a),
            "z": float(zz),
            "top": at(zz, ylim_contour[0]),
            "at_max_sei": at(zz, max_sei),
            "at_0": at(zz, ylim_contour[1]),
        }
        for lv, a, zz in zip(levels, alpha, z, strict=True)
    ]
    return {
        "xlim": xlim,
        "ylim_plot": ylim_plot,
        "y_ticks": y_ticks,
        "ylim_contour": ylim_contour,
        "usr": usr,
        "contours": contours,
        "refline": refline,
        "tau2": tau2,
    }


def _contour_polygon(
    c: dict[str, object], y_top: float, y_bottom: float, refline: float, tau2: float
) -> np.ndarray:
    ys = np.linspace(y_top, y_bottom, 1000)  # metafor ci.res = 1000
    half = float(c["z"]) * np.sqrt(ys**2 + tau2)  # type: ignore[arg-type]
    return np.column_stack([np.r_[refline - half, (refline + half)[::-1]], np.r_[ys, ys[::-1]]])


def funnel_plot(
    yi: ArrayLike,
    sei: ArrayLike,
    *,
    title: str,
    xlabel: str,
    pooled_estimate: float | None = None,
    note: str = "",
    levels: Sequence[float] = (90, 95, 99),
) -> Figure:
    """Contour-enhanced funnel plot around 0 (metafor ``funnel(level = c(90, 95, 99),
    refline = 0)``), with the pooled estimate (if given) as a dashed line and `note` (e.g.
    the Egger test result) under the axes."""
    y, s = np.asarray(yi, float), np.asarray(sei, float)
    geo = funnel_geometry(y, s, levels=levels)
    usr = geo["usr"]
    with style_context():
        fig = Figure(figsize=(4.6, 4.2), dpi=DPI)
        FigureCanvasAgg(fig)
        ax = fig.add_axes((0.14, 0.28, 0.82, 0.62))
        ax.set_facecolor(OUTSIDE)
        y_top, y_bottom = geo["ylim_contour"]  # type: ignore[misc]
        order = np.argsort([c["alpha"] for c in geo["contours"]])  # widest (smallest alpha) first
        shade = {lv: SHADES[i] for i, lv in enumerate(sorted(levels))}
        for i in order:
            c = geo["contours"][i]  # type: ignore[index]
            # add_artist: the limits are set below, and add_patch's data-limit update walks
            # every vertex in Python (a third of this figure's drawing time)
            ax.add_artist(
                Polygon(
                    _contour_polygon(c, y_top, y_bottom, 0.0, 0.0),
                    closed=True,
                    facecolor=shade[c["level"]],
                    edgecolor="none",
                )
            )
        ax.plot([0, 0], [y_top, y_bottom], color="black", linewidth=0.8)
        if pooled_estimate is not None and np.isfinite(pooled_estimate):
            ax.plot(
                [pooled_estimate] * 2,
                [y_top, y_bottom],
                color=PALETTE["blue"],
                linestyle="--",
                linewidth=0.9,
            )
        points = dict(DENSE_POINTS, rasterized=True) if y.size > VECTOR_POINTS_MAX else {"s": 18}
        ax.scatter(y, s, color="black", zorder=3, **points)
        ax.set_xlim(usr[0], usr[1])  # type: ignore[index]
        ax.set_ylim(usr[2], usr[3])  # type: ignore[index]
        ax.set_yticks(geo["y_ticks"])  # type: ignore[arg-type]
        ax.set_yticklabels([f"{t:.3f}" for t in geo["y_ticks"]])  # type: ignore[union-attr]
        ax.set_xlabel(xlabel)
        ax.set_ylabel("Standard error")
        ax.set_title(title, fontsize=FONT_SIZE + 1)
        lv = sorted(levels)
        handles = [
            Patch(facecolor=SHADES[0], edgecolor="grey", label=f"p > {1 - lv[0] / 100:.2f}"),
            Patch(
                facecolor=SHADES[1], label=f"{1 - lv[1] / 100:.2f} < p \u2264 {1 - lv[0] / 100:.2f}"
            ),
            Patch(
                facecolor=SHADES[2], label=f"{1 - lv[2] / 100:.2f} < p \u2264 {1 - lv[1] / 100:.2f}"
            ),
            Patch(facecolor=OUTSIDE, edgecolor="grey", label=f"p \u2264 {1 - lv[2] / 100:.2f}"),
        ]
        if pooled_estimate is not None and np.isfinite(pooled_estimate):
            handles.append(
                Line2D([], [], color=PALETTE["blue"], linestyle="--", label="pooled estimate")
            )
        fig.legend(
            handles=handles,
            loc="lower center",
            ncol=3,
            bbox_to_anchor=(0.55, 0.06),
            fontsize=FONT_SIZE - 1,
            handlelength=1.5,
            columnspacing=1.0,
        )
        if note:
            fig.text(0.5, 0.015, note, ha="center", va="bottom", fontsize=FONT_SIZE - 1)
    return fig
