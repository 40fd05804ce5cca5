"""Stage 2 (rule select_windows): eligibility filters, then one reported time per window."""

import sys

import pandas as pd

from timecourse_meta.errors import exit_on_error
from timecourse_meta.pipeline.tables import write_csv, write_parquet
from timecourse_meta.pipeline.windows import (
    check_effect_columns,
    outside_counts,
    outside_warning,
    parse_windows,
    select_windows,
)

smk = snakemake  # noqa: F821 - injected by Snakemake's script directive

with exit_on_error(smk.log[0], "select_windows") as log:
    rows = pd.read_parquet(smk.input.rows)
    p = smk.params
    check_effect_columns(rows, p.subgroups, (p.sensitivity or {}).get("subsets"), p.exclude_rows)
    windows = parse_windows(p.windows)
    result = select_windows(
        rows,
        windows,
        p.rule,
        p.include,
        p.exclude_studies,
        p.exclude_rows,
        first_period_only=p.first_period_only,
        scale_priority=p.scale_priority,
    )
    for warning in result.warnings:  # e.g. several scales at one time and no scale_priority
        log(warning)
        print(f"select_windows: {warning}", file=sys.stderr)
    write_parquet(result.rows, smk.output.rows)
    write_parquet(result.excluded, smk.output.excluded)
    write_csv(result.choices, smk.output.choices)
    stages = result.excluded["stage"]
    log(
        f"{len(rows)} rows: {int((stages == 'eligibility').sum())} excluded by eligibility "
        f"filters, {int((stages == 'windows').sum())} baseline, second period, outside windows or "
        "not the chosen time or scale, "
        f"{len(result.rows)} kept"
    )
    outside, eligible = outside_counts(len(rows), result.excluded)
    warning = outside_warning(outside, eligible, windows, p.time_unit)
    if warning:
        log(f"WARNING: {warning}")
        print(f"select_windows: WARNING: {warning}", file=sys.stderr)
