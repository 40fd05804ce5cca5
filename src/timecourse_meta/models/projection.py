"""The weighted residual projection P of a meta-regression, without forming k x k matrices.

All moment and likelihood estimators of tau^2 are written in terms of
``P = W - W X (X'WX)^{-1} X'W`` with ``W = diag(w)`` (Viechtbauer 2005; metafor's ``rma.uni``).
With the thin QR decomposition ``W^{1/2} X = Q R`` and ``U = W^{1/2} Q`` (k x p) we have
``P = W - U U'``, so every trace and quadratic form needed costs O(k p^2) time and O(k p)
memory (no k x k matrix), which keeps very large meta-analyses cheap.

With one column (the intercept-only model) every product is written as an elementwise
product and a numpy sum instead of ``@``: numpy's matmul takes a slow generic loop for k x 1
operands, and BLAS calls on 10^6-long vectors start OpenBLAS threads that stall on a busy
machine. The results are the same up to rounding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]


@dataclass(frozen=True)
class Projection:
    """``P = W - U U'`` for weights ``w`` and design ``X``; see the module docstring."""

    w: Array
    X: Array
    Q: Array
    R: Array
    U: Array

    @classmethod
    def build(cls, w: Array, X: Array) -> Projection:
        sw = np.sqrt(w)
        A = sw[:, None] * X
        if A.shape[1] == 1:
            # One column (e.g. intercept only): Q = a / ||a||, R = ||a||. Same factorisation as
            # LAPACK's up to the sign (which cancels everywhere), without its O(k) copies and
            # call overhead; this keeps a fit at k = 10^6 well under a second.
            norm = float(np.sqrt(np.sum(A[:, 0] * A[:, 0])))
            Q, R = A / norm, np.array([[norm]])
        else:
            Q, R = np.linalg.qr(A, mode="reduced")
        return cls(w=w, X=X, Q=Q, R=R, U=sw[:, None] * Q)

    @property
    def _u(self) -> Array | None:
        """U as a vector when X has one column (then P = W - u u'), else None."""
        return self.U[:, 0] if self.U.shape[1] == 1 else None

    def apply(self, y: Array) -> Array:
        """P y."""
        u = self._u
        if u is not None:
            return self.w * y - u * np.sum(u * y)
        return self.w * y - self.U @ (self.U.T @ y)

    def quad(self, y: Array) -> float:
        """y' P y (the generalised residual sum of squares)."""
        if self._u is not None:
            return float(np.sum(y * self.apply(y)))
        return float(y @ self.apply(y))

    def trace(self) -> float:
        """tr(P)."""
        return float(self.w.sum() - np.sum(self.U * self.U))

    def trace_with(self, d: Array) -> float:
        """tr(P D) for a diagonal D = diag(d)."""
        return float(np.sum(self.w * d) - np.sum(d * np.sum(self.U * self.U, axis=1)))

    def frob(self, a: Array | None = None, b: Array | None = None) -> float:
        """||diag(a)^{1/2} P diag(b)^{1/2}||_F^2, i.e. sum_ij a_i P_ij^2 b_j.

        With a = b = 1 this is tr(PP); with a = b = v it is tr(PVPV); with a = 1, b = v it is
        tr(PPV) (metafor's ``sum(P * P)``, ``sum(PV * t(PV))`` and ``sum(PV * P)``).
        """
        k = self.w.shape[0]
        a = np.ones(k) if a is None else a
        b = np.ones(k) if b is None else b
        row_norm2 = np.sum(self.U * self.U, axis=1)
        u = self._u
        if u is not None:
            uu = u * u
            return float(
                np.sum((self.w**2) * a * b)
                - 2.0 * np.sum(self.w * a * b * row_norm2)
                + np.sum(a * uu) * np.sum(b * uu)
            )
        ua = self.U.T @ (a[:, None] * self.U)
        ub = self.U.T @ (b[:, None] * self.U)
        return float(
            np.sum((self.w**2) * a * b)
            - 2.0 * np.sum(self.w * a * b * row_norm2)
            + np.sum(ua * ub.T)
        )

    def xtwx_inv(self) -> Array:
        """(X'WX)^{-1}."""
        r_inv = np.linalg.inv(self.R)
        return r_inv @ r_inv.T

    def coef(self, y: Array) -> Array:
        """Weighted least-squares coefficients (X'WX)^{-1} X'W y."""
        if self._u is not None:
            return np.array([np.sum(self.Q[:, 0] * (np.sqrt(self.w) * y)) / self.R[0, 0]])
        return np.linalg.solve(self.R, self.Q.T @ (np.sqrt(self.w) * y))

    def hat_diag(self) -> Array:
        """Diagonal of the hat matrix W^{1/2} X (X'WX)^{-1} X' W^{1/2}."""
        return np.sum(self.Q * self.Q, axis=1)
