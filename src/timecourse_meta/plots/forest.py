"""Forest plot in the RevMan / metafor ``forest()`` layout: measure, lay out, draw.

Left text columns (study, [mean (SD)], N per arm), the plot in the middle (squares with area
proportional to the study weight, CI whiskers, arrows where an interval leaves the axis),
right text columns (effect [95% CI], weight, [risk of bias]). Pooled estimates are diamonds; a
prediction interval is a bar on its own row under its diamond (k >= 3 and tau^2 > 0 only).
Heterogeneity and overall-effect tests are printed under the table. Layout follows metafor
``forest.rma`` (Viechtbauer 2010, J Stat Softw 36(3)) and the Cochrane RevMan forest plot.

The figure draws the result it is given (plain data frames and mappings; it never fits a
model). Steps: `forest_rows` decides what each row says, `forest_draw.Measurer` measures the
texts, `forest_layout` places columns and rows for a fixed journal width (text never below
7 pt), `forest_draw` draws. Every drawn element carries a ``gid`` (tests/test_plots.py).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd
from matplotlib.figure import Figure

from timecourse_meta.plots import forest_layout as lay
from timecourse_meta.plots.figures import FONT_SIZE, style_context
from timecourse_meta.plots.forest_draw import (
    Measurer,
    Table,
    draw_axis,
    draw_favours,
    draw_notes,
    draw_panel,
    draw_table,
    new_figure,
    rob_legend,
)
from timecourse_meta.plots.forest_layout import ROW_H, auto_xlim
from timecourse_meta.plots.forest_rows import (
    DEFAULT_FLAG_NOTES,
    MEANS,
    Block,
    build_rows,
    cap_studies,
    check_studies,
    footnotes,
    rob_present,
    sort_studies,
)
from timecourse_meta.plots.forest_text import format_p, heterogeneity_text, overall_test_text

__all__ = [
    "MIN_TEXT_PT",
    "ROW_H",
    "auto_xlim",
    "data_xlim",
    "forest_plot",
    "format_p",
    "heterogeneity_text",
    "overall_test_text",
]

MIN_TEXT_PT = 7.0  # smallest text at the saved size (journal artwork minimum)
NOTE_SIZE = MIN_TEXT_PT
# fitting variants, tried in order: (table font pt, mean columns, label chars, N columns,
# weight column); the last ones are for a single journal column (weight shown by the squares)
_VARIANTS = ((FONT_SIZE, True, None, True, True), (MIN_TEXT_PT, True, None, True, True),
             (FONT_SIZE, False, None, True, True), (MIN_TEXT_PT, False, None, True, True),
             (MIN_TEXT_PT, False, 28, True, True), (MIN_TEXT_PT, False, 20, True, True),
             (MIN_TEXT_PT, False, 20, False, True),
             (MIN_TEXT_PT, False, 14, False, False))  # fmt: skip


@dataclass(frozen=True)
class Labels:
    measure: str
    favours: tuple[str, str]
    groups: tuple[str, str]
    title: str | None
    notes: tuple[str, ...] = ()
    totals: pd.DataFrame | None = None  # all study rows when the drawn ones were capped


def data_xlim(
    studies: Sequence[pd.DataFrame], estimates: Sequence[float] = (), nbins: int = 6
) -> tuple[float, float]:
    """Axis limits from study CIs and pooled estimates of several windows (common x-range).

    The same rule as one figure's automatic axis (`forest_layout.auto_xlim`) over the union,
    without the favours-label widening (that depends on the panel).
    """
    df = pd.concat([s for s in studies if len(s)], ignore_index=True) if studies else None
    if df is None or not len(df):
        return -1.0, 1.0
    centres = [*pd.to_numeric(df["yi"], errors="coerce"), *estimates]
    lo, hi, _ = auto_xlim(df["ci_low"].astype(float), df["ci_high"].astype(float), centres,
                          nbins=nbins)  # fmt: skip
    return lo, hi


def forest_plot(
    studies: pd.DataFrame,
    pooled: Mapping[str, object] | None,
    *,
    sections: list[tuple[str, pd.DataFrame, Mapping[str, object] | None]] | None = None,
    measure_label: str = "Effect size",
    favours: tuple[str, str] = ("Favours control", "Favours treatment"),
    title: str | None = None,
    xlim: tuple[float, float] | None = None,
    group_labels: tuple[str, str] = ("Treatment", "Control"),
    flag_notes: Mapping[str, str] | None = None,
    show_pooled_line: bool = True,
    max_label_chars: int = 45,
    sort: str = "study",
    width: str | float = "double",
    notes: Sequence[str] = (),
    max_studies: int | None = None,
) -> Figure:
    """Draw a forest plot and return the (Agg-backed) figure; see module docstring for layout.

    ``studies``: one row per study with columns label, n_treatment, n_control, yi, ci_low,
    ci_high, weight (percent); optional ``flag`` (markers, space separated, explained in
    footnotes via ``flag_notes``), ``crossover`` and ``split_control`` (booleans: marked, and
    crossover participants counted once in the total), ``mean_t, sd_t, mean_c, sd_c`` (arm
    'Mean (SD)' columns), ``rob`` (overall risk of bias: low, unclear, some_concerns, high,
    not_assessed; a dot column) and ``year`` (for ``sort='year'``). ``pooled``: estimate,
    ci_low, ci_high, pi_low, pi_high, tau2, I2 (percent), Q, Q_df, Q_p, stat, stat_name, df,
    pval, k, label, optional ``note`` and ``subgroup_test``; without estimate the pooled row
    says 'Not estimable' and the note says why. ``sections``: (header, studies, pooled) per
    subgroup. ``sort``: study | effect | weight | year. ``width``: 'single' (85 mm), 'double'
    (174 mm) or mm. ``notes``: extra footnotes (after the generated ones). ``max_studies``
    (without sections): draw at most that many study rows, those with the largest weights
    (`forest_rows.cap_studies`), with a note on the figure saying so; the pooled row's N and
    weight totals stay those of all studies. Squares have area proportional to weight (side
    floor 2.5 pt).
    """
    pooled = dict(pooled) if pooled is not None else None
    check_studies(studies, "studies")
    if sections:
        for name, df, _ in sections:
            check_studies(df, f"section {name!r}")
        union = sorted(str(x) for _, df, _ in sections for x in df["label"])
        if len(studies) and sorted(str(x) for x in studies["label"]) != union:
            raise ValueError("studies must be empty or hold exactly the section study labels")
    cap_note = None
    if not sections:
        shown, cap_note = cap_studies(studies, max_studies)
    raw = sections if sections else [(None, shown, None)]
    blocks: list[Block] = [(n, sort_studies(df, sort), p) for n, df, p in raw]
    all_df = pd.concat([b[1] for b in blocks], ignore_index=True)
    labels = Labels(
        measure_label,
        tuple(favours),  # type: ignore[arg-type]
        tuple(group_labels),  # type: ignore[arg-type]
        title,
        (*([cap_note] if cap_note else []), *(str(n) for n in notes)),
        studies if cap_note else None,
    )
    fig_w = lay.figure_width(width)
    notes_map = dict(DEFAULT_FLAG_NOTES if flag_notes is None else flag_notes)
    with style_context():
        if len(all_df) == 0:
            return _empty_figure(title, "No studies in this window", fig_w)
        return _forest(all_df, blocks, pooled, labels, xlim, notes_map, show_pooled_line,
                       max_label_chars, fig_w)  # fmt: skip


def _empty_figure(title: str | None, message: str, fig_w: float) -> Figure:
    fig = new_figure(fig_w, 1.2 if title else 0.9)
    if title:
        fig.text(0.02, 0.8, title, fontsize=FONT_SIZE + 1, weight="bold", va="center", gid="title")
    fig.text(0.5, 0.4, message, ha="center", va="center", fontsize=FONT_SIZE + 1, gid="message")
    return fig


def _table(all_df, blocks, pooled, labels: Labels, variant, max_chars: int):
    """(Table, model notes) for one fitting variant."""
    size, means_ok, chars, show_n, show_w = variant
    with_means = (
        means_ok
        and all(c in all_df.columns for c in MEANS)
        and bool(all_df[list(MEANS)].notna().to_numpy().any())
    )
    limit = max_chars if chars is None else min(chars, max_chars)
    body, footer, model_notes = build_rows(all_df, blocks, pooled, with_means, limit,
                                           totals=labels.totals)  # fmt: skip
    sectioned = blocks[0][0] is not None
    left = ["study", *(["mean_t"] if with_means else []), *(["n_t"] if show_n else [])]
    left += [*(["mean_c"] if with_means else []), *(["n_c"] if show_n else [])]
    right = [
        "effect",
        *(["weight"] if show_w else []),
        *(["rob"] if any(r.rob for r in body) else []),
    ]
    header2 = {"study": "Study or subgroup" if sectioned else "Study", "mean_t": "Mean (SD)",
               "n_t": "N", "mean_c": "Mean (SD)", "n_c": "N", "effect": "[95% CI]",
               "weight": "Weight", "plot": "95% CI", "rob": "RoB"}  # fmt: skip
    header1 = {"effect": labels.measure, "plot": labels.measure}
    groups = {
        g: [k for k in left if k.endswith(sfx)]
        for g, sfx in zip(labels.groups, ("_t", "_c"), strict=True)
    }
    groups = {g: keys for g, keys in groups.items() if keys}
    lines = [r.cells["span"] for r in footer]
    table = Table(body, lines, left, right, header1, header2, groups, size, max(size - 0.5, 7.0))
    return table, model_notes


def _measure_columns(t: Table, measure: Measurer) -> tuple[dict[str, float], float, dict]:
    widths = dict.fromkeys(t.left_keys + t.right_keys, 0.0)
    span = 0.0
    for row in t.body:
        for key, s in row.cells.items():
            w = measure(s, t.size, row.weight, row.style)
            if key == "span":
                span = max(span, w)
            elif key in widths:
                widths[key] = max(widths[key], w)
    for hdr in (t.header1, t.header2):
        for key, s in hdr.items():
            if key in widths:
                widths[key] = max(widths[key], measure(s, t.size, "bold"))
    if "rob" in widths:
        widths["rob"] = max(widths["rob"], 0.12)
    groups = {g: (keys, measure(g, t.size, "bold")) for g, keys in t.groups.items()}
    return widths, span, groups


def _fit(all_df, blocks, pooled, labels, max_chars, fig_w, measure):
    """The first variant whose columns leave the plot panel its minimum width.

    Variants (see `_VARIANTS`) first at the preferred panel width, then at a narrower one;
    the N columns go last. If nothing fits, the figure is widened (with a warning).
    """
    tries = [(_VARIANTS[0], lay.MIN_PLOT_W), (_VARIANTS[1], 1.3)]
    tries += [(v, lay.MIN_PLOT_W) for v in _VARIANTS[2:6]]
    tries += [(v, 0.8) for v in _VARIANTS[2:]] + [(_VARIANTS[-1], 0.6)]
    for variant, min_w in tries:
        t, notes = _table(all_df, blocks, pooled, labels, variant, max_chars)
        widths, span, groups = _measure_columns(t, measure)
        cols = lay.layout_columns(widths, t.left_keys, t.right_keys, fig_w, groups=groups,
                                  span_need=span, min_plot_w=min_w)  # fmt: skip
        if cols is not None:
            return t, notes, cols
    warnings.warn("forest_plot: table wider than the figure width; figure widened", stacklevel=4)
    need = lay.layout_columns(widths, t.left_keys, t.right_keys, 100.0, groups=groups,
                              span_need=span, min_plot_w=0.0)  # fmt: skip
    assert need is not None
    wide = 100.0 - need.plot_w + lay.MIN_PLOT_W
    cols = lay.layout_columns(widths, t.left_keys, t.right_keys, wide, groups=groups,
                              span_need=span, min_plot_w=0.0)  # fmt: skip
    return t, notes, cols


def _limits(t: Table, xlim, fav_w, cols):
    est = [r for r in t.body if r.kind in ("study", "pooled")]
    studies = [r for r in est if r.kind == "study"]
    nbins = lay.tick_bins(cols.plot_w)
    if xlim is not None:
        xmin, xmax = float(xlim[0]), float(xlim[1])
        return xmin, xmax, lay.ticks_for(xmin, xmax, None, nbins)
    side = tuple((w + 0.08) / cols.plot_w for w in fav_w)
    xmin, xmax, step = auto_xlim([r.lo for r in studies], [r.hi for r in studies],
                                 [r.est for r in est], min_side=side)  # fmt: skip
    if (xmax - xmin) / step > nbins:  # narrow panel: fewer ticks than grid steps
        return xmin, xmax, lay.ticks_for(xmin, xmax, None, nbins)
    return xmin, xmax, lay.ticks_for(xmin, xmax, step)


def _forest(all_df, blocks, pooled, labels, xlim, flag_notes, pooled_line, max_chars, fig_w):
    measure = Measurer()
    t, model_notes, cols = _fit(all_df, blocks, pooled, labels, max_chars, fig_w, measure)
    fig_w = cols.fig_w
    fav_w = [measure(s, t.size) for s in labels.favours]
    xmin, xmax, ticks = _limits(t, xlim, fav_w, cols)
    fav_xs = lay.favours_x(xmin, xmax, fav_w, cols.plot_w)
    text_w = fig_w - lay.LEFT_MARGIN - lay.RIGHT_MARGIN
    left_w = cols.left_block - lay.LEFT_MARGIN
    below = left_w < 0.45 * text_w  # narrow left block: footer lines under the favours labels
    left_w = text_w if below else left_w
    footer = [
        ln for s in t.footer for ln in lay.wrap_text(s, left_w, lambda x: measure(x, t.footer_size))
    ]
    t = Table(t.body, footer, t.left_keys, t.right_keys, t.header1, t.header2, t.groups,
              t.size, t.footer_size)  # fmt: skip
    notes = footnotes(all_df, t.body, flag_notes, model_notes, labels.totals)
    notes += list(labels.notes)
    lines = [ln for s in notes for ln in lay.wrap_text(s, text_w, lambda x: measure(x, NOTE_SIZE))]
    rob = rob_present(t.body)
    rob_lines = (
        rob_legend(rob, NOTE_SIZE, measure, fig_w - lay.RIGHT_MARGIN)[-1][0] + 1 if rob else 0
    )
    title = (
        lay.wrap_text(labels.title, text_w, lambda x: measure(x, t.size + 1, "bold"))
        if labels.title
        else []
    )
    vert = lay.layout_vertical(len(t.body), n_title=len(title), n_footer=len(footer),
                               n_notes=len(lines) + rob_lines, fav_stacked=fav_xs[2],
                               footer_below=below)  # fmt: skip
    fig = new_figure(fig_w, vert.fig_h)
    ax = fig.add_axes((cols.plot_left / fig_w, vert.ax_bottom / vert.fig_h, cols.plot_w / fig_w,
                       len(t.body) * ROW_H / vert.fig_h))  # fmt: skip
    ax.set_ylim(-(len(t.body) - 0.5), 0.5)
    draw_axis(ax, xmin, xmax, ticks, t.size)
    draw_table(fig, t, cols, vert, title)
    draw_favours(fig, labels.favours, fav_xs, cols, vert, t.size)
    draw_notes(fig, lines, vert, NOTE_SIZE, rob, measure)
    draw_panel(ax, t.body, xmin, xmax, pooled_line)
    return fig
