"""The weighted residual projection P of a meta-regression, without forming k x k matrices.

Two forms, with one interface over rows (every method returns one value per row, shape (m,)):

* :class:`OneColumn` -- one-column designs (the intercept-only model, for m meta-analyses at
  once with padding, or a single slope without intercept). Closed forms written as sums of
  non-negative terms, so that they stay exact when the weights span many orders of magnitude.
* :class:`QRRows` -- any full-rank design for one meta-analysis (m = 1), through the thin QR
  decomposition below (:class:`Projection`).

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


_VECDOT_MAX = 256  # np.vecdot is the cheapest call on short rows but very slow on long ones


def row_dot(a: Array, b: Array) -> Array:
    """Row-wise dot product sum_j a_ij b_ij of two m x K arrays."""
    if a.shape[-1] <= _VECDOT_MAX:
        return np.vecdot(a, b)
    return np.einsum("ij,ij->i", a, b if b.dtype == a.dtype else b.astype(a.dtype))


def _others(s: Array, total: Array | None = None) -> Array:
    """sum_{j != i} s_j for every i of every row (s >= 0), without cancellation.

    total - s_i loses at most a bit while s_i is at most half the row total. At most one term
    per row exceeds half; for it the sum of the others is added up directly (a sum of
    non-negative terms, full relative precision) instead of total - s_i, which would lose all
    digits when weights span many orders of magnitude.
    """
    tot = (s.sum(axis=1) if total is None else total)[:, None]
    small = s <= 0.5 * tot
    if small.all():  # the usual case: no term dominates its row
        return tot - s
    rest = row_dot(s, small)[:, None]  # the sum of the terms that do not dominate
    return np.where(small, tot - s, rest)


class OneColumn:
    """P = W - (w x)(w x)' / (x'Wx) for each row of a one-column design; see the module docstring.

    ``w`` (m x K) is 0 on padding; ``x`` is the design column per row (None: the intercept,
    x = 1). With u = w x, c = x'Wx and S_-i = sum_{j != i} w_j x_j^2 the entries are
    P_ii = w_i S_-i / c and P_ij = -u_i u_j / c (i != j), so

    * tr(P)      = sum_i w_i S_-i / c,
    * tr(P D)    = sum_i d_i w_i S_-i / c,
    * sum_ij a_i P_ij^2 b_j = [sum_i a_i b_i w_i^2 S_-i^2 + sum_i a_i u_i^2 B_-i] / c^2 with
      B_-i = sum_{j != i} b_j u_j^2,

    all sums of non-negative terms (no cancellation for a, b, d >= 0). The textbook forms
    W1 - W2/W1 and W2 - 2 W3/W1 + (W2/W1)^2 subtract near-equal numbers once one weight
    dominates (variance ratios >= 1e7) and can even come out exactly 0 (Viechtbauer 2005 for P).
    """

    def __init__(self, w: Array, x: Array | None = None) -> None:
        self.w = w
        self.x = x
        self.u = w if x is None else w * x
        self.s = self.u if x is None else self.u * x
        self.c = self.s.sum(axis=1)
        self._s_others: Array | None = None

    @property
    def s_others(self) -> Array:
        if self._s_others is None:
            self._s_others = _others(self.s, self.c)
        return self._s_others

    def coef(self, y: Array) -> Array:
        """WLS coefficient per row, shape (m, 1)."""
        return (row_dot(self.u, y) / self.c)[:, None]

    def resid(self, y: Array) -> Array:
        b = row_dot(self.u, y) / self.c
        return y - (b[:, None] if self.x is None else b[:, None] * self.x)

    def coef_resid(self, y: Array) -> tuple[Array, Array]:
        """(:meth:`coef`, :meth:`resid`) with one weighted sum."""
        b = (row_dot(self.u, y) / self.c)[:, None]
        return b, y - (b if self.x is None else b * self.x)

    def apply(self, y: Array) -> Array:
        """P y = W (y - x b)."""
        return self.w * self.resid(y)

    def quad(self, y: Array) -> Array:
        """y' P y = sum w (y - x b)^2."""
        r = self.resid(y)
        return row_dot(self.w * r, r)

    def trace(self) -> Array:
        return row_dot(self.w, self.s_others) / self.c

    def trace_with(self, d: Array) -> Array:
        return row_dot(d * self.w, self.s_others) / self.c

    def frob(self, a: Array | None = None, b: Array | None = None) -> Array:
        """sum_ij a_i P_ij^2 b_j (a = b = None: tr(PP))."""
        ws = self.w * self.s_others
        diag = ws * ws if a is None else a * ws * ws
        if b is not None:
            diag = diag * b
        u2 = self.u * self.u
        bu2 = u2 if b is None else b * u2
        off = u2 * _others(bu2) if a is None else a * u2 * _others(bu2)
        return (diag + off).sum(axis=1) / (self.c * self.c)

    def xtwx_inv(self) -> Array:
        return (1.0 / self.c)[:, None, None]

    def logdet(self) -> Array:
        """log det(X'WX) per row."""
        return np.log(self.c)

    def hat_diag(self) -> Array:
        return self.s / self.c[:, None]


class QRRows:
    """:class:`Projection` of one meta-analysis (m = 1) behind the row interface."""

    def __init__(self, w: Array, X: Array) -> None:
        self.p = Projection.build(w[0], X)

    def coef(self, y: Array) -> Array:
        return self.p.coef(y[0])[None, :]

    def resid(self, y: Array) -> Array:
        return (y[0] - self.p.X @ self.p.coef(y[0]))[None, :]

    def coef_resid(self, y: Array) -> tuple[Array, Array]:
        b = self.p.coef(y[0])
        return b[None, :], (y[0] - self.p.X @ b)[None, :]

    def apply(self, y: Array) -> Array:
        return self.p.apply(y[0])[None, :]

    def quad(self, y: Array) -> Array:
        return np.array([self.p.quad(y[0])])

    def trace(self) -> Array:
        return np.array([self.p.trace()])

    def trace_with(self, d: Array) -> Array:
        return np.array([self.p.trace_with(d[0])])

    def frob(self, a: Array | None = None, b: Array | None = None) -> Array:
        return np.array([self.p.frob(None if a is None else a[0], None if b is None else b[0])])

    def xtwx_inv(self) -> Array:
        return self.p.xtwx_inv()[None, :, :]

    def logdet(self) -> Array:
        return np.array([2.0 * float(np.sum(np.log(np.abs(np.diag(self.p.R)))))])

    def hat_diag(self) -> Array:
        return self.p.hat_diag()[None, :]
