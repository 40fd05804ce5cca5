"""Brent's root finder with the stopping rule of R's ``uniroot``, for one or many problems.

metafor solves the Paule-Mandel equation and the Q-profile confidence bounds for tau^2 with
``uniroot(..., tol = .Machine$double.eps^0.25)``, i.e. only to about 1.2e-4 in tau^2. To agree
with metafor far below that tolerance we follow the same algorithm step for step: Brent (1973),
*Algorithms for Minimization without Derivatives*, ch. 4 (the ``zeroin`` procedure, as used by
R's ``stats::uniroot``), so that both programs visit the same iterates.

There is one implementation, :func:`zeroin_rows`: n problems advance in lock-step, Brent's
bookkeeping runs per problem in plain Python floats (:func:`_step`, cheap at any n) and the
function is evaluated for all active problems in one vectorised call (the expensive part when a
problem is a meta-analysis with many studies). :func:`zeroin` is the one-problem case.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

R_UNIROOT_TOL = float(np.finfo(float).eps) ** 0.25
_EPS = float(np.finfo(float).eps)

Array = NDArray[np.float64]
IntArray = NDArray[np.int64]


@dataclass(frozen=True)
class Root:
    """Result of :func:`zeroin`: the root, iterations used and whether it converged."""

    root: float
    iterations: int
    converged: bool
    estim_prec: float


def _step(s: list[float], tol: float) -> float | None:
    """One zeroin iteration on the state ``s = [a, b, c, fa, fb, fc]`` (updated in place).

    Returns the next point to evaluate, or None when ``b`` is the root (R's convergence test).
    """
    a, b, c, fa, fb, fc = s
    prev_step = b - a
    if abs(fc) < abs(fb):
        a, b, c = b, c, b
        fa, fb, fc = fb, fc, fb
    tol_act = 2.0 * _EPS * abs(b) + tol / 2.0
    new_step = (c - b) / 2.0
    if abs(new_step) <= tol_act or fb == 0.0:
        s[:] = [a, b, c, fa, fb, fc]
        return None
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
    s[:] = [b, b + new_step, c, fb, fb, fc]  # a, fa <- b, fb; fb is replaced after evaluation
    return b + new_step


def zeroin_rows(
    f: Callable[[Array, IntArray], Array],
    lower: Array,
    upper: Array,
    f_lower: Array,
    f_upper: Array,
    tol: float = R_UNIROOT_TOL,
    maxiter: int = 1000,
) -> tuple[Array, IntArray, NDArray[np.bool_]]:
    """Brent's method on n problems at once; problem i visits the iterates of R's uniroot.

    ``f(x, idx)`` returns the function values of problems ``idx`` at points ``x`` (arrays). The
    end-point values must differ in sign (or be 0). Returns (root, iterations, converged);
    a problem that needs more than ``maxiter`` iterations returns its last iterate, unconverged.
    """
    n = len(lower)
    root = np.full(n, np.nan)
    iters = np.zeros(n, dtype=np.int64)
    conv = np.zeros(n, dtype=bool)
    states: dict[int, list[float]] = {}
    for i, (a, b, fa, fb) in enumerate(
        zip(lower.tolist(), upper.tolist(), f_lower.tolist(), f_upper.tolist(), strict=True)
    ):
        if fa == 0.0:
            root[i], conv[i] = a, True
        elif fb == 0.0:
            root[i], conv[i] = b, True
        else:
            states[i] = [a, b, a, fa, fb, fa]
    idx_arr = np.array(list(states), dtype=np.int64)  # the active problems, rebuilt on change
    for it in range(maxiter + 1):
        if not states:
            break
        pts = []
        done = False
        for i, s in list(states.items()):
            x = _step(s, tol)
            if x is None:
                root[i], iters[i], conv[i] = s[1], it, True
                del states[i]
                done = True
            else:
                pts.append(x)
        if not states:
            break
        if done:
            idx_arr = np.array(list(states), dtype=np.int64)
        fx = f(np.array(pts), idx_arr).tolist()
        for s, fb in zip(states.values(), fx, strict=True):
            s[4] = fb
            if (fb > 0 and s[5] > 0) or (fb < 0 and s[5] < 0):
                s[2], s[5] = s[0], s[3]  # c, fc <- a, fa
    for i, s in states.items():
        root[i], iters[i] = s[1], maxiter
    return root, iters, conv


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
    if fa != 0.0 and fb != 0.0 and fa * fb > 0:
        raise ValueError("f has the same sign at both end points of the search interval")
    root, it, conv = zeroin_rows(
        lambda x, _idx: np.array([float(f(float(x[0])))]),
        np.array([a]), np.array([b]), np.array([fa]), np.array([fb]), tol, maxiter,
    )  # fmt: skip
    return Root(float(root[0]), int(it[0]), bool(conv[0]), 0.0 if conv[0] else -1.0)
