# Stage 4c: time-response model of the primary outcome -- the effect as a smooth function of
# (log) time fitted to every reported time of every study (not only inside windows), with
# onset, peak, duration, predictions, tests and a sensitivity table.

from timecourse_meta.pipeline.time_response_spec import parse_time_response_config

# checked when the workflow is parsed
stop_on_config_error(parse_time_response_config, TIME_RESPONSE, config["level"])


rule time_response:
    input:
        effects=f"{PROC}/effects_all_times.parquet",
    output:
        model=f"{PROC}/time_response.parquet",
        grid=report(
            f"{TABLES}/time_response.csv",
            caption="../report/time_response.rst",
            category="1. Pooled results",
            subcategory="Time-response model",
        ),
        summary=report(
            f"{TABLES}/time_response_summary.csv",
            caption="../report/time_response_summary.rst",
            category="1. Pooled results",
            subcategory="Time-response model",
        ),
        sensitivity=report(
            f"{TABLES}/time_response_sensitivity.csv",
            caption="../report/time_response_sensitivity.rst",
            category="1. Pooled results",
            subcategory="Time-response model",
        ),
    log:
        f"{LOGS}/time_response.log",
    benchmark:
        f"{LOGS}/benchmarks/time_response.tsv"
    conda:
        "../envs/timecourse_meta.yaml"
    params:
        time_response=TIME_RESPONSE,
        windows=WINDOW_SPECS,
        outcome=config["primary_outcome"],
        measure=config["primary_measure"],
        level=config["level"],
    script:
        "../scripts/time_response.py"
