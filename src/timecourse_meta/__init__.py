"""timecourse_meta: effect sizes, random-effects models and plots for time-course meta-analysis.

The layers follow metafor's separation: effect sizes (``effect_sizes``, ``comparisons``),
models (``rma``, ``tau2``, ``subgroups``, ``diagnostics``, ``small_study``, ``timecourse``) and
plots (``forest``, ``timecourse_plot``).
"""

from .batch import BatchResult, fit_random_effects_batch, fit_random_effects_batch_long
from .control import Control
from .diagnostics import cumulative, influence, leave_one_out
from .figures import save_figure
from .forest import forest_plot
from .rma import RegressionResult, RMAResult, fit_meta_regression, fit_random_effects
from .small_study import RegtestResult, TrimfillResult, regtest, trimfill
from .subgroups import SubgroupResult, subgroup_analysis
from .tau2 import ConvergenceError, estimate_tau2
from .timecourse import TimecourseResult, WaldTest, compare_fits, compare_structures, fit_timecourse
from .timecourse_plot import timecourse_plot
from .within_cov import within_study_cov

__version__ = "0.1.0"

__all__ = [
    "BatchResult",
    "fit_random_effects_batch",
    "fit_random_effects_batch_long",
    "Control",
    "ConvergenceError",
    "TimecourseResult",
    "WaldTest",
    "compare_fits",
    "compare_structures",
    "fit_timecourse",
    "within_study_cov",
    "RMAResult",
    "RegressionResult",
    "RegtestResult",
    "SubgroupResult",
    "TrimfillResult",
    "cumulative",
    "estimate_tau2",
    "fit_meta_regression",
    "fit_random_effects",
    "forest_plot",
    "influence",
    "leave_one_out",
    "regtest",
    "save_figure",
    "subgroup_analysis",
    "timecourse_plot",
    "trimfill",
]
