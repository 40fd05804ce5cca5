"""Stage 7 (rule software_versions): versions of the software that produced the results."""

from timecourse_meta.errors import exit_on_error
from timecourse_meta.pipeline.tables import software_versions

smk = snakemake  # noqa: F821 - injected by Snakemake's script directive

with exit_on_error(smk.log[0], "software_versions"):
    with open(smk.output.txt, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(software_versions())
