# Stage 6: check the configured claims against the pooled results.

import os


rule check_claims:
    input:
        unpack(_claims_file),
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
        windows=WINDOW_SPECS,
        outcome=config["primary_outcome"],
        measure=config["primary_measure"],
        subgroups=config.get("subgroups") or {},
        time_unit=TIME_UNIT,
        # the real file's path as a parameter: workflow.source_path gives a fresh cache path
        # (and time stamp) on every run, which would make the rule look out of date each time
        # relative to the working directory, so the parameter is the same in every copy of the
        # project (workflow.source_path gives a fresh cache path on every run)
        schema=os.path.relpath(
            Path(workflow.basedir, "..", "config", "schema", "claims.schema.yaml"),
            Path.cwd(),
        ),
    script:
        "../scripts/check_claims.py"
