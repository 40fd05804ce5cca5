"""Stage 6 (rule summary_of_findings): GRADE summary of findings per outcome x window."""

import pandas as pd

from timecourse_meta.errors import exit_on_error
from timecourse_meta.pipeline.grade import summary_of_findings
from timecourse_meta.pipeline.grade_markdown import sof_markdown
from timecourse_meta.pipeline.tables import MISSING, write_csv

smk = snakemake  # noqa: F821 - injected by Snakemake's script directive

with exit_on_error(smk.log[0], "summary_of_findings") as log:
    p = smk.params
    pooled = pd.read_parquet(smk.input.pooled)
    effects = pd.read_parquet(smk.input.effects)
    small = pd.read_csv(smk.input.small_study, keep_default_na=False, na_values=[MISSING])
    rob_input = list(smk.input.risk_of_bias)
    rob = pd.read_parquet(rob_input[0]) if rob_input else None
    rows = pd.read_parquet(smk.input.windowed)
    control = rows[(rows["arm_role"] == "control") & rows["events"].notna() & rows["n"].notna()]
    cfg = dict(p.grade)
    table = summary_of_findings(
        pooled,
        effects,
        rob=rob,
        small=small,
        cfg=cfg,
        timepoints=list(p.timepoints),
        control=control,
    )
    write_csv(table, smk.output.csv)
    text = sof_markdown(
        table,
        title=str(cfg.get("title", "Summary of findings")),
        intervention=str(p.intervention),
        outcome_labels={str(p.primary_outcome): p.outcome_label} if p.outcome_label else None,
    )
    with open(smk.output.md, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(text)
    counts = table["certainty"].value_counts().to_dict()
    log(f"{len(table)} outcome x window rows; certainty {counts}")
