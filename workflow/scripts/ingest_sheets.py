"""Stage 1 (rule ingest_sheets): read and validate every sheet named in config `studies`."""

import sys

from timecourse_meta.errors import exit_on_error
from timecourse_meta.pipeline.ingest import read_sheets, sheet_warnings, unknown_columns
from timecourse_meta.pipeline.tables import write_parquet

smk = snakemake  # noqa: F821 - injected by Snakemake's script directive

with exit_on_error(smk.log[0], "ingest_sheets") as log:
    rows = read_sheets(
        list(smk.input.sheets),
        csv_separator=smk.params.csv_separator,
        decimal=smk.params.decimal,
        time_unit=smk.params.time_unit,
        control_arms=list(smk.params.control_arms or []),
        stat_kind_default=smk.params.stat_kind_default,
    )
    for (name, fmt), n in rows.groupby(["source_file", "sheet_layout"]).size().items():
        log(f"{name}: {n} rows ({fmt} format)")
    for warning in sheet_warnings(rows):  # loud: on stderr and in the log
        log(warning)
        print(f"ingest_sheets: {warning}", file=sys.stderr)
    extra = unknown_columns(rows)
    if extra:
        log(f"columns kept but not used by the analysis: {', '.join(extra)}")
    write_parquet(rows, smk.output.rows)
    log(f"total: {len(rows)} rows from {rows['study_id'].nunique()} studies")
