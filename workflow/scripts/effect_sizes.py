"""Stage 3 (rule effect_sizes): effect sizes, exclusions, and the row accounting check."""

import sys

import pandas as pd

from timecourse_meta.effects.comparisons import compute_effects
from timecourse_meta.errors import exit_on_error
from timecourse_meta.pipeline.ingest import precomputed_effects
from timecourse_meta.pipeline.tables import row_accounting, sort_effects, write_csv, write_parquet
from timecourse_meta.schema import SOURCE_ROWS

smk = snakemake  # noqa: F821 - injected by Snakemake's script directive

with exit_on_error(smk.log[0], "effect_sizes") as log:
    rows = pd.read_parquet(smk.input.rows)
    windowed = pd.read_parquet(smk.input.windowed)
    earlier = pd.read_parquet(smk.input.excluded)
    sheet = windowed[windowed["sheet_format"] == "extraction"]
    effects, excluded = compute_effects(
        sheet,
        crossover_r=smk.params.crossover_r,
        lower_is_better_default=smk.params.lower_is_better_default,
    )
    pre = precomputed_effects(windowed, measure_default=smk.params.precomputed_measure)
    effects = sort_effects(pd.concat([effects, pre], ignore_index=True), smk.params.timepoints)
    exclusions = pd.concat([earlier, excluded.assign(stage="effects")], ignore_index=True)
    exclusions = exclusions.sort_values(["source_file", "source_row"], kind="mergesort")
    accounting = row_accounting(rows, effects, exclusions)
    write_parquet(effects, smk.output.effects)
    write_csv(effects.drop(columns=SOURCE_ROWS), smk.output.effects_csv)  # row_ids: readable
    write_csv(exclusions.reset_index(drop=True), smk.output.exclusions)
    write_csv(accounting, smk.output.accounting)
    total = accounting.iloc[-1]
    if effects.empty:  # the run goes on: empty tables and "not testable" verdicts
        warning = (
            f"WARNING: no effect sizes: all {total['rows_in']} input rows were excluded (reasons "
            "in exclusions.csv); pooled tables will be empty and claims not testable"
        )
        log(warning)
        print(f"effect_sizes: {warning}", file=sys.stderr)
    log(
        f"rows in {total['rows_in']} = used {total['rows_used']} + excluded "
        f"{total['rows_excluded']}; {len(effects)} effects"
    )
