"""Stage 2 (rule select_windows): eligibility filters, then one reported time per window."""

import pandas as pd

from timecourse_meta.errors import exit_on_error
from timecourse_meta.tables import write_csv, write_parquet
from timecourse_meta.windows import apply_filters, assign_windows, parse_windows

smk = snakemake  # noqa: F821 - injected by Snakemake's script directive

with exit_on_error(smk.log[0], "select_windows") as log:
    rows = pd.read_parquet(smk.input.rows)
    kept, filtered = apply_filters(rows, smk.params.include, smk.params.exclude_studies)
    result = assign_windows(kept, parse_windows(smk.params.windows), smk.params.rule)
    excluded = pd.concat(
        [filtered.assign(stage="eligibility"), result.excluded.assign(stage="windows")],
        ignore_index=True,
    ).sort_values(["source_file", "source_row"], kind="mergesort")
    write_parquet(result.rows, smk.output.rows)
    write_parquet(excluded, smk.output.excluded)
    write_csv(result.choices, smk.output.choices)
    log(
        f"{len(rows)} rows: {len(filtered)} excluded by eligibility filters, "
        f"{len(result.excluded)} outside windows or not the chosen time, {len(result.rows)} kept"
    )
