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

:func:`qprofile_rows` does this for m meta-analyses at once (both bounds of every row in one
lock-step root search); :func:`qprofile_ci` is the one-model form.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special

from timecourse_meta.models.control import Control, resolve
from timecourse_meta.models.rootfind import zeroin_rows
from timecourse_meta.models.rows import Array, Rows, which
from timecourse_meta.models.tau2 import qgen


@dataclass(frozen=True)
class Tau2Interval:
    """Q-profile bounds for tau^2; ``note`` says when a bound is only a limit of the search."""

    low: float
    high: float
    note: str = ""


def chi2_quantiles(alpha: float, df: Array) -> tuple[Array, Array]:
    """(upper, lower) alpha/2 quantiles of chi^2(df), as scipy.stats.chi2.isf / .ppf compute."""
    return special.chdtri(df, alpha / 2), 2.0 * special.gammaincinv(df / 2.0, alpha / 2)


def qprofile_rows(
    r: Rows, tau2: Array, level: float, ctl: Control
) -> tuple[Array, Array, list[str]]:
    """Q-profile (lower, upper, note) for every row of ``r`` (raw y) at its estimate ``tau2``."""
    n = tau2.size
    crit_u, crit_l = chi2_quantiles(1.0 - level, r.k - r.p)
    lo_end = np.minimum(0.0, tau2)
    if ctl.tau2_max is None:
        hi_end = np.maximum(np.maximum(100.0, 10.0 * tau2), 10.0 * lo_end)
    else:
        hi_end = np.full(n, float(ctl.tau2_max))
    q_lo, q_hi = qgen(r, lo_end), qgen(r, hi_end)

    up_zero = q_lo < crit_l
    up_end = ~up_zero & (q_hi > crit_l)
    upper = np.where(up_zero, lo_end, hi_end)
    lo_end_hit = q_hi > crit_u
    lo_zero = ~lo_end_hit & (q_lo < crit_u)
    lower = np.where(lo_end_hit, hi_end, lo_end)
    up_fail = np.zeros(n, dtype=bool)
    lo_fail = np.zeros(n, dtype=bool)

    need_up = np.flatnonzero(~up_zero & ~up_end)
    need_lo = np.flatnonzero(~lo_end_hit & ~lo_zero)
    rows = np.concatenate([need_up, need_lo])
    if rows.size:
        target = np.concatenate([crit_l[need_up], crit_u[need_lo]])
        sub = r.take(rows)
        root, _, conv = zeroin_rows(
            lambda t, idx: qgen(sub.take(idx), t) - target[idx],
            lo_end[rows], hi_end[rows], q_lo[rows] - target, q_hi[rows] - target,
            ctl.ci_tol, ctl.ci_maxiter,
        )  # fmt: skip
        root = np.where(conv, root, np.nan)  # unconverged bound: NaN with a note
        upper[need_up] = root[: need_up.size]
        lower[need_lo] = root[need_up.size :]
        up_fail[need_up] = ~conv[: need_up.size]
        lo_fail[need_lo] = ~conv[need_up.size :]

    notes = [""] * n
    for i in which(up_zero | up_end | up_fail | lo_end_hit | lo_fail):
        notes[i] = "; ".join(_notes(i, up_zero, up_end, up_fail, lo_end_hit, lo_fail, hi_end, ctl))
    return lower, upper, notes


def _notes(i, up_zero, up_end, up_fail, lo_end_hit, lo_fail, hi_end, ctl) -> list[str]:  # noqa: ANN001
    def not_found(which: str) -> str:
        return (
            f"{which} bound not found: root search did not converge in "
            f"{ctl.ci_maxiter} iterations (ci_maxiter); set to NaN"
        )

    out = []
    if up_zero[i]:
        out.append("upper bound at 0: Q is below its lower quantile even with tau^2 = 0")
    elif up_end[i]:
        out.append(f"upper bound > {hi_end[i]:g} (end of the search interval)")
    elif up_fail[i]:
        out.append(not_found("upper"))
    if lo_end_hit[i]:
        out.append(f"lower bound > {hi_end[i]:g} (end of the search interval)")
    elif lo_fail[i]:
        out.append(not_found("lower"))
    return out


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
    r = Rows.single(np.asarray(y, dtype=float), np.asarray(v, dtype=float), np.asarray(X, float))
    lo, hi, notes = qprofile_rows(r, np.array([float(tau2)]), level, resolve(control))
    return Tau2Interval(float(lo[0]), float(hi[0]), notes[0])
