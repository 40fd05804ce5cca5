"""Living review (rule changes_gate): the exit policy for CI.

`--config fail_on=verdict_change` fails the run with one line when a claim's verdict (any
model) differs from the baseline; `fail_on=any_change` when anything differs; the default
`none` only reports. results/changes.md is written before this rule runs, so a failed CI job
still has it to show.
"""

import pandas as pd

from timecourse_meta.errors import TimecourseMetaError, exit_on_error
from timecourse_meta.pipeline.changes import verdict_changes

smk = snakemake  # noqa: F821 - injected by Snakemake's script directive


class ChangePolicyError(TimecourseMetaError):
    """The results changed in a way the configured exit policy does not accept."""


with exit_on_error(smk.log[0], "changes_gate") as log:
    policy = smk.params.fail_on
    changes = pd.read_csv(smk.input.csv, dtype=str, keep_default_na=False, na_filter=False)
    flips = verdict_changes(changes)
    shown = "; ".join(f"{r.item} ({r.field}) {r.before} -> {r.after}" for r in flips.itertuples())
    if policy == "verdict_change" and len(flips):
        raise ChangePolicyError(
            f"{len(flips)} claim verdict(s) changed since the baseline: {shown} "
            "(fail_on=verdict_change; see results/changes.md)"
        )
    if policy == "any_change" and len(changes):
        raise ChangePolicyError(
            f"{len(changes)} result field(s) changed since the baseline "
            "(fail_on=any_change; see results/changes.md)"
        )
    with open(smk.output.ok, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(f"fail_on={policy}: {len(changes)} changes, {len(flips)} verdict changes\n")
    log(f"fail_on={policy}: passed ({len(changes)} changes, {len(flips)} verdict changes)")
