"""Stage 6 (rule funnel_plots): a contour-enhanced funnel plot of every window (PNG and PDF).

One job for all windows pays the Python start-up once.
"""

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from timecourse_meta.errors import exit_on_error
from timecourse_meta.pipeline.tables import MISSING
from timecourse_meta.plots.figures import placeholder_figure, save_figure
from timecourse_meta.plots.funnel import VECTOR_POINTS_MAX, funnel_plot
from timecourse_meta.schema import measure_label, overall_row, rows_for

smk = snakemake  # noqa: F821 - injected by Snakemake's script directive


def draw_window(
    tp: str, effects: pd.DataFrame, pooled: pd.DataFrame, small: pd.DataFrame
) -> tuple[Figure, str]:
    """(the funnel plot of window `tp`, its log line); a placeholder when it has no effects."""
    p = smk.params
    sel = rows_for(effects, p.outcome, p.measure, tp)
    if sel.empty:  # e.g. every study excluded: the run goes on, the figure says why
        fig = placeholder_figure(f"{tp}: no {p.outcome} ({p.measure}) effects: nothing to draw")
        return fig, f"window {tp}: no effects; placeholder figure written"
    row = overall_row(pooled, p.outcome, p.measure, tp)
    est = float(row["estimate"]) if row is not None and int(row["k"]) > 1 else None
    test = small[small["timepoint"] == tp]
    result = str(test["result"].iloc[0]) if len(test) else "not run"
    words = dict(p.labels or {})  # config outcome_label, measure_label, intervention
    label = measure_label(p.measure, words)
    outcome = str(words.get("outcome_label") or p.outcome)
    intervention = str(words.get("intervention") or "intervention")
    fig = funnel_plot(
        sel["yi"].to_numpy(float),
        np.sqrt(sel["vi"].to_numpy(float)),
        title=f"{outcome[:1].upper()}{outcome[1:]}, {tp}: contour-enhanced funnel plot",
        xlabel=f"{label} (positive = benefit of {intervention})",
        pooled_estimate=est,
        note=f"k = {len(sel)}. Egger test: {result}",
    )
    line = f"window {tp}: {len(sel)} effects; {result}"
    if len(sel) > VECTOR_POINTS_MAX:
        line += (
            f"; more than {VECTOR_POINTS_MAX} points: drawn small and translucent, and held "
            "as one image in the PDF"
        )
    return fig, line


with exit_on_error(smk.log[0], "funnel_plots") as log:
    p = smk.params
    effects = pd.read_parquet(smk.input.effects)
    pooled = pd.read_parquet(smk.input.pooled)
    small = pd.read_csv(smk.input.small_study, keep_default_na=False, na_values=[MISSING])
    for tp, png, pdf in zip(p.timepoints, smk.output.png, smk.output.pdf, strict=True):
        fig, line = draw_window(tp, effects, pooled, small)
        save_figure(fig, png)
        save_figure(fig, pdf)
        log(line)
