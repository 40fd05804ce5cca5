"""Rule coverage: CI / prediction-interval coverage simulation -> coverage.csv, .png, .pdf."""

import time

from timecourse_meta.errors import exit_on_error
from timecourse_meta.pipeline.tables import write_csv
from timecourse_meta.plots.coverage_plot import plot_coverage
from timecourse_meta.plots.figures import save_figure
from timecourse_meta.simulation.coverage import run_coverage

smk = snakemake  # noqa: F821 - injected by Snakemake's script directive

with exit_on_error(smk.log[0], "coverage") as log:
    start = time.perf_counter()
    table = run_coverage(n_rep=int(smk.params.n_rep), seed=int(smk.params.seed))
    write_csv(table, smk.output.csv)
    save_figure(plot_coverage(table), smk.output.png, formats=("png", "pdf"))
    failed = int(table["n_failed"].sum())
    log(
        f"{len(table)} coverage rows, {int(smk.params.n_rep)} replicates per cell, seed "
        f"{int(smk.params.seed)}; {failed} non-converged fits excluded; "
        f"{time.perf_counter() - start:.1f} s"
    )
