"""Stage 6 (rule small_study_effects): Egger's regression test per window (k >= 10 only)."""

import pandas as pd

from timecourse_meta.errors import exit_on_error
from timecourse_meta.pipeline.small_study_effects import small_study_table
from timecourse_meta.pipeline.tables import write_csv

smk = snakemake  # noqa: F821 - injected by Snakemake's script directive

with exit_on_error(smk.log[0], "small_study_effects") as log:
    p = smk.params
    effects = pd.read_parquet(smk.input.effects)
    table = small_study_table(
        effects,
        p.timepoints,
        outcome=p.outcome,
        measure=p.measure,
        method=p.method,
        test=p.test,
        level=p.level,
        method_fallback=p.method_fallback,
        min_k=p.min_k,
    )
    write_csv(table, smk.output.csv)
    log(f"{len(table)} windows; tested: {int(table['pval'].notna().sum())}")
