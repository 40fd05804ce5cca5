"""Risk-of-bias figures in the style of robvis (McGuinness & Higgins 2021, Res Synth Methods
12:55-61): a traffic-light plot (study x domain) and a weighted summary bar plot.

Both draw the tables they are given (``pipeline.risk_of_bias.domain_table`` and
``weighted_summary``); nothing is judged or computed here beyond laying the cells out.
Judgements use robvis' colours and symbols (low "+", unclear / some concerns "?", high "-")
with a grey, empty cell for "not assessed", so that an unread domain never looks judged.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Circle, Patch

from timecourse_meta.plots.figures import DPI, FONT_SIZE, style_context

__all__ = ["JUDGEMENT_STYLE", "summary_plot", "traffic_light_plot"]

#: (fill colour, symbol, legend label) per judgement; robvis' default "cochrane" colours.
JUDGEMENT_STYLE: dict[str, tuple[str, str, str]] = {
    "low": ("#02C100", "+", "Low"),
    "unclear": ("#E2DF07", "?", "Unclear"),
    "some_concerns": ("#E2DF07", "?", "Some concerns"),
    "high": ("#BF0000", "\u2212", "High"),
    "not_assessed": ("#D9D9D9", "", "Not assessed"),
}


def _label(domain: str) -> str:
    return domain.replace("_", " ").capitalize()


def _draw_cells(ax: Axes, table: pd.DataFrame, columns: Sequence[str]) -> None:
    """One circle per judged cell (colour and symbol of its judgement); empty cells blank."""
    for i in range(len(table)):
        for j, col in enumerate(columns):
            value = str(table[col].iloc[i]) if col in table else ""
            if not value:
                continue
            colour, symbol, _ = JUDGEMENT_STYLE.get(value, JUDGEMENT_STYLE["not_assessed"])
            ax.add_patch(
                Circle((j + 0.5, i + 0.5), 0.4, facecolor=colour, edgecolor="black", linewidth=0.4)
            )
            if symbol:
                ax.text(j + 0.5, i + 0.52, symbol, ha="center", va="center",
                        fontsize=FONT_SIZE, fontweight="bold")  # fmt: skip


def _key_and_legend(fig: Figure, table: pd.DataFrame, domains: Sequence[str], y: float) -> None:
    """Domain key (D1..Dn) at the left and the judgements that occur at the right, at `y`."""
    key = "\n".join(f"D{j + 1}: {_label(d)}" for j, d in enumerate(domains))
    fig.text(0.03, y, "Domains:\n" + key, ha="left", va="top", fontsize=FONT_SIZE - 1)
    columns = [c for c in [*domains, "overall"] if c in table]
    used = [v for v in JUDGEMENT_STYLE if (table[columns] == v).to_numpy().any()]
    handles = [
        Patch(facecolor=JUDGEMENT_STYLE[v][0], edgecolor="black", linewidth=0.4,
              label=f"{JUDGEMENT_STYLE[v][1]} {JUDGEMENT_STYLE[v][2]}".strip())
        for v in used
    ]  # fmt: skip
    fig.legend(handles=handles, loc="upper right", bbox_to_anchor=(0.98, y), title="Judgement",
               fontsize=FONT_SIZE - 1, title_fontsize=FONT_SIZE - 1)  # fmt: skip


def traffic_light_plot(
    table: pd.DataFrame, domains: Sequence[str], *, title: str = "Risk of bias"
) -> Figure:
    """Traffic-light plot: one row per study, one column per domain plus the overall column.

    `table` has ``study_id`` and one column per name in `domains` (and ``overall``) holding
    judgements; empty cells (a domain the study's tool does not have) are left blank. The
    domain names are keyed D1..Dn under the plot.
    """
    columns = [*domains, "overall"]
    studies = table["study_id"].astype(str).tolist()
    n_rows, n_cols = len(studies), len(columns)
    cell = 0.26  # inches per cell
    label_w = 0.08 * max((len(s) for s in studies), default=8) + 0.3
    key_lines = len(domains) + 2
    width = label_w + n_cols * cell + 0.4
    width = max(width, 5.2)
    height = 0.8 + n_rows * cell + 0.2 + key_lines * 0.15 + 0.2
    with style_context():
        fig = Figure(figsize=(width, height), dpi=DPI)
        FigureCanvasAgg(fig)
        left = label_w / width
        grid_w = n_cols * cell / width
        top = 1 - 0.8 / height
        grid_h = n_rows * cell / height
        ax = fig.add_axes((left, top - grid_h, grid_w, grid_h))
        ax.set_xlim(0, n_cols)
        ax.set_ylim(n_rows, 0)
        ax.set_aspect("equal")
        _draw_cells(ax, table, columns)
        ax.set_xticks([j + 0.5 for j in range(n_cols)])
        ax.set_xticklabels([f"D{j + 1}" for j in range(len(domains))] + ["Overall"], rotation=90)
        ax.xaxis.tick_top()
        ax.set_yticks([i + 0.5 for i in range(n_rows)])
        ax.set_yticklabels(studies)
        ax.tick_params(length=0)
        for spine in ax.spines.values():
            spine.set_visible(False)
        fig.text(
            0.5,
            1 - 0.12 / height,
            title,
            ha="center",
            va="top",
            fontsize=FONT_SIZE + 1,
            fontweight="bold",
        )
        _key_and_legend(fig, table, domains, (top - grid_h) - 0.15 / height)
    return fig


def summary_plot(
    summary: pd.DataFrame, domains: Sequence[str], *, title: str, xlabel: str
) -> Figure:
    """Weighted summary bar plot: per domain, the share of weight at each judgement.

    `summary` is ``weighted_summary``'s table (domain, judgement, weight); bars are stacked
    horizontally in the order low, unclear/some concerns, high, not assessed, summing to 100%.
    """
    rows = [*domains, "overall"]
    order = [j for j in JUDGEMENT_STYLE if j in set(summary["judgement"])]
    labels = [_label(d) if d != "overall" else "Overall risk of bias" for d in rows]
    label_w = 0.062 * max(len(x) for x in labels) + 0.3
    width = max(label_w + 4.0, 6.5)
    height = 0.7 + 0.28 * len(rows) + 0.75
    with style_context():
        fig = Figure(figsize=(width, height), dpi=DPI)
        FigureCanvasAgg(fig)
        bottom = 0.95 / height
        ax = fig.add_axes(
            (label_w / width, bottom, 1 - label_w / width - 0.04, 1 - bottom - 0.45 / height)
        )
        for i, domain in enumerate(rows):
            start = 0.0
            for judgement in order:
                hit = summary[(summary["domain"] == domain) & (summary["judgement"] == judgement)]
                share = float(hit["weight"].sum()) * 100
                if share <= 0:
                    continue
                ax.barh(
                    i,
                    share,
                    left=start,
                    height=0.7,
                    color=JUDGEMENT_STYLE[judgement][0],
                    edgecolor="black",
                    linewidth=0.4,
                )
                start += share
        ax.set_yticks(range(len(rows)))
        ax.set_yticklabels(labels)
        ax.set_ylim(len(rows) - 0.4, -0.6)
        ax.set_xlim(0, 100)
        ax.set_xticks([0, 25, 50, 75, 100])
        ax.set_xticklabels(["0%", "25%", "50%", "75%", "100%"])
        ax.set_xlabel(xlabel)
        ax.set_title(title, fontsize=FONT_SIZE + 1, fontweight="bold")
        handles = [
            Patch(
                facecolor=JUDGEMENT_STYLE[j][0],
                edgecolor="black",
                linewidth=0.4,
                label=JUDGEMENT_STYLE[j][2],
            )
            for j in order
        ]
        fig.legend(
            handles=handles,
            loc="lower center",
            ncol=len(handles),
            bbox_to_anchor=(0.5, 0.01),
            fontsize=FONT_SIZE - 0.5,
        )
    return fig
