"""Stage 6 (rule prisma): PRISMA 2020 flow diagram from config counts and the workflow's own."""

import pandas as pd

from timecourse_meta.errors import exit_on_error
from timecourse_meta.pipeline.prisma import prisma_boxes
from timecourse_meta.pipeline.tables import write_csv
from timecourse_meta.plots.figures import save_figure
from timecourse_meta.plots.prisma import prisma_plot

smk = snakemake  # noqa: F821 - injected by Snakemake's script directive

with exit_on_error(smk.log[0], "prisma") as log:
    rows = pd.read_parquet(smk.input.rows)
    exclusions = pd.read_csv(smk.input.exclusions, keep_default_na=False, dtype=str)
    effects = pd.read_parquet(smk.input.effects)
    boxes = prisma_boxes(dict(smk.params.prisma or {}), rows, exclusions, effects)
    write_csv(boxes, smk.output.csv)
    fig = prisma_plot(boxes)
    save_figure(fig, smk.output.png)
    save_figure(fig, smk.output.pdf)
    log("; ".join(f"{b}: {n}" for b, n in zip(boxes["box"], boxes["n"], strict=True)))
