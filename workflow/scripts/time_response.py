"""Stage 4c (rule time_response): the effect as a smooth function of time (CAR meta-regression)."""

import sys
import warnings

import numpy as np
import pandas as pd

from timecourse_meta.errors import TimecourseMetaError, exit_on_error
from timecourse_meta.pipeline.tables import write_csv, write_parquet
from timecourse_meta.pipeline.time_response_spec import parse_time_response_config
from timecourse_meta.pipeline.time_response_tables import (
    SENSITIVITY_COLUMNS,
    TIME_RESPONSE_COLUMNS,
    TR_SUMMARY_COLUMNS,
    fit_spec,
    grid_table,
    sensitivity_table,
    summary_table,
    time_response_data,
)
from timecourse_meta.pipeline.windows import parse_windows

smk = snakemake  # noqa: F821 - injected by Snakemake's script directive

with exit_on_error(smk.log[0], "time_response") as log:
    p = smk.params
    spec = parse_time_response_config(p.time_response, p.level)
    nominal = parse_windows(p.windows)["nominal"].tolist()  # claims judge windows there
    data = time_response_data(pd.read_parquet(smk.input.effects), p.outcome, p.measure)
    n_studies = data["study_id"].nunique()
    try:
        if n_studies < 2:
            raise TimecourseMetaError(
                f"{n_studies} stud{'y' if n_studies == 1 else 'ies'} with "
                f"{p.outcome} ({p.measure}) effects; the model needs >= 2"
            )
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            tr = fit_spec(data, spec)
    except (TimecourseMetaError, np.linalg.LinAlgError) as err:  # too little data to fit
        warning = f"WARNING: time-response model not fitted: {err}; its tables are empty"
        log(warning)
        print(f"time_response: {warning}", file=sys.stderr)
        grid = pd.DataFrame(columns=list(TIME_RESPONSE_COLUMNS))
        summary = pd.DataFrame(columns=list(TR_SUMMARY_COLUMNS))
        both = pd.concat([grid.assign(table="grid"), summary.assign(table="summary")])
        write_parquet(both.reset_index(drop=True), smk.output.model)
        write_csv(grid, smk.output.grid)
        write_csv(summary, smk.output.summary)
        write_csv(pd.DataFrame(columns=list(SENSITIVITY_COLUMNS)), smk.output.sensitivity)
        tr = None
    if tr is not None:
        grid = grid_table(tr, spec, p.outcome, p.measure)
        summary = summary_table(tr, spec, p.outcome, p.measure, extra_times=nominal)
        sens = sensitivity_table(data, spec, p.outcome, p.measure)
        both = pd.concat([grid.assign(table="grid"), summary.assign(table="summary")])
        write_parquet(both.reset_index(drop=True), smk.output.model)
        write_csv(grid, smk.output.grid)
        write_csv(summary, smk.output.summary)
        write_csv(sens, smk.output.sensitivity)
        fit = tr.fit
        log(
            f"{p.outcome} ({p.measure}): {fit.n_clusters} studies, k = {fit.k}, "
            f"{tr.basis.describe()}; tau2 {fit.tau2:.4g}, rho {fit.rho:.4g}, "
            f"converged {fit.converged}"
        )
        for w in caught:
            log(f"  warning: {w.message}")
        for r in summary.itertuples(index=False):
            log(
                f"  {r.quantity} t = {r.time_hours:.4g} h "
                f"[{r.time_ci_low:.4g}, {r.time_ci_high:.4g}] estimate {r.estimate:.4f} "
                f"[{r.ci_low:.4f}, {r.ci_high:.4f}] p {r.pval:.4g}"
            )
