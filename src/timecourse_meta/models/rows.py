"""m meta-analyses as rows of padded m x K arrays: the one data layout of the engine.

A single fit is m = 1 without padding; the batch engine stacks many. Padding positions hold
y = 0 and v = +inf, so every weight 1 / (v + tau^2) is exactly 0 there and sums over a row
need no mask; ``v0`` (v with 0 on padding) and ``mask`` serve the few sums over v itself.
``X`` is None for the intercept-only model (any m) or a full-rank design (K x p, m = 1).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from timecourse_meta.models.projection import OneColumn, QRRows

Array = NDArray[np.float64]
IntArray = NDArray[np.int64]


def which(cond: NDArray[np.bool_]) -> list[int]:
    """Indices where ``cond`` is True (np.flatnonzero), cheaply for the one-row case."""
    if cond.size == 1:
        return [0] if cond[0] else []
    return np.flatnonzero(cond).tolist()


@dataclass(frozen=True)
class Rows:
    """Studies of m meta-analyses: y, v (inf on padding), v0 (0 on padding), mask, k, X."""

    y: Array
    v: Array
    v0: Array
    mask: Array
    k: Array  # studies per row, as float
    X: Array | None = None
    full: bool = False  # no padding (every row has all K studies)
    # projections that depend only on v and X (shared by rows with the same v, e.g. centred y)
    _cache: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def p(self) -> int:
        return 1 if self.X is None else self.X.shape[1]

    @property
    def m(self) -> int:
        return self.y.shape[0]

    @classmethod
    def single(cls, y: Array, v: Array, X: Array | None = None) -> Rows:
        """One meta-analysis without padding (y, v 1-D); X None or all ones: the intercept."""
        if X is not None and X.shape[1] == 1 and np.all(X[:, 0] == 1.0):
            X = None
        k = np.array([float(y.size)])
        return cls(y[None, :], v[None, :], v[None, :], np.ones((1, y.size)), k, X, True)

    @classmethod
    def padded(cls, y: Array, v: Array, present: NDArray[np.bool_]) -> Rows:
        """Intercept-only rows from m x K arrays; ``present`` marks the studies (order kept)."""
        order = np.argsort(~present, axis=1, kind="stable")
        p = np.take_along_axis(present, order, axis=1)
        ys = np.where(p, np.take_along_axis(y, order, axis=1), 0.0)
        v0 = np.where(p, np.take_along_axis(v, order, axis=1), 0.0)
        vs = np.where(p, v0, np.inf)
        return cls(ys, vs, v0, p.astype(float), p.sum(axis=1).astype(float))

    def take(self, idx: IntArray) -> Rows:
        m = self.m
        if m == 1 and idx.size == 1:
            return self  # the one row (the single fit)
        if idx.size == m and (
            m == 0
            or (idx[0] == 0 and idx[-1] == m - 1 and (m < 3 or bool(np.all(np.diff(idx) > 0))))
        ):
            return self  # idx is arange(m): all rows, in order
        return Rows(
            self.y[idx], self.v[idx], self.v0[idx], self.mask[idx], self.k[idx], self.X, self.full
        )

    def with_y(self, y: Array) -> Rows:
        return Rows(y, self.v, self.v0, self.mask, self.k, self.X, self.full, self._cache)

    def fe_proj(self) -> OneColumn | QRRows:
        """P at tau^2 = 0 (weights 1 / v), computed once."""
        if "fe" not in self._cache:
            self._cache["fe"] = self.proj(1.0 / self.v)
        return self._cache["fe"]

    def ols_proj(self) -> OneColumn | QRRows:
        """P of the unweighted (OLS) fit, computed once."""
        if "ols" not in self._cache:
            self._cache["ols"] = self.proj(self.mask)
        return self._cache["ols"]

    def weights(self, tau2: Array | float) -> Array:
        """w = 1 / (v + tau^2), 0 on padding; tau2 a scalar or one value per row."""
        if isinstance(tau2, float):
            return 1.0 / (self.v + tau2)
        t = np.asarray(tau2, dtype=float)
        return 1.0 / (self.v + (t[:, None] if t.ndim else t))

    def proj(self, w: Array) -> OneColumn | QRRows:
        """The projection P for weights w (see projection.py)."""
        if self.X is None:
            return OneColumn(w)
        if self.X.shape[1] == 1:
            return OneColumn(w, self.X[:, 0][None, :])
        return QRRows(w, self.X)

    def sum_log_vt(self, tau2: Array) -> Array:
        """sum_i log(v_i + tau^2) over the studies of each row (tau2 one value per row)."""
        if self.full:
            return np.log(self.v0 + tau2[:, None]).sum(axis=1)
        return np.log(np.where(self.mask > 0, self.v0 + tau2[:, None], 1.0)).sum(axis=1)

    def ols_weights(self) -> Array:
        """Unit weights on studies (the OLS fit of metafor's HE estimator)."""
        return self.mask

    def centred(self) -> Rows:
        """y - mean(y) per row (metafor centres y before estimating tau^2)."""
        mean = self.y.sum(axis=1) / self.k
        return self.with_y((self.y - mean[:, None]) * self.mask)

    def var_y(self) -> Array:
        """np.var(y) per row (ddof 0)."""
        mean = self.y.sum(axis=1) / self.k
        d = (self.y - mean[:, None]) * self.mask
        return (d * d).sum(axis=1) / self.k

    def vratio(self) -> Array:
        """max(v) / min(v) per row."""
        return self.v0.max(axis=1) / self.v.min(axis=1)  # v is +inf on padding
