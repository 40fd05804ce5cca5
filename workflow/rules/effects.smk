# Stages 2-3: eligibility filters and time windows, then effect sizes with full row accounting.


rule select_windows:
    input:
        rows=f"{PROC}/rows.parquet",
    output:
        rows=f"{PROC}/rows_windowed.parquet",
        excluded=f"{PROC}/rows_not_windowed.parquet",
        choices=report(
            f"{TABLES}/window_choices.csv",
            caption="../report/window_choices.rst",
            category="2. Inputs and exclusions",
        ),
    log:
        f"{LOGS}/select_windows.log",
    benchmark:
        f"{LOGS}/benchmarks/select_windows.tsv"
    conda:
        "../envs/timecourse_meta.yaml"
    params:
        windows=WINDOW_SPECS,
        rule=config["window_choice"],
        include=config["include"],
        exclude_studies=config["exclude_studies"],
        exclude_rows=config["exclude_rows"],
        first_period_only=config["first_period_only"],
        scale_priority=config["scale_priority"],
        subgroups=config["subgroups"],
        sensitivity=config["sensitivity"],
        time_unit=TIME_UNIT,
    script:
        "../scripts/select_windows.py"


rule effect_sizes:
    input:
        rows=f"{PROC}/rows.parquet",
        windowed=f"{PROC}/rows_windowed.parquet",
        excluded=f"{PROC}/rows_not_windowed.parquet",
    output:
        effects=f"{PROC}/effects.parquet",
        effects_csv=report(
            f"{TABLES}/effects.csv",
            caption="../report/effects.rst",
            category="2. Inputs and exclusions",
        ),
        exclusions=report(
            f"{TABLES}/exclusions.csv",
            caption="../report/exclusions.rst",
            category="2. Inputs and exclusions",
        ),
        accounting=report(
            f"{TABLES}/row_accounting.csv",
            caption="../report/row_accounting.rst",
            category="2. Inputs and exclusions",
        ),
    log:
        f"{LOGS}/effect_sizes.log",
    benchmark:
        f"{LOGS}/benchmarks/effect_sizes.tsv"
    conda:
        "../envs/timecourse_meta.yaml"
    params:
        crossover_r=config["crossover_r"],
        lower_is_better_default=config["lower_is_better_default"],
        precomputed_measure=config["precomputed_measure"],
        score_measure=score_measure(config["primary_measure"]),
        timepoints=TIMEPOINTS,
    script:
        "../scripts/effect_sizes.py"


rule proportions:
    input:
        windowed=f"{PROC}/rows_windowed.parquet",
    output:
        proportions=f"{PROC}/proportions.parquet",
        table=report(
            f"{TABLES}/proportions.csv",
            caption="../report/proportions.rst",
            category="2. Inputs and exclusions",
        ),
    log:
        f"{LOGS}/proportions.log",
    benchmark:
        f"{LOGS}/benchmarks/proportions.tsv"
    conda:
        "../envs/timecourse_meta.yaml"
    params:
        timepoints=TIMEPOINTS,
    script:
        "../scripts/proportions.py"


rule effects_all_times:
    input:
        rows=f"{PROC}/rows.parquet",
    output:
        effects=f"{PROC}/effects_all_times.parquet",
        excluded=f"{PROC}/rows_not_all_times.parquet",
    log:
        f"{LOGS}/effects_all_times.log",
    benchmark:
        f"{LOGS}/benchmarks/effects_all_times.tsv"
    conda:
        "../envs/timecourse_meta.yaml"
    params:
        windows=WINDOW_SPECS,
        include=config["include"],
        exclude_studies=config["exclude_studies"],
        exclude_rows=config["exclude_rows"],
        first_period_only=config["first_period_only"],
        scale_priority=config["scale_priority"],
        crossover_r=config["crossover_r"],
        lower_is_better_default=config["lower_is_better_default"],
        precomputed_measure=config["precomputed_measure"],
        score_measure=score_measure(config["primary_measure"]),
    script:
        "../scripts/effects_all_times.py"
