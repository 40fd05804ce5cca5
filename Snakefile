# Time-course meta-analysis workflow: sheets -> windows -> effect sizes -> pooled tables,
# forest and time-course figures, claims check, provenance and an HTML report.
#
#   snakemake --cores 1                           # run everything (config/config.yaml)
#   snakemake --cores 1 --config studies=data/raw/my_sheet.csv
#   snakemake --report results/report.html       # after a run
#
# Needs the timecourse_meta package installed (`pip install -e .` in the project root).
# Rules live in workflow/rules/ (one file per stage); scripts in workflow/scripts/ only read
# their inputs, call the timecourse_meta package and write their outputs.

from snakemake.utils import min_version

min_version("8.0")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/ingest.smk"
include: "workflow/rules/effects.smk"
include: "workflow/rules/pool.smk"
include: "workflow/rules/timecourse.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/claims.smk"
include: "workflow/rules/review.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/coverage.smk"  # optional target: snakemake --cores 2 coverage


rule all:
    input:
        final_outputs(),
    default_target: True
