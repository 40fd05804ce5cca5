# Living review: a committed baseline snapshot of the results and what a rerun changed.
#
#   snakemake --cores 2 baseline --configfile config/ketamine.yaml   # write results/baseline/
#   snakemake --cores 2 --configfile config/ketamine.yaml  # ... also writes results/changes.md
#       when a baseline exists (config `baseline`; ketamine.yaml: null = git HEAD's; the
#       neutral default: none)
#   snakemake --cores 2 --configfile config/ketamine.yaml \
#       --config baseline=git:origin/main fail_on=verdict_change   # CI
#
# The baseline is read through a parameter, never as an input file, so that Snakemake never
# rewrites the baseline to bring it "up to date" before comparing with it; its content digest
# is a parameter so the comparison reruns whenever the baseline changes.

from timecourse_meta.pipeline.baseline import resolve_baseline
from timecourse_meta.schema import REQUIRED_TABLES, SNAPSHOT_FILES

BASELINE = stop_on_config_error(
    resolve_baseline, config.get("baseline"), RES, Path.cwd()
)
TIME_RESPONSE = f"{TABLES}/time_response_summary.csv"
# the time-response summary is part of the snapshot when the workflow produces it
SNAPSHOT_EXTRA = (
    {"time_response": TIME_RESPONSE} if TIME_RESPONSE in final_outputs() else {}
)
SNAPSHOT_INPUT = dict(
    rows=f"{PROC}/rows.parquet",
    pooled=f"{TABLES}/pooled_by_timepoint.csv",
    multivariate=f"{TABLES}/timecourse_model.csv",
    claims=f"{TABLES}/claims.csv",
    effects=f"{TABLES}/effects.csv",
    exclusions=f"{TABLES}/exclusions.csv",
    row_accounting=f"{TABLES}/row_accounting.csv",
    software=f"{RES}/software_versions.txt",
    **SNAPSHOT_EXTRA,
)
# the analysis configuration as compared (the living-review keys themselves left out)
ANALYSIS_CONFIG = {k: v for k, v in config.items() if k not in ("baseline", "fail_on")}


# outputs of the living review in the default target (none without a baseline); the Snakefile
# adds them to rule all
CHANGES_OUTPUTS = (
    []
    if BASELINE.kind == "none"
    else [
        f"{RES}/changes.md",
        f"{TABLES}/changes.csv",
        f"{RES}/changes.html",
        f"{FIGURES}/changes_timecourse.png",
        f"{PROC}/changes_gate.txt",
    ]
)


rule baseline:
    input:
        **SNAPSHOT_INPUT,
    output:
        csv=[
            f"{RES}/baseline/{SNAPSHOT_FILES[t]}"
            for t in REQUIRED_TABLES + ("multivariate", *SNAPSHOT_EXTRA)
        ],
    log:
        f"{LOGS}/baseline.log",
    benchmark:
        f"{LOGS}/benchmarks/baseline.tsv"
    conda:
        "../envs/timecourse_meta.yaml"
    params:
        config=ANALYSIS_CONFIG,
    script:
        "../scripts/baseline.py"


if BASELINE.kind != "none":

    rule changes:
        input:
            **SNAPSHOT_INPUT,
        output:
            md=f"{RES}/changes.md",
            csv=report(
                f"{TABLES}/changes.csv",
                caption="../report/changes.rst",
                category="0. What changed",
            ),
            html=report(
                f"{RES}/changes.html",
                caption="../report/changes.rst",
                category="0. What changed",
            ),
            png=report(
                f"{FIGURES}/changes_timecourse.png",
                caption="../report/changes_timecourse.rst",
                category="0. What changed",
            ),
        log:
            f"{LOGS}/changes.log",
        conda:
            "../envs/timecourse_meta.yaml"
        params:
            baseline_kind=BASELINE.kind,
            baseline_path=BASELINE.path,
            baseline_ref=BASELINE.ref,
            baseline_commit=BASELINE.commit,
            baseline_digest=BASELINE.digest,
            config=ANALYSIS_CONFIG,
            outcome=config["primary_outcome"],
            measure=config["primary_measure"],
            timepoints=TIMEPOINTS,
        script:
            "../scripts/changes.py"

    # the gate runs last (it waits for every other output), so that when it fails the
    # results, changes.md and the HTML report are complete
    rule changes_gate:
        input:
            csv=f"{TABLES}/changes.csv",
            others=final_outputs()
            + [f for f in CHANGES_OUTPUTS if not f.endswith("gate.txt")],
        output:
            ok=f"{PROC}/changes_gate.txt",
        log:
            f"{LOGS}/changes_gate.log",
        conda:
            "../envs/timecourse_meta.yaml"
        params:
            fail_on=config.get("fail_on", "none"),
        script:
            "../scripts/changes_gate.py"
