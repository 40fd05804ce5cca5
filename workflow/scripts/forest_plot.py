"""Stage 5 (rule forest_plot): forest plot of one window (PNG and PDF)."""

import pandas as pd

from timecourse_meta.errors import exit_on_error
from timecourse_meta.pipeline.pooling import forest_data
from timecourse_meta.plots.figures import save_figure
from timecourse_meta.plots.forest import forest_plot

smk = snakemake  # noqa: F821 - injected by Snakemake's script directive

OUTCOME_TITLES = {"score": "Depression score", "response": "Response", "remission": "Remission"}

with exit_on_error(smk.log[0], "forest_plot") as log:
    p = smk.params
    tp = smk.wildcards.timepoint
    effects = pd.read_parquet(smk.input.effects)
    studies, pooled = forest_data(
        effects,
        tp,
        outcome=p.outcome,
        measure=p.measure,
        method=p.method,
        method_fallback=p.method_fallback,
        test=p.test,
        level=p.level,
    )
    label = "Hedges' g" if p.measure == "SMD" else p.measure
    fig = forest_plot(
        studies,
        pooled,
        title=f"{OUTCOME_TITLES.get(p.outcome, p.outcome)}: {label}, {tp} after dose",
        measure_label=label,
        favours=("Favours control", "Favours treatment"),
        group_labels=("Treatment", "Control"),
    )
    save_figure(fig, smk.output.png)
    save_figure(fig, smk.output.pdf)
    log(f"window {tp}: {len(studies)} studies")
