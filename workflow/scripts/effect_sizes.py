"""Stage 3 (rule effect_sizes): effect sizes, exclusions, and the row accounting check."""

import pandas as pd

from timecourse_meta.errors import exit_on_error
from timecourse_meta.pipeline.effect_table import build_effect_table
from timecourse_meta.pipeline.tables import write_csv, write_parquet

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
    )
    write_parquet(table.effects, smk.output.effects)
    write_csv(table.effects, smk.output.effects_csv)
    write_csv(table.exclusions, smk.output.exclusions)
    write_csv(table.accounting, smk.output.accounting)
    total = table.accounting.iloc[-1]
    log(
        f"rows in {total['rows_in']} = used {total['rows_used']} + excluded "
        f"{total['rows_excluded']}; {len(table.effects)} effects"
    )
