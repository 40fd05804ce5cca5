"""Living review (rule changes): compare this run with the baseline snapshot.

Writes results/changes.md (verdict changes in bold, a plain-language paragraph, a table per
section), results/tables/changes.csv (one line per changed field), results/changes.html (the
same for the Snakemake report) and results/figures/changes_timecourse.png (window estimates
before and after). No timestamps: the same inputs give the same bytes.
"""

from pathlib import Path

import pandas as pd

from timecourse_meta.errors import exit_on_error
from timecourse_meta.pipeline.baseline import Baseline
from timecourse_meta.pipeline.changes import diff_snapshots, verdict_changes
from timecourse_meta.pipeline.changes_text import changes_markdown, markdown_to_html
from timecourse_meta.pipeline.snapshot import current_snapshot, read_snapshot
from timecourse_meta.pipeline.tables import write_csv
from timecourse_meta.plots.changes_plot import changes_timecourse_plot
from timecourse_meta.plots.figures import save_figure
from timecourse_meta.schema import rows_for

smk = snakemake  # noqa: F821 - injected by Snakemake's script directive


def window_frame(pooled: pd.DataFrame, outcome: str, measure: str) -> pd.DataFrame:
    """The primary outcome's overall rows of a snapshot's pooled table, numbers as numbers."""
    part = rows_for(pooled, outcome, measure)
    out = part[["timepoint"]].copy()
    for column in ("k", "estimate", "ci_low", "ci_high"):
        out[column] = pd.to_numeric(part[column].replace("NA", ""), errors="coerce")
    return out.reset_index(drop=True)


with exit_on_error(smk.log[0], "changes") as log:
    p = smk.params
    baseline = Baseline(
        p.baseline_kind,
        path=p.baseline_path,
        ref=p.baseline_ref,
        commit=p.baseline_commit,
        digest=p.baseline_digest,
    )
    before = read_snapshot(baseline, Path.cwd())
    files = {name: smk.input[name] for name in smk.input.keys()}
    after = current_snapshot(files, p.config)
    changes = diff_snapshots(before, after)
    write_csv(changes, smk.output.csv)
    text = changes_markdown(
        changes, before, after, baseline=baseline.label, outcome=p.outcome, measure=p.measure
    )
    with open(smk.output.md, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(text)
    with open(smk.output.html, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(markdown_to_html(text))
    fig = changes_timecourse_plot(
        window_frame(before["pooled"], p.outcome, p.measure),
        window_frame(after["pooled"], p.outcome, p.measure),
        timepoints=p.timepoints,
        outcome=p.outcome,
        measure=p.measure,
    )
    save_figure(fig, smk.output.png)
    flips = verdict_changes(changes)
    log(f"baseline {baseline.label}: {len(changes)} changed fields, {len(flips)} verdict changes")
