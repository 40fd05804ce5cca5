"""Tests of the time-course figure: pure layout functions and the drawn figure.

Inputs are synthetic frames shaped like the workflow's tables (pooled per window, effects per
study and time, the time-response grid and summary); the numbers are arbitrary plot inputs,
not data claims. Expected layout values are hand-computed in the comments. Drawn-figure checks
are geometric: text bounding boxes come from the Agg renderer of the figure.
"""

from __future__ import annotations

import itertools
import math
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PathCollection, PolyCollection
from matplotlib.container import ErrorbarContainer
from matplotlib.text import Text

from timecourse_meta.plots.figures import save_figure
from timecourse_meta.plots.timecourse_layout import (
    Box,
    format_time,
    leader,
    marker_areas,
    place_labels,
    room_around,
    text_box,
    time_axis_label,
    time_ticks,
    x_limits,
    y_limits,
)
from timecourse_meta.plots.timecourse_plot import FigureLabels, timecourse_plot

TP = ["4h", "24h", "3d", "7d", "14d"]
HOURS = [4.0, 24.0, 72.0, 168.0, 336.0]
LABELS = FigureLabels(
    title="Effect over time (synthetic)",
    outcome_label="score",
    measure_label="SMD",
    intervention="drug A",
    comparator="placebo",
)


# ---------------------------------------------------------------- synthetic inputs
def pooled_frame() -> pd.DataFrame:
    """Five windows; 3d has k = 2 with a CI far beyond the others; 7d and 14d have k = 1."""
    est = np.array([0.5, 0.65, 0.5, 0.25, -0.05])
    lo = est - np.array([0.12, 0.22, 6.8, 0.65, 0.64])
    hi = est + np.array([0.12, 0.22, 6.8, 0.65, 0.64])
    return pd.DataFrame(
        {"timepoint": TP, "hours": HOURS, "k": [5, 9, 2, 1, 1], "estimate": est,
         "ci_low": lo, "ci_high": hi}
    )  # fmt: skip


def studies_frame() -> pd.DataFrame:
    """Four comparisons at their own reported times (one row per comparison and time)."""
    rows = [
        ("S1", "S1", 2.0, 0.6, 0.19), ("S1", "S1", 24.0, 0.9, 0.2),
        ("S2", "S2", 4.0, 0.5, 0.018), ("S2", "S2", 24.0, 0.3, 0.018),
        ("S3", "S3", 24.0, 0.4, 0.1), ("S3", "S3", 72.0, 0.02, 0.1),
        ("S3", "S3", 168.0, 0.25, 0.11), ("S3", "S3", 336.0, -0.06, 0.1),
        ("S4", "S4", 72.0, 1.1, 0.23),
    ]  # fmt: skip
    return pd.DataFrame(rows, columns=["study_id", "comparison_id", "time_hours", "yi", "vi"])


def curve_frame(model: str = "spline") -> pd.DataFrame:
    t = np.geomspace(2.0, 336.0, 60)
    est = 0.75 * np.exp(-((np.log(t) - np.log(20.0)) ** 2) / (2 * 1.3**2))
    se = 0.08 + 0.05 * np.abs(np.log(t) - np.log(20.0))
    return pd.DataFrame(
        {"outcome": "score", "measure": "SMD", "model": model, "time_hours": t, "estimate": est,
         "se": se, "ci_low": est - 1.96 * se, "ci_high": est + 1.96 * se,
         "pi_low": est - 1.96 * np.hypot(se, 0.2), "pi_high": est + 1.96 * np.hypot(se, 0.2)}
    )  # fmt: skip


def summary_frame(model: str = "spline") -> pd.DataFrame:
    q = ["onset", "peak", "duration", "test_no_change", "prediction"]
    return pd.DataFrame(
        {"outcome": "score", "measure": "SMD", "model": model, "quantity": q,
         "time_hours": [2.5, 20.0, 120.0, np.nan, 48.0],
         "time_ci_low": [1.5, 10.0, 60.0, np.nan, np.nan],
         "time_ci_high": [4.0, 40.0, 300.0, np.nan, np.nan],
         "estimate": [0.3, 0.75, 0.1, np.nan, 0.5]}
    )  # fmt: skip


def published_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {"hours": [24.0, 24.0, 4.0], "estimate": [0.87, 0.49, 0.6],
         "ci_low": [0.48, 0.10, 0.4], "ci_high": [1.26, 0.87, 0.8],
         "label": ["Review A 2021", "Review B 2016", "Review A 2021"]}
    )  # fmt: skip


def full_figure(**kw):
    return timecourse_plot(
        pooled_frame(),
        studies=studies_frame(),
        curve=curve_frame(),
        summary=summary_frame(),
        published=published_frame(),
        labels=LABELS,
        **kw,
    )


# ---------------------------------------------------------------- helpers
def texts(fig) -> list[Text]:
    """Every drawn, non-empty text (ticks outside the view limits are not drawn: skipped)."""
    hidden = set()
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            lo, hi = sorted(axis.get_view_interval())
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                if not lo <= tick.get_loc() <= hi:
                    hidden |= {id(tick.label1), id(tick.label2)}
    return [
        t
        for t in fig.findobj(Text)
        if t.get_visible() and t.get_text().strip() and id(t) not in hidden
    ]


def gid_objects(fig, prefix: str) -> list:
    return [a for a in fig.findobj() if (a.get_gid() or "").startswith(prefix)]


def main_axes(fig):
    (ax,) = [a for a in fig.axes if a.get_gid() == "timecourse-axes"]
    return ax


def legend_texts(fig) -> list[str]:
    return [t.get_text().replace("\n", " ") for leg in fig.legends for t in leg.get_texts()]


def overlaps(a, b, tol: float = 0.5) -> bool:
    return (min(a.x1, b.x1) - max(a.x0, b.x0) > tol) and (min(a.y1, b.y1) - max(a.y0, b.y0) > tol)


def assert_clean_layout(fig) -> None:
    """No two texts overlap, none is cut off at the figure edge, none is under 7 pt."""
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    boxes = [(t.get_gid() or t.get_text(), t.get_window_extent(r)) for t in texts(fig)]
    clashes = [(a, b) for (a, ba), (b, bb) in itertools.combinations(boxes, 2) if overlaps(ba, bb)]
    assert clashes == []
    w, h = fig.get_size_inches() * fig.dpi
    for name, b in boxes:
        assert b.x0 >= 0 and b.y0 >= 0 and b.x1 <= w and b.y1 <= h, name
    for t in texts(fig):
        assert t.get_fontsize() >= 7.0, (t.get_text(), t.get_fontsize())


# ---------------------------------------------------------------- pure layout functions
def test_format_time_units() -> None:
    assert format_time(72.0) == "3 d"  # auto: days from 48 h
    assert format_time(24.0) == "24 h" and format_time(0.5) == "30 min"
    assert format_time(336.0, "weeks") == "2 wk"
    assert format_time(730.5, "months") == "1 mo"  # 365.25 d / 12 = 30.4375 d = 730.5 h
    assert format_time(90.0, "minutes") == "5400 min"
    assert format_time(2.54, "auto", 2) == "2.5 h" and format_time(121.0, "days", 2) == "5 d"
    with pytest.raises(ValueError, match="time_unit"):
        format_time(1.0, "fortnights")
    assert time_axis_label("auto") == "Time after dose (log scale)"
    assert time_axis_label("weeks") == "Time after dose, weeks (log scale)"


def test_time_ticks_hours_and_days() -> None:
    # x range of the windows 4 h .. 14 d: 4 / 1.6 = 2.5 h .. 336 * 1.6 = 537.6 h
    lo, hi = x_limits(HOURS)
    assert (lo, hi) == pytest.approx((2.5, 537.6))
    ticks = time_ticks(lo, hi, "auto", axis_width_pt=310.0, font_pt=8.0)
    # rank <= 3 candidates crowd (6 h and 8 h next to 4 h); rank <= 2 in range fits:
    assert [s for _, s in ticks] == ["4 h", "12 h", "24 h", "2 d", "3 d", "7 d", "14 d"]
    assert [h for h, _ in ticks] == [4.0, 12.0, 24.0, 48.0, 72.0, 168.0, 336.0]
    # a narrow axis keeps only the rank-1 values (24 h, 7 d)
    narrow = time_ticks(lo, hi, "auto", axis_width_pt=70.0, font_pt=8.0)
    assert [s for _, s in narrow] == ["24 h", "7 d"]


def test_time_ticks_weeks_and_months() -> None:
    ticks = time_ticks(2.5, 537.6, "weeks", axis_width_pt=310.0, font_pt=8.0)
    # 0.0149 .. 3.2 wk = 2.3325 decades on 310 pt. Rank 3 adds 3 wk, 0.176 decade = 23 pt from
    # 2 wk, but '2 wk' and '3 wk' (24 pt each) need 24 + 6 = 30 pt: too close. Rank 2 fits:
    # tightest pair 0.05 wk / 0.1 wk: 0.301 decade = 40.0 pt >= (33.6 + 28.8) / 2 + 6 = 37.2 pt
    assert [s for _, s in ticks] == [
        "0.02 wk", "0.05 wk", "0.1 wk", "0.2 wk", "0.5 wk", "1 wk", "2 wk"
    ]  # fmt: skip
    assert [h for h, _ in ticks] == pytest.approx([3.36, 8.4, 16.8, 33.6, 84.0, 168.0, 336.0])
    # 1 d .. 800 d in months: 2 mo and 3 mo are 0.176 decade = 19 pt apart (too close), so
    # only the rank-1 values remain
    months = time_ticks(24.0, 24.0 * 800, "months", axis_width_pt=310.0, font_pt=8.0)
    assert [s for _, s in months] == ["0.1 mo", "1 mo", "12 mo"]
    with pytest.raises(ValueError, match="0 < low < high"):
        time_ticks(0.0, 10.0, axis_width_pt=100.0, font_pt=8.0)


def test_y_limits_cap_and_band() -> None:
    # core 0.6, 0.5, 0.2 and the null 0: range 0.6; extent up to -7.5 .. 8.5 is cut at one
    # core range beyond the core: [0 - 0.6, 0.6 + 0.6] = [-0.6, 1.2]; pad 0.06 * 1.8 = 0.108
    # -> top 1.308, data_low -0.708; band 8 %: ymin = 1.308 - 2.016 / 0.92 = -0.883304
    ymin, ymax, data_low = y_limits(
        [0.6, 0.5, 0.2], [0.2, 1.0, -7.5, 8.5, -0.3, 0.7], bottom_band=0.08
    )
    assert ymax == pytest.approx(1.308)
    assert data_low == pytest.approx(-0.708)
    assert ymin == pytest.approx(1.308 - 2.016 / 0.92)
    # moderate CIs are all shown (nothing cut): [-0.1, 0.9] padded by 0.06
    ymin2, ymax2, _ = y_limits([0.3, 0.5], [-0.1, 0.9])
    assert (ymin2, ymax2) == pytest.approx((-0.16, 0.96))


def test_room_around_null_for_favours_labels() -> None:
    # 60 pt of a 200 pt axis below the null: (0 - ymin) / (1 - ymin) = 0.3 -> ymin = -0.3 / 0.7
    assert room_around(-0.1, 1.0, 0.0, 200.0, 60.0, 60.0) == pytest.approx((-0.3 / 0.7, 1.0))
    assert room_around(-1.0, 1.0, 0.0, 200.0, 60.0, 60.0) == (-1.0, 1.0)  # room on both sides
    # both sides short: -0.05 .. 0.05 needs 30 % each -> unchanged ratio 50/50 already fits
    assert room_around(-0.05, 0.05, 0.0, 200.0, 60.0, 60.0) == (-0.05, 0.05)
    lo, hi = room_around(0.0, 1.0, 0.0, 200.0, 50.0, 50.0)  # null at the bottom edge
    assert (0.0 - lo) / (hi - lo) == pytest.approx(0.25) and hi == 1.0
    assert room_around(0.0, 1.0, 0.0, 100.0, 60.0, 60.0) == (0.0, 1.0)  # cannot fit: as is


def test_marker_areas_proportional_to_weight() -> None:
    a = marker_areas([0.1, 0.2, 0.4, np.nan, 0.0])
    # weights 10, 5, 2.5: the largest gets 80 pt^2, the others in proportion
    assert a[:3] == pytest.approx([80.0, 40.0, 20.0])
    assert np.isnan(a[3:]).all()
    assert marker_areas([0.01, 10.0])[1] == 6.0  # 80 / 1000 floored at the smallest area


def test_place_labels_avoid_each_other_and_obstacles() -> None:
    bounds = Box(0, 0, 300, 200)
    anchors = [(100.0, 100.0), (104.0, 102.0), (296.0, 100.0)]
    texts_ = ["onset 2.5 h (1.5\u20134 h)", "peak 20 h", "lasts to 5 d"]
    obstacle = Box(100, 100, 160, 120)  # covers the first spot (above right) of label 1
    pos = place_labels(anchors, texts_, size_pt=7.0, bounds=bounds, obstacles=[obstacle])
    boxes = [text_box(x, y, t, 7.0, ha, va) for (x, y, ha, va), t in zip(pos, texts_, strict=True)]
    for b in boxes:
        assert b.inside(bounds) and not b.overlaps(obstacle)
    assert not any(a.overlaps(b) for a, b in itertools.combinations(boxes, 2))
    assert pos[2][2] == "right"  # at the right edge the label goes left of its anchor


def test_leader_lines_only_for_far_labels() -> None:
    # nearest point of the box [20, 40] x [0, 10] to (0, 0) is (20, 0): 20 pt away > 9 pt
    assert leader((0.0, 0.0), Box(20, 0, 40, 10), 9.0) == (0.0, 0.0, 20, 0)
    assert leader((0.0, 0.0), Box(5, 5, 30, 12), 9.0) is None  # sqrt(50) = 7.1 pt: close
    assert leader((50.0, 50.0), Box(0, 0, 30, 20), 9.0) == (50.0, 50.0, 30, 20)


# ---------------------------------------------------------------- the drawn figure
def test_full_figure_elements_and_styles() -> None:
    fig = full_figure()
    ax = main_axes(fig)
    assert ax.get_xscale() == "log"
    assert [t.get_text() for t in ax.get_xticklabels()] == [
        "2 h", "4 h", "12 h", "24 h", "2 d", "3 d", "7 d", "14 d"
    ]  # fmt: skip
    assert ax.get_xlabel() == "Time after dose (log scale)"
    assert ax.get_ylabel() == "SMD (score)"
    assert len(fig.axes) == 1  # no claims strip any more
    ks = [t.get_text() for t in gid_objects(fig, "k-label")]
    assert ks == ["k = 5", "k = 9", "k = 2", "k = 1", "k = 1"]
    # curve, its CI band and the lighter PI band
    (ci,) = gid_objects(fig, "curve-ci")
    (pi,) = gid_objects(fig, "curve-pi")
    assert isinstance(ci, PolyCollection) and pi.get_alpha() < ci.get_alpha()
    assert [a.get_gid() for a in gid_objects(fig, "curve")].count("curve") == 1
    # k >= 2: filled markers with CI bars; k = 1: open markers, no bar
    (pooled,) = [c for c in ax.containers if c.lines[0].get_gid() == "pooled"]
    assert isinstance(pooled, ErrorbarContainer)
    assert list(pooled.lines[0].get_xdata()) == [4.0, 24.0, 72.0]
    (single,) = gid_objects(fig, "single-study")
    assert list(single.get_xdata()) == [168.0, 336.0]
    assert single.get_markerfacecolor() == "none"
    assert pooled.lines[0].get_markerfacecolor() != "none"
    # study points: one per row, area proportional to 1/vi; lines join each comparison
    (pts,) = gid_objects(fig, "study-points")
    assert isinstance(pts, PathCollection) and len(pts.get_offsets()) == 9
    assert pts.get_sizes()[2] == pytest.approx(80.0)  # vi 0.018 is the largest weight
    assert pts.get_sizes()[0] == pytest.approx(80.0 * 0.018 / 0.19)
    assert len(gid_objects(fig, "study-line")) == 3  # S1, S2, S3 (S4 has a single time)
    # onset, peak and duration marked with their time intervals; other quantities not
    marks = {t.get_gid(): t.get_text() for t in gid_objects(fig, "mark-label")}
    assert marks == {
        "mark-label:onset": "onset 2.5 h (1.5\u20134 h)",
        "mark-label:peak": "peak 20 h (10\u201340 h)",
        "mark-label:duration": "lasts to 5 d (2.5\u201312 d)",  # 120 h, 60 h, 300 h
    }
    # a label pushed away from its marker is tied to it by a leader line (ends at the marker)
    r = fig.canvas.get_renderer()
    assert gid_objects(fig, "mark-leader:")  # here the duration label sits off its marker
    for ln in gid_objects(fig, "mark-leader:"):
        q = ln.get_gid().split(":")[1]
        (mk,) = gid_objects(fig, f"mark:{q}")
        start = fig.dpi_scale_trans.transform((ln.get_xdata()[0], ln.get_ydata()[0]))
        at = ax.transData.transform((mk.get_xdata()[0], mk.get_ydata()[0]))
        assert start == pytest.approx(at, abs=1.0)
        (label,) = gid_objects(fig, f"mark-label:{q}")
        end = fig.dpi_scale_trans.transform((ln.get_xdata()[1], ln.get_ydata()[1]))
        box = label.get_window_extent(r)
        assert box.x0 - 3 <= end[0] <= box.x1 + 3 and box.y0 - 3 <= end[1] <= box.y1 + 3
    (bar,) = gid_objects(fig, "mark-bar:peak")
    assert list(bar.get_xdata()) == [10.0, 40.0]
    leg = legend_texts(fig)
    assert "single study (k\u00a0=\u00a01), not pooled" in leg
    assert "published: Review A 2021" in leg and "published: Review B 2016" in leg
    assert "95% CI of the curve" in leg and "95% prediction interval" in leg
    favours = sorted(t.get_text() for t in gid_objects(fig, "favours:"))
    assert favours == ["Favours drug A \u2192", "\u2190 Favours placebo"]
    assert_clean_layout(fig)


def test_clipped_intervals_get_arrows() -> None:
    fig = full_figure()
    ax = main_axes(fig)
    lo, hi = ax.get_ylim()
    marks = gid_objects(fig, "clipped")
    # only the k = 2 window at 72 h runs past the axis (both ends); the k = 1 window at 14 d
    # has a CI of -0.69 .. 0.59 but draws no interval, so it gets no arrow either way
    assert sorted(m.get_marker() for m in marks) == ["^", "v"]
    assert all(list(m.get_xdata()) == [72.0] for m in marks)
    assert -6.3 < lo and hi < 7.3
    # the pooled CI bar at 72 h is cut at the data area, not at -6.3 / 7.3
    (pooled,) = [c for c in ax.containers if c.lines[0].get_gid() == "pooled"]
    segs = pooled.lines[2][0].get_segments()
    assert max(s[:, 1].max() for s in segs) <= hi + 1e-9
    assert "interval continues beyond the axis (see the pooled table)" in legend_texts(fig)


def test_works_without_time_response_inputs() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        only = timecourse_plot(pooled_frame(), labels=LABELS)
        with_studies = timecourse_plot(
            pooled_frame(), studies=studies_frame(), published=published_frame(), labels=LABELS
        )
    for fig in (only, with_studies):
        assert not gid_objects(fig, "curve") and not gid_objects(fig, "mark")
        assert [t.get_text() for t in main_axes(fig).get_xticklabels()][-1] == "14 d"
        assert_clean_layout(fig)
    assert len(gid_objects(with_studies, "study-points")) == 1
    assert not any("curve" in s for s in legend_texts(only))


def test_weeks_axis() -> None:
    fig = full_figure(time_unit="weeks")
    ax = main_axes(fig)
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels and all(s.endswith(" wk") for s in labels)
    assert ax.get_xlabel() == "Time after dose, weeks (log scale)"
    for h, s in zip(ax.get_xticks(), labels, strict=True):
        assert float(s.split()[0]) == pytest.approx(h / 168.0)  # internal times are hours
    marks = {t.get_gid(): t.get_text() for t in gid_objects(fig, "mark-label")}
    assert marks["mark-label:duration"] == "lasts to 0.71 wk (0.36\u20131.8 wk)"  # 120/168 h
    assert_clean_layout(fig)


def test_reproducible_bytes(tmp_path: Path) -> None:
    a = save_figure(full_figure(), tmp_path / "a" / "tc")
    b = save_figure(full_figure(), tmp_path / "b" / "tc")
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]


def test_missing_values_and_bad_inputs() -> None:
    pooled = pooled_frame()
    pooled.loc[3, ["estimate", "ci_low", "ci_high"]] = np.nan
    pooled.loc[4, "hours"] = np.nan
    with pytest.warns(UserWarning, match="1 pooled row"):
        fig = timecourse_plot(pooled)
    ks = [t.get_text() for t in gid_objects(fig, "k-label")]
    assert ks == ["k = 5", "k = 9", "k = 2", "k = 1, n.e."]
    assert "n.e.: no pooled estimate" in legend_texts(fig)
    assert not gid_objects(fig, "single-study")  # the k = 1 window has no estimate
    empty = timecourse_plot(pooled_frame().iloc[:0])
    assert [t.get_text() for t in texts(empty)] == ["No time points to show"]
    two = pd.concat([curve_frame("spline"), curve_frame("emax")])
    with pytest.raises(ValueError, match="several models"):
        timecourse_plot(pooled_frame(), curve=two)
    fig = timecourse_plot(pooled_frame(), curve=two, summary=summary_frame("emax"), model="emax")
    assert len(gid_objects(fig, "mark-label")) == 3
    with pytest.raises(ValueError, match="model 'logistic' not among"):
        timecourse_plot(pooled_frame(), curve=two, model="logistic")
    st = studies_frame()
    st.loc[0, "yi"] = np.nan
    with pytest.warns(UserWarning, match="1 study row"):
        fig = timecourse_plot(pooled_frame(), studies=st)
    assert len(gid_objects(fig, "study-points")[0].get_offsets()) == 8
    with pytest.raises(ValueError, match="missing column"):
        timecourse_plot(pooled_frame(), studies=studies_frame().drop(columns=["vi"]))
    with pytest.raises(ValueError, match="time_unit"):
        timecourse_plot(pooled_frame(), time_unit="fortnights")


def test_mark_times_beyond_axis_are_arrowed() -> None:
    s = summary_frame()
    s.loc[2, "time_ci_high"] = math.inf  # duration's upper bound not identified
    fig = timecourse_plot(pooled_frame(), curve=curve_frame(), summary=s)
    (bar,) = gid_objects(fig, "mark-bar:duration")
    assert bar.get_xdata()[1] == pytest.approx(main_axes(fig).get_xlim()[1])
    (arrow,) = gid_objects(fig, "mark-clipped:duration")
    assert arrow.get_marker() == ">"
    marks = {t.get_gid(): t.get_text() for t in gid_objects(fig, "mark-label")}
    assert marks["mark-label:duration"] == "lasts to 5 d"  # no finite interval to print


# ---------------------------------------------------------------- the workflow script
def run_figure_script(tmp_path: Path, with_time_response: bool) -> str:
    """Run workflow/scripts/timecourse_figure.py as Snakemake would (injected `snakemake`)."""
    iocontainers = pytest.importorskip("snakemake.iocontainers", reason="needs snakemake")
    import runpy

    windows = [{"label": tp, "low": h * 0.75, "high": h * 1.25, "nominal": h}
               for tp, h in zip(TP, HOURS, strict=True)]  # fmt: skip
    pooled = (
        pooled_frame().drop(columns="hours").assign(outcome="score", measure="SMD", subgroup="all")
    )
    other = pooled.assign(outcome="response", measure="OR")  # must be filtered out
    pd.concat([pooled, other]).to_parquet(tmp_path / "pooled.parquet")
    pub = published_frame()
    pd.DataFrame(
        {"time_window": ["24h", "24h", "4h", "7d"], "review": [*pub["label"], "Review C"],
         "comparable": ["yes", "yes", "yes", "no"],
         "g_benefit": [*pub["estimate"], np.nan], "g_benefit_ci_low": [*pub["ci_low"], np.nan],
         "g_benefit_ci_high": [*pub["ci_high"], np.nan]}
    ).to_parquet(tmp_path / "published.parquet")  # fmt: skip
    st = studies_frame().assign(outcome="score", measure="SMD")
    st.iloc[::2].to_parquet(tmp_path / "effects.parquet")  # one time per window only
    inputs = {
        "pooled": str(tmp_path / "pooled.parquet"),
        "published": str(tmp_path / "published.parquet"),
        "effects": str(tmp_path / "effects.parquet"),
    }
    if with_time_response:
        st.to_parquet(tmp_path / "all_times.parquet")
        pd.concat([curve_frame("spline"), curve_frame("emax")]).to_parquet(tmp_path / "tr.parquet")
        pd.concat([summary_frame("spline"), summary_frame("emax")]).to_csv(
            tmp_path / "summary.csv", index=False
        )
        inputs |= {
            "curve": str(tmp_path / "tr.parquet"),
            "summary": str(tmp_path / "summary.csv"),
            "effects_all_times": str(tmp_path / "all_times.parquet"),
        }
    nl = iocontainers.Namedlist
    smk = type("Smk", (), {})()
    smk.input = nl(fromdict=inputs)
    smk.output = nl(fromdict={"png": str(tmp_path / "tc.png"), "pdf": str(tmp_path / "tc.pdf")})
    smk.log = nl(fromdict={"log": str(tmp_path / "tc.log")})
    smk.params = nl(
        fromdict={
            "windows": windows, "outcome": "score", "measure": "SMD", "level": 0.95,
            "figure": {"title": "T", "curve_model": "emax" if with_time_response else None},
            "labels": {"intervention": "drug A", "comparator": "placebo"}, "time_unit": "days",
        }
    )  # fmt: skip
    script = Path(__file__).parents[1] / "workflow" / "scripts" / "timecourse_figure.py"
    runpy.run_path(str(script), init_globals={"snakemake": smk})
    assert (tmp_path / "tc.png").stat().st_size > 0 and (tmp_path / "tc.pdf").stat().st_size > 0
    return (tmp_path / "tc.log").read_text()


def test_workflow_script_without_time_response(tmp_path: Path) -> None:
    log = run_figure_script(tmp_path, with_time_response=False)
    assert "5 windows, 5 study estimates" in log  # rows 0, 2, 4, 6, 8 of the nine
    assert "3 published results" in log and "no time-response model" in log


def test_workflow_script_with_time_response(tmp_path: Path) -> None:
    log = run_figure_script(tmp_path, with_time_response=True)
    assert "9 study estimates from" in log and "all_times.parquet" in log
    assert "time-response model 'emax'" in log


def test_many_studies_lines_as_one_collection(monkeypatch) -> None:
    """Above MAX_LINE_ARTISTS comparisons the study lines are one (rasterised) collection
    holding the same polylines the single lines would have; points are rasterised."""
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection

    from timecourse_meta.plots import timecourse_plot as tp

    rng = np.random.default_rng(3)
    s = pd.DataFrame({
        "comparison_id": ["c"] * 3 + ["a"] * 2 + ["b"] + ["d"] * 3 + [None] * 2,
        "time_hours": [72.0, 24.0, 168.0, 24.0, 24.0, 72.0, 168.0, 24.0, 72.0, 24.0, 72.0],
        "yi": rng.normal(size=11), "vi": rng.uniform(0.01, 0.1, 11),
    })  # fmt: skip
    fig, ax = plt.subplots()
    tp._draw_studies(ax, s)
    single = [np.column_stack(ln.get_data()) for ln in ax.lines if ln.get_gid() == "study-line"]
    assert len(single) == 3 and not [c for c in ax.collections if isinstance(c, LineCollection)]
    monkeypatch.setattr(tp, "MAX_LINE_ARTISTS", 2)
    monkeypatch.setattr(tp, "RASTERISE_POINTS", 5)
    fig2, ax2 = plt.subplots()
    tp._draw_studies(ax2, s)
    assert not [ln for ln in ax2.lines if ln.get_gid() == "study-line"]
    (coll,) = [c for c in ax2.collections if isinstance(c, LineCollection)]
    assert coll.get_gid() == "study-line" and coll.get_rasterized()
    assert [seg.tolist() for seg in coll.get_segments()] == [seg.tolist() for seg in single]
    (points,) = [c for c in ax2.collections if c.get_gid() == "study-points"]
    assert points.get_rasterized()
    plt.close(fig)
    plt.close(fig2)
