# Configuration checks and the paths shared by all rules.
#
# Every problem in the configuration stops the run here with one line on stderr (no stack
# listing): plain YAML only (no !!python tags), the schema (config/schema/config.schema.yaml),
# paths inside the project, and outputs only under results/ or data/processed/.

import sys
from pathlib import Path

from timecourse_meta.pipeline.claims_config import load_claims
from timecourse_meta.pipeline.config import (
    check_config,
    check_config_files,
    fill_defaults,
    input_path,
    load_yaml,
    normalise_command_line,
)
from timecourse_meta.errors import ConfigError, SheetError
from timecourse_meta.schema import score_measure


def stop_on_config_error(func, *args, **kwargs):
    """Call func; a ConfigError (or a SheetError of a sheet read to derive the windows) ends the
    run with its one-line message and exit status 1."""
    try:
        return func(*args, **kwargs)
    except (ConfigError, SheetError) as err:
        print(f"Error: {err}", file=sys.stderr)
        raise SystemExit(1) from None


def _checked_config():
    schema_file = workflow.source_path("../../config/schema/config.schema.yaml")
    check_config_files(workflow.configfiles)  # safe_load: !!python/... tags are refused
    normalise_command_line(
        config
    )  # --config subgroups="{trd: null}" arrives as text 'null'
    schema = load_yaml(schema_file)
    settings = check_config(config, schema, Path.cwd())  # cwd = the project
    if not workflow.modifier.skip_validation:  # as snakemake.utils.validate
        fill_defaults(config, schema)  # the schema's defaults, from the parsed schema
    return settings


_SETTINGS = stop_on_config_error(_checked_config)
STUDIES = _SETTINGS["studies"]
PUBLISHED = _SETTINGS["published"]
CLAIMS_FILE = _SETTINGS["claims_file"]
PROC = _SETTINGS["processed_dir"]
RES = _SETTINGS["results_dir"]
WINDOWS = _SETTINGS[
    "windows"
]  # table in hours (derived from the sheets for windows: null)
WINDOW_SPECS = _SETTINGS[
    "window_specs"
]  # the same as a list (params of the rules), hours
TIME_UNIT = _SETTINGS["time_unit"]
TIME_RESPONSE = _SETTINGS[
    "time_response"
]  # config time_response with its times in hours
TABLES = f"{RES}/tables"
FIGURES = f"{RES}/figures"
LOGS = "logs"
TIMEPOINTS = list(WINDOWS["label"])
ROB = _SETTINGS[
    "risk_of_bias"
]  # risk-of-bias sheet or None (workflow/rules/review.smk)
# the claims file is checked now (schema, checks, windows, subgroups), not after the pooling
if CLAIMS_FILE:
    stop_on_config_error(
        load_claims,
        CLAIMS_FILE,
        load_yaml(workflow.source_path("../../config/schema/claims.schema.yaml")),
        TIMEPOINTS,
        list(config.get("subgroups") or {}),
        strict_windows=False,  # a claim at a window that is not configured is "not testable"
    )
# The review's words for titles, axes and favours labels (one place: top-level config keys).
LABELS = {
    key: config.get(key)
    for key in (
        "intervention",
        "comparator",
        "outcome_label",
        "measure_label",
        "favours",
        "time_label",
    )
}


def final_outputs():
    """Every file the workflow promises (the `all` target)."""
    tables = [
        "exclusions.csv",
        "row_accounting.csv",
        "window_choices.csv",
        "effects.csv",
        "pooled_by_timepoint.csv",
        "pooled_by_timepoint.md",
        "subgroups.csv",
        "sensitivity.csv",
        "proportions.csv",
        "pooled_proportions.csv",
        "published_comparison.csv",
        "published_comparison.md",
        "claims.csv",
        "claims.md",
        "provenance.csv",
        "timecourse_model.csv",
        "timecourse_contrasts.csv",
        "timecourse_model_comparison.csv",
        "timecourse_rho_sensitivity.csv",
        "time_response.csv",
        "time_response_summary.csv",
        "time_response_sensitivity.csv",
    ]
    figures = [f"forest_{tp}.{ext}" for tp in TIMEPOINTS for ext in ("png", "pdf")]
    figures += ["timecourse.png", "timecourse.pdf"]
    # workflow/rules/review.smk: what a review team publishes
    tables += [
        "small_study_effects.csv",
        "summary_of_findings.csv",
        "summary_of_findings.md",
        "prisma_counts.csv",
    ]
    figures += [f"funnel_{tp}.{ext}" for tp in TIMEPOINTS for ext in ("png", "pdf")]
    figures += ["prisma.png", "prisma.pdf"]
    if ROB:
        tables += ["risk_of_bias.csv", "risk_of_bias_summary.csv"]
        figures += [
            f"risk_of_bias_{kind}.{ext}"
            for kind in ("traffic_light", "summary")
            for ext in ("png", "pdf")
        ]
    return (
        [f"{TABLES}/{t}" for t in tables]
        + [f"{FIGURES}/{f}" for f in figures]
        + [f"{RES}/software_versions.txt", f"{RES}/report_summary.rst"]
    )


def _claims_file(wildcards):
    """The claims file when config `claims_file` is set (else no claims: an empty table)."""
    return {"claims": CLAIMS_FILE} if CLAIMS_FILE else {}


def _published_file(wildcards):
    """The published pooled results when config `published` is set (else none listed)."""
    return {"published": PUBLISHED} if PUBLISHED else {}


def _forest_rob(wildcards):
    """The overall risk-of-bias judgements (rule risk_of_bias) when config `risk_of_bias` is set."""
    return {"rob": f"{PROC}/risk_of_bias.parquet"} if ROB else {}


def timecourse_figure_inputs(wildcards):
    """Per-window and per-study results; the time-response model's when it is configured."""
    inputs = {
        "pooled": f"{PROC}/pooled.parquet",
        "published": f"{PROC}/published_comparison.parquet",
        "effects": f"{PROC}/effects.parquet",
    }
    if "time_response" in config:
        inputs["curve"] = f"{PROC}/time_response.parquet"
        inputs["summary"] = f"{TABLES}/time_response_summary.csv"
        inputs["effects_all_times"] = f"{PROC}/effects_all_times.parquet"
    return inputs
