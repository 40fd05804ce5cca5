# Stage 4: random-effects pooling per window and subgroup, subgroup tests, sensitivity analyses,
# and the published pooled results beside ours.


rule pool_timepoints:
    input:
        effects=f"{PROC}/effects.parquet",
    output:
        pooled=f"{PROC}/pooled.parquet",
        weights=f"{PROC}/study_weights.parquet",
        csv=report(
            f"{TABLES}/pooled_by_timepoint.csv",
            caption="../report/pooled.rst",
            category="1. Pooled results",
        ),
        md=f"{TABLES}/pooled_by_timepoint.md",
        subgroups=report(
            f"{TABLES}/subgroups.csv",
            caption="../report/subgroups.rst",
            category="1. Pooled results",
        ),
    log:
        f"{LOGS}/pool_timepoints.log",
    benchmark:
        f"{LOGS}/benchmarks/pool_timepoints.tsv"
    priority: 2  # feeds forest_plots, the longest job
    conda:
        "../envs/timecourse_meta.yaml"
    params:
        timepoints=TIMEPOINTS,
        subgroups=config["subgroups"],
        method=config["method"],
        method_fallback=config["method_fallback"],
        test=config["test"],
        level=config["level"],
        intervention=LABELS["intervention"],
    script:
        "../scripts/pool_timepoints.py"


rule pool_proportions:
    input:
        proportions=f"{PROC}/proportions.parquet",
    output:
        pooled=f"{PROC}/pooled_proportions.parquet",
        csv=report(
            f"{TABLES}/pooled_proportions.csv",
            caption="../report/pooled_proportions.rst",
            category="1. Pooled results",
        ),
    log:
        f"{LOGS}/pool_proportions.log",
    benchmark:
        f"{LOGS}/benchmarks/pool_proportions.tsv"
    conda:
        "../envs/timecourse_meta.yaml"
    params:
        timepoints=TIMEPOINTS,
        subgroups=config["subgroups"],
        method=config["method"],
        method_fallback=config["method_fallback"],
        test=config["test"],
        level=config["level"],
    script:
        "../scripts/pool_proportions.py"


rule sensitivity:
    input:
        windowed=f"{PROC}/rows_windowed.parquet",
        effects=f"{PROC}/effects.parquet",
        # overall risk of bias per study (workflow/rules/review.smk) when configured: adds the
        # "low_risk_of_bias_only" subset
        risk_of_bias=[f"{PROC}/risk_of_bias.parquet"] if ROB else [],
    output:
        csv=report(
            f"{TABLES}/sensitivity.csv",
            caption="../report/sensitivity.rst",
            category="1. Pooled results",
        ),
    log:
        f"{LOGS}/sensitivity.log",
    benchmark:
        f"{LOGS}/benchmarks/sensitivity.tsv"
    conda:
        "../envs/timecourse_meta.yaml"
    params:
        timepoints=TIMEPOINTS,
        sensitivity=config["sensitivity"],
        crossover_r=config["crossover_r"],
        lower_is_better_default=config["lower_is_better_default"],
        precomputed_measure=config["precomputed_measure"],
        score_measure=score_measure(config["primary_measure"]),
        outcome=config["primary_outcome"],
        measure=config["primary_measure"],
        method=config["method"],
        method_fallback=config["method_fallback"],
        test=config["test"],
        level=config["level"],
    script:
        "../scripts/sensitivity.py"


rule published_comparison:
    input:
        unpack(_published_file),
        pooled=f"{PROC}/pooled.parquet",
    output:
        published=f"{PROC}/published_comparison.parquet",
        csv=report(
            f"{TABLES}/published_comparison.csv",
            caption="../report/published.rst",
            category="1. Pooled results",
        ),
        md=f"{TABLES}/published_comparison.md",
    log:
        f"{LOGS}/published_comparison.log",
    benchmark:
        f"{LOGS}/benchmarks/published_comparison.tsv"
    conda:
        "../envs/timecourse_meta.yaml"
    params:
        outcome=config["primary_outcome"],
        measure=config["primary_measure"],
    script:
        "../scripts/published_comparison.py"
