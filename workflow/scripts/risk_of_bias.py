"""Stage 6 (rule risk_of_bias): risk-of-bias table, overall judgements, robvis-style figures."""

import pandas as pd

from timecourse_meta.errors import exit_on_error
from timecourse_meta.pipeline.risk_of_bias import (
    DOMAINS,
    TOOLS,
    domain_table,
    overall_judgements,
    read_risk_of_bias,
    study_weights,
    weighted_summary,
)
from timecourse_meta.pipeline.tables import write_csv, write_parquet
from timecourse_meta.plots.figures import placeholder_figure, save_figure
from timecourse_meta.plots.robvis import summary_plot, traffic_light_plot
from timecourse_meta.schema import overall_row, rows_for

smk = snakemake  # noqa: F821 - injected by Snakemake's script directive

with exit_on_error(smk.log[0], "risk_of_bias") as log:
    p = smk.params
    rows = pd.read_parquet(smk.input.rows)
    effects = pd.read_parquet(smk.input.effects)
    pooled = pd.read_parquet(smk.input.pooled)
    study_ids = sorted(rows["study_id"].astype(str).unique())
    rob = read_risk_of_bias(smk.input.sheet, study_ids=study_ids)
    if rob.attrs.get("not_in_sheets"):
        log(f"not in the extraction sheets, set aside: {', '.join(rob.attrs['not_in_sheets'])}")
    overall = overall_judgements(
        rob, key_domains=p.key_domains, some_concerns_high=p.some_concerns_high
    )
    table = domain_table(rob, overall, study_ids=study_ids)
    write_parquet(table, smk.output.parquet)
    write_csv(table, smk.output.csv)
    domains = [d for t in TOOLS if t in set(table["tool"]) for d in DOMAINS[t]]
    sel = rows_for(effects, p.outcome, p.measure, p.window)
    row = overall_row(pooled, p.outcome, p.measure, p.window)
    fig = traffic_light_plot(table, domains, title="Risk of bias per study (Cochrane RoB)")
    save_figure(fig, smk.output.traffic_png)
    save_figure(fig, smk.output.traffic_pdf)
    if sel.empty or row is None:  # e.g. every study excluded: no weights to summarise
        log(f"WARNING: no pooled {p.outcome} ({p.measure}) in {p.window}: summary left empty")
        write_csv(pd.DataFrame(columns=["domain", "judgement", "weight", "studies"]),
                  smk.output.summary)  # fmt: skip
        fig = placeholder_figure(f"{p.window}: no pooled {p.outcome} ({p.measure}) to weight by")
    else:
        weights = study_weights(sel, row.to_dict())
        summary = weighted_summary(table, weights, outcome=p.outcome)
        write_csv(summary, smk.output.summary)
        fig = summary_plot(
            summary,
            domains,
            title=f"Risk of bias weighted by the {p.window} random-effects weights",
            xlabel=f"Share of the {p.window} pooled weight ({p.outcome}, {p.measure})",
        )
    save_figure(fig, smk.output.summary_png)
    save_figure(fig, smk.output.summary_pdf)
    counts = overall["overall"].value_counts().to_dict()
    log(f"{len(table)} studies; overall judgements {counts}")
