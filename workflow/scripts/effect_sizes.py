"""Stage 3 (rule effect_sizes): effect sizes, exclusions, and the row accounting check."""

import sys

import pandas as pd

from timecourse_meta.errors import exit_on_error
from timecourse_meta.pipeline.effect_table import build_effect_table
from timecourse_meta.pipeline.tables import write_csv, write_parquet
from timecourse_meta.schema import SOURCE_ROWS

smk = snakemake  # noqa: F821 - injected by Snakemake's script directive

with exit_on_error(smk.log[0], "effect_sizes") as log:
    rows = pd.read_parquet(smk.input.rows)
    table = build_effect_table(
        rows,
        pd.read_parquet(smk.input.windowed),
        pd.read_parquet(smk.input.excluded),
        smk.params.timepoints,
        crossover_r=smk.params.crossover_r,
        lower_is_better_default=smk.params.lower_is_better_default,
        precomputed_measure=smk.params.precomputed_measure,
        score_measure=smk.params.score_measure,
    )
    write_parquet(table.effects, smk.output.effects)
    write_csv(table.effects.drop(columns=SOURCE_ROWS), smk.output.effects_csv)  # row_ids: readable
    write_csv(table.exclusions, smk.output.exclusions)
    write_csv(table.accounting, smk.output.accounting)
    total = table.accounting.iloc[-1]
    if table.effects.empty:  # the run goes on: empty tables and "not testable" verdicts
        warning = (
            f"WARNING: no effect sizes: all {total['rows_in']} input rows were excluded (reasons "
            "in exclusions.csv); pooled tables will be empty and claims not testable"
        )
        log(warning)
        print(f"effect_sizes: {warning}", file=sys.stderr)
    log(
        f"rows in {total['rows_in']} = used {total['rows_used']} + excluded "
        f"{total['rows_excluded']}; {len(table.effects)} effects"
    )
