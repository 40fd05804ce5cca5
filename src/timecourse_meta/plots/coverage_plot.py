"""Figure of a coverage study (``simulation.coverage.run_coverage``'s table): CI and PI coverage
against k, one panel per tau^2. It draws the table it is given; it runs no simulation."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from timecourse_meta.plots.figures import PALETTE, style_context

__all__ = ["plot_coverage"]


def plot_coverage(table: pd.DataFrame, level: float = 0.95) -> Figure:
    """Coverage against k: rows CI / PI, one column per tau^2, colour = method, line = test.

    The dotted line is the nominal level; the grey band is nominal +/- 2 Monte Carlo SEs of a
    proportion at the nominal level with the table's replicate count. Methods are shifted
    slightly along k (x 0.93, 1, 1.07) because their curves nearly coincide.
    """
    colours = {"DL": PALETTE["blue"], "REML": PALETTE["orange"], "PM": PALETTE["green"]}
    markers = {"DL": "o", "REML": "s", "PM": "^"}
    dodge = {"DL": 0.93, "REML": 1.0, "PM": 1.07}  # methods nearly coincide: shift them apart
    styles = {"z": "-", "knha": "--", "adhoc": ":"}
    labels = {"z": "Wald z", "knha": "Knapp-Hartung", "adhoc": "KH ad hoc"}
    taus = sorted(table["tau2"].unique())
    intervals = [i for i in ("CI", "PI") if i in set(table["interval"])]
    n_rep = int(table["n_rep"].max())
    band = 2 * np.sqrt(level * (1 - level) / n_rep)
    with style_context():
        fig, axes = plt.subplots(
            len(intervals), len(taus), figsize=(7.2, 1.9 * len(intervals) + 0.6),
            sharex=True, sharey="row", squeeze=False,
        )  # fmt: skip
        for r, interval in enumerate(intervals):
            for c, tau2 in enumerate(taus):
                ax = axes[r, c]
                ax.axhspan(level - band, level + band, color="0.9", lw=0)
                ax.axhline(level, color="0.3", lw=0.8, ls=":")
                cell = table[(table["interval"] == interval) & (table["tau2"] == tau2)]
                for (method, test), g in cell.groupby(["method", "test"], sort=False):
                    g = g.sort_values("k")
                    ax.plot(
                        g["k"] * dodge.get(method, 1.0), g["coverage"],
                        color=colours.get(method, "k"), ls=styles.get(test, "-"),
                        marker=markers.get(method, "o"), ms=2.5, lw=1.0,
                        label=f"{method}, {labels.get(test, test)}",
                    )  # fmt: skip
                ax.set_xscale("log")
                ks = sorted(table["k"].unique())
                ax.set_xticks(ks, [str(k) for k in ks])
                ax.minorticks_off()
                if r == 0:
                    ax.set_title(f"tau\N{SUPERSCRIPT TWO} = {tau2:g}")
                if r == len(intervals) - 1:
                    ax.set_xlabel("number of studies k")
                if c == 0:
                    what = "CI of the mean" if interval == "CI" else "prediction interval"
                    ax.set_ylabel(f"coverage, {what}")
        lo = float(np.nanmin(table["coverage"]))
        for ax in axes.ravel():
            ax.set_ylim(min(0.5, np.floor(lo * 20) / 20), 1.0)
        handles, names = axes[0, 0].get_legend_handles_labels()
        fig.legend(handles, names, loc="lower center", ncol=3, bbox_to_anchor=(0.5, 0.0))
        fig.tight_layout(rect=(0, 0.1, 1, 1))
    return fig
