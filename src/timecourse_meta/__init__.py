"""timecourse_meta: effect sizes, random-effects models and plots for time-course meta-analysis.

The subpackages follow the data and metafor's separation of concerns, lowest first:
``schema`` and ``errors`` (data contracts), ``effects`` (escalc: effect sizes, arm pairing),
``models`` (tau², rma, batch, multivariate time course, continuous-time response),
``diagnostics`` (influence, subgroups, small-study effects), ``plots`` (forest, time course),
``simulation`` (coverage study) and ``pipeline`` (the workflow's stages: ingest, windows,
pooling, claims, tables). A module imports only from its own or a lower layer (checked by
``tests/test_layering.py``).

Importing the package is cheap: the public names below are loaded on first use (PEP 562), so
``import timecourse_meta.errors`` does not pull in scipy or matplotlib.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "BatchResult": "models.batch",
    "fit_random_effects_batch": "models.batch",
    "fit_random_effects_batch_long": "models.batch",
    "Control": "models.control",
    "ConvergenceError": "models.tau2",
    "estimate_tau2": "models.tau2",
    "RMAResult": "models.rma",
    "RegressionResult": "models.rma",
    "fit_meta_regression": "models.rma",
    "fit_random_effects": "models.rma",
    "TimecourseResult": "models.multivariate",
    "WaldTest": "models.multivariate",
    "compare_fits": "models.multivariate",
    "compare_structures": "models.multivariate",
    "fit_timecourse": "models.multivariate",
    "within_study_cov": "models.within_cov",
    "CarFit": "models.time_response",
    "fit_car": "models.time_response",
    "vcalc_shared": "models.time_response",
    "TimeBasis": "models.time_basis",
    "make_basis": "models.time_basis",
    "ns_basis": "models.time_basis",
    "TimeResponse": "models.time_summary",
    "fit_time_response": "models.time_summary",
    "cumulative": "diagnostics.influence",
    "influence": "diagnostics.influence",
    "leave_one_out": "diagnostics.influence",
    "RegtestResult": "diagnostics.small_study",
    "TrimfillResult": "diagnostics.small_study",
    "regtest": "diagnostics.small_study",
    "trimfill": "diagnostics.small_study",
    "SubgroupResult": "diagnostics.subgroups",
    "subgroup_analysis": "diagnostics.subgroups",
    "save_figure": "plots.figures",
    "changes_timecourse_plot": "plots.changes_plot",
    "forest_plot": "plots.forest",
    "funnel_plot": "plots.funnel",
    "prisma_plot": "plots.prisma",
    "traffic_light_plot": "plots.robvis",
    "FigureLabels": "plots.timecourse_plot",
    "timecourse_plot": "plots.timecourse_plot",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'timecourse_meta' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
