"""Time-course plot: pooled effect per time point against time after dose (log scale).

Each time point shows the pooled estimate with its 95% CI (error bar) and, where available,
its 95% prediction interval as a lighter, thicker bar behind it (Riley et al. 2011, BMJ
342:d549: the PI shows where the effect of a new study is expected). The number of studies
(k) is printed under each time point. Optional overlays, shifted by a small horizontal dodge
so that nothing hides anything else: a multivariate (all time points jointly) model, results
published by earlier meta-analyses (hollow markers), and the verdicts on published claims in
a strip above the plot, numbered and listed in a legend below it.

Inputs are plain data frames; rows that cannot be drawn (missing or non-positive time) are
reported through :func:`warnings.warn`, never silently dropped.
"""

from __future__ import annotations

import math
import re
import textwrap
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.container import ErrorbarContainer
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FixedLocator, NullLocator
from matplotlib.transforms import blended_transform_factory

from timecourse_meta.plots.figures import DPI, FONT_SIZE, PALETTE, style_context

__all__ = ["timecourse_plot", "format_timepoint", "VERDICT_STYLE"]

UNIVARIATE_COLOUR = PALETTE["blue"]
MULTIVARIATE_COLOUR = PALETTE["orange"]
PUBLISHED_COLOURS = [PALETTE["purple"], PALETTE["brown"], "0.2", PALETTE["cyan"], PALETTE["grey"]]
PUBLISHED_MARKERS = ["D", "^", "v", "P", "X", "h"]
#: marker, colour and legend word for each claim verdict (colour-blind safe, shape-coded too)
VERDICT_STYLE: dict[str, tuple[str, tuple[float, float, float] | str, str]] = {
    "supported": ("o", PALETTE["green"], "supported"),
    "not supported": ("X", PALETTE["red"], "not supported"),
    "not testable": ("s", "0.55", "not testable"),
}
DODGE_FRACTION = 0.022  # horizontal dodge between series, as a fraction of the log-x range
CAP_WIDTHS = 2.0  # axis cap: this many estimate ranges beyond the estimates
K_BAND = 0.09  # fraction of the axes height reserved at the bottom for the 'k = n' labels
WRAP = 42  # legend entries are wrapped at this many characters

_POOLED_COLS = ("timepoint", "hours", "k", "estimate", "ci_low", "ci_high")
_PUBLISHED_COLS = ("hours", "estimate", "ci_low", "ci_high", "label")
_CLAIM_COLS = ("hours", "label", "verdict")


def format_timepoint(label: object, hours: float | None = None) -> str:
    """'4h' -> '4 h', '3d' -> '3 d', '14 d' stays; unlabelled hours: '< 48 h' in h, else d."""
    if isinstance(label, str) and label.strip():
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]+)\s*", label)
        return f"{m.group(1)} {m.group(2)}" if m else label.strip()
    if hours is None or not math.isfinite(hours):
        return "?"
    return f"{hours:g} h" if hours < 48 else f"{hours / 24:g} d"


def _require(df: pd.DataFrame, cols: Sequence[str], what: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ValueError(f"{what}: missing column(s) {missing}")


def _placeable(df: pd.DataFrame, what: str) -> pd.DataFrame:
    """Rows with a finite, positive time (log axis); warn about the others."""
    hours = pd.to_numeric(df["hours"], errors="coerce")
    ok = np.isfinite(hours.to_numpy(dtype=float)) & (hours.to_numpy(dtype=float) > 0)
    if not ok.all():
        warnings.warn(
            f"timecourse_plot: {int((~ok).sum())} {what} row(s) without a positive time "
            "cannot be placed on the log time axis and are not drawn",
            stacklevel=3,
        )
    out = df.loc[ok].copy()
    out["hours"] = hours[ok].astype(float)
    for c in ("estimate", "ci_low", "ci_high", "pi_low", "pi_high"):
        if c in out.columns:
            out[c] = pd.to_numeric(out[c], errors="coerce").astype(float)
    return out.reset_index(drop=True)


def _dodged(hours: np.ndarray, offset_dec: float) -> np.ndarray:
    return hours * 10.0**offset_dec


def _errorbar(
    ax: Axes,
    x: np.ndarray,
    df: pd.DataFrame,
    colour: object,
    marker: str,
    label: str,
    hollow: bool = False,
    zorder: int = 3,
    clip: tuple[float, float] = (-np.inf, np.inf),
) -> ErrorbarContainer:
    """Points with 95% CI bars; rows without an estimate are skipped (shown by their k label).

    Bars are cut at ``clip`` (the data area); :func:`_mark_clipped` marks the cut ends.
    """
    est = df["estimate"].to_numpy(dtype=float)
    lo = np.clip(df["ci_low"].to_numpy(dtype=float), *clip)
    hi = np.clip(df["ci_high"].to_numpy(dtype=float), *clip)
    keep = np.isfinite(est)
    yerr = np.vstack([est - lo, hi - est])[:, keep]
    yerr = np.where(np.isfinite(yerr), yerr, 0.0)  # missing CI: marker only
    return ax.errorbar(
        x[keep],
        est[keep],
        yerr=yerr,
        fmt=marker,
        color=colour,
        markerfacecolor="white" if hollow else colour,
        markeredgecolor=colour,
        markeredgewidth=1.1,
        markersize=5.5,
        elinewidth=1.1,
        capsize=2.5,
        capthick=1.1,
        label=label,
        zorder=zorder,
    )


def _pi_bars(
    ax: Axes,
    x: np.ndarray,
    df: pd.DataFrame,
    colour: object,
    zorder: int = 1,
    clip: tuple[float, float] = (-np.inf, np.inf),
) -> bool:
    """Prediction intervals as light thick bars behind the points; True if any was drawn."""
    if not {"pi_low", "pi_high"} <= set(df.columns):
        return False
    lo = np.clip(df["pi_low"].to_numpy(dtype=float), *clip)
    hi = np.clip(df["pi_high"].to_numpy(dtype=float), *clip)
    keep = np.isfinite(lo) & np.isfinite(hi)
    if "k" in df.columns:  # a single study has no between-study spread to predict
        keep &= pd.to_numeric(df["k"], errors="coerce").fillna(0).to_numpy() >= 2
    if keep.any():
        ax.vlines(
            x[keep],
            lo[keep],
            hi[keep],
            colors=[colour],
            linewidths=7.0,
            alpha=0.28,
            zorder=zorder,
            gid="pi-bars",
        )
    return bool(keep.any())


def _mark_clipped(
    ax: Axes, series: list[tuple[np.ndarray, pd.DataFrame]], lo: float, hi: float
) -> bool:
    """Arrowheads at the axis edge where a CI or PI runs past it; True if any was drawn."""
    drawn = False
    for x, df in series:
        cols = [c for c in ("ci_low", "pi_low") if c in df.columns]
        lows = np.nanmin(df[cols].to_numpy(dtype=float), axis=1, initial=np.inf)
        cols = [c for c in ("ci_high", "pi_high") if c in df.columns]
        highs = np.nanmax(df[cols].to_numpy(dtype=float), axis=1, initial=-np.inf)
        for xs, ys, sel, marker in ((x, hi, highs > hi, "^"), (x, lo, lows < lo, "v")):
            if sel.any():
                ax.plot(
                    xs[sel],
                    np.full(int(sel.sum()), ys),
                    linestyle="none",
                    marker=marker,
                    color="0.3",
                    markersize=5,
                    clip_on=False,
                    zorder=5,
                    gid="clipped",
                )
                drawn = True
    return drawn


def timecourse_plot(
    pooled: pd.DataFrame,
    *,
    published: pd.DataFrame | None = None,
    multivariate: pd.DataFrame | None = None,
    claims: pd.DataFrame | None = None,
    measure_label: str = "Hedges' g (positive = benefit)",
    title: str | None = None,
) -> Figure:
    """Pooled effect by time point on a log time axis; returns an Agg-backed figure.

    ``pooled``: timepoint (label such as '4h'), hours, k, estimate, ci_low, ci_high and
    optionally pi_low, pi_high (NaN where not available). ``multivariate``: same columns.
    ``published``: hours, estimate, ci_low, ci_high, label (already on this plot's scale and
    sign). ``claims``: hours, label, verdict in {'supported', 'not supported',
    'not testable'}. Rows with NaN estimate are shown only by their k label with 'n.e.'.
    """
    _require(pooled, _POOLED_COLS, "pooled")
    if multivariate is not None:
        _require(multivariate, ("hours", "estimate", "ci_low", "ci_high"), "multivariate")
    if published is not None:
        _require(published, _PUBLISHED_COLS, "published")
    if claims is not None:
        _require(claims, _CLAIM_COLS, "claims")
        bad = sorted(set(claims["verdict"].astype(str)) - set(VERDICT_STYLE))
        if bad:
            raise ValueError(f"claims: unknown verdict(s) {bad}; use {sorted(VERDICT_STYLE)}")
    with style_context():
        return _draw(pooled, published, multivariate, claims, measure_label, title)


def _draw(
    pooled: pd.DataFrame,
    published: pd.DataFrame | None,
    multivariate: pd.DataFrame | None,
    claims: pd.DataFrame | None,
    measure_label: str,
    title: str | None,
) -> Figure:
    uni = _placeable(pooled, "pooled")
    mv = _placeable(multivariate, "multivariate") if multivariate is not None else None
    pub = _placeable(published, "published") if published is not None else None
    cl = _placeable(claims, "claims") if claims is not None else None
    if pub is not None and pub["estimate"].isna().any():
        warnings.warn(
            f"timecourse_plot: {int(pub['estimate'].isna().sum())} published row(s) without "
            "an estimate are not drawn",
            stacklevel=3,
        )
        pub = pub[pub["estimate"].notna()].reset_index(drop=True)

    all_hours = np.concatenate(
        [d["hours"].to_numpy(dtype=float) for d in (uni, mv, pub, cl) if d is not None]
    )
    fig = Figure(figsize=(8.0, 4.4), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    if all_hours.size == 0:
        fig.set_size_inches(6.0, 1.2)
        fig.text(
            0.5,
            0.5,
            "No time points to show",
            ha="center",
            va="center",
            fontsize=FONT_SIZE + 1,
            gid="message",
        )
        return fig

    # claims strip above the main axes (stacked where several claims share a time)
    stack = None
    if cl is not None and len(cl):
        cl = cl.sort_values("hours", kind="stable").reset_index(drop=True)
        cl["number"] = np.arange(1, len(cl) + 1)
        stack = cl.groupby("hours", sort=False).cumcount().to_numpy()
        n_stack = int(stack.max()) + 1
        strip_h = 0.22 + 0.17 * n_stack
        fig.set_size_inches(8.0, 4.4 + strip_h)
        ax_c, ax = fig.subplots(2, 1, sharex=True, height_ratios=[strip_h, 3.6])
    else:
        ax = fig.subplots(1, 1)
        ax_c = None
    ax.set_gid("timecourse-axes")

    # x axis: log hours, ticks at the observed times labelled like the time points
    lo_h, hi_h = float(all_hours.min()) / 1.6, float(all_hours.max()) * 1.6
    ax.set_xscale("log")
    ax.set_xlim(lo_h, hi_h)
    dodge = DODGE_FRACTION * math.log10(hi_h / lo_h)
    tick_lab: dict[float, str] = {}
    for h, tp in zip(uni["hours"], uni["timepoint"], strict=True):
        tick_lab.setdefault(float(h), format_timepoint(tp, float(h)))
    if mv is not None and "timepoint" in mv.columns:
        for h, tp in zip(mv["hours"], mv["timepoint"], strict=True):
            tick_lab.setdefault(float(h), format_timepoint(tp, float(h)))
    for h in all_hours:
        tick_lab.setdefault(float(h), format_timepoint(None, float(h)))
    ticks = sorted(tick_lab)
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels([tick_lab[t] for t in ticks])
    ax.set_xlabel("Time after dose (log scale)")
    ax.set_ylabel(measure_label)
    ax.axhline(0.0, color="black", lw=0.8, zorder=0, gid="null-line")
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)

    # y range: everything drawn plus 0, and a band at the bottom for the k labels
    ys = [np.zeros(1)]
    for d in (uni, mv, pub):
        if d is not None:
            for c in ("estimate", "ci_low", "ci_high", "pi_low", "pi_high"):
                if c in d.columns:
                    ys.append(d[c].to_numpy(dtype=float))
    yv = np.concatenate(ys)
    yv = yv[np.isfinite(yv)]
    y_lo, y_hi = float(yv.min()), float(yv.max())
    # An interval from very few studies (e.g. Knapp-Hartung with k = 2) can be many times wider
    # than everything else; cap the axis around the estimates and mark what runs beyond it.
    core = np.concatenate(
        [np.zeros(1)]
        + [d["estimate"].to_numpy(dtype=float) for d in (uni, mv, pub) if d is not None]
    )
    core = core[np.isfinite(core)]
    width = max(float(core.max() - core.min()), 0.5)
    y_lo = max(y_lo, float(core.min()) - CAP_WIDTHS * width)
    y_hi = min(y_hi, float(core.max()) + CAP_WIDTHS * width)
    pad = 0.06 * max(y_hi - y_lo, 0.5)
    top = y_hi + pad
    total = (top - (y_lo - pad)) / (1.0 - K_BAND)
    ax.set_ylim(top - total, top)
    clip = (y_lo - pad, top)

    handles: list[object] = []
    x_uni = uni["hours"].to_numpy(dtype=float)
    if _pi_bars(ax, x_uni, uni, UNIVARIATE_COLOUR, clip=clip):
        handles.append(
            Patch(facecolor=UNIVARIATE_COLOUR, alpha=0.28, label="95% prediction interval")
        )
    handles.insert(
        0,
        _errorbar(
            ax, x_uni, uni, UNIVARIATE_COLOUR, "o", "per time point (univariate), 95% CI", clip=clip
        ),
    )
    if mv is not None and len(mv):
        x_mv = _dodged(mv["hours"].to_numpy(dtype=float), dodge)
        _pi_bars(ax, x_mv, mv, MULTIVARIATE_COLOUR, clip=clip)
        handles.append(
            _errorbar(
                ax, x_mv, mv, MULTIVARIATE_COLOUR, "s", "multivariate model, 95% CI", clip=clip
            )
        )
    if pub is not None and len(pub):
        pub["label"] = pub["label"].astype(str)
        labels = list(dict.fromkeys(pub["label"]))
        # slot = position among the published series present at that time (1, 2, ... leftwards)
        slot = pub.groupby("hours", sort=False).cumcount().to_numpy() + 1
        x_all = _dodged(pub["hours"].to_numpy(dtype=float), -dodge * slot)
        for j, lab in enumerate(labels):
            sel = (pub["label"] == lab).to_numpy()
            sub, x_p = pub[sel], x_all[sel]
            handles.append(
                _errorbar(
                    ax,
                    x_p,
                    sub,
                    PUBLISHED_COLOURS[j % len(PUBLISHED_COLOURS)],
                    PUBLISHED_MARKERS[j % len(PUBLISHED_MARKERS)],
                    textwrap.fill(f"published: {lab}", WRAP),
                    hollow=True,
                    zorder=4,
                    clip=clip,
                )
            )

    clipped = _mark_clipped(
        ax, [(x_uni, uni)] + ([(x_mv, mv)] if mv is not None and len(mv) else []), y_lo - pad, top
    )

    # k under each time point
    kx = blended_transform_factory(ax.transData, ax.transAxes)
    any_ne = False
    for h, k, est in zip(x_uni, uni["k"], uni["estimate"], strict=True):
        kv = pd.to_numeric(pd.Series([k]), errors="coerce").iloc[0]
        txt = f"k = {kv:.0f}" if pd.notna(kv) else "k = NA"
        if not math.isfinite(float(est)):
            txt += ", n.e."
            any_ne = True
        ax.text(
            h,
            0.015,
            txt,
            transform=kx,
            ha="center",
            va="bottom",
            fontsize=FONT_SIZE - 1,
            color="0.25",
            gid=f"k-label:{h:g}",
        )

    legend_kw = dict(fontsize=FONT_SIZE - 0.5, handlelength=1.8, borderaxespad=0.2)
    extra = []
    if any_ne:
        extra.append(Line2D([], [], linestyle="none", label="n.e.: no pooled estimate"))
    if clipped:
        extra.append(
            Line2D(
                [],
                [],
                linestyle="none",
                marker="^",
                color="0.3",
                markersize=4,
                label="interval continues beyond the axis\n(see the pooled table)",
            )
        )
    fig.legend(handles=handles + extra, loc="outside right upper", **legend_kw)

    if ax_c is not None and cl is not None and stack is not None:
        _claims_strip(fig, ax_c, cl, stack, legend_kw)
    if title:
        fig.suptitle(title, x=0.01, ha="left", fontsize=FONT_SIZE + 1, fontweight="bold")
    return fig


def _claims_strip(
    fig: Figure, ax_c: Axes, cl: pd.DataFrame, stack: np.ndarray, legend_kw: dict[str, object]
) -> None:
    """Verdict markers (numbered) along the top; the numbered claim texts in a legend below."""
    ax_c.set_gid("claims-axes")
    for side in ("top", "right", "left", "bottom"):
        ax_c.spines[side].set_visible(False)
    ax_c.tick_params(axis="both", length=0, labelbottom=False, labelleft=False)
    ax_c.set_ylim(-0.7, int(stack.max()) + 0.7)
    ax_c.set_ylabel("Claims", rotation=0, ha="right", va="center", fontsize=FONT_SIZE)
    handles = []
    for (_, row), level in zip(cl.iterrows(), stack, strict=True):
        marker, colour, word = VERDICT_STYLE[str(row["verdict"])]
        ax_c.plot(
            [row["hours"]],
            [level],
            marker=marker,
            color=colour,
            markersize=5.5,
            linestyle="none",
            gid=f"claim:{row['number']}",
        )
        ax_c.annotate(
            str(row["number"]),
            (row["hours"], level),
            xytext=(4.5, 0),
            textcoords="offset points",
            va="center",
            ha="left",
            fontsize=FONT_SIZE - 1.5,
            gid=f"claim-number:{row['number']}",
        )
        handles.append(
            Line2D(
                [],
                [],
                marker=marker,
                color=colour,
                linestyle="none",
                markersize=5.5,
                label=textwrap.fill(f"{row['number']}. {row['label']} ({word})", WRAP + 30),
            )
        )
    ncol = 1 if len(handles) <= 3 else 2
    fig.legend(
        handles=handles,
        loc="outside lower left",
        ncols=ncol,
        title="Claims (verdict from this analysis)",
        title_fontsize=FONT_SIZE - 0.5,
        alignment="left",
        **legend_kw,
    )
