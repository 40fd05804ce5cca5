"""Rule pool_proportions: pooled responder proportions in the treatment arms per window."""

import pandas as pd

from timecourse_meta.errors import exit_on_error
from timecourse_meta.pipeline.pooling import pool_proportions
from timecourse_meta.pipeline.tables import write_csv, write_parquet
from timecourse_meta.schema import normalise_level

smk = snakemake  # noqa: F821 - injected by Snakemake's script directive
# estimator if `method` does not converge (metafor c("REML", "DL")); params when the rule
# passes it, else the config (schema default DL)
FALLBACK = getattr(smk.params, "method_fallback", smk.config.get("method_fallback", "DL"))

with exit_on_error(smk.log[0], "pool_proportions") as log:
    props = pd.read_parquet(smk.input.proportions)
    p = smk.params
    subgroups = {
        col: None if levels is None else [normalise_level(v) for v in levels]
        for col, levels in (p.subgroups or {}).items()
        if col in props
    }
    pooled = pool_proportions(
        props,
        p.timepoints,
        method=p.method,
        test=p.test,
        level=p.level,
        subgroups=subgroups,
        method_fallback=FALLBACK,
    )
    write_parquet(pooled, smk.output.pooled)
    write_csv(pooled, smk.output.csv)
    log(f"{len(pooled)} pooled proportion rows")
