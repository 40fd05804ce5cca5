"""Newton-Raphson / Fisher scoring for the multivariate (RE)ML likelihood of :mod:`.mv_likelihood`.

Why: BFGS from metafor's starting value needs ~100 likelihood evaluations for a two-parameter
AR fit (it starts from an identity Hessian and learns the curvature one line search at a
time; at 100 000 studies one evaluation takes 0.1-0.5 s). With the analytic second
derivatives below, Newton's method reaches the maximum in a handful of steps, each costing one
evaluation plus the information matrices, computed block by block.

Notation of :mod:`.mv_likelihood`: V = S + Z G Z' (times the row-pair mask), block-diagonal;
W = V^-1; C = (X' W X)^-1; P = W - W X C X' W (REML; for ML the trace terms use W, Harville
1977); e = P y; V_j = dV/dtheta_j = Z (dG/dtheta_j) Z'; V_jk likewise with d2G/dtheta_j dtheta_k.
Derivatives of the REML log-likelihood (Harville 1977, JASA 72:320-338, sections 4 and 6;
Searle, Casella & McCulloch 1992, Variance Components, ch. 6; Viechtbauer 2010, J Stat Softw
36(3), for the model fitted by metafor's rma.mv):

    score   s_j  = -1/2 tr(P V_j) + 1/2 e' V_j e                 (= mv_likelihood gradient)
    Fisher  I_jk =  1/2 tr(P V_j P V_k)
    AI      A_jk =  1/2 e' V_j P V_k e    (average information; Gilmour, Thompson & Cullis
                                           1995, Biometrics 51:1440-1450)
    observed J_jk = -d2 ll / dtheta_j dtheta_k = 2 A_jk - I_jk + 1/2 tr(P V_jk) - 1/2 e' V_jk e

(the same for profiled ML with W in place of P in the two trace terms). Blockwise, with
F_j = V_j W X, Q_j = sum_i (W_i X_i)' F_ji, u_j = V_j e and h_j = X' W u_j:

    tr(P V_j P V_k) = sum_i tr(W_i V_ji W_i V_ki) - 2 sum_i tr(C F_ji' W_i F_ki) + tr(C Q_j C Q_k)
    e' V_j P V_k e  = sum_i u_ji' W_i u_ki - h_j' C h_k

so nothing larger than a block or a p x p matrix is formed. The last two terms of J are
``1/2 <A - B, d2G_jk>`` with the A - B of :func:`.mv_likelihood.evaluate`. dG is exact
(complex step, :func:`.mv_structures.dG`); d2G is a central difference of dG (step 1e-5,
error ~1e-10), which changes only the path, not the point where the exact score is zero.

A step solves J d = s where J is positive definite (Newton), else I d = s (Fisher scoring);
it is halved until the log-likelihood does not decrease, except a small Newton step near the
maximum (``LOCAL_STEP``), which is taken as it is. The result is used only when it is
clean: converged, with a well-conditioned information at the end (an interior maximum).
Otherwise (a variance at the boundary, log tau^2 -> -inf; a flat ridge; a failed step)
:func:`maximise_newton` runs :func:`.mv_likelihood.maximise` (BFGS) from the start instead,
exactly as without this module.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import OptimizeResult

from timecourse_meta.models.mv_likelihood import (
    Blocks,
    Evaluation,
    Group,
    blocks_of,
    evaluate,
    maximise,
)
from timecourse_meta.models.mv_structures import Structure, dG

__all__ = ["Newton", "hessian_terms", "maximise_newton", "newton_raphson"]

Array = NDArray[np.float64]
STEP_TOL = 1e-10  # converged when the full step is this small (max |delta theta|)
SCORE_TOL = 1e-10  # ... or the score is this small (max |d ll / d theta|)
PRECISION_GTOL = 1e-8  # a step that cannot increase ll still converged if max |score| <= this
MAX_COND = 1e10  # information condition number above this: not an interior maximum
HALVINGS = 30  # step halvings before a step counts as failed
D2_STEP = 1e-5  # central-difference step of d2G
# a Newton step (observed information positive definite) this small is taken without a line
# search: near the maximum the gain, 1/2 score' J^-1 score, is below the resolution of ll
# (at 20 000 studies a step of 5e-10 gains 2e-15 on ll = -28 000), so comparing ll values
# cannot tell better from worse, while the quadratic convergence of Newton's method can
LOCAL_STEP = 1e-4


@dataclass
class Newton:
    """Result of a clean run of :func:`newton_raphson`."""

    theta: Array
    loglik: float
    score: Array  # d ll / d theta at theta
    iterations: int
    evaluations: int


def d2G(structure: Structure, theta: Array) -> Array:
    """d2G / dtheta_j dtheta_k, shape (q, q, T, T): central differences of the exact dG."""
    q = theta.size
    out = np.empty((q, q) + structure.build(theta).shape)
    for k in range(q):
        e = np.zeros(q)
        e[k] = D2_STEP
        out[:, k] = (dG(structure, theta + e) - dG(structure, theta - e)) / (2 * D2_STEP)
    return (out + np.swapaxes(out, 0, 1)) / 2


def _pairs(a: list[Array], b: list[Array], axes: tuple[int, int] | None = None) -> Array:
    """(q, q) matrix of sum(a_j * b_k) (b_k transposed in the block axes if ``axes``)."""
    q = len(a)
    bb = b if axes is None else [np.swapaxes(x, *axes) for x in b]
    return np.array([[float(np.sum(a[j] * bb[k])) for k in range(q)] for j in range(q)])


def _group_terms(g: Group, W: Array, e: Array, dgs: Array, vcov: Array, reml: bool):
    """One cluster size's sums: tr(W V_j W V_k), tr(C F_j' W F_k), Q_j, u_j' W u_k, h_j."""
    q = dgs.shape[0]
    dV = [blocks_of(g, dgs[j]) for j in range(q)]
    WdV = [W @ d for d in dV]
    u = [np.einsum("nij,nj->ni", d, e) for d in dV]  # V_j e
    Wu = [np.einsum("nij,nj->ni", W, x) for x in u]
    out = {
        "t1": _pairs(WdV, WdV, (1, 2)),
        "uWu": _pairs(u, Wu),
        "h": np.stack([np.einsum("nia,ni->a", g.X, x) for x in Wu]),  # X' W u_j
    }
    if reml:
        WX = W @ g.X
        F = [d @ WX for d in dV]  # V_j W X, (n, m, p)
        out["t2"] = _pairs([f @ vcov for f in F], [W @ f for f in F])
        out["Q"] = np.stack([np.einsum("nia,nib->ab", WX, f) for f in F])
    return out


def hessian_terms(
    blocks: Blocks, structure: Structure, theta: Array, ev: Evaluation, reml: bool
) -> tuple[Array, Array, Array]:
    """(score, Fisher information I, observed information J) at ``theta`` (module docstring);
    ``ev`` is ``evaluate(blocks, G(theta), reml, grad=True)``."""
    dgs = dG(structure, theta)
    score = -0.5 * np.einsum("ij,qij->q", ev.A_minus_B, dgs)
    q, p, C = dgs.shape[0], blocks.p, ev.vcov
    tot = {"t1": np.zeros((q, q)), "uWu": np.zeros((q, q)), "h": np.zeros((q, p))}
    if reml:
        tot |= {"t2": np.zeros((q, q)), "Q": np.zeros((q, p, p))}
    for g, W in zip(blocks.groups, ev.W, strict=True):
        r = g.y - np.einsum("nia,a->ni", g.X, ev.beta)
        e = np.einsum("nij,nj->ni", W, r)
        for name, val in _group_terms(g, W, e, dgs, C, reml).items():
            tot[name] += val
    trace = tot["t1"]
    if reml:
        CQ = np.einsum("ab,qbc->qac", C, tot["Q"])
        trace = trace - 2.0 * tot["t2"] + np.einsum("jab,kba->jk", CQ, CQ)
    fisher = 0.25 * (trace + trace.T)
    ai = 0.5 * (tot["uWu"] - tot["h"] @ C @ tot["h"].T)
    second = 0.5 * np.einsum("ij,qrij->qr", ev.A_minus_B, d2G(structure, theta))
    observed = 2.0 * ai - fisher + second
    return score, fisher, (observed + observed.T) / 2


def _solve(info: Array, score: Array) -> Array | None:
    """info^-1 score, or None if info is not positive definite or badly conditioned."""
    if not np.all(np.isfinite(info)):
        return None
    w = np.linalg.eigvalsh(info)
    if w[0] <= 0 or w[-1] / w[0] > MAX_COND:
        return None
    return np.linalg.solve(info, score)


def _local_step(blocks, structure, reml, theta, step):
    """theta + step without a line search (see ``LOCAL_STEP``); None if ll is undefined there."""
    new = theta + step
    cand = evaluate(blocks, structure.build(new).real, reml, grad=True)
    return (new, cand, 1) if cand is not None and np.isfinite(cand.ll) else None


def _line_search(blocks, structure, reml, theta, ev, step):
    """First of theta + step, theta + step/2, ... whose log-likelihood is not lower; returns
    (theta, evaluation, evaluations used) or None after ``HALVINGS`` halvings."""
    t = 1.0
    for n in range(1, HALVINGS + 1):
        new = theta + t * step
        cand = evaluate(blocks, structure.build(new).real, reml, grad=True)
        if cand is not None and np.isfinite(cand.ll) and cand.ll >= ev.ll:
            return new, cand, n
        t /= 2
    return None


def newton_raphson(
    blocks: Blocks, structure: Structure, reml: bool, theta0: Array, maxiter: int = 50
) -> Newton | None:
    """Maximise the (RE)ML log-likelihood from ``theta0`` (Newton, Fisher-scoring steps where
    the observed information is not positive definite).

    Stops when the step or the score is below ``STEP_TOL`` / ``SCORE_TOL``. Returns None (the
    caller falls back to BFGS) if the likelihood is undefined at the start, neither information
    is positive definite and well conditioned, a step cannot increase the log-likelihood
    while max |score| > ``PRECISION_GTOL``, or ``maxiter`` steps do not converge.
    """
    theta = np.asarray(theta0, dtype=float).copy()
    ev = evaluate(blocks, structure.build(theta).real, reml, grad=True)
    if ev is None or not np.isfinite(ev.ll):
        return None
    n_eval = 1
    for it in range(maxiter + 1):
        score, fisher, observed = hessian_terms(blocks, structure, theta, ev, reml)
        step = _solve(observed, score)
        local = step is not None and np.max(np.abs(step)) <= LOCAL_STEP
        step = _solve(fisher, score) if step is None else step
        if step is None:
            return None
        smax = float(np.max(np.abs(score), initial=0.0))
        if np.max(np.abs(step), initial=0.0) <= STEP_TOL or smax <= SCORE_TOL:
            return Newton(theta, float(ev.ll), score, it, n_eval)
        if it == maxiter:
            return None
        found = _local_step(blocks, structure, reml, theta, step) if local else None
        found = found or _line_search(blocks, structure, reml, theta, ev, step)
        if found is None:  # no increase left: at the precision limit if the score is tiny
            ok = smax <= PRECISION_GTOL
            return Newton(theta, float(ev.ll), score, it, n_eval + HALVINGS) if ok else None
        theta, ev, used = found
        n_eval += used
    return None


def maximise_newton(
    blocks: Blocks, structure: Structure, reml: bool, theta0: Array, maxiter: int = 2000
) -> tuple[Array, float, Array, int, OptimizeResult]:
    """:func:`.mv_likelihood.maximise` with Newton-Raphson first; the same return values
    (theta, -ll, gradient of -ll, iterations, result with ``success`` and ``message``).

    A clean Newton run is returned as is; otherwise ``maximise`` (BFGS) runs from ``theta0``
    as if Newton had not been tried, and its iterations are reported.
    """
    res = newton_raphson(blocks, structure, reml, theta0)
    if res is None:
        return maximise(blocks, structure, reml, theta0, maxiter)
    f, g = -res.loglik, -res.score
    opt = OptimizeResult(
        x=res.theta,
        fun=f,
        jac=g,
        nit=res.iterations,
        nfev=res.evaluations,
        success=True,
        message="Newton-Raphson converged",
    )
    return res.theta, f, g, res.iterations, opt
