"""Stage 7 (rule report_summary): the report's first page -- pooled numbers, claim verdicts
and the time-course figure as reStructuredText (included by workflow/report/workflow.rst)."""

from pathlib import Path

import pandas as pd

from timecourse_meta.errors import exit_on_error
from timecourse_meta.pipeline.report_summary import summary_rst
from timecourse_meta.pipeline.tables import MISSING
from timecourse_meta.pipeline.windows import outside_counts, outside_warning, parse_windows

smk = snakemake  # noqa: F821 - injected by Snakemake's script directive

with exit_on_error(smk.log[0], "report_summary") as log:
    p = smk.params
    read = {"keep_default_na": False, "na_values": [MISSING]}
    pooled = pd.read_csv(smk.input.pooled, **read)
    claims = pd.read_csv(smk.input.claims, dtype=str, keep_default_na=False)
    excluded = pd.read_csv(smk.input.exclusions, dtype=str, keep_default_na=False)
    accounting = pd.read_csv(smk.input.accounting, dtype=str, keep_default_na=False)
    rows_in = int(accounting.loc[accounting["source_file"] == "TOTAL", "rows_in"].iloc[0])
    outside, eligible = outside_counts(rows_in, excluded)
    windows = parse_windows(p.windows)
    warning = outside_warning(outside, eligible, windows, p.time_unit)
    text = summary_rst(
        pooled,
        claims,
        list(p.timepoints),
        outcome=p.outcome,
        measure=p.measure,
        level=p.level,
        labels=p.labels,
        figure_png=Path(smk.input.figure).read_bytes(),
        warning=warning,
    )
    Path(smk.output.rst).write_text(text, encoding="utf-8", newline="\n")
    log(f"{len(pooled)} pooled rows, {len(claims)} claims; figure {smk.input.figure} embedded")
