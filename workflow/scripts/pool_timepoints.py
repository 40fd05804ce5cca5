"""Stage 4 (rule pool_timepoints): pooled table per window and subgroup, subgroup tests."""

import pandas as pd

from timecourse_meta.errors import exit_on_error
from timecourse_meta.pipeline.pooling import pool_by_timepoint_weighted, subgroup_tests
from timecourse_meta.pipeline.tables import write_csv, write_markdown, write_parquet
from timecourse_meta.schema import ALL_STUDIES, SCORE_MEASURES, measure_label, normalise_level

smk = snakemake  # noqa: F821 - injected by Snakemake's script directive
# estimator if `method` does not converge (metafor c("REML", "DL")); params when the rule
# passes it, else the config (schema default DL)
FALLBACK = getattr(smk.params, "method_fallback", smk.config.get("method_fallback", "DL"))

MD_COLUMNS = [
    "outcome",
    "measure",
    "timepoint",
    "k",
    "n_participants",
    "estimate",
    "ci_low",
    "ci_high",
    "pval",
    "tau2",
    "I2",
    "pi_low",
    "pi_high",
    "method",
    "warnings",
]

with exit_on_error(smk.log[0], "pool_timepoints") as log:
    effects = pd.read_parquet(smk.input.effects)
    p = smk.params
    subgroups = {
        col: None if levels is None else [normalise_level(v) for v in levels]
        for col, levels in (p.subgroups or {}).items()
    }
    fit = {"method": p.method, "test": p.test, "level": p.level, "method_fallback": FALLBACK}
    # the study weights come from the same fits as the pooled rows (figures draw, never refit)
    pooled, weights = pool_by_timepoint_weighted(effects, p.timepoints, subgroups=subgroups, **fit)
    tests = subgroup_tests(effects, pooled, p.timepoints, subgroups, **fit)
    write_parquet(pooled, smk.output.pooled)
    write_parquet(weights, smk.output.weights)
    write_csv(pooled, smk.output.csv)
    overall = pooled.loc[pooled["subgroup"] == ALL_STUDIES, MD_COLUMNS]
    # the measures' names follow the effects (SMD = Hedges' g, MD = mean difference)
    named = [f"{m} = {measure_label(m)}" for m in SCORE_MEASURES if (effects["measure"] == m).any()]
    scales = "; ".join([*named, "OR, RR on the log scale"])
    write_markdown(
        overall,
        smk.output.md,
        title="Pooled effects by time window",
        notes=[
            f"Random-effects models ({p.method}, test {p.test}, {100 * p.level:g}% CI) per "
            f"window; positive = benefit of {p.intervention} ({scales}). "
            "All columns and the subgroup rows: pooled_by_timepoint.csv.",
        ],
    )
    write_csv(tests, smk.output.subgroups)
    log(f"{len(pooled)} pooled rows, {len(tests)} subgroup tests")
