"""Living review (rule baseline): write this run's snapshot to results/baseline/ (CSV only).

Commit the directory: the next run (and CI on a pull request) compares with it.
"""

from pathlib import Path

from timecourse_meta.errors import exit_on_error
from timecourse_meta.pipeline.snapshot import current_snapshot, write_snapshot

smk = snakemake  # noqa: F821 - injected by Snakemake's script directive

with exit_on_error(smk.log[0], "baseline") as log:
    files = {name: smk.input[name] for name in smk.input.keys()}
    snapshot = current_snapshot(files, smk.params.config)
    directory = Path(smk.output.csv[0]).parent  # results/baseline/
    for path in write_snapshot(snapshot, directory):
        log(f"wrote {path}")
    log(f"{len(snapshot['rows'])} input rows, {len(snapshot['effects'])} effects")
