"""Time-course figure: the effect against time after dose (log scale), onset and duration marked.

What is drawn (each layer optional except the per-window estimates):

* the fitted time-response curve with its CI band and, lighter, its prediction-interval band
  (Riley et al. 2011, BMJ 342:d549: the PI shows where the effect of a new study is expected);
* every study's estimates as faint points, area proportional to the inverse-variance weight
  1/vi, joined per comparison across its reported times;
* the pooled estimate per time window with its CI and k written under it; a window with a single
  study (k = 1) is an open marker without a CI bar (nothing was pooled there);
* results published by earlier meta-analyses, hollow markers dodged to the left;
* the estimated onset, peak and end of the effect on the curve, each with its time interval as a
  horizontal bar and a label placed where it collides with nothing;
* the null line and 'favours' labels either side of it.

The figure draws the tables it is given and never fits a model. Layout is computed first by
the pure functions of :mod:`timecourse_meta.plots.timecourse_layout` (fixed geometry, ticks,
limits, label positions); the draw step only renders them. Rows that cannot be drawn (missing
or non-positive time) are reported with :func:`warnings.warn`, never silently dropped.
"""

from __future__ import annotations

import math
import textwrap

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, NullLocator
from matplotlib.transforms import blended_transform_factory

from timecourse_meta.plots.figures import DPI, FONT_SIZE, PALETTE, style_context
from timecourse_meta.plots.timecourse_cap import cap_study_lines
from timecourse_meta.plots.timecourse_layout import format_timepoint, marker_areas
from timecourse_meta.plots.timecourse_measure import (
    SMALL,
    FigureLabels,
    Inputs,
    Layout,
    all_times,
    clean_inputs,
    layout_timecourse,
)

__all__ = ["FigureLabels", "format_timepoint", "timecourse_plot"]

CURVE_COLOUR = PALETTE["blue"]
POOLED_COLOUR = PALETTE["orange"]
STUDY_COLOUR = "0.45"
MARK_COLOUR = "0.1"
PUBLISHED_COLOURS = [PALETTE["purple"], PALETTE["brown"], "0.2", PALETTE["cyan"], PALETTE["grey"]]
PUBLISHED_MARKERS = ["D", "^", "v", "P", "X", "h"]
QUANTITY_MARKERS = {"onset": ">", "peak": "*", "duration": "<"}
# Many studies (a 100 000-study sheet): above these counts the study lines are one collection
# instead of one line each (rasterised in vector outputs, PDF), and so are the study points;
# everything is still drawn. Below them the figure is drawn exactly as before.
MAX_LINE_ARTISTS = 1000
RASTERISE_POINTS = 5000


# ----------------------------------------------------------------------------- draw
def timecourse_plot(
    pooled: pd.DataFrame,
    *,
    studies: pd.DataFrame | None = None,
    curve: pd.DataFrame | None = None,
    summary: pd.DataFrame | None = None,
    published: pd.DataFrame | None = None,
    labels: FigureLabels | None = None,
    time_unit: str = "auto",
    model: str | None = None,
    null: float = 0.0,
    level: float = 0.95,
    max_studies: int | None = None,
) -> Figure:
    """The effect over time after dose on a log time axis; returns an Agg-backed figure.

    ``pooled``: timepoint, hours, k, estimate, ci_low, ci_high (one row per window; NaN
    estimate: shown only by its 'k = n, n.e.' label). ``studies``: comparison_id, time_hours,
    yi, vi (one row per comparison and reported time). ``curve``: time_hours, estimate, ci_low,
    ci_high and optionally pi_low, pi_high (a grid). ``summary``: quantity, time_hours,
    time_ci_low, time_ci_high (and estimate); rows with quantity onset, peak or duration are
    marked, where duration's time_hours is the time after dose the effect lasts to. Both
    curve and summary may carry a ``model`` column: one model is drawn (``model=`` chooses).
    ``published``: hours, estimate, ci_low, ci_high, label on this plot's scale and sign.
    ``time_unit``: 'auto' (hours and days), minutes, hours, days, weeks or months, for tick
    labels and axis title only; all times are in hours. ``max_studies``: draw the points and
    lines of at most this many comparisons, those with the largest weights, with a note at the
    end of the legend (:func:`.timecourse_cap.cap_study_lines`); all other layers are drawn
    from the tables as given (those of all studies). None: no cap.
    """
    labels = labels or FigureLabels()
    studies, cap_note = cap_study_lines(studies, max_studies)  # as given: the log's note too
    inp = clean_inputs(pooled, studies, curve, summary, published, model)
    with style_context():
        if not len(all_times(inp)):
            return _empty()
        lay = layout_timecourse(
            inp,
            labels,
            time_unit=time_unit,
            null=null,
            level=level,
            notes=[cap_note] if cap_note else [],
        )
        return _draw(inp, lay, labels, null)


def _empty() -> Figure:
    fig = Figure(figsize=(6.0, 1.2), dpi=DPI)
    FigureCanvasAgg(fig)
    fig.text(0.5, 0.5, "No time points to show", ha="center", va="center", gid="message")
    return fig


def _draw(inp: Inputs, lay: Layout, labels: FigureLabels, null: float) -> Figure:
    g = lay.geom
    fig = Figure(figsize=(g.width, g.height), dpi=DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_axes(g.axes_rect, gid="timecourse-axes")
    _axes(fig, ax, lay, labels, null)
    handles = []
    if inp.curve is not None and len(inp.curve):
        handles += _draw_curve(ax, inp.curve)
    if inp.studies is not None and len(inp.studies):
        handles.append(_draw_studies(ax, inp.studies))
    handles += _draw_pooled(ax, inp.pooled, lay.clip)
    if inp.published is not None and len(inp.published):
        handles += _draw_published(ax, inp.published, lay)
    clipped = _mark_clipped(ax, inp, lay)
    if lay.marks is not None and len(lay.marks):
        handles.append(_draw_marks(fig, ax, lay))
    for h, txt, y in zip(inp.pooled["hours"], lay.k_text, lay.k_y, strict=True):
        ax.text(
            h,
            y,
            txt,
            transform=blended_transform_factory(ax.transData, ax.transAxes),
            ha="center",
            va="bottom",
            fontsize=SMALL,
            color="0.25",
            gid=f"k-label:{h:g}",
        )
    for hd, lab in zip(handles, lay.legend, strict=True):
        hd.set_label(textwrap.fill(lab, g.legend_wrap))
    if any("n.e." in t for t in lay.k_text):
        handles.append(Line2D([], [], linestyle="none", label="n.e.: no pooled estimate"))
    if clipped:
        note = "interval continues beyond the axis (see the pooled table)"
        handles.append(
            Line2D(
                [],
                [],
                linestyle="none",
                marker="^",
                color="0.3",
                markersize=4,
                label=textwrap.fill(note, g.legend_wrap),
            )
        )
    for note in lay.notes:  # e.g. the cap of the study layer: text only, last in the legend
        handles.append(Line2D([], [], linestyle="none", label=textwrap.fill(note, g.legend_wrap)))
    fig.legend(
        handles=handles,
        loc="upper left",
        bbox_to_anchor=(g.legend_left / g.width, (g.ax_bottom + g.ax_height) / g.height),
        borderaxespad=0.0,
        borderpad=0.0,
        handlelength=1.8,
        fontsize=FONT_SIZE - 0.5,
    )
    if g.title_lines:
        fig.text(
            0.08 / g.width,
            1 - 0.1 / g.height,
            "\n".join(g.title_lines),
            ha="left",
            va="top",
            fontsize=FONT_SIZE + 1,
            fontweight="bold",
            gid="title",
        )
    return fig


def _axes(fig: Figure, ax: Axes, lay: Layout, labels: FigureLabels, null: float) -> None:
    ax.set_xscale("log")
    ax.set_xlim(*lay.xlim)
    ax.set_ylim(*lay.ylim)
    ax.xaxis.set_major_locator(FixedLocator([h for h, _ in lay.xticks]))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels([s for _, s in lay.xticks])
    ax.yaxis.set_major_locator(FixedLocator(lay.yticks))
    ax.set_xlabel(lay.xlabel)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.axhline(null, color="black", lw=0.8, zorder=1, gid="null-line")
    ax.set_ylabel(f"{labels.measure_label} ({labels.outcome_label})")
    g = lay.geom
    ax.yaxis.set_label_coords(
        (lay.ylabel_x_pt / 72 - g.ax_left) / g.ax_width, 0.5, transform=ax.transAxes
    )
    ax.yaxis.label.set_gid("ylabel")
    for side, (x, y, va) in lay.favours_pos.items():
        fig.text(
            x / 72 / g.width,
            y / 72 / g.height,
            lay.favours_text[side],
            rotation=90,
            ha="right",
            va=va,
            fontsize=SMALL,
            color="0.25",
            gid=f"favours:{side}",
        )


def _draw_curve(ax: Axes, c: pd.DataFrame) -> list[object]:
    t = c["time_hours"].to_numpy()
    out: list[object] = [
        ax.plot(t, c["estimate"], color=CURVE_COLOUR, lw=1.6, zorder=4, gid="curve")[0],
        ax.fill_between(
            t,
            c["ci_low"],
            c["ci_high"],
            color=CURVE_COLOUR,
            alpha=0.28,
            lw=0,
            zorder=2,
            gid="curve-ci",
        ),
    ]
    if {"pi_low", "pi_high"} <= set(c.columns) and c["pi_low"].notna().any():
        out.append(
            ax.fill_between(
                t,
                c["pi_low"],
                c["pi_high"],
                color=CURVE_COLOUR,
                alpha=0.1,
                lw=0,
                zorder=1.5,
                gid="curve-pi",
            )
        )
    return out


def _study_segments(s: pd.DataFrame) -> list[np.ndarray]:
    """(time, yi) polylines of the comparisons with several times, in groupby order (sorted
    comparison ids; rows by time, ties as given), without a Python step per row."""
    srt = s.sort_values("time_hours", kind="stable")
    codes = pd.factorize(srt["comparison_id"], sort=True)[0]
    keep = codes >= 0  # a missing comparison id belongs to no line (as groupby)
    codes = codes[keep]
    xy = np.column_stack([srt["time_hours"].to_numpy(float), srt["yi"].to_numpy(float)])[keep]
    order = np.argsort(codes, kind="stable")
    codes, xy = codes[order], xy[order]
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]]) if codes.size else codes
    return [seg for seg in np.split(xy, starts[1:]) if len(seg) > 1] if codes.size else []


def _draw_studies(ax: Axes, s: pd.DataFrame) -> object:
    area = marker_areas(s["vi"].to_numpy())
    many = s["comparison_id"].nunique() > MAX_LINE_ARTISTS
    if many:  # one collection of polylines, same style as the single lines below
        ax.add_collection(
            LineCollection(
                _study_segments(s),
                colors=STUDY_COLOUR,
                linewidths=0.6,
                alpha=0.35,
                zorder=2.5,
                gid="study-line",
                rasterized=True,
            )  # fmt: skip
        )
    by_time = s.sort_values("time_hours", kind="stable")
    for _, grp in () if many else by_time.groupby("comparison_id", sort=True):
        if len(grp) > 1:
            ax.plot(
                grp["time_hours"],
                grp["yi"],
                color=STUDY_COLOUR,
                lw=0.6,
                alpha=0.35,
                zorder=2.5,
                gid="study-line",
            )
    ax.scatter(
        s["time_hours"],
        s["yi"],
        s=np.nan_to_num(area, nan=4.0),
        color=STUDY_COLOUR,
        alpha=0.45,
        lw=0,
        zorder=2.6,
        gid="study-points",
        **({"rasterized": True} if len(s) > RASTERISE_POINTS else {}),
    )
    return Line2D(
        [], [], color=STUDY_COLOUR, alpha=0.6, lw=0.6, marker="o", markersize=4, markeredgewidth=0
    )


def _draw_pooled(ax: Axes, p: pd.DataFrame, clip: tuple[float, float]) -> list[object]:
    """k >= 2: filled circles with CI bars; k = 1: open circles without a bar (not pooled)."""
    est, k = p["estimate"].to_numpy(), p["k"].to_numpy()
    out: list[object] = []
    pooled = np.isfinite(est) & (k >= 2)
    if pooled.any():
        lo = np.clip(p["ci_low"].to_numpy(), *clip)[pooled]
        hi = np.clip(p["ci_high"].to_numpy(), *clip)[pooled]
        yerr = np.nan_to_num(np.vstack([est[pooled] - lo, hi - est[pooled]]))
        out.append(
            ax.errorbar(
                p["hours"].to_numpy()[pooled],
                est[pooled],
                yerr=yerr,
                fmt="o",
                color=POOLED_COLOUR,
                markeredgecolor="white",
                markeredgewidth=0.6,
                markersize=6,
                elinewidth=1.3,
                capsize=2.5,
                capthick=1.3,
                zorder=5,
                gid="pooled",
            )
        )
    single = np.isfinite(est) & (k == 1)
    if single.any():
        out.append(
            ax.plot(
                p["hours"].to_numpy()[single],
                est[single],
                linestyle="none",
                marker="o",
                markersize=7,
                markerfacecolor="none",
                markeredgecolor=POOLED_COLOUR,
                markeredgewidth=1.3,
                zorder=5,
                gid="single-study",
            )[0]
        )
    return out


def _draw_published(ax: Axes, pub: pd.DataFrame, lay: Layout) -> list[object]:
    x_all = lay.published_x
    out = []
    for j, lab in enumerate(dict.fromkeys(pub["label"])):
        sel = (pub["label"] == lab).to_numpy()
        sub = pub[sel]
        est = sub["estimate"].to_numpy()
        lo, hi = (np.clip(sub[c].to_numpy(), *lay.clip) for c in ("ci_low", "ci_high"))
        colour = PUBLISHED_COLOURS[j % len(PUBLISHED_COLOURS)]
        out.append(
            ax.errorbar(
                x_all[sel],
                est,
                yerr=np.nan_to_num(np.vstack([est - lo, hi - est])),
                fmt=PUBLISHED_MARKERS[j % len(PUBLISHED_MARKERS)],
                color=colour,
                markerfacecolor="white",
                markeredgecolor=colour,
                markeredgewidth=1.0,
                markersize=5,
                elinewidth=1.0,
                capsize=2,
                zorder=5,
                gid=f"published:{j}",
            )
        )
    return out


def _mark_clipped(ax: Axes, inp: Inputs, lay: Layout) -> bool:
    """Arrowheads at the data-area edge where a CI runs past it; True if any was drawn."""
    lo_lim, hi_lim = lay.clip
    frames = [(inp.pooled["hours"].to_numpy(), inp.pooled)]
    if inp.published is not None and len(inp.published):
        frames.append((inp.published["hours"].to_numpy(), inp.published))
    drawn = False
    for x, df in frames:
        ok = np.isfinite(df["estimate"].to_numpy())
        if "k" in df.columns:
            ok &= df["k"].to_numpy() >= 2  # a k = 1 window draws no interval
        for y, sel, marker in (
            (hi_lim, ok & (df["ci_high"].to_numpy() > hi_lim), "^"),
            (lo_lim, ok & (df["ci_low"].to_numpy() < lo_lim), "v"),
        ):
            if sel.any():
                ax.plot(
                    x[sel],
                    np.full(int(sel.sum()), y),
                    linestyle="none",
                    marker=marker,
                    color="0.3",
                    markersize=5,
                    clip_on=False,
                    zorder=6,
                    gid="clipped",
                )
                drawn = True
    return drawn


def _draw_marks(fig: Figure, ax: Axes, lay: Layout) -> object:
    m = lay.marks
    lo_x, hi_x = lay.xlim
    for (_, r), txt, (x, y, ha, va), lead in zip(
        m.iterrows(), lay.mark_text, lay.mark_pos, lay.mark_leaders, strict=True
    ):
        q = r["quantity"]
        if lead is not None:  # label pushed away by obstacles: a thin line back to its marker
            fig.add_artist(
                Line2D(
                    [lead[0] / 72, lead[2] / 72],
                    [lead[1] / 72, lead[3] / 72],
                    transform=fig.dpi_scale_trans,
                    color="0.35",
                    lw=0.5,
                    zorder=7.5,
                    gid=f"mark-leader:{q}",
                )
            )
        lo = r["time_hours"] if math.isnan(r["time_ci_low"]) else r["time_ci_low"]
        hi = r["time_hours"] if math.isnan(r["time_ci_high"]) else r["time_ci_high"]
        ax.plot(
            [max(lo, lo_x), min(hi, hi_x)],
            [r["y"]] * 2,
            color=MARK_COLOUR,
            lw=1.2,
            solid_capstyle="butt",
            zorder=6,
            gid=f"mark-bar:{q}",
        )
        for end, edge, mk in ((lo, lo_x, "<"), (hi, hi_x, ">")):
            if (end < edge) if mk == "<" else (end > edge):
                ax.plot(
                    [edge],
                    [r["y"]],
                    marker=mk,
                    color=MARK_COLOUR,
                    markersize=4,
                    clip_on=False,
                    zorder=6,
                    gid=f"mark-clipped:{q}",
                )
        ax.plot(
            [r["time_hours"]],
            [r["y"]],
            marker=QUANTITY_MARKERS.get(q, "o"),
            color=MARK_COLOUR,
            markeredgecolor="white",
            markeredgewidth=0.6,
            markersize=8 if q == "peak" else 6.5,
            linestyle="none",
            zorder=7,
            gid=f"mark:{q}",
        )
        fig.text(
            x / 72 / lay.geom.width,
            y / 72 / lay.geom.height,
            txt,
            ha=ha,
            va=va,
            fontsize=SMALL,
            color=MARK_COLOUR,
            zorder=8,
            gid=f"mark-label:{q}",
            bbox=dict(boxstyle="square,pad=0.1", fc="white", ec="none", alpha=0.75),
        )
    return Line2D([], [], color=MARK_COLOUR, lw=1.2, marker=">", markersize=5)
