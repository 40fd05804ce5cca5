# Stage 6: check the configured claims against the pooled results.


rule check_claims:
    input:
        claims=CLAIMS_FILE,
        schema=workflow.source_path("../../config/schema/claims.schema.yaml"),
        pooled=f"{PROC}/pooled.parquet",
        proportions=f"{PROC}/pooled_proportions.parquet",
        multivariate=f"{PROC}/timecourse_model.parquet",
    output:
        csv=report(
            f"{TABLES}/claims.csv",
            caption="../report/claims.rst",
            category="1. Pooled results",
        ),
        md=f"{TABLES}/claims.md",
    params:
        timepoints=TIMEPOINTS,
        outcome=config["primary_outcome"],
        measure=config["primary_measure"],
        subgroups=config.get("subgroups") or {},
    conda:
        "../envs/timecourse_meta.yaml"
    log:
        f"{LOGS}/check_claims.log",
    script:
        "../scripts/check_claims.py"
