# Stage 6: check the configured claims against the pooled results.


rule check_claims:
    input:
        claims=CLAIMS_FILE,
        pooled=f"{PROC}/pooled.parquet",
        proportions=f"{PROC}/pooled_proportions.parquet",
        multivariate=f"{PROC}/timecourse_model.parquet",
        time_response=f"{TABLES}/time_response_summary.csv",
    output:
        csv=report(
            f"{TABLES}/claims.csv",
            caption="../report/claims.rst",
            category="1. Pooled results",
        ),
        md=f"{TABLES}/claims.md",
    log:
        f"{LOGS}/check_claims.log",
    benchmark:
        f"{LOGS}/benchmarks/check_claims.tsv"
    conda:
        "../envs/timecourse_meta.yaml"
    params:
        timepoints=TIMEPOINTS,
        windows=config["windows"],
        outcome=config["primary_outcome"],
        measure=config["primary_measure"],
        subgroups=config.get("subgroups") or {},
        # a parameter, not an input: source files are cached with a fresh time stamp, which
        # would make the rule look out of date on every run
        schema=workflow.source_path("../../config/schema/claims.schema.yaml"),
    script:
        "../scripts/check_claims.py"
