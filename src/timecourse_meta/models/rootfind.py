"""Brent's root finder with the stopping rule of R's ``uniroot``.

metafor solves the Paule-Mandel equation and the Q-profile confidence bounds for tau^2 with
``uniroot(..., tol = .Machine$double.eps^0.25)``, i.e. only to about 1.2e-4 in tau^2. To agree
with metafor far below that tolerance we follow the same algorithm step for step: Brent (1973),
*Algorithms for Minimization without Derivatives*, ch. 4 (the ``zeroin`` procedure, as used by
R's ``stats::uniroot``), so that both programs visit the same iterates.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

R_UNIROOT_TOL = float(np.finfo(float).eps) ** 0.25
_EPS = float(np.finfo(float).eps)


@dataclass(frozen=True)
class Root:
    """Result of :func:`zeroin`: the root, iterations used and whether it converged."""

    root: float
    iterations: int
    converged: bool
    estim_prec: float


def zeroin(
    f: Callable[[float], float],
    lower: float,
    upper: float,
    tol: float = R_UNIROOT_TOL,
    maxiter: int = 1000,
    f_lower: float | None = None,
    f_upper: float | None = None,
) -> Root:
    """Find a root of ``f`` in ``[lower, upper]`` by Brent's method (R ``uniroot`` semantics).

    ``f(lower)`` and ``f(upper)`` must differ in sign (a zero at an end point is returned as is).
    """
    a, b = float(lower), float(upper)
    fa = float(f(a)) if f_lower is None else float(f_lower)
    fb = float(f(b)) if f_upper is None else float(f_upper)
    if np.isnan(fa) or np.isnan(fb):
        raise ValueError("f is NaN at an end point of the search interval")
    if fa == 0.0:
        return Root(a, 0, True, 0.0)
    if fb == 0.0:
        return Root(b, 0, True, 0.0)
    if fa * fb > 0:
        raise ValueError("f has the same sign at both end points of the search interval")
    c, fc = a, fa
    remaining = maxiter + 1
    while remaining:
        remaining -= 1
        prev_step = b - a
        if abs(fc) < abs(fb):
            a, b, c = b, c, b
            fa, fb, fc = fb, fc, fb
        tol_act = 2.0 * _EPS * abs(b) + tol / 2.0
        new_step = (c - b) / 2.0
        if abs(new_step) <= tol_act or fb == 0.0:
            return Root(b, maxiter + 1 - remaining - 1, True, abs(c - b))
        if abs(prev_step) >= tol_act and abs(fa) > abs(fb):
            cb = c - b
            if a == c:  # secant step
                t1 = fb / fa
                p = cb * t1
                q = 1.0 - t1
            else:  # inverse quadratic interpolation
                q = fa / fc
                t1 = fb / fc
                t2 = fb / fa
                p = t2 * (cb * q * (q - t1) - (b - a) * (t1 - 1.0))
                q = (q - 1.0) * (t1 - 1.0) * (t2 - 1.0)
            if p > 0:
                q = -q
            else:
                p = -p
            if p < (0.75 * cb * q - abs(tol_act * q) / 2.0) and p < abs(prev_step * q / 2.0):
                new_step = p / q
        if abs(new_step) < tol_act:
            new_step = tol_act if new_step > 0 else -tol_act
        a, fa = b, fb
        b += new_step
        fb = float(f(b))
        if (fb > 0 and fc > 0) or (fb < 0 and fc < 0):
            c, fc = a, fa
    return Root(b, maxiter, False, -1.0)
