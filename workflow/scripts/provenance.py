"""Stage 7 (rule provenance): source address, locator and quote behind every effect."""

import pandas as pd

from timecourse_meta.errors import exit_on_error
from timecourse_meta.pipeline.ingest import sheet_warnings
from timecourse_meta.pipeline.tables import provenance_table, write_csv

smk = snakemake  # noqa: F821 - injected by Snakemake's script directive

with exit_on_error(smk.log[0], "provenance") as log:
    rows = pd.read_parquet(smk.input.rows)
    effects = pd.read_parquet(smk.input.effects)
    table = provenance_table(effects, rows)
    write_csv(table, smk.output.csv)
    log(f"{len(table)} effect x source-row lines for {len(effects)} effects")
    for warning in sheet_warnings(rows):  # rows without a source show 'unsourced' in the table
        log(warning)
