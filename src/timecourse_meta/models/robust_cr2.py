"""Cluster-robust (sandwich) inference for the multivariate models: CR2 with Satterthwaite df.

As ``metafor::robust(fit, cluster, clubSandwich = TRUE)`` (clubSandwich 0.5.8; Pustejovsky &
Tipton 2018, J Bus Econ Stat 36:672-683; Tipton 2015, Psychol Methods 20:375-393), with the
fitted marginal covariance ``M`` as working model and target:

    W = M^-1,  B = (X'WX)^-1,  e = y - X b
    A_j = U_j' [U_j (M_j - X_j B X_j') U_j']^(-1/2) U_j      (M_j = U_j'U_j, upper Cholesky)
    V_CR2 = B (sum_j X_j' W_j A_j e_j e_j' A_j W_j X_j) B

Satterthwaite degrees of freedom for a contrast c: with ``p_j = (I - H)_{j.}' A_j W_j X_j B c``
(H = X B X' W), ``df = (sum_j p_j' M p_j)^2 / sum_{i,j} (p_i' M p_j)^2`` (the estimator is a
quadratic form in y; df = 2 E^2 / Var under the working model).

Joint test of ``C b = 0`` (q rows): clubSandwich's HTZ test (Tipton & Pustejovsky 2015, J Educ
Behav Stat 40:604-634): ``P[s,t,i,j] = p_is' M p_jt``, ``Omega = sum_j P[., ., j, j]``,
``B = Omega^(-1/2) P Omega^(-1/2)``, ``nu = q (q + 1) / sum_{s,t} sum_{i,j}
(B[s,t,i,j] B[t,s,i,j] + B[s,s,i,j] B[t,t,i,j])``, Hotelling T^2 approximation
``F = (nu - q + 1) / (nu q) * Q`` on (q, nu - q + 1) df, ``Q = (Cb)' (C V_CR2 C')^-1 (Cb)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from timecourse_meta.distributions import f_sf, t_sf

__all__ = ["RobustResult", "cr2"]

Array = NDArray[np.float64]


def _inv_sqrt_psd(A: Array) -> Array:
    """Symmetric (pseudo-)inverse square root; eigenvalues below 1e-12 * max treated as 0."""
    w, Q = np.linalg.eigh((A + A.T) / 2)
    keep = w > 1e-12 * max(float(w.max()), 0.0)
    d = np.zeros_like(w)
    d[keep] = 1.0 / np.sqrt(w[keep])
    return (Q * d) @ Q.T


@dataclass(frozen=True)
class RobustResult:
    vcov: Array
    se: Array
    df: Array  # Satterthwaite, one per coefficient
    tval: Array
    pval: Array
    n_clusters: int


def cr2(
    X: Array, y: Array, M: Array, beta: Array, clusters: list[NDArray[np.int64]]
) -> tuple[RobustResult, object, object]:
    """CR2 covariance, per-coefficient Satterthwaite df, a df function for contrasts and the
    HTZ test function.

    ``X`` (N, p), ``y`` (N,), ``M`` (N, N) block-diagonal marginal covariance, ``clusters``:
    row indices of each cluster. Returns (result, df_of(c)) where ``df_of(c)`` gives the
    Satterthwaite df of contrast ``c`` (a p-vector) and ``htz(C)`` the HTZ test of C b = 0.
    """
    N, p = X.shape
    W = np.zeros_like(M)
    for rows in clusters:
        ix = np.ix_(rows, rows)
        W[ix] = np.linalg.inv(M[ix])
    B = np.linalg.inv(X.T @ W @ X)
    e = y - X @ beta
    H = X @ B @ X.T @ W
    IH = np.eye(N) - H
    meat = np.zeros((p, p))
    AWX = []  # A_j W_j X_j B for each cluster
    for rows in clusters:
        ix = np.ix_(rows, rows)
        Mj = M[ix]
        U = np.linalg.cholesky(Mj).T
        Xj = X[rows]
        inner = U @ (Mj - Xj @ B @ Xj.T) @ U.T
        Aj = U.T @ _inv_sqrt_psd(inner) @ U
        g = Xj.T @ W[ix] @ Aj @ e[rows]
        meat += np.outer(g, g)
        AWX.append(Aj @ W[ix] @ Xj @ B)
    V = B @ meat @ B
    V = (V + V.T) / 2

    def pvecs(c: Array) -> Array:  # (J, N): p_j for contrast c
        return np.stack([IH[rows].T @ (awx @ c) for rows, awx in zip(clusters, AWX, strict=True)])

    def df_of(c: Array) -> float:
        P = pvecs(c)
        PM = P @ M @ P.T
        return float(np.trace(PM) ** 2 / np.sum(PM**2))

    def htz(C: Array) -> dict[str, float]:
        C = np.atleast_2d(C)
        q = C.shape[0]
        pv = np.stack([pvecs(c) for c in C])  # (q, J, N)
        P = np.einsum("sin,nm,tjm->stij", pv, M, pv)
        Omega = np.einsum("stjj->st", P)
        w, Q_ = np.linalg.eigh(Omega)
        ns = (Q_ / np.sqrt(w)) @ Q_.T
        Bq = np.einsum("as,stij,tb->abij", ns, P, ns)
        var = np.einsum("stij,tsij->st", Bq, Bq) + np.einsum("ssij,ttij->st", Bq, Bq)
        nu = q * (q + 1) / float(var.sum())
        cb = C @ beta
        Qstat = float(cb @ np.linalg.solve(C @ V @ C.T, cb))
        F = (nu - q + 1) / (nu * q) * Qstat
        df2 = nu - q + 1
        return {"F": F, "df1": float(q), "df2": df2, "pval": float(f_sf(F, q, df2))}

    se = np.sqrt(np.diag(V))
    df = np.array([df_of(np.eye(p)[j]) for j in range(p)])
    t = beta / se
    res = RobustResult(V, se, df, t, 2 * t_sf(np.abs(t), df), len(clusters))
    return res, df_of, htz
