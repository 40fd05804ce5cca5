"""Measure the time-course figure's inputs and lay it out (no drawing).

Cleans the input frames (drawable rows only, with a warning for the others), picks the values
that set the axes, words the legend, and turns it all into a :class:`Layout` with the pure
functions of :mod:`timecourse_meta.plots.timecourse_layout`: geometry, limits, ticks and the
places of the onset/peak/duration and 'favours' labels. The draw step
(:mod:`timecourse_meta.plots.timecourse_plot`) only renders a Layout.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from timecourse_meta.plots.figures import FONT_SIZE
from timecourse_meta.plots.timecourse_layout import (
    Box,
    Geometry,
    dodged,
    format_time,
    geometry,
    leader,
    log_x_pt,
    place_labels,
    room_around,
    text_box,
    text_width_pt,
    time_axis_label,
    time_ticks,
    x_limits,
    y_limits,
)

__all__ = ["QUANTITIES", "FigureLabels", "Inputs", "Layout", "clean_inputs", "layout_timecourse"]

SMALL = FONT_SIZE - 1.0  # 7 pt: the smallest text of the figure
LEADER_FROM = 9.0  # a label farther than this (points) from its marker gets a leader line
K_BAND = 0.08  # fraction of the axes height kept free at the bottom for the 'k = n' labels
QUANTITIES = ("onset", "peak", "duration")
_POOLED_COLS = ("timepoint", "hours", "k", "estimate", "ci_low", "ci_high")
_PUBLISHED_COLS = ("hours", "estimate", "ci_low", "ci_high", "label")
_STUDY_COLS = ("comparison_id", "time_hours", "yi", "vi")
_CURVE_COLS = ("time_hours", "estimate", "ci_low", "ci_high")
_SUMMARY_COLS = ("quantity", "time_hours", "time_ci_low", "time_ci_high")
_NUMERIC = frozenset(
    ("estimate", "ci_low", "ci_high", "pi_low", "pi_high", "yi", "vi", "k")
    + ("time_ci_low", "time_ci_high")
)


@dataclass(frozen=True)
class FigureLabels:
    """Every text of the figure; the review's own words (drug, scale) come from the config.

    ``favours`` is a template with ``{arm}``: above the null line it names the intervention,
    below it the comparator (effects are oriented so that positive = benefit).
    ``quantities``: the word before each marked time ('onset 3 h', 'lasts to 5 d').
    """

    title: str | None = None
    outcome_label: str = "Outcome"
    measure_label: str = "Effect size (positive = benefit)"
    favours: str = "Favours {arm}"
    intervention: str = "intervention"
    comparator: str = "control"
    time_label: str = "Time after dose"
    curve_label: str = "fitted time response"
    quantities: Mapping[str, str] = field(
        default_factory=lambda: {"onset": "onset", "peak": "peak", "duration": "lasts to"}
    )


def _require(df: pd.DataFrame, cols: Sequence[str], what: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ValueError(f"{what}: missing column(s) {missing}")


def _placeable(df: pd.DataFrame, time_col: str, what: str) -> pd.DataFrame:
    """Rows with a finite, positive time (log axis); warn about the others. Numbers as float."""
    t = pd.to_numeric(df[time_col], errors="coerce").to_numpy(dtype=float)
    ok = np.isfinite(t) & (t > 0)
    if not ok.all():
        warnings.warn(
            f"timecourse_plot: {int((~ok).sum())} {what} row(s) without a positive time "
            "cannot be placed on the log time axis and are not drawn",
            stacklevel=4,
        )
    out = df.loc[ok].copy()
    for c in out.columns:
        if c == time_col or c in _NUMERIC:
            out[c] = pd.to_numeric(out[c], errors="coerce").astype(float)
    return out.reset_index(drop=True)


def _one_model(df: pd.DataFrame | None, model: str | None, what: str) -> pd.DataFrame | None:
    if df is None or "model" not in df.columns:
        return df
    models = list(dict.fromkeys(df["model"].astype(str)))
    if model is not None:
        if model not in models:
            raise ValueError(f"{what}: model {model!r} not among {models}")
        return df[df["model"].astype(str) == model].reset_index(drop=True)
    if len(models) > 1:
        raise ValueError(f"{what}: several models {models}; pass model= to choose one")
    return df


@dataclass
class Inputs:
    """The cleaned input frames (only drawable rows)."""

    pooled: pd.DataFrame
    studies: pd.DataFrame | None
    curve: pd.DataFrame | None
    marks: pd.DataFrame | None
    published: pd.DataFrame | None


def clean_inputs(
    pooled: pd.DataFrame,
    studies: pd.DataFrame | None,
    curve: pd.DataFrame | None,
    summary: pd.DataFrame | None,
    published: pd.DataFrame | None,
    model: str | None,
) -> Inputs:
    """Check the columns and keep the drawable rows (see :func:`timecourse_plot` for shapes).

    Raises ValueError for a missing column or an ambiguous model; warns about every row left
    out (no positive time, no estimate) so that nothing disappears silently.
    """
    _require(pooled, _POOLED_COLS, "pooled")
    pooled = _placeable(pooled, "hours", "pooled")
    if studies is not None:
        _require(studies, _STUDY_COLS, "studies")
        studies = _placeable(studies, "time_hours", "study")
        bad = ~np.isfinite(studies["yi"].to_numpy())
        if bad.any():
            warnings.warn(
                f"timecourse_plot: {int(bad.sum())} study row(s) without an estimate (yi) "
                "are not drawn",
                stacklevel=3,
            )
            studies = studies[~bad].reset_index(drop=True)
    curve = _one_model(curve, model, "curve")
    if curve is not None:
        _require(curve, _CURVE_COLS, "curve")
        curve = _placeable(curve, "time_hours", "curve").sort_values("time_hours")
        curve = curve.reset_index(drop=True)
    marks = None
    summary = _one_model(summary, model, "summary")
    if summary is not None:
        _require(summary, _SUMMARY_COLS, "summary")
        sel = summary[summary["quantity"].isin(QUANTITIES)]
        marks = _placeable(sel, "time_hours", "onset/peak/duration") if len(sel) else None
    if published is not None:
        _require(published, _PUBLISHED_COLS, "published")
        published = _placeable(published, "hours", "published")
        if published["estimate"].isna().any():
            warnings.warn(
                f"timecourse_plot: {int(published['estimate'].isna().sum())} published row(s) "
                "without an estimate are not drawn",
                stacklevel=3,
            )
            published = published[published["estimate"].notna()].reset_index(drop=True)
        published["label"] = published["label"].astype(str)
    return Inputs(pooled, studies, curve, marks, published)


def _curve_at(curve: pd.DataFrame | None, hours: np.ndarray) -> np.ndarray:
    """The fitted curve's estimate at ``hours`` (linear in log time between grid points)."""
    if curve is None or curve["estimate"].notna().sum() < 2:
        return np.full(np.shape(hours), np.nan)
    c = curve[curve["estimate"].notna()]
    return np.interp(np.log(hours), np.log(c["time_hours"]), c["estimate"])


def _mark_points(inp: Inputs) -> pd.DataFrame | None:
    """Onset/peak/duration rows with their y: on the curve, else the row's own estimate."""
    m = inp.marks
    if m is None or not len(m):
        return None
    y = _curve_at(inp.curve, m["time_hours"].to_numpy())
    if "estimate" in m.columns:
        y = np.where(np.isfinite(y), y, m["estimate"].to_numpy(dtype=float))
    m = m.assign(y=y)
    if not np.isfinite(y).all():
        warnings.warn(
            f"timecourse_plot: {int((~np.isfinite(y)).sum())} onset/peak/duration row(s) "
            "have no curve or estimate to stand on and are not drawn",
            stacklevel=3,
        )
    order = {q: i for i, q in enumerate(QUANTITIES)}
    m = m[np.isfinite(y)].assign(_o=lambda d: d["quantity"].map(order))
    return m.sort_values(["_o", "time_hours"], kind="stable").drop(columns="_o")


# ----------------------------------------------------------------------------- lay out
@dataclass
class Layout:
    """Everything the draw step needs, computed without drawing (inches, points, data units)."""

    geom: Geometry
    xlim: tuple[float, float]
    ylim: tuple[float, float]
    clip: tuple[float, float]  # data area in y: intervals are cut here and marked by arrows
    xticks: list[tuple[float, str]]
    xlabel: str
    yticks: list[float]
    legend: list[str]
    marks: pd.DataFrame | None
    mark_text: list[str]
    mark_pos: list[tuple[float, float, str, str]]  # figure points
    mark_leaders: list[tuple[float, float, float, float] | None]  # marker -> far label, points
    favours_pos: dict[str, tuple[float, float, str]]  # side -> (x pt, y pt, va)
    favours_text: dict[str, str]
    ylabel_x_pt: float
    k_text: list[str]
    k_y: list[float]  # axes fraction of each 'k = n' label (staggered where they would touch)
    published_x: np.ndarray  # published results' positions, dodged left of their time
    notes: list[str] = field(default_factory=list)  # text-only legend entries, at its end


def _y_values(inp: Inputs) -> tuple[np.ndarray, np.ndarray]:
    """(core, extent): the estimates, and their CI ends, that set the y axis."""
    core, ext = [inp.pooled["estimate"].to_numpy()], [inp.pooled[["ci_low", "ci_high"]]]
    if inp.studies is not None:
        core.append(inp.studies["yi"].to_numpy())
    if inp.curve is not None:
        core.append(inp.curve["estimate"].to_numpy())
        ext.append(inp.curve[["ci_low", "ci_high"]])
    if inp.published is not None:
        core.append(inp.published["estimate"].to_numpy())
        ext.append(inp.published[["ci_low", "ci_high"]])
    ext_v = np.concatenate([np.asarray(e, dtype=float).ravel() for e in ext])
    return np.concatenate(core).astype(float), ext_v


def all_times(inp: Inputs) -> np.ndarray:
    hs = [inp.pooled["hours"].to_numpy()]
    if inp.studies is not None:
        hs.append(inp.studies["time_hours"].to_numpy())
    if inp.curve is not None:
        hs.append(inp.curve["time_hours"].to_numpy())
    if inp.published is not None:
        hs.append(inp.published["hours"].to_numpy())
    if inp.marks is not None:
        hs.append(inp.marks["time_hours"].to_numpy())
    return np.concatenate(hs).astype(float)


def _legend_entries(inp: Inputs, labels: FigureLabels, pct: str, marks) -> list[str]:
    out = []
    if inp.curve is not None and len(inp.curve):
        out += [labels.curve_label, f"{pct} CI of the curve"]
        if {"pi_low", "pi_high"} <= set(inp.curve.columns) and inp.curve["pi_low"].notna().any():
            out.append(f"{pct} prediction interval")
    if inp.studies is not None and len(inp.studies):
        out.append("study estimates (area \u221d 1/variance), joined per comparison")
    k = inp.pooled["k"].to_numpy()
    est = inp.pooled["estimate"].to_numpy()
    if ((k >= 2) & np.isfinite(est)).any():
        out.append(f"pooled per window, {pct} CI")
    if ((k == 1) & np.isfinite(est)).any():
        out.append("single study (k\u00a0=\u00a01), not pooled")
    if inp.published is not None:
        out += [f"published: {lab}" for lab in dict.fromkeys(inp.published["label"])]
    if marks is not None and len(marks):
        words = [labels.quantities.get(q, q) for q in dict.fromkeys(marks["quantity"])]
        out.append(f"{', '.join(words)} (bar: {pct} CI of the time)")
    return out


def _k_text(pooled: pd.DataFrame) -> list[str]:
    out = []
    for k, est in zip(pooled["k"], pooled["estimate"], strict=True):
        txt = f"k = {k:.0f}" if math.isfinite(k) else "k = NA"
        out.append(txt + (", n.e." if not math.isfinite(est) else ""))
    return out


def _k_rows(
    hours: np.ndarray, texts: list[str], xlim: tuple[float, float], ax_x0: float, ax_w: float
) -> list[int]:
    """Row of each 'k = n' label (0 = lowest): a label that would touch the one before it in
    a row goes one row up (greedy, left to right), so close windows never overlap."""
    right_of_row: list[float] = []
    rows = [0] * len(texts)
    for i in np.argsort(hours, kind="stable"):
        if not math.isfinite(float(hours[i])) or hours[i] <= 0:
            continue
        x = float(log_x_pt(float(hours[i]), *xlim, ax_x0, ax_w))
        half = text_width_pt(texts[i], SMALL) / 2
        row = next((r for r, right in enumerate(right_of_row) if x - half > right + 2.0), None)
        if row is None:
            row = len(right_of_row)
            right_of_row.append(0.0)
        right_of_row[row] = x + half
        rows[i] = row
    return rows


def _mark_label(row: pd.Series, labels: FigureLabels, unit: str) -> str:
    word = labels.quantities.get(row["quantity"], row["quantity"])
    txt = f"{word} {format_time(float(row['time_hours']), unit, 2)}"
    lo, hi = float(row["time_ci_low"]), float(row["time_ci_high"])
    if math.isfinite(lo) and math.isfinite(hi):
        a, b = format_time(lo, unit, 2), format_time(hi, unit, 2)
        if a.split(" ")[-1] == b.split(" ")[-1]:
            a = a.split(" ")[0]
        txt += f" ({a}\u2013{b})"
    return txt


def layout_timecourse(
    inp: Inputs,
    labels: FigureLabels,
    *,
    time_unit: str,
    null: float,
    level: float,
    notes: Sequence[str] = (),
) -> Layout:
    """Measure the inputs and lay the figure out: geometry, axes limits, ticks, label places.

    ``notes``: text-only legend entries after the others (the legend column, and the figure's
    height when the column needs it, grow to hold them)."""
    pct = f"{100 * level:g}%"
    marks = _mark_points(inp)
    legend = _legend_entries(inp, labels, pct, marks)
    extra = 2  # room for the clipped-interval and n.e. notes, decided after the limits
    geom = geometry(labels.title, [*legend, *["x" * 40] * extra, *notes], font_pt=FONT_SIZE)
    ax_x0, ax_y0 = geom.ax_left * 72, geom.ax_bottom * 72
    ax_w, ax_h = geom.ax_width * 72, geom.ax_height * 72
    xlim = x_limits(all_times(inp))
    xticks = time_ticks(*xlim, time_unit, axis_width_pt=ax_w, font_pt=FONT_SIZE)
    pub_x = np.empty(0) if inp.published is None else dodged(inp.published["hours"], xlim)
    core, ext = _y_values(inp)
    k_text = _k_text(inp.pooled)
    k_rows = _k_rows(inp.pooled["hours"].to_numpy(float), k_text, xlim, ax_x0, ax_w)
    row_h = SMALL * 1.25 / ax_h  # one label row, axes fraction
    k_band = K_BAND + row_h * max(k_rows, default=0)
    ymin, ymax, data_low = y_limits(core, ext, null=null, bottom_band=k_band)

    # favours labels, rotated, left of the tick labels: each side of the null needs its length
    fav = {
        "up": f"{labels.favours.format(arm=labels.intervention)} \u2192",
        "down": f"\u2190 {labels.favours.format(arm=labels.comparator)}",
    }
    gap = 3.0
    need = [text_width_pt(fav[s], SMALL) + gap for s in ("up", "down")]
    ymin, ymax = room_around(ymin, ymax, null, ax_h, *need)
    locator = MaxNLocator(nbins=9, steps=[1, 2, 2.5, 5, 10])
    yticks = [float(t) for t in locator.tick_values(ymin, ymax) if ymin <= t <= ymax]
    tick_w = max(text_width_pt(f"{t:g}".replace("-", "\u2212"), FONT_SIZE) for t in yticks)
    fav_x = ax_x0 - 3.5 - 3.5 - tick_w - 3.0  # tick length, pad, labels, gap
    null_y = ax_y0 + (null - ymin) / (ymax - ymin) * ax_h
    fav_pos = {"up": (fav_x, null_y + gap, "bottom"), "down": (fav_x, null_y - gap, "top")}

    mark_text, mark_pos, mark_leaders = [], [], []
    if marks is not None and len(marks):
        mark_text = [_mark_label(r, labels, time_unit) for _, r in marks.iterrows()]
        ax_pt = (ax_x0, ax_y0, ax_w, ax_h)
        anchors = [
            _to_pt(h, y, xlim, (ymin, ymax), ax_pt)
            for h, y in zip(marks["time_hours"], marks["y"], strict=True)
        ]
        mark_pos = place_labels(
            anchors,
            mark_text,
            size_pt=SMALL,
            bounds=Box(ax_x0 + 2, ax_y0 + k_band * ax_h, ax_x0 + ax_w - 2, ax_y0 + ax_h - 2),
            obstacles=_obstacles(inp, marks, pub_x, xlim, (ymin, ymax), ax_pt),
        )
        mark_leaders = [
            leader(a, text_box(x, y, t, SMALL, ha, va), LEADER_FROM)
            for a, t, (x, y, ha, va) in zip(anchors, mark_text, mark_pos, strict=True)
        ]
    return Layout(
        geom=geom,
        xlim=xlim,
        ylim=(ymin, ymax),
        clip=(data_low, ymax),
        xticks=xticks,
        xlabel=time_axis_label(time_unit, labels.time_label),
        yticks=yticks,
        legend=legend,
        marks=marks,
        mark_text=mark_text,
        mark_pos=mark_pos,
        mark_leaders=mark_leaders,
        favours_pos=fav_pos,
        favours_text=fav,
        ylabel_x_pt=fav_x - SMALL * 1.25 - 3.0,
        k_text=k_text,
        k_y=[0.012 + row_h * r for r in k_rows],
        published_x=pub_x,
        notes=list(notes),
    )


def _to_pt(h, y, xlim, ylim, ax_pt) -> tuple[float, float]:
    x0, y0, w, hgt = ax_pt
    return (
        float(log_x_pt(h, *xlim, x0, w)),
        y0 + (float(y) - ylim[0]) / (ylim[1] - ylim[0]) * hgt,
    )


def _obstacles(inp: Inputs, marks, pub_x, xlim, ylim, ax_pt) -> list[Box]:
    """What a mark label must not cover: markers, pooled CIs, the curve and the time bars."""
    boxes: list[Box] = []

    def box(h0: float, h1: float, y0: float, y1: float, r: float) -> None:
        """Box around the data span [h0, h1] x [y0, y1] (cut at the axes), r points wider."""
        y0, y1 = max(y0, ylim[0]), min(y1, ylim[1])
        h0, h1 = max(h0, xlim[0]), min(h1, xlim[1])
        if math.isfinite(y0) and math.isfinite(y1) and y0 <= y1 and h0 <= h1:
            x0, yy0 = _to_pt(h0, y0, xlim, ylim, ax_pt)
            x1, yy1 = _to_pt(h1, y1, xlim, ylim, ax_pt)
            boxes.append(Box(x0 - r, yy0 - r, x1 + r, yy1 + r))

    for h, y in zip(marks["time_hours"], marks["y"], strict=True):
        box(h, h, y, y, 5.0)
    for h, y, k, lo, hi in zip(
        *(inp.pooled[c] for c in ("hours", "estimate", "k", "ci_low", "ci_high")), strict=True
    ):
        box(h, h, y, y, 4.0)
        if k >= 2:
            box(h, h, lo, hi, 1.5)  # the CI bar, as drawn
    if inp.published is not None:
        for h, y, lo, hi in zip(
            pub_x, *(inp.published[c] for c in ("estimate", "ci_low", "ci_high")), strict=True
        ):
            box(h, h, lo if np.isfinite(lo) else y, hi if np.isfinite(hi) else y, 3.0)
    if inp.curve is not None:
        hs = np.geomspace(*xlim, 60)
        for h, y in zip(hs, _curve_at(inp.curve, hs), strict=True):
            box(h, h, y, y, 1.5)
    for _, r in marks.iterrows():
        lo = r["time_hours"] if math.isnan(r["time_ci_low"]) else r["time_ci_low"]
        hi = r["time_hours"] if math.isnan(r["time_ci_high"]) else r["time_ci_high"]
        box(lo, hi, r["y"], r["y"], 1.5)
    return boxes
