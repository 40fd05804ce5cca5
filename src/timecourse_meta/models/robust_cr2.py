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
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import stats

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

    def contrast_df(self, c: Array) -> float:  # pragma: no cover - set by cr2()
        raise NotImplementedError


def cr2(
    X: Array, y: Array, M: Array, beta: Array, clusters: list[NDArray[np.int64]]
) -> tuple[RobustResult, object]:
    """CR2 covariance, per-coefficient Satterthwaite df, and a df function for contrasts.

    ``X`` (N, p), ``y`` (N,), ``M`` (N, N) block-diagonal marginal covariance, ``clusters``:
    row indices of each cluster. Returns (result, df_of(c)) where ``df_of(c)`` gives the
    Satterthwaite df of contrast ``c`` (a p-vector).
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

    def df_of(c: Array) -> float:
        P = np.stack(
            [IH[rows].T @ (awx @ c) for rows, awx in zip(clusters, AWX, strict=True)]
        )  # (J, N)
        PM = P @ M @ P.T
        return float(np.trace(PM) ** 2 / np.sum(PM**2))

    se = np.sqrt(np.diag(V))
    df = np.array([df_of(np.eye(p)[j]) for j in range(p)])
    t = beta / se
    res = RobustResult(V, se, df, t, 2 * stats.t.sf(np.abs(t), df), len(clusters))
    return res, df_of
