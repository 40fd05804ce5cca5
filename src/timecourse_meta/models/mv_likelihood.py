"""(RE)ML likelihood, gradient and optimiser shared by the multivariate models (rma.mv).

Model (Viechtbauer 2010, J Stat Softw 36(3); metafor 3.8 ``rma.mv``), for cluster i:

    y_i = X_i beta + Z_i u_i + e_i,   u_i ~ N(0, G),   e_i ~ N(0, S_i)

``Z_i`` selects the levels (time points) of the cluster's rows; a row-pair mask can set the
random-effect covariance of two rows of the same cluster to 0 (rows of different random-effect
units, e.g. two dose arms of one trial whose sampling errors are correlated through the shared
control). Marginal covariance ``M_i = S_i + (Z_i G Z_i') * mask_i``. Log-likelihoods with
metafor's constants (``.ll.rma.mv``):

    ll_ML   = -k/2 log(2 pi) - 1/2 log|M| - 1/2 RSS
    ll_REML = -(k-p)/2 log(2 pi) + 1/2 log|X'X| - 1/2 log|M| - 1/2 log|X'M^-1 X| - 1/2 RSS

with RSS = (y - X b)' M^-1 (y - X b). Analytic gradient: d ll / d theta_j = -1/2 <A - B, dG_j>
with A = sum_i Z_i' (P_ii * mask_i) Z_i (W_ii for ML), B = sum_i Z_i' (e_i e_i' * mask_i) Z_i,
e = P y, P_ii = W_i - W_i X_i (X'WX)^-1 X_i' W_i (Harville 1977, JASA 72:320-338).
Clusters of equal size are stacked and processed together (batched Cholesky).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy import optimize

from timecourse_meta.errors import TimecourseMetaError
from timecourse_meta.models.mv_structures import Structure, dG

__all__ = ["Blocks", "Evaluation", "evaluate", "initial_total", "make_blocks", "maximise"]

Array = NDArray[np.float64]
GTOL = 1e-5  # gradient tolerance (max |d ll / d theta|) for declaring convergence


@dataclass(frozen=True)
class Group:
    """Clusters with m rows each, stacked: n clusters."""

    rows: NDArray[np.int64]  # (n, m) row indices into the input order
    idx: NDArray[np.int64]  # (n, m) level of each row
    y: Array  # (n, m)
    X: Array  # (n, m, p)
    S: Array  # (n, m, m) within-cluster sampling covariance
    mask: Array | None  # (n, m, m) 1 if the two rows share a random-effect unit, else 0


@dataclass(frozen=True)
class Blocks:
    groups: list[Group]
    n_levels: int
    k: int  # rows
    p: int  # fixed effects
    n_clusters: int
    logdet_xtx: float


def make_blocks(
    cluster: Sequence,
    level: NDArray[np.int64],
    y: Array,
    X: Array,
    n_levels: int,
    s_block: Callable[[NDArray[np.int64]], Array],
    mask_block: Callable[[NDArray[np.int64]], Array] | None = None,
    *,
    stacked: bool = False,
) -> Blocks:
    """Group rows by cluster (order of first appearance, rows in input order within a cluster).

    ``s_block(rows)`` returns the within-cluster sampling covariance of those rows;
    ``mask_block(rows)`` (optional) the 0/1 random-effect sharing mask. ``stacked``:
    ``s_block`` takes the (n, m) rows of all clusters of one size at once and returns the
    (n, m, m) stack (one call per cluster size instead of one per cluster).
    """
    codes = pd.factorize(pd.Series(np.asarray(cluster, dtype=object)), sort=False)[0]
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    order = np.argsort(codes, kind="stable")
    starts = np.flatnonzero(np.r_[True, codes[order][1:] != codes[order][:-1]])
    sizes = np.diff(np.r_[starts, order.size])
    groups = []
    for m in np.unique(sizes).tolist():  # clusters of one size, in order of first appearance
        rows = order[starts[sizes == m][:, None] + np.arange(m)]
        S = s_block(rows) if stacked else np.stack([s_block(r) for r in rows])
        mask = None if mask_block is None else np.stack([mask_block(r) for r in rows])
        groups.append(Group(rows, level[rows], y[rows], X[rows], S, mask))
    sign, logdet = np.linalg.slogdet(X.T @ X)
    if sign <= 0:
        raise TimecourseMetaError("the fixed-effects design matrix X is rank deficient")
    return Blocks(groups, n_levels, y.size, X.shape[1], len(starts), float(logdet))


@dataclass
class Evaluation:
    ll: float
    beta: Array
    vcov: Array
    rss: float
    logdet_v: float
    A_minus_B: Array | None
    W: list[Array]  # per group, (n, m, m) inverse marginal covariance


def blocks_of(g: Group, G: Array) -> Array:
    """Each cluster's (n, m, m) block of Z G Z' (times the row-pair mask)."""
    Gb = G[g.idx[:, :, None], g.idx[:, None, :]]
    return Gb if g.mask is None else Gb * g.mask


def evaluate(blocks: Blocks, G: Array, reml: bool, grad: bool) -> Evaluation | None:
    """Log-likelihood (metafor constants) at G; None if some M_i is not positive definite."""
    p, T = blocks.p, blocks.n_levels
    XtWX = np.zeros((p, p))
    XtWy = np.zeros(p)
    logdet_v = 0.0
    Ws = []
    for g in blocks.groups:
        V = g.S + blocks_of(g, G)
        try:
            C = np.linalg.cholesky(V)
        except np.linalg.LinAlgError:
            return None
        logdet_v += 2.0 * np.log(np.diagonal(C, axis1=1, axis2=2)).sum()
        eye = np.broadcast_to(np.eye(V.shape[1]), V.shape)
        Cinv = np.linalg.solve(C, eye)
        W = np.swapaxes(Cinv, 1, 2) @ Cinv
        Ws.append(W)
        WX = W @ g.X
        XtWX += np.einsum("nia,nib->ab", g.X, WX)
        XtWy += np.einsum("nia,ni->a", WX, g.y)
    try:
        cx = np.linalg.cholesky(XtWX)
    except np.linalg.LinAlgError:
        return None
    vcov = np.linalg.inv(XtWX)
    vcov = (vcov + vcov.T) / 2
    beta = vcov @ XtWy
    rss = 0.0
    A = np.zeros((T, T))
    for g, W in zip(blocks.groups, Ws, strict=True):
        r = g.y - np.einsum("nia,a->ni", g.X, beta)
        e = np.einsum("nij,nj->ni", W, r)  # W_i (y_i - X_i b)
        rss += float(np.einsum("ni,ni->", r, e))
        if grad:
            P = W
            if reml:  # P_ii = W_i - W_i X_i vcov X_i' W_i
                WX = W @ g.X
                P = W - np.einsum("nia,ab,njb->nij", WX, vcov, WX)
            D = P - e[:, :, None] * e[:, None, :]
            if g.mask is not None:
                D = D * g.mask
            np.add.at(A, (g.idx[:, :, None], g.idx[:, None, :]), D)
    k = blocks.k
    if reml:
        logdet_xwx = 2.0 * float(np.log(np.diag(cx)).sum())
        ll = (
            -0.5 * (k - p) * math.log(2 * math.pi)
            + 0.5 * blocks.logdet_xtx
            - 0.5 * logdet_v
            - 0.5 * logdet_xwx
            - 0.5 * rss
        )
    else:
        ll = -0.5 * k * math.log(2 * math.pi) - 0.5 * logdet_v - 0.5 * rss
    return Evaluation(ll, beta, vcov, rss, logdet_v, A if grad else None, Ws)


def within_only(blocks: Blocks) -> Evaluation:
    """The fit with G = 0 (V = S): QE = its RSS, log|S| = its logdet_v (metafor ll.QE)."""
    ev = evaluate(blocks, np.zeros((blocks.n_levels, blocks.n_levels)), reml=False, grad=False)
    if ev is None:
        raise TimecourseMetaError("within-study covariance matrix is not positive definite")
    return ev


def initial_total(blocks: Blocks, n_tau2: int) -> float:
    """metafor's starting value: max(0.001 * n_tau2, var(y - X b_FE) - 1 / mean(1 / vi))."""
    ev = within_only(blocks)
    resid = np.concatenate(
        [(g.y - np.einsum("nia,a->ni", g.X, ev.beta)).ravel() for g in blocks.groups]
    )
    vi = np.concatenate([np.diagonal(g.S, axis1=1, axis2=2).ravel() for g in blocks.groups])
    return max(0.001 * n_tau2, float(np.var(resid, ddof=1)) - 1.0 / float(np.mean(1.0 / vi)))


def maximise(
    blocks: Blocks,
    structure: Structure,
    reml: bool,
    theta0: Array,
    maxiter: int = 2000,
):
    """Maximise the (RE)ML log-likelihood over theta.

    BFGS with the analytic gradient from ``theta0``; if that ends with max |gradient| above
    ``GTOL`` (a flat or curved ridge: BFGS can stop early, e.g. HCS with five time points),
    polish from there with L-BFGS-B (kept unless its log-likelihood is lower), and only if the
    gradient is still above ``GTOL`` search with Nelder-Mead + BFGS, keeping the highest
    log-likelihood. Nelder-Mead last: at 10^3 studies its up to 40 000 evaluations take
    minutes, and BFGS stopping just above ``GTOL`` ("precision loss") is a matter of rounding
    that differs between CPUs. Returns (theta, -ll, gradient of -ll, iterations, scipy result).
    """
    big = 1e100

    def negll(theta: Array) -> tuple[float, Array]:
        G = structure.build(theta)
        ev = evaluate(blocks, G, reml, grad=True)
        if ev is None or not np.isfinite(ev.ll):
            return big, np.zeros_like(theta)
        g = -0.5 * np.einsum("ij,qij->q", ev.A_minus_B, dG(structure, theta))
        return -ev.ll, -g

    opts = {"gtol": 1e-8, "maxiter": maxiter}
    best = optimize.minimize(negll, theta0, jac=True, method="BFGS", options=opts)
    nit = int(best.nit)
    f, g = negll(best.x)
    if np.max(np.abs(g), initial=0.0) > GTOL:
        polished = optimize.minimize(
            negll, best.x, jac=True, method="L-BFGS-B", options={"maxiter": maxiter}
        )
        nit += int(polished.nit)
        if polished.fun <= best.fun:
            best = polished
            f, g = negll(best.x)
    if np.max(np.abs(g), initial=0.0) > GTOL:  # still on the ridge: derivative-free search
        nm = optimize.minimize(
            lambda th: negll(th)[0],
            best.x,
            method="Nelder-Mead",
            options={"maxiter": 20 * maxiter, "xatol": 1e-10, "fatol": 1e-14},
        )
        res = optimize.minimize(negll, nm.x, jac=True, method="BFGS", options=opts)
        nit += int(res.nit)
        if res.fun < best.fun:
            best = res
            f, g = negll(best.x)
    return best.x, f, g, nit, best
