"""Bases for an effect that changes smoothly with (log) time.

* ``spline``: natural (restricted) cubic spline in ``x = log(hours)``, the B-spline
  parametrisation of R's ``splines::ns(x, knots, Boundary.knots, intercept = FALSE)``
  (R Core Team, ``splines`` package; Hastie 1992, Statistical Models in S, ch. 7): cubic
  B-splines on the knots, projected onto the null space of the second derivatives at the two
  boundary knots (QR of the constraint matrix, columns 3.. of Q), linear beyond the boundary
  knots. Checked against ``ns()`` bases stored in tests/fixtures/metafor/time_response_golden.json.
* ``piecewise``: linear in log time with slope changes at the knots:
  ``[x, (x - k_1)_+, ..., (x - k_K)_+]``.

The model's design is ``[1, basis(x)]``. Default interior knots: quantiles of the distinct
reported log times (``n_knots`` equally spaced probabilities, R quantile type 7) -- distinct
times, not rows, so that a time reported by many studies (24 h) does not absorb every knot.
Boundary knots: the range of the reported log times.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from timecourse_meta.errors import TimecourseMetaError

__all__ = ["BASES", "TimeBasis", "default_knots", "make_basis", "ns_basis"]

Array = NDArray[np.float64]
BASES = ("spline", "piecewise")


def _bspline_eval(aknots: Array, x: Array, nu: int = 0) -> Array:
    """All cubic B-spline basis functions on knots ``aknots`` (or their nu-th derivative) at x."""
    from scipy.interpolate import BSpline  # on use: Snakemake's parse reads only BASES

    nb = aknots.size - 4
    spl = BSpline(aknots, np.eye(nb), 3, extrapolate=True)
    return np.atleast_2d((spl.derivative(nu) if nu else spl)(x))


def ns_basis(x: ArrayLike, knots: ArrayLike, boundary: Sequence[float]) -> Array:
    """R ``splines::ns(x, knots = knots, Boundary.knots = boundary)`` (intercept = FALSE).

    Returns an (n, len(knots) + 1) matrix; linear extrapolation beyond the boundary knots, as
    ``ns`` (value and slope of the basis at the boundary knot).
    """
    x = np.asarray(x, dtype=float)
    knots = np.sort(np.asarray(knots, dtype=float))
    b0, b1 = float(boundary[0]), float(boundary[1])
    if not b0 < b1 or np.any(knots <= b0) or np.any(knots >= b1):
        raise TimecourseMetaError("spline knots must lie strictly inside the boundary knots")
    aknots = np.r_[[b0] * 4, knots, [b1] * 4]
    const = _bspline_eval(aknots, np.array([b0, b1]), 2)[:, 1:]  # (2, nb-1), intercept dropped
    q, _ = np.linalg.qr(const.T, mode="complete")
    proj = q[:, 2:]

    def inside(z):
        return _bspline_eval(aknots, z)[:, 1:] @ proj

    out = np.empty((x.size, proj.shape[1]))
    mid = (x >= b0) & (x <= b1)
    if mid.any():
        out[mid] = inside(x[mid])
    for edge, sel in ((b0, x < b0), (b1, x > b1)):
        if sel.any():
            val = _bspline_eval(aknots, np.array([edge]))[:, 1:] @ proj
            slope = _bspline_eval(aknots, np.array([edge]), 1)[:, 1:] @ proj
            out[sel] = val + (x[sel] - edge)[:, None] * slope
    return out


def default_knots(log_times: ArrayLike, n_knots: int) -> Array:
    """Interior knots at equally spaced quantiles of the distinct log times (type 7)."""
    u = np.unique(np.asarray(log_times, dtype=float))
    if n_knots < 1:
        return np.array([])
    if u.size < n_knots + 2:
        raise TimecourseMetaError(
            f"{u.size} distinct reported times: too few for {n_knots} interior knots "
            "(need n_knots + 2)"
        )
    probs = np.arange(1, n_knots + 1) / (n_knots + 1)
    return np.quantile(u, probs)


@dataclass(frozen=True)
class TimeBasis:
    """A fixed basis in log hours: ``design(hours)`` gives ``[1, basis(log hours)]``."""

    kind: str
    knots: Array  # interior knots, log hours
    boundary: tuple[float, float]  # log hours

    @property
    def names(self) -> list[str]:
        n = self.design(np.exp(np.array([self.boundary[0]]))).shape[1] - 1
        return ["intrcpt"] + [f"{self.kind}{j + 1}" for j in range(n)]

    def design(self, hours: ArrayLike) -> Array:
        x = np.log(np.asarray(hours, dtype=float))
        if self.kind == "spline":
            B = ns_basis(x, self.knots, self.boundary)
        else:
            B = np.column_stack([x] + [np.maximum(x - k, 0.0) for k in self.knots])
        return np.column_stack([np.ones(x.size), B])

    def describe(self) -> str:
        kn = ", ".join(f"{np.exp(k):.3g}" for k in self.knots) or "none"
        b = ", ".join(f"{np.exp(k):.3g}" for k in self.boundary)
        what = "natural cubic spline" if self.kind == "spline" else "piecewise linear"
        return f"{what} in log hours; knots at {kn} h; boundary {b} h"


def make_basis(
    hours: ArrayLike,
    kind: str = "spline",
    knots_hours: Sequence[float] | None = None,
    n_knots: int = 2,
) -> TimeBasis:
    """Basis for the reported times ``hours``: knots given in hours, or default quantiles."""
    if kind not in BASES:
        raise TimecourseMetaError(f"basis must be one of {BASES}, got {kind!r}")
    h = np.asarray(hours, dtype=float)
    if h.size == 0 or np.any(~np.isfinite(h)) or np.any(h <= 0):
        raise TimecourseMetaError("reported times must be positive numbers of hours")
    x = np.log(h)
    boundary = (float(x.min()), float(x.max()))
    if knots_hours is None:
        knots = default_knots(x, n_knots)
    else:
        knots = np.sort(np.log(np.asarray(knots_hours, dtype=float)))
        if np.any(knots <= boundary[0]) or np.any(knots >= boundary[1]):
            raise TimecourseMetaError(
                f"knots must lie strictly between the earliest and latest reported times "
                f"({h.min():g} and {h.max():g} h)"
            )
    return TimeBasis(kind, knots, boundary)
