"""Estimators of the between-study variance tau^2, as defined in metafor's ``rma.uni``.

Each estimator takes effects ``y``, sampling variances ``v`` and a full-rank design ``X`` (an
intercept column for a plain random-effects model) and follows metafor 3.8 step for step, so that
iterative estimators stop at the same iterate:

* DL  DerSimonian & Laird (1986), generalised to meta-regression (Raudenbush 2009).
* HE  Hedges (1983): OLS residuals, unweighted method of moments.
* HS  Hunter & Schmidt (2004): (Q - k) / sum(w).
* SJ  Sidik & Jonkman (2005): one re-weighting step from the start value var(y) (k - 1) / k.
* PM  Paule & Mandel (1982): root of Q_gen(tau^2) = k - p, by Brent's method as R's uniroot.
* EB  Morris (1983) empirical Bayes, by metafor's fixed-point iteration.
* ML / REML  Fisher scoring (Viechtbauer 2005), started at max(0, HE), step-halving at the
  boundary, tolerance 1e-5 on tau^2, and metafor's check against a better log-likelihood at 0.

The stopping rules (threshold, tol, maxiter, tau2.max) come from a :class:`~.control.Control`,
metafor's ``control`` list; None means metafor's defaults, as quoted above.
Standard errors of tau^2 follow the same source (metafor's ``se.tau2``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from timecourse_meta.models.control import DEFAULT_CONTROL, Control, resolve
from timecourse_meta.models.projection import Projection
from timecourse_meta.models.rootfind import zeroin

Array = NDArray[np.float64]

ESTIMATORS = ("DL", "HE", "HS", "SJ", "PM", "EB", "ML", "REML")
THRESHOLD = DEFAULT_CONTROL.threshold  # metafor's default control$threshold
MAXITER = DEFAULT_CONTROL.maxiter  # metafor's default control$maxiter
TAU2_MIN = 0.0


class ConvergenceError(RuntimeError):
    """An iterative tau^2 estimator did not converge (metafor stops with an error here)."""


@dataclass(frozen=True)
class Tau2Estimate:
    """tau^2 with its standard error, iteration count and any warnings."""

    tau2: float
    se: float
    method: str
    iterations: int = 0
    warnings: tuple[str, ...] = field(default_factory=tuple)


def r_mad(y: Array) -> float:
    """R's ``mad()``: 1.4826 * median(|y - median(y)|)."""
    return 1.4826 * float(np.median(np.abs(y - np.median(y))))


def tau2_max_default(y: Array) -> float:
    """metafor's upper search bound for tau^2: max(100, 10 * mad(y)^2)."""
    return max(100.0, 10.0 * r_mad(y) ** 2)


def _qe(tau2: float, y: Array, v: Array, X: Array) -> float:
    """Generalised Q statistic y' P(tau^2) y with weights 1 / (v + tau^2)."""
    return Projection.build(1.0 / (v + tau2), X).quad(y)


def _loglik(tau2: float, y: Array, v: Array, X: Array, reml: bool) -> float:
    """metafor's ML / REML log-likelihood without the constant REML term in log|X'X|."""
    k, p = X.shape
    w = 1.0 / (v + tau2)
    proj = Projection.build(w, X)
    resid = y - X @ proj.coef(y)
    rss = float(np.sum(w * resid**2))
    if not reml:
        return -0.5 * k * np.log(2 * np.pi) - 0.5 * np.sum(np.log(v + tau2)) - 0.5 * rss
    logdet = 2.0 * float(np.sum(np.log(np.abs(np.diag(proj.R)))))
    return (
        -0.5 * (k - p) * np.log(2 * np.pi)
        - 0.5 * np.sum(np.log(v + tau2))
        - 0.5 * logdet
        - 0.5 * rss
    )


def estimate_tau2(
    y: Array, v: Array, X: Array, method: str, control: Control | None = None
) -> Tau2Estimate:
    """Estimate tau^2 by ``method`` (one of :data:`ESTIMATORS`), as metafor's ``rma.uni``.

    ``y`` is centred first, as metafor does (it leaves every estimator unchanged when the design
    spans the intercept, and matches metafor's rounding otherwise). ``control`` holds metafor's
    stopping rules (None: metafor's defaults; see :class:`~.control.Control`).
    Raises :class:`ConvergenceError` where metafor stops with an error, and when the
    Paule-Mandel root search exhausts ``control.maxiter`` (see ``Control``).
    """
    ctl = resolve(control)
    method = method.upper()
    if method not in ESTIMATORS:
        raise ValueError(f"unknown tau^2 estimator {method!r}; expected one of {ESTIMATORS}")
    y = np.asarray(y, dtype=float)
    v = np.asarray(v, dtype=float)
    X = np.asarray(X, dtype=float)
    k, p = X.shape
    ymc = y - y.mean()
    if k - p <= 0:
        raise ValueError(f"cannot estimate tau^2 with k = {k} studies and p = {p} coefficients")
    warnings: list[str] = []
    iterations = 0

    if method in ("DL", "HS"):
        w = 1.0 / v
        proj = Projection.build(w, X)
        rss = proj.quad(ymc)
        if method == "DL":
            trp = proj.trace()
            tau2 = (rss - (k - p)) / trp
        else:
            tau2 = (rss - k) / w.sum()
    elif method == "SJ":
        tau2_0 = float(np.var(ymc))  # var(y) * (k - 1) / k
        w = 1.0 / (v + tau2_0)
        proj = Projection.build(w, X)
        tau2 = tau2_0 * proj.quad(ymc) / (k - p)
    elif method == "PM":
        tau2, iterations = _paule_mandel(ymc, v, X, ctl)
    else:  # HE, and the start of EB / ML / REML
        ols = Projection.build(np.ones(k), X)
        tau2 = (ols.quad(ymc) - ols.trace_with(v)) / (k - p)
        if method in ("EB", "ML", "REML"):
            start = max(0.0, tau2, TAU2_MIN)
            tau2, iterations = _fisher_scoring(ymc, v, X, start, method, ctl)
            if method in ("ML", "REML"):
                tau2 = _ll0_check(tau2, ymc, v, X, method == "REML", warnings, ctl)

    tau2 = max(TAU2_MIN, float(tau2))
    se = _se_tau2(tau2, ymc, v, X, method)
    return Tau2Estimate(tau2, se, method, iterations, tuple(warnings))


def _paule_mandel(y: Array, v: Array, X: Array, ctl: Control) -> tuple[float, int]:
    """Root of Q(tau^2) = k - p on [0, tau2.max]: uniroot(tol, maxiter) as metafor."""
    k, p = X.shape
    target = k - p
    if _qe(TAU2_MIN, y, v, X) < target:
        return TAU2_MIN, 0
    upper = tau2_max_default(y) if ctl.tau2_max is None else float(ctl.tau2_max)
    if _qe(upper, y, v, X) > target:
        raise ConvergenceError(
            f"Paule-Mandel: Q at tau^2 = {upper:g} still exceeds k - p; tau2.max too low"
        )
    root = zeroin(lambda t: _qe(t, y, v, X) - target, TAU2_MIN, upper, ctl.tol, ctl.maxiter)
    if not root.converged:
        raise ConvergenceError(
            f"Paule-Mandel: root search did not converge in {ctl.maxiter} iterations"
        )
    return root.root, root.iterations


def _fisher_scoring(
    y: Array, v: Array, X: Array, tau2: float, method: str, ctl: Control
) -> tuple[float, int]:
    """metafor's Fisher scoring loop: stop when |change| <= threshold, fail after maxiter."""
    k, p = X.shape
    change = ctl.threshold + 1.0
    iteration = 0
    while change > ctl.threshold:
        iteration += 1
        old = tau2
        w = 1.0 / (v + tau2)
        proj = Projection.build(w, X)
        if method == "EB":
            adj = (proj.quad(y) * k / (k - p) - k) / w.sum()
        else:
            py = proj.apply(y)
            if method == "ML":
                adj = (py @ py - w.sum()) / np.sum(w**2)
            else:
                adj = (py @ py - proj.trace()) / proj.frob()
        adj = 0.0 if np.isnan(adj) else float(adj)
        while tau2 + adj < TAU2_MIN:
            adj /= 2.0
        tau2 = tau2 + adj
        change = abs(old - tau2)
        if iteration > ctl.maxiter:
            raise ConvergenceError(
                f"{method}: Fisher scoring did not converge in {ctl.maxiter} iterations"
            )
    return tau2, iteration


def _ll0_check(
    tau2: float, y: Array, v: Array, X: Array, reml: bool, warnings: list[str], ctl: Control
) -> float:
    """metafor's guard: if tau^2 = 0 has a clearly higher likelihood, Fisher scoring got stuck.

    metafor: ``ll0 - ll > con$tol && tau2 > con$threshold`` (both from the fit's control).
    """
    ll0 = _loglik(0.0, y, v, X, reml)
    ll = _loglik(tau2, y, v, X, reml)
    if ll0 - ll > ctl.tol and tau2 > ctl.threshold:
        warnings.append(
            "Fisher scoring may have stopped at a local maximum; tau^2 set to 0 (as metafor)"
        )
        return 0.0
    return tau2


def _se_tau2(tau2: float, y: Array, v: Array, X: Array, method: str) -> float:
    """Standard error of tau^2 as metafor's ``se.tau2`` for each estimator."""
    k, p = X.shape
    t = max(tau2, 0.0)
    if method in ("DL", "HS"):
        w = 1.0 / v
        proj = Projection.build(w, X)
        trp = proj.trace()
        core = 2 * (k - p) + 4 * t * trp + 2 * t**2 * proj.frob()
        denom = trp if method == "DL" else w.sum()
        return float(np.sqrt(core / denom**2))
    if method == "HE":
        ols = Projection.build(np.ones(k), X)
        core = 2 * ols.frob(v, v) + 4 * t * ols.trace_with(v) + 2 * t**2 * (k - p)
        return float(np.sqrt(core / (k - p) ** 2))
    if method == "SJ":
        tau2_0 = float(np.var(y))
        proj = Projection.build(1.0 / (v + tau2_0), X)
        core = 2 * proj.frob(v, v) + 4 * t * proj.frob(None, v) + 2 * t**2 * proj.frob()
        return float(np.sqrt(tau2_0**2 / (k - p) ** 2 * core))
    w = 1.0 / (v + tau2)
    if method == "ML":
        return float(np.sqrt(2.0 / np.sum(w**2)))
    if method == "REML":
        return float(np.sqrt(2.0 / Projection.build(w, X).frob()))
    # EB and PM
    return float(np.sqrt(2.0 * k**2 / (k - p) / w.sum() ** 2))
