"""timecourse_meta: effect sizes, random-effects models and plots for time-course meta-analysis."""

from .rma import RegressionResult, RMAResult, fit_meta_regression, fit_random_effects
from .tau2 import ConvergenceError, estimate_tau2

__version__ = "0.1.0"

__all__ = [
    "ConvergenceError",
    "RMAResult",
    "RegressionResult",
    "estimate_tau2",
    "fit_meta_regression",
    "fit_random_effects",
]
