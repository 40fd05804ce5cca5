"""Stage 6 (rule check_claims): verdict for each configured claim."""

import pandas as pd

from timecourse_meta.errors import exit_on_error
from timecourse_meta.pipeline.claims import check_claims
from timecourse_meta.pipeline.claims_config import load_claims
from timecourse_meta.pipeline.config import load_yaml
from timecourse_meta.pipeline.tables import write_csv, write_markdown
from timecourse_meta.pipeline.windows import parse_windows

smk = snakemake  # noqa: F821 - injected by Snakemake's script directive

with exit_on_error(smk.log[0], "check_claims") as log:
    subgroups = list(smk.params.subgroups or {})
    claims_file = smk.input.get("claims")  # config claims_file: null = no claims
    claims = (
        load_claims(
            claims_file,
            load_yaml(smk.params.schema),
            smk.params.timepoints,
            subgroups,
            strict_windows=False,  # shipped claims at windows not configured: "not testable"
        )
        if claims_file
        else []
    )
    if not claims_file:
        log("no claims configured (config claims_file: null): the claims table is empty")
    pooled = pd.read_parquet(smk.input.pooled)
    props = pd.read_parquet(smk.input.proportions)
    multivariate = pd.read_parquet(smk.input.multivariate)
    time_response = pd.read_csv(smk.input.time_response)
    window_hours = parse_windows(smk.params.windows).set_index("label")["nominal"].to_dict()
    table = check_claims(
        claims,
        pooled,
        smk.params.timepoints,
        proportions=props,
        outcome=smk.params.outcome,
        measure=smk.params.measure,
        multivariate=multivariate,
        time_response=time_response,
        window_hours=window_hours,
        subgroups=subgroups,
        strict_windows=False,
        time_unit=smk.params.time_unit,
    )
    for r in table.itertuples(index=False):
        if "is not a configured window" in r.details:
            log(f"WARNING: claim {r.id}: {r.details}")
    write_csv(table, smk.output.csv)
    write_markdown(
        table.drop(columns=["source"]),
        smk.output.md,
        title="Claims checked",
        notes=[
            "Verdicts rest on pooled random-effects models; 'not testable' means "
            "fewer than 2 studies inform a condition (k is the smallest k used).",
            "verdict_multivariate: the same window checks on the multivariate time-course "
            "model (all windows fitted jointly, timecourse_model.csv); 'not applicable' for "
            "subgroup and proportion checks, which that model does not cover.",
            "verdict_time_response: the same window checks on the time-response curve "
            "(every reported time, effect a smooth function of log time; "
            "time_response_summary.csv) at each window's nominal time.",
            "rival_decision: for claims that are rival answers to one question (rivals: key "
            "in the claims file), which one each verdict set supports.",
        ],
    )
    for r in table.itertuples(index=False):
        log(
            f"{r.id}: {r.verdict} (k = {r.k}); multivariate: {r.verdict_multivariate} "
            f"(k = {r.k_mv}); time-response: {r.verdict_time_response}"
        )
    if "rival_decision" in table:
        for text in dict.fromkeys(t for t in table["rival_decision"] if t):
            log(text)
