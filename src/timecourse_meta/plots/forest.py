"""Forest plot in the RevMan / metafor ``forest()`` layout.

Left text columns (study, [mean (SD)], N per arm), the plot in the middle (squares with area
proportional to the study weight, CI whiskers, arrows where a CI leaves the axis), right text
columns (effect [95% CI], weight). Pooled estimates are diamonds; a prediction interval is a
bar on its own row under its diamond. Heterogeneity and overall-effect tests are printed under
each pooled block. Layout follows metafor ``forest.rma`` (Viechtbauer 2010, J Stat Softw 36(3))
and the Cochrane RevMan forest plot.

Inputs are plain data frames and mappings so that this module does not depend on the model
code. Geometry is fixed in inches (constant row height, measured column widths) so that 0 to
80+ studies stay legible and text never overlaps; every drawn element carries a ``gid`` so the
layout can be checked programmatically (see tests/test_plots.py).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from matplotlib import transforms as mtransforms
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Polygon, Rectangle
from matplotlib.text import Text
from matplotlib.ticker import FixedLocator, MaxNLocator

from timecourse_meta.plots.figures import DPI, FONT_SIZE, PALETTE, style_context

__all__ = ["forest_plot", "heterogeneity_text", "overall_test_text", "format_p"]

# ---- geometry (inches) -------------------------------------------------------------------
ROW_H = 0.19  # height of one table row; 8 pt text is ~0.13 in tall
LEFT_MARGIN = 0.12
RIGHT_MARGIN = 0.12
TOP_MARGIN = 0.10
BOTTOM_MARGIN = 0.10
COL_GAP = 0.16  # between text columns
PLOT_GAP = 0.25  # between the text blocks and the plot
PLOT_W = 3.0  # width of the plot panel
TEXT_PAD = 1.04  # measured text widths are padded by 4 % (hinting differs slightly by dpi)

# ---- style --------------------------------------------------------------------------------
FOOTER_SIZE = FONT_SIZE - 0.5
NOTE_SIZE = FONT_SIZE - 1.0
SQUARE_COLOUR = PALETTE["blue"]
SUBTOTAL_COLOUR = "0.45"
OVERALL_COLOUR = "black"
PI_COLOUR = PALETTE["blue"]
MAX_SQUARE_PT = 0.72 * ROW_H * 72.0  # side of the square of the heaviest study, points
MIN_SQUARE_PT = 2.5  # floor so that tiny weights stay visible (documented deviation)
MINUS = "\u2212"
# arrowheads with the tip at the marker's anchor, so the tip sits exactly on the axis limit
_ARROW_RIGHT = [(0.0, 0.0), (-1.0, 0.45), (-1.0, -0.45), (0.0, 0.0)]
_ARROW_LEFT = [(0.0, 0.0), (1.0, 0.45), (1.0, -0.45), (0.0, 0.0)]
ELLIPSIS = "\u2026"

_REQUIRED = ("label", "n_treatment", "n_control", "yi", "ci_low", "ci_high", "weight")
_MEANS = ("mean_t", "sd_t", "mean_c", "sd_c")
DEFAULT_FLAG_NOTES = {"\u2020": "value taken from a secondary source (published meta-analysis)"}


# ---- number formatting ----------------------------------------------------------------------
def _float(x: object) -> float:
    """Float or NaN for None / missing / non-numeric."""
    if x is None:
        return math.nan
    try:
        v = float(x)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan
    return v


def _num(x: object, digits: int = 2) -> str:
    """Fixed-decimals number with a true minus sign; 'NA' when missing."""
    v = _float(x)
    if not math.isfinite(v):
        return "NA"
    s = f"{v:.{digits}f}"
    if float(s) == 0.0:
        s = s.lstrip("-")  # no "-0.00"
    return s.replace("-", MINUS)


def _small(x: object) -> str:
    """tau^2 style: 2 decimals, or 2 significant digits below 0.01 (so 0.003 is not '0.00')."""
    v = _float(x)
    if not math.isfinite(v):
        return "NA"
    if v == 0.0:
        return "0"
    if abs(v) >= 0.01:
        return _num(v, 2)
    return f"{v:.2g}".replace("-", MINUS)


def format_p(p: object) -> str:
    """'p = 0.017' / 'p < 0.001' / 'p > 0.99'; two significant digits otherwise (APA style)."""
    v = _float(p)
    if not math.isfinite(v):
        return "p = NA"
    if v < 0.001:
        return "p < 0.001"
    if v > 0.99:
        return "p > 0.99"
    return f"p = {float(f'{v:.2g}'):g}"


def _df_text(df: object) -> str:
    v = _float(df)
    if not math.isfinite(v):
        return "NA"
    return f"{v:.0f}" if float(v).is_integer() else f"{v:.1f}"


def _ci_text(est: object, lo: object, hi: object) -> str:
    return f"{_num(est)} [{_num(lo)}, {_num(hi)}]"


def heterogeneity_text(pooled: Mapping[str, object]) -> str:
    """'Heterogeneity: τ² = 0.12; I² = 45%; Q = 10.21 (df = 7, p = 0.18)'.

    ``I2`` is read as a percentage (metafor's ``I2``); missing values print as 'NA'.
    """
    i2 = _float(pooled.get("I2"))
    i2_txt = f"{i2:.0f}%" if math.isfinite(i2) else "NA"
    return (
        f"Heterogeneity: \u03c4\u00b2 = {_small(pooled.get('tau2'))}; I\u00b2 = {i2_txt}; "
        f"Q = {_num(pooled.get('Q'))} (df = {_df_text(pooled.get('Q_df'))}, "
        f"{format_p(pooled.get('Q_p'))})"
    )


def overall_test_text(pooled: Mapping[str, object]) -> str:
    """'Test for overall effect: t = 3.10 (df = 7), p = 0.017' (or 'z = 3.10, p = 0.002')."""
    name = str(pooled.get("stat_name") or "z")
    df = _float(pooled.get("df"))
    df_part = f" (df = {_df_text(df)})" if math.isfinite(df) else ""
    return (
        f"Test for overall effect: {name} = {_num(pooled.get('stat'))}{df_part}, "
        f"{format_p(pooled.get('pval'))}"
    )


def _int_text(x: object) -> str:
    v = _float(x)
    return f"{v:.0f}" if math.isfinite(v) else "NR"


# ---- row model ---------------------------------------------------------------------------------
@dataclass
class _Row:
    """One table row: texts per column plus what to draw in the plot panel."""

    kind: str  # section | study | pooled | pi | line | note | blank
    cells: dict[str, str] = field(default_factory=dict)
    weight: str = "normal"
    style: str = "normal"
    size: float = FONT_SIZE
    est: float = math.nan
    lo: float = math.nan
    hi: float = math.nan
    w: float = math.nan  # study weight (percent)
    overall: bool = False


def _check_studies(df: pd.DataFrame, what: str) -> None:
    missing = [c for c in _REQUIRED if c not in df.columns]
    if missing:
        raise ValueError(f"{what}: missing column(s) {missing}; required {list(_REQUIRED)}")


def _truncate(label: str, max_chars: int) -> str:
    return label if len(label) <= max_chars else label[: max_chars - 1].rstrip() + ELLIPSIS


def _study_rows(df: pd.DataFrame, with_means: bool, mean_digits: int, max_chars: int) -> list[_Row]:
    rows: list[_Row] = []
    flags = df["flag"] if "flag" in df.columns else pd.Series([None] * len(df), index=df.index)
    for rec, flag in zip(df.to_dict("records"), flags, strict=True):
        label = _truncate(str(rec["label"]), max_chars)
        if isinstance(flag, str) and flag.strip():
            label = f"{label} {flag.strip()}"
        yi, lo, hi, w = (_float(rec[c]) for c in ("yi", "ci_low", "ci_high", "weight"))
        cells = {
            "study": label,
            "n_t": _int_text(rec["n_treatment"]),
            "n_c": _int_text(rec["n_control"]),
            "effect": _ci_text(yi, lo, hi) if math.isfinite(yi) else "Not estimable",
            "weight": f"{_num(w, 1)}%" if math.isfinite(w) else "\u2013",
        }
        if with_means:
            for arm in ("t", "c"):
                m, s = _float(rec.get(f"mean_{arm}")), _float(rec.get(f"sd_{arm}"))
                cells[f"mean_{arm}"] = (
                    f"{_num(m, mean_digits)} ({_num(s, mean_digits)})"
                    if math.isfinite(m) and math.isfinite(s)
                    else "NR"
                )
        rows.append(_Row("study", cells, est=yi, lo=lo, hi=hi, w=w))
    return rows


def _pooled_rows(
    pooled: Mapping[str, object] | None,
    df: pd.DataFrame,
    *,
    overall: bool,
    default_label: str,
    show_weight: bool,
) -> tuple[list[_Row], list[_Row]]:
    """(rows inside the table, heterogeneity/test text rows) for one pooled block."""
    if pooled is None:
        return [], []
    label = str(pooled.get("label") or default_label)
    est = _float(pooled.get("estimate"))
    lo, hi = _float(pooled.get("ci_low")), _float(pooled.get("ci_high"))
    cells = {"study": label}
    for key, col in (("n_t", "n_treatment"), ("n_c", "n_control")):
        n = pd.to_numeric(df[col], errors="coerce") if len(df) else pd.Series(dtype=float)
        if len(n) and n.notna().all():
            cells[key] = f"{n.sum():.0f}"
    w = pd.to_numeric(df["weight"], errors="coerce") if len(df) else pd.Series(dtype=float)
    if show_weight and len(w) and w.notna().all():
        cells["weight"] = f"{_num(w.sum(), 1)}%"
    note = pooled.get("note")
    table: list[_Row] = []
    text: list[_Row] = []
    if math.isfinite(est):
        cells["effect"] = _ci_text(est, lo, hi)
        table.append(_Row("pooled", cells, weight="bold", est=est, lo=lo, hi=hi, overall=overall))
        pi_lo, pi_hi = _float(pooled.get("pi_low")), _float(pooled.get("pi_high"))
        if math.isfinite(pi_lo) and math.isfinite(pi_hi):
            table.append(
                _Row(
                    "pi",
                    {"study": "Prediction interval", "effect": f"[{_num(pi_lo)}, {_num(pi_hi)}]"},
                    style="italic",
                    lo=pi_lo,
                    hi=pi_hi,
                    overall=overall,
                )
            )
        if "Q" in pooled or "tau2" in pooled:
            text.append(_Row("line", {"span": heterogeneity_text(pooled)}, size=FOOTER_SIZE))
        if "stat" in pooled:
            text.append(_Row("line", {"span": overall_test_text(pooled)}, size=FOOTER_SIZE))
    else:
        cells["effect"] = "Not estimable"
        table.append(_Row("pooled", cells, weight="bold", overall=overall))
    if note:
        text.append(_Row("note", {"span": str(note)}, style="italic", size=FOOTER_SIZE))
    return table, text


# ---- axis limits -------------------------------------------------------------------------------
def _nice_limits(lo: float, hi: float) -> tuple[float, float, float]:
    """Limits on a 'nice' tick grid (matplotlib MaxNLocator) covering [lo, hi]; returns step."""
    ticks = MaxNLocator(nbins=6, steps=[1, 2, 2.5, 5, 10]).tick_values(lo, hi)
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
) -> tuple[float, float, float]:
    """Data-driven x limits (xmin, xmax, tick step), always including the null line at 0.

    The 'core' is the point estimates, pooled CIs/PIs and 0. CI ends are included up to one
    core span beyond the core (cap: longer whiskers get arrows, as metafor's ``alim``). Each
    side of 0 is then widened to at least ``min_side`` (fractions of the axis) so that the
    'favours' labels fit under their half, which also keeps the ticks roughly symmetric.
    """
    core = np.array([0.0, *centres], dtype=float)
    core = core[np.isfinite(core)]
    c_lo, c_hi = float(core.min()), float(core.max())
    span = max(c_hi - c_lo, 0.5)
    ends_lo = np.asarray(lows, dtype=float)
    ends_hi = np.asarray(highs, dtype=float)
    lo = min(c_lo, float(np.nanmin(ends_lo, initial=c_lo)))
    hi = max(c_hi, float(np.nanmax(ends_hi, initial=c_hi)))
    lo, hi = max(lo, c_lo - span), min(hi, c_hi + span)
    xmin, xmax, step = _nice_limits(lo, hi)
    for _ in range(20):  # widen the short side until both favours labels fit
        width = xmax - xmin
        if -xmin < min_side[0] * width:
            xmin -= step
        elif xmax < min_side[1] * width:
            xmax += step
        else:
            break
        if (xmax - xmin) / step > 8:  # too many ticks: coarser grid over the widened range
            xmin, xmax, step = _nice_limits(xmin, xmax)
    return xmin, xmax, step


# ---- figure ------------------------------------------------------------------------------------
def _empty_figure(title: str | None, message: str) -> Figure:
    fig = Figure(figsize=(6.0, 1.2 if title else 0.9), dpi=DPI)
    FigureCanvasAgg(fig)
    if title:
        fig.text(0.02, 0.8, title, fontsize=FONT_SIZE + 1, weight="bold", va="center", gid="title")
    fig.text(0.5, 0.4, message, ha="center", va="center", fontsize=FONT_SIZE + 1, gid="message")
    return fig


def _fig_text(fig: Figure, s: str, gid: str, **kw: object) -> Text:
    kw.setdefault("fontsize", FONT_SIZE)
    kw.setdefault("va", "center")
    return fig.text(0.0, 0.0, s, gid=gid, clip_on=False, **kw)


def forest_plot(
    studies: pd.DataFrame,
    pooled: Mapping[str, object] | None,
    *,
    sections: list[tuple[str, pd.DataFrame, Mapping[str, object] | None]] | None = None,
    measure_label: str = "Hedges' g",
    favours: tuple[str, str] = ("Favours placebo", "Favours ketamine"),
    title: str | None = None,
    xlim: tuple[float, float] | None = None,
    group_labels: tuple[str, str] = ("Ketamine", "Placebo"),
    flag_notes: Mapping[str, str] | None = None,
    show_pooled_line: bool = True,
    max_label_chars: int = 45,
) -> Figure:
    """Draw a forest plot and return the (Agg-backed) figure; see module docstring for layout.

    ``studies``: one row per study with columns label, n_treatment, n_control, yi, ci_low,
    ci_high, weight (percent); optional ``flag`` (short marker appended to the label and
    explained in a footnote, see ``flag_notes``) and ``mean_t, sd_t, mean_c, sd_c`` (shown as
    'Mean (SD)' columns when present). ``pooled``: estimate, ci_low, ci_high, pi_low, pi_high,
    tau2, I2 (percent), Q, Q_df, Q_p, stat, stat_name, df, pval, label, optional ``note`` and
    ``subgroup_test`` (a ready-made 'Test for subgroup differences: ...' string).
    ``sections``: (header, studies, pooled) per subgroup; the study rows are then taken from
    the sections and ``studies`` must be empty or hold exactly the same study labels.
    Squares have area proportional to weight (side floor :data:`MIN_SQUARE_PT`).
    """
    pooled = dict(pooled) if pooled is not None else None
    _check_studies(studies, "studies")
    if sections:
        for name, df, _ in sections:
            _check_studies(df, f"section {name!r}")
        union = sorted(str(x) for _, df, _ in sections for x in df["label"])
        if len(studies) and sorted(str(x) for x in studies["label"]) != union:
            raise ValueError("studies must be empty or hold exactly the section study labels")
    blocks = sections if sections else [(None, studies, None)]
    all_df = pd.concat([b[1] for b in blocks], ignore_index=True)
    k = len(all_df)
    with style_context():
        if k == 0:
            return _empty_figure(title, "No studies in this window")
        return _forest(
            all_df,
            blocks,
            pooled,
            measure_label=measure_label,
            favours=favours,
            title=title,
            xlim=xlim,
            group_labels=group_labels,
            flag_notes=dict(DEFAULT_FLAG_NOTES if flag_notes is None else flag_notes),
            show_pooled_line=show_pooled_line,
            max_label_chars=max_label_chars,
        )


def _build_rows(
    all_df: pd.DataFrame,
    blocks: Sequence[tuple[str | None, pd.DataFrame, Mapping[str, object] | None]],
    pooled: Mapping[str, object] | None,
    with_means: bool,
    max_label_chars: int,
) -> tuple[list[_Row], list[_Row]]:
    """(body rows inside the plot panel, footer rows under it)."""
    mean_digits = 2
    if with_means:
        vals = pd.to_numeric(all_df[list(_MEANS)].stack(), errors="coerce").abs()
        mean_digits = 1 if vals.max() >= 10 else 2
    body: list[_Row] = []
    sectioned = blocks[0][0] is not None
    for name, df, sub_pooled in blocks:
        if sectioned:
            body.append(_Row("section", {"study": str(name)}, weight="bold"))
        body.extend(_study_rows(df, with_means, mean_digits, max_label_chars))
        if sectioned:
            table, text = _pooled_rows(
                sub_pooled, df, overall=False, default_label="Subtotal", show_weight=True
            )
            if sub_pooled is None and len(df) == 1:
                text = [_Row("note", {"span": "Single study: no pooled estimate"}, style="italic")]
            body.extend(table + text)
            body.append(_Row("blank"))
    footer: list[_Row] = []
    if pooled is not None:
        table, text = _pooled_rows(
            pooled,
            all_df,
            overall=True,
            default_label="Random-effects model",
            show_weight=not sectioned,
        )
        if not sectioned:
            body.append(_Row("blank"))
        body.extend(table)
        footer.extend(text)
        if pooled.get("subgroup_test"):
            footer.append(_Row("line", {"span": str(pooled["subgroup_test"])}, size=FOOTER_SIZE))
    elif len(all_df) == 1 and not sectioned:
        footer.append(_Row("note", {"span": "Single study: no pooled estimate"}, style="italic"))
    while body and body[-1].kind == "blank":
        body.pop()
    return body, footer


def _forest(
    all_df: pd.DataFrame,
    blocks: Sequence[tuple[str | None, pd.DataFrame, Mapping[str, object] | None]],
    pooled: Mapping[str, object] | None,
    *,
    measure_label: str,
    favours: tuple[str, str],
    title: str | None,
    xlim: tuple[float, float] | None,
    group_labels: tuple[str, str],
    flag_notes: dict[str, str],
    show_pooled_line: bool,
    max_label_chars: int,
) -> Figure:
    with_means = all(c in all_df.columns for c in _MEANS) and bool(
        all_df[list(_MEANS)].notna().to_numpy().any()
    )
    body, footer = _build_rows(all_df, blocks, pooled, with_means, max_label_chars)
    sectioned = blocks[0][0] is not None

    # footnotes: flag markers and abbreviations actually used
    notes: list[str] = []
    if "flag" in all_df.columns:
        used = sorted({str(f).strip() for f in all_df["flag"] if isinstance(f, str) and f.strip()})
        for flag in used:
            if flag not in flag_notes:
                warnings.warn(f"forest_plot: no explanation for flag {flag!r}", stacklevel=3)
            notes.append(f"{flag} {flag_notes.get(flag, 'flag without explanation')}")
    if any("NR" in r.cells.values() for r in body):
        notes.append("NR: not reported")
    if any(r.kind == "study" and math.isfinite(r.est) and not math.isfinite(r.w) for r in body):
        warnings.warn(
            "forest_plot: some studies have no weight; drawn at minimum size", stacklevel=3
        )
        notes.append("\u2013: weight not available (square drawn at minimum size)")

    left_keys = ["study", *(["mean_t"] if with_means else []), "n_t"]
    left_keys += [*(["mean_c"] if with_means else []), "n_c"]
    right_keys = ["effect", "weight"]
    align = {"study": "left"}
    header2 = {
        "study": "Study or subgroup" if sectioned else "Study",
        "mean_t": "Mean (SD)",
        "n_t": "N",
        "mean_c": "Mean (SD)",
        "n_c": "N",
        "effect": "[95% CI]",
        "weight": "Weight",
        "plot": "95% CI",
    }
    header1 = {"effect": measure_label, "plot": measure_label}
    spans = {
        group_labels[0]: [k for k in left_keys if k.endswith("_t")],
        group_labels[1]: [k for k in left_keys if k.endswith("_c")],
    }

    fig = Figure(figsize=(8.0, 8.0), dpi=DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.3, 0.1, 0.4, 0.8))
    ax.set_gid("forest-axes")
    y_inches = mtransforms.blended_transform_factory(fig.dpi_scale_trans, ax.transData)

    # ---- create texts, measure widths ----
    cell_texts: list[tuple[str, Text]] = []  # (column key, text)
    span_texts: list[tuple[float, Text]] = []  # left-spanning texts: (y, text)
    widths: dict[str, float] = dict.fromkeys(left_keys + right_keys, 0.0)
    n_body = len(body)
    for i, row in enumerate(body):
        y = -float(i)
        for key, s in row.cells.items():
            t = _fig_text(
                fig,
                s,
                f"{key}:{i}",
                fontsize=row.size,
                fontweight=row.weight,
                fontstyle=row.style,
                transform=y_inches,
                ha="left" if key in ("study", "span") else "right",
            )
            t.set_y(y)
            if key == "span":
                span_texts.append((y, t))
            else:
                cell_texts.append((key, t))
    y_axis_bottom = -(n_body - 0.5)
    for j, row in enumerate(footer):
        y = y_axis_bottom - 0.9 - j
        t = _fig_text(
            fig,
            row.cells["span"],
            f"footer:{j}",
            fontsize=row.size,
            fontstyle=row.style,
            transform=y_inches,
            ha="left",
        )
        t.set_y(y)
        span_texts.append((y, t))
    head_texts: list[tuple[str, Text]] = []
    for key in [*left_keys, *right_keys, "plot"]:
        for line, hdr in ((2, header1), (1, header2)):
            if hdr.get(key):
                t = _fig_text(
                    fig,
                    hdr[key],
                    f"header{line}:{key}",
                    fontweight="bold",
                    transform=y_inches,
                    va="baseline",
                )
                t.set_y(0.72 + (line - 1) * 0.95)
                head_texts.append((key, t))
    group_texts = []
    for glabel, keys in spans.items():
        t = _fig_text(
            fig,
            glabel,
            f"group:{keys[-1]}",
            fontweight="bold",
            transform=y_inches,
            va="baseline",
            ha="center",
        )
        t.set_y(1.67)
        group_texts.append((keys, t))
    fav_texts = [
        _fig_text(fig, s, f"favours:{side}", va="top", transform=ax.transData)
        for side, s in zip(("left", "right"), favours, strict=True)
    ]

    renderer = fig.canvas.get_renderer()

    def width_in(t: Text) -> float:
        return t.get_window_extent(renderer).width / fig.dpi * TEXT_PAD

    for key, t in cell_texts + head_texts:
        if key in widths:
            widths[key] = max(widths[key], width_in(t))
    for keys, t in group_texts:  # the group label must fit over its columns
        have = sum(widths[k] for k in keys) + COL_GAP * (len(keys) - 1)
        widths[keys[-1]] += max(0.0, width_in(t) - have)
    left_block = sum(widths[k] for k in left_keys) + COL_GAP * (len(left_keys) - 1)
    span_need = max((width_in(t) for _, t in span_texts), default=0.0)
    widths["study"] += max(0.0, span_need - left_block)
    fav_w = [width_in(t) for t in fav_texts]

    # ---- horizontal layout (inches) ----
    xpos: dict[str, float] = {}
    x = LEFT_MARGIN
    for key in left_keys:
        xpos[key] = x if align.get(key) == "left" else x + widths[key]
        x += widths[key] + COL_GAP
    plot_left = x - COL_GAP + PLOT_GAP
    plot_right = plot_left + PLOT_W
    x = plot_right + PLOT_GAP
    for key in right_keys:
        xpos[key] = x + widths[key]
        x += widths[key] + COL_GAP
    fig_w = x - COL_GAP + RIGHT_MARGIN
    xpos["span"] = LEFT_MARGIN
    xpos["plot"] = (plot_left + plot_right) / 2
    for key, t in cell_texts:
        t.set_x(xpos[key])
    for _, t in span_texts:
        t.set_x(LEFT_MARGIN)
    for key, t in head_texts:
        t.set_x(xpos[key])
        t.set_horizontalalignment(
            "left" if key == "study" else "center" if key == "plot" else "right"
        )
    for keys, t in group_texts:
        lo_edge = xpos[keys[0]] - widths[keys[0]]
        t.set_x((lo_edge + xpos[keys[-1]]) / 2)

    # footnotes widen the figure if needed
    note_texts = []
    for j, s in enumerate(notes):
        t = _fig_text(
            fig, s, f"footnote:{j}", fontsize=NOTE_SIZE, ha="left", transform=fig.dpi_scale_trans
        )
        note_texts.append(t)
        fig_w = max(fig_w, LEFT_MARGIN + width_in(t) + RIGHT_MARGIN)

    # ---- x limits ----
    est_rows = [r for r in body if r.kind in ("study", "pooled", "pi")]
    lows = [r.lo for r in est_rows]
    highs = [r.hi for r in est_rows]
    centres = [r.est for r in est_rows]
    centres += [v for r in est_rows if r.kind in ("pooled", "pi") for v in (r.lo, r.hi)]
    if xlim is None:
        min_side = tuple((w + 0.08) / PLOT_W for w in fav_w)
        xmin, xmax, step = auto_xlim(lows, highs, centres, min_side=min_side)
        ticks = np.arange(xmin, xmax + step / 2, step)
    else:
        xmin, xmax = float(xlim[0]), float(xlim[1])
        ticks = MaxNLocator(nbins=6, steps=[1, 2, 2.5, 5, 10]).tick_values(xmin, xmax)
        ticks = ticks[(ticks >= xmin - 1e-9) & (ticks <= xmax + 1e-9)]
    lx, rx, fav_stacked = _favours_x(xmin, xmax, fav_w)
    ax.set_xlim(xmin, xmax)
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.set_xticklabels([_num(v, 2 if _two_decimals(ticks) else 1) for v in ticks])
    ax.tick_params(axis="x", length=3, width=0.8, labelsize=FONT_SIZE, pad=2)
    ax.set_yticks([])
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    ax.patch.set_visible(False)

    # ---- vertical layout (inches) ----
    above_rows = 2.75 + (1.1 if title else 0.0)  # header (and title) above the first row
    # footer lines, or x-axis ticks + favours labels (one more row when stacked)
    below_rows = max(0.9 + len(footer) - 0.5, 2.6 + fav_stacked) + 0.3
    note_h = len(notes) * 0.85 * ROW_H
    fig_h = TOP_MARGIN + (above_rows + n_body + below_rows) * ROW_H + note_h + BOTTOM_MARGIN
    fig.set_size_inches(fig_w, fig_h)
    ax_bottom = BOTTOM_MARGIN + note_h + below_rows * ROW_H
    ax.set_position((plot_left / fig_w, ax_bottom / fig_h, PLOT_W / fig_w, n_body * ROW_H / fig_h))
    ax.set_ylim(y_axis_bottom, 0.5)
    for j, t in enumerate(note_texts):
        t.set_position((LEFT_MARGIN, BOTTOM_MARGIN + note_h - (j + 0.5) * 0.85 * ROW_H))
    if title:
        t = _fig_text(
            fig,
            title,
            "title",
            fontsize=FONT_SIZE + 1,
            fontweight="bold",
            transform=y_inches,
            ha="left",
        )
        t.set_position((LEFT_MARGIN, 3.3))

    # booktabs-style rules across the whole table
    for y, gid in ((2.6, "rule:top"), (0.5, "rule:header")):
        fig.add_artist(
            Line2D(
                [LEFT_MARGIN, fig_w - RIGHT_MARGIN],
                [y, y],
                transform=y_inches,
                color="black",
                lw=0.6,
                gid=gid,
            )
        )

    # favours labels under the axis, either side of the null line
    panel = mtransforms.blended_transform_factory(
        mtransforms.offset_copy(fig.dpi_scale_trans, fig=fig, x=plot_left, y=0.0, units="inches"),
        ax.transData,
    )
    fy = y_axis_bottom - 1.35
    for t, x_, dy, ha in (
        (fav_texts[0], lx, 0.0, "right"),
        (fav_texts[1], rx, -1.0 if fav_stacked else 0.0, "left"),
    ):
        t.set_transform(panel)
        t.set_position((x_, fy + dy))
        t.set_horizontalalignment(ha)

    # ---- plot panel ----
    if xmin < 0.0 < xmax:
        ax.axvline(0.0, color="black", lw=0.8, zorder=1, gid="null-line")
    weights = np.array([r.w for r in body if r.kind == "study"], dtype=float)
    wmax = float(np.nanmax(weights)) if np.isfinite(weights).any() else 1.0
    overall_est = math.nan
    arrow_kw = dict(color="black", markersize=10, clip_on=False, linestyle="none", zorder=4)
    for i, row in enumerate(body):
        y = -float(i)
        if row.kind in ("study", "pooled", "pi") and math.isfinite(row.lo):
            if row.lo < xmin:
                ax.plot([xmin], [y], marker=_ARROW_LEFT, gid=f"arrow:{i}:left", **arrow_kw)
            if row.hi > xmax:
                ax.plot([xmax], [y], marker=_ARROW_RIGHT, gid=f"arrow:{i}:right", **arrow_kw)
        if row.kind == "study" and math.isfinite(row.est):
            if math.isfinite(row.lo) and math.isfinite(row.hi):
                ax.plot(
                    [max(row.lo, xmin), min(row.hi, xmax)],
                    [y, y],
                    color="black",
                    lw=0.9,
                    solid_capstyle="butt",
                    zorder=2,
                    gid=f"ci:{i}",
                )
            side = MAX_SQUARE_PT * math.sqrt(row.w / wmax) if math.isfinite(row.w) else 0.0
            side = max(side, MIN_SQUARE_PT)
            if xmin <= row.est <= xmax:  # off-axis estimates are shown by the arrow alone
                ax.scatter(
                    [row.est],
                    [y],
                    s=side**2,
                    marker="s",
                    color=SQUARE_COLOUR,
                    edgecolors="none",
                    zorder=3,
                    gid=f"square:{i}",
                )
        elif row.kind == "pooled" and math.isfinite(row.est):
            colour = OVERALL_COLOUR if row.overall else SUBTOTAL_COLOUR
            h = 0.36
            ax.add_patch(
                Polygon(
                    [(row.lo, y), (row.est, y + h), (row.hi, y), (row.est, y - h)],
                    closed=True,
                    facecolor=colour,
                    edgecolor=colour,
                    lw=0.6,
                    zorder=3,
                    gid=f"diamond:{i}",
                )
            )
            if row.overall:
                overall_est = row.est
                overall_y = y
        elif row.kind == "pi":
            h = 0.13
            ax.add_patch(
                Rectangle(
                    (row.lo, y - h),
                    row.hi - row.lo,
                    2 * h,
                    facecolor=PI_COLOUR,
                    alpha=0.35,
                    edgecolor="none",
                    zorder=2,
                    gid=f"pi-bar:{i}",
                )
            )
            ax.plot([row.lo, row.hi], [y, y], color=PI_COLOUR, lw=1.0, zorder=3, gid=f"pi-line:{i}")
            for xe in (row.lo, row.hi):
                ax.plot(
                    [xe, xe],
                    [y - 1.6 * h, y + 1.6 * h],
                    color=PI_COLOUR,
                    lw=1.0,
                    zorder=3,
                    gid=f"pi-cap:{i}",
                )
    if show_pooled_line and math.isfinite(overall_est) and xmin <= overall_est <= xmax:
        ax.plot(
            [overall_est, overall_est],
            [0.5, overall_y],
            color="0.35",
            lw=0.7,
            linestyle=(0, (3, 2)),
            zorder=1,
            gid="pooled-line",
        )
    return fig


def _favours_x(xmin: float, xmax: float, fav_w: Sequence[float]) -> tuple[float, float, bool]:
    """Anchor x (inches from the panel's left) of the left label's right end and the right
    label's left end, and whether the right label must go one row lower.

    Preferred: either side of the null line (RevMan). If a label would leave the panel (user
    xlim, or 0 outside the axis) both go to the panel ends; if they still collide, stacked.
    """
    gap = 0.06
    if xmin < 0.0 < xmax:
        fx = (0.0 - xmin) / (xmax - xmin) * PLOT_W
        lx, rx = fx - gap, fx + gap
        if lx - fav_w[0] >= -gap and rx + fav_w[1] <= PLOT_W + gap:
            return lx, rx, False
    lx, rx = fav_w[0], PLOT_W - fav_w[1]
    return lx, rx, lx + 2 * gap > rx


def _two_decimals(ticks: np.ndarray) -> bool:
    """True when tick values need two decimals (e.g. 0.25 steps), else one is enough."""
    return bool(np.any(np.abs(np.round(ticks * 10) - ticks * 10) > 1e-6))
