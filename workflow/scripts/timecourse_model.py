"""Stage 4b (rule timecourse_model): multivariate time-course model of the primary outcome."""

import pandas as pd

from timecourse_meta.errors import exit_on_error
from timecourse_meta.pipeline.tables import write_csv, write_parquet
from timecourse_meta.pipeline.timecourse_tables import (
    build_timecourse_tables,
    parse_timecourse_config,
)
from timecourse_meta.pipeline.windows import parse_windows

smk = snakemake  # noqa: F821 - injected by Snakemake's script directive

with exit_on_error(smk.log[0], "timecourse_model") as log:
    p = smk.params
    spec = parse_timecourse_config(p.timecourse, p.timepoints, p.level)
    hours = parse_windows(p.windows).set_index("label")["nominal"].to_dict()
    effects = pd.read_parquet(smk.input.effects)
    tables = build_timecourse_tables(
        effects, p.timepoints, hours, spec, outcome=p.outcome, measure=p.measure
    )
    write_parquet(tables.model, smk.output.model)
    write_csv(tables.model, smk.output.csv)
    write_csv(tables.contrasts, smk.output.contrasts)
    write_csv(tables.structures, smk.output.comparison)
    write_csv(tables.rho_sensitivity, smk.output.rho)
    fit = tables.fit
    log(
        f"{p.outcome} ({p.measure}): struct {spec.struct}, within {spec.within} "
        f"rho {spec.rho:g}, {spec.method}: status {fit.status}"
        + (f" ({fit.error})" if fit.error else "")
    )
    for r in tables.model.itertuples(index=False):
        log(f"  {r.timepoint}: k = {r.k}, estimate {r.estimate:.4f}, status {r.status}")
    for msg in fit.warnings:
        log(f"  warning: {msg}")
    for r in tables.structures.drop_duplicates("struct").itertuples(index=False):
        log(f"structure {r.struct}: {r.status}, AIC {r.AIC:.3f}")
