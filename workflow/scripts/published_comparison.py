"""Stage 4 (rule published_comparison): published pooled results beside ours."""

import pandas as pd

from timecourse_meta.errors import SheetError, exit_on_error
from timecourse_meta.pipeline.published import published_alongside
from timecourse_meta.pipeline.tables import write_csv, write_markdown, write_parquet

smk = snakemake  # noqa: F821 - injected by Snakemake's script directive

REQUIRED = ["time_window", "review", "measure", "estimate", "ci_low", "ci_high", "source_address"]

with exit_on_error(smk.log[0], "published_comparison") as log:
    source = smk.input.get("published")  # config published: null = none listed
    if source:
        published = pd.read_csv(source, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    else:
        published = pd.DataFrame(columns=REQUIRED, dtype=str)
        log("no published pooled results configured (config published: null)")
    missing = [c for c in REQUIRED if c not in published]
    if missing:
        raise SheetError(source, f"missing column(s): {', '.join(missing)}", line=1)
    for col in ("estimate", "ci_low", "ci_high"):
        published[col] = pd.to_numeric(published[col].replace("", None))
    pooled = pd.read_parquet(smk.input.pooled)
    table = published_alongside(
        published, pooled, outcome=smk.params.outcome, measure=smk.params.measure
    )
    write_parquet(table, smk.output.published)
    write_csv(table, smk.output.csv)
    cols = [
        "time_window",
        "review",
        "comparison",
        "outcome",
        "measure",
        "estimate",
        "ci_low",
        "ci_high",
        "comparable",
        "g_benefit",
        "g_benefit_ci_low",
        "g_benefit_ci_high",
        "this_k",
        "this_estimate",
        "this_ci_low",
        "this_ci_high",
    ]
    write_markdown(
        table[[c for c in cols if c in table]],
        smk.output.md,
        title="Published pooled results beside this analysis",
        notes=[
            "g_benefit: published SMD/g converted to positive = benefit; other measures "
            "(OR, MD) are listed only. this_*: this analysis, all studies, same window."
        ],
    )
    log(f"{len(table)} published rows, {int((table['comparable'] == 'yes').sum())} comparable")
