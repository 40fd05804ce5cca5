"""Stage 6 (rule funnel_plot): contour-enhanced funnel plot of one window (PNG and PDF)."""

import numpy as np
import pandas as pd

from timecourse_meta.errors import exit_on_error
from timecourse_meta.pipeline.tables import MISSING
from timecourse_meta.plots.figures import placeholder_figure, save_figure
from timecourse_meta.plots.funnel import funnel_plot
from timecourse_meta.schema import measure_label

smk = snakemake  # noqa: F821 - injected by Snakemake's script directive


with exit_on_error(smk.log[0], "funnel_plot") as log:
    p = smk.params
    tp = smk.wildcards.timepoint
    effects = pd.read_parquet(smk.input.effects)
    pooled = pd.read_parquet(smk.input.pooled)
    small = pd.read_csv(smk.input.small_study, keep_default_na=False, na_values=[MISSING])
    sel = effects[
        (effects["outcome"] == p.outcome)
        & (effects["measure"] == p.measure)
        & (effects["timepoint"] == tp)
    ]
    row = pooled[
        (pooled["outcome"] == p.outcome)
        & (pooled["measure"] == p.measure)
        & (pooled["timepoint"] == tp)
        & (pooled["subgroup"] == "all")
    ]
    est = float(row["estimate"].iloc[0]) if len(row) and int(row["k"].iloc[0]) > 1 else None
    test = small[small["timepoint"] == tp]
    result = str(test["result"].iloc[0]) if len(test) else "not run"
    words = dict(p.labels or {})  # config outcome_label, measure_label, intervention
    label = words.get("measure_label") or measure_label(p.measure)
    outcome = str(words.get("outcome_label") or p.outcome)
    intervention = str(words.get("intervention") or "intervention")
    if sel.empty:  # e.g. every study excluded: the run goes on, the figure says why
        fig = placeholder_figure(f"{tp}: no {p.outcome} ({p.measure}) effects: nothing to draw")
        save_figure(fig, smk.output.png, formats=["png"])
        save_figure(fig, smk.output.pdf, formats=["pdf"])
        log(f"window {tp}: no effects; placeholder figure written")
    else:
        fig = funnel_plot(
            sel["yi"].to_numpy(float),
            np.sqrt(sel["vi"].to_numpy(float)),
            title=f"{outcome[:1].upper()}{outcome[1:]}, {tp}: contour-enhanced funnel plot",
            xlabel=f"{label} (positive = benefit of {intervention})",
            pooled_estimate=est,
            note=f"k = {len(sel)}. Egger test: {result}",
        )
        save_figure(fig, smk.output.png, formats=["png"])
        save_figure(fig, smk.output.pdf, formats=["pdf"])
        log(f"window {tp}: {len(sel)} effects; {result}")
