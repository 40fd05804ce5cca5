"""Fitting the multivariate time-course model for the workflow tables without stopping the run.

`timecourse_data` selects one outcome and measure's effects with their study unit (the
comparison) and a note for every trial that contributes several comparisons to a window;
`fit_safely` fits ``models.multivariate.fit_timecourse`` on them and returns a `FitOutcome`
whose status says how the fit went (``ok``, ``not converged``, ``over-parameterised``,
``failed``) with every warning and error message. Split from `timecourse_tables`, which turns
these outcomes into the model, contrast, structure and rho-sensitivity tables.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from timecourse_meta.errors import TimecourseMetaError
from timecourse_meta.models.multivariate import TimecourseResult
from timecourse_meta.models.multivariate import fit_timecourse as _fit_timecourse
from timecourse_meta.pipeline.timecourse_spec import TimecourseSpec
from timecourse_meta.schema import rows_for

__all__ = ["FitOutcome", "fit_safely", "timecourse_data", "variance_df"]

OK, NOT_CONVERGED, OVERPARAMETERISED = "ok", "not converged", "over-parameterised"
FAILED = "failed"
# numerical failures of a fit that are reported in the tables instead of stopping the run
_FIT_ERRORS = (TimecourseMetaError, np.linalg.LinAlgError, ValueError, ArithmeticError)


def timecourse_data(
    effects: pd.DataFrame, outcome: str, measure: str
) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """Effects of one outcome and measure with the study unit, and multi-arm notes per window.

    Returns (data, notes): ``data`` has ``unit`` (``comparison_id``, else ``study_id``),
    ``study_id``, ``timepoint``, ``yi``, ``vi`` in the input order; ``notes`` maps a window to
    one sentence per trial that contributes several comparisons to it.
    """
    sel = rows_for(effects, outcome, measure)
    study = sel["study_id"].astype(str)
    unit = sel["comparison_id"].fillna("").astype(str) if "comparison_id" in sel else study
    unit = unit.where(unit.str.strip() != "", study)
    flags = sel["flags"].astype(str) if "flags" in sel else pd.Series("", index=sel.index)
    data = pd.DataFrame(
        {
            "unit": unit.to_numpy(),
            "study_id": study.to_numpy(),
            "timepoint": sel["timepoint"].astype(str).to_numpy(),
            "yi": sel["yi"].to_numpy(dtype=float),
            "vi": sel["vi"].to_numpy(dtype=float),
            "flags": flags.to_numpy(),
        }
    )
    notes: dict[str, list[str]] = {}
    # only trials with several comparisons in a window get a note: select them first
    n_units = data.groupby(["timepoint", "study_id"], sort=False)["unit"].transform("nunique")
    multi = data[(n_units >= 2).to_numpy()]
    for (tp, sid), grp in multi.groupby(["timepoint", "study_id"], sort=True):
        units = sorted(set(grp["unit"]))
        if len(units) < 2:
            continue
        ctrl = sorted({f for fl in grp["flags"] for f in fl.split(";") if "control" in f})
        how = f" (flags: {', '.join(ctrl)})" if ctrl else ""
        notes.setdefault(str(tp), []).append(
            f"{sid}: {len(units)} comparisons ({'; '.join(units)}){how} are treated as "
            "independent studies; a shared control makes them correlated, which is not modelled"
        )
    return data.drop(columns="flags"), notes


@dataclass
class FitOutcome:
    """A fit attempt: the result (None if it failed), status and every message."""

    result: TimecourseResult | None
    status: str
    warnings: list[str] = field(default_factory=list)
    error: str = ""


def variance_df(res: TimecourseResult) -> tuple[int, int]:
    """(variance parameters, residual df k - p): more parameters than df means G is not
    identified from the data."""
    p = len(res.timepoints)
    return res.n_params - p, res.k - p


def fit_safely(
    data: pd.DataFrame,
    timepoints: Sequence[str],
    spec: TimecourseSpec,
    *,
    struct: str | None = None,
    rho: float | None = None,
) -> FitOutcome:
    """Fit ``fit_timecourse`` on ``data`` (from :func:`timecourse_data`); never raises for
    numerical or data problems: they come back as ``status = "failed"`` with the reason.

    Status: ``ok``; ``not converged`` (estimates of the last iterate); ``over-parameterised``
    (converged, but more variance parameters than residual df k - p); ``failed``.
    """
    struct = spec.struct if struct is None else struct
    rho = spec.rho if rho is None else rho
    if data.empty:
        return FitOutcome(None, FAILED, error="no estimates of this outcome and measure")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            res = _fit_timecourse(
                data["unit"].to_numpy(),
                data["timepoint"].to_numpy(),
                data["yi"].to_numpy(dtype=float),
                data["vi"].to_numpy(dtype=float),
                struct=struct,
                within=spec.within,
                rho=rho,
                method=spec.method,
                timepoint_order=list(timepoints),
                level=spec.level,
                times=dict(spec.log_hours) if spec.log_hours else None,
                maxiter=spec.maxiter,
            )
        except _FIT_ERRORS as err:
            return FitOutcome(None, FAILED, error=f"model could not be fitted: {err}")
    notes = list(res.warnings)
    extra = [str(w.message) for w in caught if str(w.message) not in notes]
    notes += [f"numerical warning: {m}" for m in dict.fromkeys(extra)]
    n_var, df = variance_df(res)
    if not res.converged:
        status = NOT_CONVERGED
    elif n_var > df:
        status = OVERPARAMETERISED
        notes.append(
            f"{n_var} variance parameters but only k - p = {df} residual degrees of freedom: "
            "G is not identified from these data"
        )
    else:
        status = OK
    return FitOutcome(res, status, notes)
