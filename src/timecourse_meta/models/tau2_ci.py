"""Q-profile confidence interval for tau^2 (Viechtbauer 2007), as metafor's ``confint.rma.uni``.

The bounds are the values of tau^2 at which the generalised Q statistic
``Q(tau^2) = y' P(tau^2) y`` equals the chi-square quantiles with k - p degrees of freedom;
Q decreases in tau^2, so each bound is one root found by Brent's method on
[min(0, tau^2), max(100, 10 tau^2)] with R's default tolerance, exactly as metafor searches.
The tolerance, the iteration limit and the upper end of the search come from a
:class:`~.control.Control` (``ci_tol``, ``ci_maxiter``, ``tau2_max``; metafor's
``confint(res, control = list(tol, maxiter))`` and the fit's ``control$tau2.max``).
A bound that cannot be reached is set to the end of the search interval and flagged; a bound
whose root search does not converge within ``ci_maxiter`` iterations is NaN and flagged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import stats

from timecourse_meta.models.control import Control, resolve
from timecourse_meta.models.rootfind import zeroin
from timecourse_meta.models.tau2 import _qe

Array = NDArray[np.float64]


@dataclass(frozen=True)
class Tau2Interval:
    """Q-profile bounds for tau^2; ``note`` says when a bound is only a limit of the search."""

    low: float
    high: float
    note: str = ""


def qprofile_ci(
    y: Array,
    v: Array,
    X: Array,
    tau2: float,
    level: float = 0.95,
    control: Control | None = None,
) -> Tau2Interval:
    """Q-profile CI for tau^2 (Viechtbauer 2007; metafor ``confint(res)``, type "QP").

    ``control``: ``ci_tol`` / ``ci_maxiter`` are uniroot's ``tol`` / ``maxiter`` for each bound;
    ``tau2_max``, when set, replaces the upper search end max(100, 10 tau^2) as metafor's
    confint does with the fit's ``control$tau2.max``. None means metafor's defaults.
    """
    ctl = resolve(control)
    k, p = X.shape
    alpha = 1.0 - level
    df = k - p
    crit_u = float(stats.chi2.isf(alpha / 2, df))
    crit_l = float(stats.chi2.ppf(alpha / 2, df))
    lo_end = min(0.0, tau2)
    if ctl.tau2_max is None:
        hi_end = max(100.0, 10.0 * tau2, 10.0 * lo_end)
    else:
        hi_end = float(ctl.tau2_max)
    q_lo = _qe(lo_end, y, v, X)
    q_hi = _qe(hi_end, y, v, X)
    notes = []

    def root(target: float, which: str) -> float:
        res = zeroin(
            lambda t: _qe(t, y, v, X) - target,
            lo_end,
            hi_end,
            ctl.ci_tol,
            ctl.ci_maxiter,
            q_lo - target,
            q_hi - target,
        )
        if not res.converged:
            notes.append(
                f"{which} bound not found: root search did not converge in "
                f"{ctl.ci_maxiter} iterations (ci_maxiter); set to NaN"
            )
            return float("nan")
        return res.root

    if q_lo < crit_l:
        upper = lo_end
        notes.append("upper bound at 0: Q is below its lower quantile even with tau^2 = 0")
    elif q_hi > crit_l:
        upper = hi_end
        notes.append(f"upper bound > {hi_end:g} (end of the search interval)")
    else:
        upper = root(crit_l, "upper")

    if q_hi > crit_u:
        lower = hi_end
        notes.append(f"lower bound > {hi_end:g} (end of the search interval)")
    elif q_lo < crit_u:
        lower = lo_end
    else:
        lower = root(crit_u, "lower")
    return Tau2Interval(lower, upper, "; ".join(notes))
