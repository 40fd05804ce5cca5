"""Tests of the plotting layer: forest plot, reproducible saving (time course: own test file).

Inputs are synthetic (seeded RNG; the numbers are arbitrary plot inputs, not data claims).
Layout checks are geometric: text bounding boxes come from the Agg renderer of the figure.
"""

from __future__ import annotations

import itertools
import os
import struct
import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PathCollection
from matplotlib.lines import Line2D
from matplotlib.patches import Polygon
from matplotlib.text import Text

from timecourse_meta.plots.figures import DPI, save_figure
from timecourse_meta.plots.forest import (
    ROW_H,
    auto_xlim,
    data_xlim,
    forest_plot,
    format_p,
    heterogeneity_text,
    overall_test_text,
)
from timecourse_meta.plots.forest_layout import layout_columns, wrap_text
from timecourse_meta.plots.forest_text import greek
from timecourse_meta.plots.timecourse_plot import format_timepoint

LONG = " \u2013 a very long trial label naming arm, dose, route and population"


def synth(k: int, seed: int = 1, long: bool = False, spread: float = 0.4) -> pd.DataFrame:
    """k synthetic studies: yi ~ N(0.6, spread), se ~ U(0.15, 0.6), weights in percent."""
    rng = np.random.default_rng(seed)
    se = rng.uniform(0.15, 0.6, k)
    yi = rng.normal(0.6, spread, k)
    w = 1.0 / (se**2 + 0.1)
    labels = [
        f"Study{i + 1:02d} {2000 + i % 25}" + (LONG * (1 + i % 2) if long else "") for i in range(k)
    ]
    return pd.DataFrame(
        {
            "label": labels,
            "n_treatment": rng.integers(8, 120, k),
            "n_control": rng.integers(8, 120, k),
            "yi": yi,
            "ci_low": yi - 1.96 * se,
            "ci_high": yi + 1.96 * se,
            "weight": 100.0 * w / w.sum() if k else w,
        }
    )


def pooled_for(df: pd.DataFrame, test: str = "knha") -> dict[str, object]:
    est = float(np.average(df["yi"], weights=df["weight"]))
    knha = test == "knha"
    return {
        "estimate": est,
        "ci_low": est - 0.25,
        "ci_high": est + 0.25,
        "pi_low": est - 0.7,
        "pi_high": est + 0.7,
        "tau2": 0.123,
        "I2": 45.2,
        "Q": 10.21,
        "Q_df": len(df) - 1,
        "Q_p": 0.177,
        "stat": 3.1,
        "stat_name": "t" if knha else "z",
        "df": len(df) - 1 if knha else None,
        "pval": 0.0172,
        "method": "REML",
        "test": test,
        "k": len(df),
        "label": "Random-effects model (REML, Knapp\u2013Hartung)",
    }


def texts(fig) -> list[Text]:
    """Every drawn, non-empty text of the figure (table cells, ticks, notes, title).

    Tick labels of ticks outside the view limits stay 'visible' but are not drawn: skipped.
    """
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


def gids(fig) -> set[str]:
    return {a.get_gid() for a in fig.findobj() if a.get_gid()}


def by_gid(fig, prefix: str) -> dict[str, Text]:
    return {t.get_gid(): t for t in fig.findobj(Text) if (t.get_gid() or "").startswith(prefix)}


def forest_axes(fig):
    return next(a for a in fig.axes if a.get_gid() == "forest-axes")


# ---------------------------------------------------------------- text formatting (hand-checked)
def test_heterogeneity_and_test_lines() -> None:
    p = {
        "tau2": 0.1234,
        "I2": 45.2,
        "Q": 10.214,
        "Q_df": 7,
        "Q_p": 0.1771,
        "stat": 3.1,
        "stat_name": "t",
        "df": 7,
        "pval": 0.0172,
    }
    # 0.1234 -> 2 decimals 0.12; 45.2 % -> 45 %; Q 2 decimals; p 2 significant digits
    assert heterogeneity_text(p) == (
        "Heterogeneity: \u03c4\u00b2 = 0.12; I\u00b2 = 45%; Q = 10.21 (df = 7, p = 0.18)"
    )
    assert overall_test_text(p) == "Test for overall effect: t = 3.10 (df = 7), p = 0.017"
    z = dict(p, stat_name="z", df=None, pval=0.0019, stat=-3.1)
    assert overall_test_text(z) == "Test for overall effect: z = \u22123.10, p = 0.0019"
    # tau2 below 0.01 keeps two significant digits instead of printing 0.00
    assert "\u03c4\u00b2 = 0.0034;" in heterogeneity_text(dict(p, tau2=0.0034))
    assert "\u03c4\u00b2 = NA;" in heterogeneity_text(dict(p, tau2=None))


@pytest.mark.parametrize(
    ("p", "text"),
    [
        (0.0004, "p < 0.001"),
        (0.001, "p = 0.001"),
        (0.0172, "p = 0.017"),
        (0.177, "p = 0.18"),
        (0.5, "p = 0.5"),
        (0.996, "p > 0.99"),
        (None, "p = NA"),
        (float("nan"), "p = NA"),
    ],
)
def test_format_p(p, text) -> None:
    assert format_p(p) == text


def test_format_timepoint() -> None:
    assert [format_timepoint(s) for s in ("4h", "24h", "3d", "7d", "14 d", "Day 1")] == [
        "4 h",
        "24 h",
        "3 d",
        "7 d",
        "14 d",
        "Day 1",
    ]
    assert format_timepoint(None, 40.0) == "40 h"
    assert format_timepoint(None, 72.0) == "3 d"  # 72 / 24


# ---------------------------------------------------------------- forest: building
@pytest.fixture(scope="module")
def fig80():
    df = synth(80, long=True)
    fig = forest_plot(df, pooled_for(df), title="80 synthetic studies")
    fig.canvas.draw()
    return fig, df


@pytest.mark.parametrize("k", [1, 3, 20])
def test_forest_builds_small(k: int) -> None:
    df = synth(k, seed=k)
    pooled = pooled_for(df) if k > 1 else None
    fav = ("Favours placebo", "Favours ketamine")  # labels are parameters (neutral defaults)
    fig = forest_plot(df, pooled, title=f"k = {k}", favours=fav)
    fig.canvas.draw()
    labels = [t.get_text() for t in by_gid(fig, "study:").values()]
    assert [s for s in labels if s.startswith("Study")] == list(df["label"])
    ax = forest_axes(fig)
    diamonds = [p for p in ax.patches if (p.get_gid() or "").startswith("diamond")]
    assert len(diamonds) == (1 if k > 1 else 0)
    squares = [c for c in ax.collections if (c.get_gid() or "").startswith("square")]
    assert len(squares) == k
    all_text = " | ".join(t.get_text() for t in texts(fig))
    if k == 1:
        assert "Single study: no pooled estimate" in all_text
    else:
        assert "Heterogeneity: \u03c4\u00b2 = 0.12; I\u00b2 = 45%;" in all_text
        assert f"Test for overall effect: t = 3.10 (df = {k - 1}), p = 0.017" in all_text
        assert "Prediction interval" in all_text
        assert "Favours ketamine" in all_text and "Favours placebo" in all_text


def test_forest_k0_message() -> None:
    fig = forest_plot(synth(0), None, title="24 h")
    assert [t.get_text() for t in texts(fig)] == ["24 h", "No studies in this window"]


def test_forest_k80_all_rows_and_truncation(fig80) -> None:
    fig, df = fig80
    labels = [t.get_text() for t in by_gid(fig, "study:").values()]
    studies = [s for s in labels if s.startswith("Study")]
    assert len(studies) == 80
    assert all(len(s) <= 45 for s in studies)  # truncated at max_label_chars ...
    assert all(s.endswith("\u2026") for s in studies)  # ... visibly, with an ellipsis
    # pooled totals of N are the column sums
    n_t = [t.get_text() for g, t in by_gid(fig, "n_t:").items() if int(g.split(":")[1]) > 80]
    assert n_t == [str(int(df["n_treatment"].sum()))]


def test_forest_height_is_fixed_per_row() -> None:
    h = {k: forest_plot(synth(k), pooled_for(synth(k))).get_size_inches()[1] for k in (20, 50)}
    assert h[50] - h[20] == pytest.approx(30 * ROW_H)


def test_forest_squares_area_proportional_to_weight() -> None:
    df = synth(6, seed=2)
    fig = forest_plot(df, pooled_for(df))
    ax = forest_axes(fig)
    sizes = [
        c.get_sizes()[0]
        for c in ax.collections
        if isinstance(c, PathCollection) and (c.get_gid() or "").startswith("square")
    ]
    w = df["weight"].to_numpy()
    assert np.allclose(np.array(sizes) / max(sizes), w / w.max())


def test_forest_sections() -> None:
    a, b, c = synth(5, seed=3), synth(4, seed=4), synth(1, seed=5)
    b["label"] = [f"Other{i}" for i in range(4)]
    c["label"] = ["Lonely2019"]
    overall = pooled_for(pd.concat([a, b, c]))
    overall["subgroup_test"] = "Test for subgroup differences: Q = 0.85 (df = 1), p = 0.36"
    secs = [("Intravenous", a, pooled_for(a)), ("Intranasal", b, pooled_for(b)), ("Oral", c, None)]
    fig = forest_plot(pd.DataFrame(columns=a.columns), overall, sections=secs)
    fig.canvas.draw()
    all_text = [t.get_text() for t in texts(fig)]
    for name in ("Intravenous", "Intranasal", "Oral", "Study or subgroup"):
        assert name in all_text
    assert overall["subgroup_test"] in all_text
    assert sum(s.startswith("Heterogeneity:") for s in all_text) == 3  # 2 subgroups + overall
    assert "Single study: no pooled estimate" in all_text
    ax = forest_axes(fig)
    diamonds = [p for p in ax.patches if isinstance(p, Polygon)]
    assert len(diamonds) == 3
    assert sum(p.get_facecolor()[:3] == (0.0, 0.0, 0.0) for p in diamonds) == 1  # overall only
    with pytest.raises(ValueError, match="section study labels"):
        forest_plot(a, overall, sections=secs)


def test_forest_flags_and_missing_columns() -> None:
    df = synth(4)
    df["flag"] = ["\u2020", None, "", "\u2021"]
    with pytest.warns(UserWarning, match="no explanation for flag"):
        fig = forest_plot(df, pooled_for(df))
    notes = [t.get_text() for t in by_gid(fig, "footnote:").values()]
    assert notes[0].startswith("\u2020 value taken from a secondary source")
    assert notes[1].startswith("\u2021 ")
    assert by_gid(fig, "study:")["study:0"].get_text() == "Study01 2000 \u2020"
    with pytest.raises(ValueError, match="missing column"):
        forest_plot(df.drop(columns=["weight"]), None)


# ---------------------------------------------------------------- forest: layout geometry
def _overlaps(a, b, tol: float = 0.5) -> bool:
    return (min(a.x1, b.x1) - max(a.x0, b.x0) > tol) and (min(a.y1, b.y1) - max(a.y0, b.y0) > tol)


def test_forest_80_no_text_overlap(fig80) -> None:
    fig, _ = fig80
    renderer = fig.canvas.get_renderer()
    boxes = [(t.get_gid() or t.get_text(), t.get_window_extent(renderer)) for t in texts(fig)]
    assert len(boxes) > 5 * 80  # 5 cells per study row plus headers, ticks, footers
    clashes = [
        (g1, g2) for (g1, b1), (g2, b2) in itertools.combinations(boxes, 2) if _overlaps(b1, b2)
    ]
    assert clashes == []
    # adjacent study rows: label boxes are stacked, top row strictly above the next
    labels = by_gid(fig, "study:")
    for i in range(79):
        upper = labels[f"study:{i}"].get_window_extent(renderer)
        lower = labels[f"study:{i + 1}"].get_window_extent(renderer)
        assert upper.y0 >= lower.y1
    # left columns end before the plot panel, right columns start after it
    panel = forest_axes(fig).get_window_extent(renderer)
    for prefix in ("study:", "n_t:", "n_c:", "span:", "footer:"):
        for t in by_gid(fig, prefix).values():
            assert t.get_window_extent(renderer).x1 < panel.x0, t.get_text()
    for prefix in ("effect:", "weight:"):
        for t in by_gid(fig, prefix).values():
            assert t.get_window_extent(renderer).x0 > panel.x1, t.get_text()
    # nothing cut off at the figure edges
    w, h = fig.get_size_inches() * fig.dpi
    for gid, b in boxes:
        assert b.x0 >= 0 and b.y0 >= 0 and b.x1 <= w and b.y1 <= h, gid


def test_forest_axis_contains_ci_or_arrow() -> None:
    df = synth(12, seed=7)
    df.loc[3, ["ci_low", "ci_high"]] = [-6.0, 8.0]  # far beyond the capped axis
    df.loc[8, ["ci_low", "ci_high"]] = [0.2, 5.0]
    fig = forest_plot(df, pooled_for(df))
    xmin, xmax = forest_axes(fig).get_xlim()
    assert xmin <= 0.0 <= xmax
    g = gids(fig)
    arrows = 0
    for i, (lo, hi) in enumerate(zip(df["ci_low"], df["ci_high"], strict=True)):
        assert (f"arrow:{i}:left" in g) == (lo < xmin)
        assert (f"arrow:{i}:right" in g) == (hi > xmax)
        arrows += int(lo < xmin) + int(hi > xmax)  # int: numpy bools would add as "or"
    assert arrows >= 2  # row 3 leaves on both sides
    # user-given narrow limits: every CI end outside gets an arrow
    fig2 = forest_plot(df, pooled_for(df), xlim=(-0.5, 1.0))
    g2 = gids(fig2)
    for i, (lo, hi) in enumerate(zip(df["ci_low"], df["ci_high"], strict=True)):
        assert (f"arrow:{i}:left" in g2) == (lo < -0.5)
        assert (f"arrow:{i}:right" in g2) == (hi > 1.0)
    # favours labels stay inside the panel's width and apart, also with 0 off the axis
    for lim in ((-0.2, 1.0), (0.2, 2.0)):
        f = forest_plot(df, pooled_for(df), xlim=lim)
        f.canvas.draw()
        r = f.canvas.get_renderer()
        panel = forest_axes(f).get_window_extent(r)
        left, right = (t.get_window_extent(r) for t in by_gid(f, "favours:").values())
        assert not _overlaps(left, right)
        assert panel.x0 - 1 <= left.x0 and right.x1 <= panel.x1 + 1
        assert ("null-line" in gids(f)) == (lim[0] < 0.0)


def test_auto_xlim_contains_moderate_cis_and_null() -> None:
    # all CI ends within the core +- one core span: nothing capped
    lows, highs, centres = [0.1, 0.3, -0.2], [1.2, 1.6, 0.9], [0.6, 0.9, 0.4]
    xmin, xmax, step = auto_xlim(lows, highs, centres)
    assert xmin <= min(lows) and xmax >= max(highs) and xmin <= 0.0
    assert step == pytest.approx(0.5)  # MaxNLocator grid over [-0.2, 1.6]
    # favours labels need 30 % of the axis on each side of 0 -> left side widened
    xmin2, xmax2, _ = auto_xlim(lows, highs, centres, min_side=(0.3, 0.3))
    assert -xmin2 >= 0.3 * (xmax2 - xmin2) and xmax2 >= 0.3 * (xmax2 - xmin2)


# ---------------------------------------------------------------- forest: review-team layout
def _study_rows(yi, lo, hi, **extra) -> pd.DataFrame:
    k = len(yi)
    df = pd.DataFrame({"label": [f"Trial {chr(65 + i)} {2001 + i}" for i in range(k)],
                       "n_treatment": [20] * k, "n_control": [20] * k, "yi": yi,
                       "ci_low": lo, "ci_high": hi, "weight": [100.0 / k] * k})  # fmt: skip
    for key, val in extra.items():
        df[key] = val
    return df


def _row_index(fig, text: str) -> int:
    (gid,) = [g for g, t in by_gid(fig, "study:").items() if t.get_text() == text]
    return int(gid.split(":")[1])


def test_forest_axis_from_study_cis_pooled_arrows_beyond() -> None:
    """k = 2, Knapp-Hartung on 1 df: the pooled CI (-6.34, 7.34) must not set the axis."""
    df = _study_rows([1.10, 0.02], [0.16, -0.61], [2.04, 0.65])
    pooled = dict(pooled_for(df), estimate=0.50, ci_low=-6.34, ci_high=7.34, pi_low=-10.2,
                  pi_high=11.2, k=2, label="Random-effects model")  # fmt: skip
    fig = forest_plot(df, pooled)
    xmin, xmax = forest_axes(fig).get_xlim()
    assert xmin <= -0.61 and xmax >= 2.04  # every study CI whole on the axis
    assert xmax - xmin <= 4.0  # ... and the studies fill the axis (was -15...15)
    i = _row_index(fig, "Random-effects model")
    g = gids(fig)
    assert {f"arrow:{i}:left", f"arrow:{i}:right"} <= g
    assert not any(x.startswith("arrow:") and not x.startswith(f"arrow:{i}:") for x in g)
    assert not any(x.startswith("pi-") for x in g)  # k = 2: no prediction interval


def test_forest_lone_study_ci_not_clipped() -> None:
    df = _study_rows([-0.06], [-0.70], [0.58])
    fig = forest_plot(df, None)
    xmin, xmax = forest_axes(fig).get_xlim()
    assert xmin <= -0.70 and xmax >= 0.58
    assert not any(x.startswith("arrow:") for x in gids(fig))


@pytest.mark.parametrize(("k", "tau2", "drawn", "text"), [
    (2, 0.12, False, None),
    (3, 0.12, True, "[{lo}, {hi}]"),
    (5, 0.0, False, "= CI (\u03c4\u00b2 = 0)"),
])  # fmt: skip
def test_forest_prediction_interval_rules(k, tau2, drawn, text) -> None:
    df = synth(k, seed=11)
    pooled = dict(pooled_for(df), tau2=tau2, k=k)
    fig = forest_plot(df, pooled)
    g = gids(fig)
    assert any(x.startswith("pi-bar") for x in g) == drawn
    effects = [t.get_text() for t in by_gid(fig, "effect:").values()]
    notes = " ".join(t.get_text() for t in by_gid(fig, "footnote:").values())
    if text is None:
        assert "Prediction interval" not in [t.get_text() for t in texts(fig)]
        assert "No prediction interval for k < 3" in notes
    else:
        lo, hi = (f"{v:.2f}".replace("-", "\u2212") for v in (pooled["pi_low"], pooled["pi_high"]))
        assert text.format(lo=lo, hi=hi) in effects


def test_forest_not_pooled_draws_studies_with_reason() -> None:
    df = synth(4)
    pooled = {"k": 4, "label": "Random-effects model",
              "note": "not pooled: no tau^2 estimator converged (tried REML then DL)"}  # fmt: skip
    fig = forest_plot(df, pooled)
    assert not any(x.startswith("diamond") for x in gids(fig))
    assert "Not estimable" in [t.get_text() for t in by_gid(fig, "effect:").values()]
    notes = [t.get_text() for t in by_gid(fig, "footnote:").values()]
    assert "not pooled: no \u03c4\u00b2 estimator converged (tried REML then DL)" in notes


def _rich(k: int = 8) -> pd.DataFrame:
    df = synth(k, seed=5)
    df["crossover"] = [i == 1 for i in range(k)]
    df["split_control"] = [i in (2, 3) for i in range(k)]
    df["mean_t"] = [-14.8 + i if i % 2 else np.nan for i in range(k)]
    df["sd_t"], df["mean_c"], df["sd_c"] = 10.1, -10.0, 9.5
    df["mean_change"] = [i == 3 for i in range(k)]
    df["rob"] = (["low", "unclear", "high", "not_assessed"] * k)[:k]
    df["year"] = [2010 - i for i in range(k)]
    return df


@pytest.mark.parametrize("width", ["single", "double"])
def test_forest_journal_width_min_7pt_no_overlap(width: str, tmp_path: Path) -> None:
    df = _rich()
    fig = forest_plot(df, pooled_for(df), width=width, title="Ketamine vs placebo: depression "
                      "score, window 24h (18\u201330 h); random effects (REML, Knapp\u2013Hartung)",
                      favours=("Favours placebo", "Favours ketamine"))  # fmt: skip
    mm = {"single": 85.0, "double": 174.0}[width]
    assert fig.get_size_inches()[0] * 25.4 == pytest.approx(mm)
    fig.canvas.draw()
    sizes = [t.get_fontsize() for t in texts(fig)]
    assert min(sizes) >= 7.0  # at the saved size (dpi does not change points)
    renderer = fig.canvas.get_renderer()
    boxes = [(t.get_gid() or t.get_text(), t.get_window_extent(renderer)) for t in texts(fig)]
    clashes = [(a, b) for (a, x), (b, y) in itertools.combinations(boxes, 2) if _overlaps(x, y)]
    assert clashes == []
    w, h = fig.get_size_inches() * fig.dpi
    for gid, b in boxes:
        assert b.x0 >= 0 and b.y0 >= 0 and b.x1 <= w + 0.5 and b.y1 <= h, gid
    panel = forest_axes(fig).get_window_extent(renderer)
    for t in by_gid(fig, "study:").values():
        assert t.get_window_extent(renderer).x1 < panel.x0, t.get_text()
    save_figure(fig, tmp_path / f"forest_{width}")


def test_forest_markers_totals_means_and_rob() -> None:
    df = _rich()
    fig = forest_plot(df, pooled_for(df), width=250)  # wide enough for every column
    labels = {int(g.split(":")[1]): t.get_text() for g, t in by_gid(fig, "study:").items()}
    assert labels[1].endswith(" \u00a7") and labels[2].endswith(" \u2016")
    notes = [t.get_text() for t in by_gid(fig, "footnote:").values()]
    # participants: crossover row counted once (max of its two condition sizes)
    nt, nc = df["n_treatment"].to_numpy(), df["n_control"].to_numpy()
    total = int((nt + nc).sum() - min(nt[1], nc[1]))
    assert f"Participants: {total} (each crossover participant counted once)" in notes
    assert any(n.startswith("\u00a7 crossover trial") for n in notes)
    assert any(n.startswith("\u2016 multi-arm trial") for n in notes)
    means = by_gid(fig, "mean_t:")
    assert means["mean_t:1"].get_text() == "\u221213.8 (10.1)"
    assert means["mean_t:3"].get_text() == "\u0394\u221211.8 (10.1)"  # change from baseline
    assert means["mean_t:0"].get_text() == "\u2013"
    dots = {a.get_gid(): a for a in fig.findobj(Line2D) if (a.get_gid() or "").startswith("rob:")}
    assert len(dots) == len(df)
    assert dots["rob:0"].get_markerfacecolor() != dots["rob:2"].get_markerfacecolor()
    assert dots["rob:3"].get_markerfacecolor() == "white"  # not assessed: open dot
    assert "RoB (overall risk of bias):" in [t.get_text() for t in texts(fig)]


@pytest.mark.parametrize("order", ["effect", "weight", "year"])
def test_forest_sort_orders(order: str) -> None:
    df = _rich()
    fig = forest_plot(df, pooled_for(df), sort=order)
    shown = [by_gid(fig, "study:")[f"study:{i}"].get_text().split(" \u00a7")[0].split(" \u2016")[0]
             for i in range(len(df))]  # fmt: skip
    key = {"effect": df["yi"], "weight": -df["weight"], "year": df["year"]}[order]
    expect = df.assign(_k=key.to_numpy()).sort_values("_k", kind="mergesort")["label"].tolist()
    assert shown == expect
    with pytest.raises(ValueError, match="sort"):
        forest_plot(df, None, sort="alphabet")


def test_forest_common_xlim_and_layout_helpers() -> None:
    a, b = _study_rows([0.2], [-0.5], [0.9]), _study_rows([1.5], [0.8], [2.6])
    lo, hi = data_xlim([a, b], [0.9])
    assert lo <= -0.5 and hi >= 2.6
    fig = forest_plot(a, None, xlim=(lo, hi))
    assert forest_axes(fig).get_xlim() == (lo, hi)
    # word wrap keeps 'x = y' together and never exceeds the width (1 unit per character)
    lines = wrap_text("Q = 9.91 (df = 8, p = 0.27) and more words", 14, len)
    assert lines == ["Q = 9.91 (df", "= 8, p = 0.27)", "and more words"] or all(
        len(s) <= 14 or " " not in s for s in lines
    )
    assert all(len(s) <= 14 for s in lines)
    assert "df =" not in [s[-4:] for s in lines]
    assert greek("tau^2 CI; I^2 = 0; chi^2") == "\u03c4\u00b2 CI; I\u00b2 = 0; \u03c7\u00b2"
    assert layout_columns({"study": 5.0, "effect": 1.0}, ["study"], ["effect"], 6.85) is None


def test_forest_script_does_not_refit() -> None:
    """The forest rule's script imports no model code: it draws the pooled table it is given."""
    script = Path(__file__).resolve().parents[1] / "workflow" / "scripts" / "forest_plots.py"
    mods = sorted({m for _, m, _ in _script_imports(script) if m.startswith("timecourse_meta")})
    assert "timecourse_meta.pipeline.forest_data" in mods
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in mods)
        + (
            "bad = sorted(m for m in sys.modules if m.startswith('timecourse_meta.models')\n"
            "             or m == 'timecourse_meta.pipeline.pooling')\n"
            "print(','.join(bad))\n"
        )
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", out.stdout


def _script_imports(path: Path) -> list[tuple[int, str, bool]]:
    import ast

    tree = ast.parse(path.read_text())
    return [(n.lineno, n.module, True) for n in ast.walk(tree)
            if isinstance(n, ast.ImportFrom) and n.module]  # fmt: skip


# ---------------------------------------------------------------- saving: reproducible bytes
def _png_chunks(data: bytes) -> list[str]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, kinds = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kinds.append(data[pos + 4 : pos + 8].decode("ascii"))
        pos += 12 + length
    return kinds


def test_save_figure_byte_identical(tmp_path: Path) -> None:
    df = synth(3)
    fig = forest_plot(df, pooled_for(df), title="determinism")
    first = save_figure(fig, tmp_path / "a" / "forest")
    assert [p.name for p in first] == ["forest.png", "forest.pdf"]
    only = save_figure(fig, tmp_path / "c" / "forest.pdf")  # a suffix: that format only
    assert [p.name for p in only] == ["forest.pdf"]
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == ["forest.pdf"]
    second = save_figure(
        forest_plot(df, pooled_for(df), title="determinism"), tmp_path / "b/forest"
    )
    for p1, p2 in zip(first, second, strict=True):
        assert p1.read_bytes() == p2.read_bytes(), p1.name
    png = first[0].read_bytes()
    chunks = _png_chunks(png)
    assert not {"tEXt", "iTXt", "zTXt", "tIME"} & set(chunks), chunks
    assert set(chunks) <= {"IHDR", "pHYs", "IDAT", "IEND"}
    (ppm,) = struct.unpack(">I", png[png.index(b"pHYs") + 4 : png.index(b"pHYs") + 8])
    assert ppm == round(DPI / 0.0254)  # fixed dpi, stored as pixels per metre
    pdf = first[1].read_bytes()
    for key in (b"CreationDate", b"ModDate", b"Producer", b"Creator", b"matplotlib"):
        assert key not in pdf
    assert b"/FontFile2" in pdf and b"DejaVuSans" in pdf  # TrueType (fonttype 42) embedded


def _embedded_font_tables(pdf: bytes) -> list[set[str]]:
    """The table tags of each TrueType font embedded in a PDF (its FontFile2 streams, which
    carry /Length1; ISO 32000-1 9.9), decompressed and read with fontTools."""
    import io
    import re
    import zlib

    from fontTools.ttLib import TTFont

    found = []
    for m in re.finditer(rb"<<[^>]*/Length1 \d+[^>]*>>\s*stream\r?\n", pdf):
        length = int(re.search(rb"/Length (\d+)", m.group()).group(1))
        raw = zlib.decompress(pdf[m.end() : m.end() + length])
        found.append(set(TTFont(io.BytesIO(raw)).keys()))
    return found


def test_pdf_fonts_leave_out_layout_tables(tmp_path: Path) -> None:
    """The PDF's fonts have no GSUB/GPOS/GDEF (outlines, metrics and cmap kept); a PDF saved
    by matplotlib alone keeps them, and the class default is restored after saving."""
    from fontTools import subset
    from matplotlib.figure import Figure

    from timecourse_meta.plots.figures import PDF_DROPPED_FONT_TABLES, style_context

    def figure() -> Figure:
        with style_context():
            fig = Figure(figsize=(2, 1))
            fig.text(0.1, 0.5, "Favours ketamine 95% CI", fontsize=8)
            fig.text(0.1, 0.2, "bold", fontweight="bold", fontsize=8)
        return fig

    before = subset.Options._drop_tables_default
    (ours,) = save_figure(figure(), tmp_path / "ours.pdf")
    assert subset.Options._drop_tables_default is before  # restored
    with style_context():
        figure().savefig(tmp_path / "plain.pdf")
    lean = _embedded_font_tables(ours.read_bytes())
    full = _embedded_font_tables((tmp_path / "plain.pdf").read_bytes())
    assert len(lean) == len(full) == 2  # DejaVu Sans and DejaVu Sans Bold
    for tables in full:
        assert set(PDF_DROPPED_FONT_TABLES) <= tables  # matplotlib alone embeds them ...
    for tables in lean:
        assert not set(PDF_DROPPED_FONT_TABLES) & tables  # ... ours does not
        assert {"glyf", "loca", "cmap", "hmtx", "head"} <= tables


def test_save_figure_identical_across_processes(tmp_path: Path) -> None:
    """Same bytes from a fresh interpreter with another hash seed (set/str-hash order)."""
    script = (
        "import sys\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from test_plots import synth, pooled_for\n"
        "from timecourse_meta.plots.forest import forest_plot\n"
        "from timecourse_meta.plots.figures import save_figure\n"
        "df = synth(3)\n"
        "save_figure(forest_plot(df, pooled_for(df), title='determinism'), sys.argv[1])\n"
    )
    here = save_figure(
        forest_plot(synth(3), pooled_for(synth(3)), title="determinism"),
        tmp_path / "here" / "forest",
    )
    seed = "1" if os.environ.get("PYTHONHASHSEED") != "1" else "2"
    env = dict(os.environ, PYTHONHASHSEED=seed, MPLBACKEND="Agg")
    out = tmp_path / "there" / "forest"
    subprocess.run([sys.executable, "-c", script, str(out)], check=True, env=env)
    for p in here:
        assert p.read_bytes() == out.with_suffix(p.suffix).read_bytes(), p.suffix


def test_save_figure_rejects_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unsupported"):
        save_figure(forest_plot(synth(2), None), tmp_path / "x", formats=("jpg",))


# ---------------------------------------------------------------- forest: cap for huge k
def test_forest_cap_draws_heaviest_with_note() -> None:
    df = synth(30, seed=7)
    pooled = pooled_for(df)
    fig = forest_plot(df, pooled, max_studies=10)
    shown = [t.get_text() for t in by_gid(fig, "study:").values()]
    shown = [s for s in shown if s.startswith("Study")]
    heaviest = df.iloc[np.sort(np.argsort(-df["weight"].to_numpy(), kind="mergesort")[:10])]
    assert shown == list(heaviest["label"])  # the 10 heaviest, in the given order
    squares = [c for c in forest_axes(fig).collections if (c.get_gid() or "").startswith("square")]
    assert len(squares) == 10
    notes = " ".join(t.get_text() for t in by_gid(fig, "footnote:").values())
    assert "Capped: only the 10 studies with the largest weights of k\u00a0=\u00a030" in notes
    assert "config forest.max_studies" in notes
    # the pooled row keeps the totals of all 30 studies (N per arm, weight 100%)
    n_t = [t.get_text() for g, t in by_gid(fig, "n_t:").items() if int(g.split(":")[1]) > 10]
    assert n_t == [str(int(df["n_treatment"].sum()))]
    weights = [t.get_text() for t in by_gid(fig, "weight:").values()]
    assert "100.0%" in weights
    # at or above k: no cap, the same figure texts as without max_studies
    same = [t.get_text() for t in texts(forest_plot(df, pooled, max_studies=30))]
    assert same == [t.get_text() for t in texts(forest_plot(df, pooled))]
    with pytest.raises(ValueError, match="max_studies"):
        forest_plot(df, pooled, max_studies=0)


def test_cap_studies_missing_weights_last() -> None:
    from timecourse_meta.plots.forest_rows import cap_studies

    df = synth(5, seed=3).assign(weight=[np.nan, 10.0, 30.0, np.nan, 20.0])
    kept, note = cap_studies(df, 3)
    assert list(kept.index) == [1, 2, 4] and "k\u00a0=\u00a05" in note
    kept, note = cap_studies(df, None)
    assert kept is df and note is None
    kept, note = cap_studies(df, 4)
    assert list(kept.index) == [0, 1, 2, 4]  # missing weights last, ties in the given order
