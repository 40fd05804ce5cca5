# Stage 4b: multivariate time-course model of the primary outcome (all windows fitted jointly,
# metafor rma.mv): window means, contrasts between windows, comparison of the between-study
# covariance structures, and sensitivity to the assumed within-study correlation.

from timecourse_meta.pipeline.timecourse_spec import parse_timecourse_config

# checked when the workflow is parsed: a contrast naming an unknown window stops here
stop_on_config_error(
    parse_timecourse_config, config["timecourse"], TIMEPOINTS, config["level"]
)


rule timecourse_model:
    input:
        effects=f"{PROC}/effects.parquet",
    output:
        model=f"{PROC}/timecourse_model.parquet",
        csv=report(
            f"{TABLES}/timecourse_model.csv",
            caption="../report/timecourse_model.rst",
            category="1. Pooled results",
            subcategory="Multivariate time-course model",
        ),
        contrasts=report(
            f"{TABLES}/timecourse_contrasts.csv",
            caption="../report/timecourse_contrasts.rst",
            category="1. Pooled results",
            subcategory="Multivariate time-course model",
        ),
        comparison=report(
            f"{TABLES}/timecourse_model_comparison.csv",
            caption="../report/timecourse_model_comparison.rst",
            category="1. Pooled results",
            subcategory="Multivariate time-course model",
        ),
        rho=report(
            f"{TABLES}/timecourse_rho_sensitivity.csv",
            caption="../report/timecourse_rho_sensitivity.rst",
            category="1. Pooled results",
            subcategory="Multivariate time-course model",
        ),
    log:
        f"{LOGS}/timecourse_model.log",
    benchmark:
        f"{LOGS}/benchmarks/timecourse_model.tsv"
    conda:
        "../envs/timecourse_meta.yaml"
    params:
        timepoints=TIMEPOINTS,
        windows=WINDOW_SPECS,
        timecourse=config["timecourse"],
        outcome=config["primary_outcome"],
        measure=config["primary_measure"],
        level=config["level"],
    script:
        "../scripts/timecourse_model.py"
