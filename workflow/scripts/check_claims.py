"""Stage 6 (rule check_claims): verdict for each configured claim."""

import pandas as pd
import yaml

from timecourse_meta.claims import check_claims
from timecourse_meta.errors import ConfigError, exit_on_error
from timecourse_meta.tables import write_csv, write_markdown

smk = snakemake  # noqa: F821 - injected by Snakemake's script directive

with exit_on_error(smk.log[0], "check_claims") as log:
    try:
        with open(smk.input.claims, encoding="utf-8") as handle:
            spec = yaml.safe_load(handle) or {}
    except yaml.YAMLError as err:
        raise ConfigError(
            f"{smk.input.claims} is not valid YAML ({err})", key="claims_file"
        ) from None
    claims = spec.get("claims") if isinstance(spec, dict) else None
    if not isinstance(claims, list):
        raise ConfigError(f"{smk.input.claims} needs a top-level 'claims' list", key="claims_file")
    pooled = pd.read_parquet(smk.input.pooled)
    props = pd.read_parquet(smk.input.proportions)
    table = check_claims(
        claims,
        pooled,
        smk.params.timepoints,
        proportions=props,
        outcome=smk.params.outcome,
        measure=smk.params.measure,
    )
    write_csv(table, smk.output.csv)
    write_markdown(
        table.drop(columns=["source"]),
        smk.output.md,
        title="Claims checked",
        notes=[
            "Verdicts rest on pooled random-effects models; 'not testable' means "
            "fewer than 2 studies inform a condition (k is the smallest k used)."
        ],
    )
    for r in table.itertuples(index=False):
        log(f"{r.id}: {r.verdict} (k = {r.k})")
