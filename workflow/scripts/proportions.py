"""Rule proportions: responder/remitter proportions in the treatment arms (logit scale)."""

import pandas as pd

from timecourse_meta.effects.comparisons import compute_proportions
from timecourse_meta.errors import exit_on_error
from timecourse_meta.pipeline.tables import sort_effects, write_csv, write_parquet

smk = snakemake  # noqa: F821 - injected by Snakemake's script directive

with exit_on_error(smk.log[0], "proportions") as log:
    windowed = pd.read_parquet(smk.input.windowed)
    sheet = windowed[windowed["sheet_format"] == "extraction"]
    props, excluded = compute_proportions(sheet)
    props = sort_effects(props, smk.params.timepoints)
    write_parquet(props, smk.output.proportions)
    write_csv(props, smk.output.table)
    log(f"{len(props)} arm proportions; {len(excluded)} candidate rows not usable:")
    for r in excluded.itertuples(index=False):
        log(f"  {r.source_file}:{r.source_row} {r.study_id} {r.timepoint}: {r.reason}")
