"""Workflow tables of the time-response model (the effect as a smooth function of time).

Input: the effects at every reported time (``effects_all_times.parquet``) of the primary outcome
and measure. The model (:mod:`timecourse_meta.models.time_response`, CAR on log hours) is fitted
once as configured (``time_response:`` in config.yaml) and turned into

* :func:`grid_table` -- the fitted curve on a log-spaced grid with CI and prediction band
  (``TIME_RESPONSE_COLUMNS``, the figure's input);
* :func:`summary_table` -- onset, peak, duration (bootstrap intervals), predictions, the test of
  no change over time and of the effect at ``test_at`` (``SUMMARY_COLUMNS``);
* :func:`sensitivity_table` -- the same summaries with the knots, basis, phi and rho varied,
  without each study of ``drop_studies``, and leaving each study out in turn (influence on the
  duration).

Multi-arm trials: each comparison has its own random effect; comparisons of one trial at one
time share the control arm, so their sampling errors are correlated (vcalc shared groups,
:func:`~timecourse_meta.models.time_response.vcalc_shared`) with the full control size: when the
effect-size stage split the control (flag ``control_split_<k>_ways``, Cochrane Handbook
23.3.4) the full size is the sum of the split sizes at that time. The ``vi`` keep the split.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import pandas as pd

from timecourse_meta.errors import TimecourseMetaError
from timecourse_meta.models.time_basis import BASES, make_basis
from timecourse_meta.models.time_summary import (
    SUMMARY_COLUMNS,
    TimeResponse,
    curve_table,
    fit_time_response,
    summary_rows,
)
from timecourse_meta.pipeline.time_response_spec import TimeResponseSpec
from timecourse_meta.schema import rows_for

__all__ = [
    "SENSITIVITY_COLUMNS",
    "TIME_RESPONSE_COLUMNS",
    "TR_SUMMARY_COLUMNS",
    "fit_spec",
    "grid_table",
    "sensitivity_table",
    "summary_table",
    "time_response_data",
]

TIME_RESPONSE_COLUMNS = (
    "outcome",
    "measure",
    "model",
    "time_hours",
    "estimate",
    "se",
    "ci_low",
    "ci_high",
    "pi_low",
    "pi_high",
)
TR_SUMMARY_COLUMNS = ("outcome", "measure", "model", *SUMMARY_COLUMNS)
SENSITIVITY_COLUMNS = (
    "outcome",
    "measure",
    "analysis",
    "value",
    "model",
    "n_studies",
    "k",
    "tau2",
    "rho",
    "loglik",
    "converged",
    "onset_h",
    "peak_h",
    "peak_h_ci_low",
    "peak_h_ci_high",
    "peak_estimate",
    "duration_h",
    "duration_h_ci_low",
    "duration_h_ci_high",
    "duration_change_h",
    "test_no_change_p",
    "effect_at_test",
    "effect_at_test_ci_low",
    "effect_at_test_ci_high",
    "status",
    "note",
)
_ERRORS = (TimecourseMetaError, np.linalg.LinAlgError, ValueError, ArithmeticError)


def time_response_data(effects: pd.DataFrame, outcome: str, measure: str) -> pd.DataFrame:
    """Rows of one outcome and measure with the shared-control columns the model needs."""
    d = rows_for(effects, outcome, measure).copy()
    d = d[np.isfinite(d["yi"]) & np.isfinite(d["vi"]) & (d["vi"] > 0)]
    flags = d["flags"].fillna("").astype(str)
    shared = flags.str.contains(
        r"control_split_\d+_ways|crossover_shared_control_not_split|multiple_contrasts_shared_control"
    )
    d["_control"] = np.where(shared, d["study_id"] + "|shared control", d["comparison_id"] + "|c")
    split = flags.str.contains(r"control_split_\d+_ways")
    full = d.groupby(["study_id", "time_hours", "_control"])["n_control"].transform("sum")
    d["_n_control"] = np.where(split, full, d["n_control"])
    return d.sort_values(["study_id", "comparison_id", "time_hours"], kind="mergesort")


def fit_spec(data: pd.DataFrame, spec: TimeResponseSpec) -> TimeResponse:
    """Fit the configured model to the rows of :func:`time_response_data`."""
    n_ok = data["n_treatment"].notna() & data["_n_control"].notna()
    basis = make_basis(data["time_hours"], spec.basis, spec.knots, spec.n_knots)
    return fit_time_response(
        data["study_id"].tolist(), data["time_hours"].to_numpy(float), data["yi"], data["vi"],
        basis, unit=data["comparison_id"].tolist(), arm=data["comparison_id"].tolist(),
        control=data["_control"].tolist(),
        n_arm=np.where(n_ok, data["n_treatment"], 1.0),
        n_control=np.where(n_ok, data["_n_control"], 1.0),
        phi=spec.phi, rho=spec.rho, method=spec.method, level=spec.level, robust=spec.robust,
    )  # fmt: skip


def _label(df: pd.DataFrame, outcome: str, measure: str, model: str) -> pd.DataFrame:
    df.insert(0, "model", model)
    df.insert(0, "measure", measure)
    df.insert(0, "outcome", outcome)
    return df


def grid_table(tr: TimeResponse, spec: TimeResponseSpec, outcome: str, measure: str):
    out = _label(curve_table(tr, spec.grid_size), outcome, measure, spec.model)
    return out.reindex(columns=list(TIME_RESPONSE_COLUMNS))


def summary_table(
    tr: TimeResponse,
    spec: TimeResponseSpec,
    outcome: str,
    measure: str,
    extra_times: Sequence[float] = (),
) -> pd.DataFrame:
    """Summary rows; predictions at ``predict_at`` plus ``extra_times`` (e.g. window nominals)."""
    times = sorted(set(map(float, spec.predict_at)) | set(map(float, extra_times)))
    s = summary_rows(tr, spec.grid_size, times, spec.test_at, spec.bootstrap, spec.seed)
    fit = tr.fit
    desc = (
        f"{tr.basis.describe()}; CAR on log hours (rho "
        + (f"fixed {fit.rho:g}" if fit.rho_fixed else f"REML {fit.rho:.4g}")
        + f", tau2 {fit.tau2:.4g}); within phi {spec.phi:g} per log hour; "
        f"{fit.n_clusters} studies, k = {fit.k}"
    )
    s["note"] = [f"{n}; {desc}" if n else desc for n in s["note"]]
    return _label(s, outcome, measure, spec.model).reindex(columns=list(TR_SUMMARY_COLUMNS))


def _sens_row(label: str, value: str, data: pd.DataFrame, spec: TimeResponseSpec) -> dict:
    row: dict[str, object] = {"analysis": label, "value": value, "model": spec.model}
    row["n_studies"] = int(data["study_id"].nunique())
    row["k"] = len(data)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            tr = fit_spec(data, spec)
            s = summary_rows(tr, spec.grid_size, [spec.test_at], spec.test_at, spec.bootstrap,
                             spec.seed).set_index("quantity")  # fmt: skip
    except _ERRORS as err:
        return row | {"status": "failed", "note": str(err)}
    fit = tr.fit
    on, pk, du = (s.loc[q] for q in ("onset", "peak", "duration"))
    at = s.loc["test_effect_at"]
    row.update(
        tau2=fit.tau2, rho=fit.rho, loglik=fit.loglik, converged=fit.converged,
        onset_h=on["time_hours"], peak_h=pk["time_hours"], peak_h_ci_low=pk["time_ci_low"],
        peak_h_ci_high=pk["time_ci_high"], peak_estimate=pk["estimate"],
        duration_h=du["time_hours"], duration_h_ci_low=du["time_ci_low"],
        duration_h_ci_high=du["time_ci_high"], test_no_change_p=s.loc["test_no_change", "pval"],
        effect_at_test=at["estimate"], effect_at_test_ci_low=at["ci_low"],
        effect_at_test_ci_high=at["ci_high"],
        status="ok" if fit.converged else "not converged",
        note=" | ".join(dict.fromkeys([str(w.message) for w in caught] + [tr.basis.describe()])),
    )  # fmt: skip
    return row


def sensitivity_table(
    data: pd.DataFrame, spec: TimeResponseSpec, outcome: str, measure: str
) -> pd.DataFrame:
    """Primary fit, then knots / basis / phi / rho varied, drop_studies, leave-one-study-out."""
    rows = [_sens_row("primary", "as configured", data, spec)]
    for n in spec.n_knots_grid:
        if spec.knots is None and n == spec.n_knots:
            continue
        rows.append(_sens_row("n_knots", str(n), data, replace(spec, knots=None, n_knots=n)))
    other = [b for b in BASES if b != spec.basis]
    rows += [_sens_row("basis", b, data, replace(spec, basis=b)) for b in other]
    rows += [
        _sens_row("phi", f"{p:g}", data, replace(spec, phi=p)) for p in spec.phi_grid
        if p != spec.phi
    ]  # fmt: skip
    rows += [
        _sens_row("rho_fixed", f"{r:g}", data, replace(spec, rho=r)) for r in spec.rho_grid
        if r != spec.rho
    ]  # fmt: skip
    for s in spec.drop_studies:
        rows.append(_sens_row("drop_study", s, data[data["study_id"] != s], spec))
    if spec.leave_one_out:
        for s in sorted(data["study_id"].unique()):
            rows.append(_sens_row("leave_one_out", s, data[data["study_id"] != s], spec))
    out = pd.DataFrame(rows)
    out.insert(0, "measure", measure)
    out.insert(0, "outcome", outcome)
    out = out.reindex(columns=list(SENSITIVITY_COLUMNS))
    out["duration_change_h"] = out["duration_h"] - out["duration_h"].iloc[0]
    return out
