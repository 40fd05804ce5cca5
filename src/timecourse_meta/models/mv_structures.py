"""Between-study covariance structures G of the multivariate models (metafor ``rma.mv`` struct).

``G`` is the covariance of a study's true effects over the distinct levels of the inner
variable (time points). Each structure maps an unconstrained parameter vector ``theta`` to G and
works for complex ``theta`` (complex-step derivatives, :func:`dG`). Parametrisation as metafor
3.8 (``.con.E`` / ``.ll.rma.mv``): log tau^2, atanh rho for CS/HCS/AR/HAR, a Cholesky factor
for UN, and for CAR (continuous-time autoregressive, ``struct = "CAR"``) log tau^2 and
logit rho with ``G[j, k] = tau2 * rho^|t_j - t_k|`` over the numeric times ``t`` of the levels
(metafor docs ``rma.mv``: "CAR" for "continuous-time autoregressive structure", rho in (0, 1)).

AR/HAR use lags in level positions (0, 1, 2, ... over the observed levels), as metafor.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = ["CATEGORICAL_STRUCTS", "METHODS", "STRUCTS", "Structure", "dG", "make_structure"]

Array = NDArray[np.float64]
STRUCTS = ("CS", "HCS", "AR", "HAR", "UN", "CAR")
# structures over categorical time points, compared by default (fit_timecourse also takes CAR)
CATEGORICAL_STRUCTS = STRUCTS[:5]
METHODS = ("REML", "ML")  # the likelihoods fit_timecourse maximises
_CSTEP = 1e-30  # complex-step size: derivative exact to rounding, no cancellation


@dataclass(frozen=True)
class Structure:
    """Map an unconstrained parameter vector theta to G (works for complex theta)."""

    name: str
    n_par: int
    build: Callable[[np.ndarray], np.ndarray]
    start: Callable[[float], np.ndarray]  # theta from metafor's initial total variance
    unpack: Callable[[np.ndarray], tuple[Array, object]]  # theta -> (tau2, rho)
    rho_fixed: bool = False
    fixed_pairs: NDArray[np.bool_] | None = None
    heteroscedastic: bool = False


def _ar_corr(positions: NDArray[np.int64], r):
    lag = np.abs(positions[:, None] - positions[None, :]).astype(float)
    return np.where(lag == 0, 1.0, np.power(r, lag))


def _expit(x):
    return 1.0 / (1.0 + np.exp(-x))


def _car(times: Array, fixed_rho: float | None) -> Structure:
    """CAR: G = tau2 * rho^|t_j - t_k|; rho estimated (logit scale) or fixed at ``fixed_rho``."""
    lag = np.abs(np.asarray(times, float)[:, None] - np.asarray(times, float)[None, :])
    # rho^lag is evaluated once per distinct lag (the matrix is symmetric: about half the
    # power evaluations, the same values), complex for the complex-step derivative
    ulag, inverse = np.unique(lag, return_inverse=True)
    inverse = inverse.reshape(lag.shape)

    def rho_of(theta):
        return fixed_rho if fixed_rho is not None else _expit(theta[1])

    def corr(r):
        return np.where(ulag == 0, 1.0, np.power(r, ulag))[inverse]

    if fixed_rho is not None:  # a constant: computed once, real and complex
        fixed = {False: corr(fixed_rho + 0.0), True: corr(fixed_rho + 0j)}

        def build(theta):
            return np.exp(theta[0]) * fixed[np.iscomplexobj(theta)]

    else:

        def build(theta):
            return np.exp(theta[0]) * corr(rho_of(theta) + 0 * theta[0])

    nr = 0 if fixed_rho is not None else 1
    return Structure(
        "CAR",
        1 + nr,
        build,
        lambda total: np.r_[np.log(total), [0.0] * nr],  # rho = 0.5 (metafor's start)
        lambda th: (np.array([math.exp(th[0].real)]), float(np.real(rho_of(th)))),
        fixed_rho is not None,
    )


def make_structure(
    struct: str,
    n_levels: int,
    *,
    rho_fixed: bool = False,
    pairs_seen: NDArray[np.bool_] | None = None,
    level_times: Array | None = None,
    fixed_rho: float | None = None,
) -> Structure:
    """Parametrisation of G for one struct over ``n_levels`` observed levels.

    ``rho_fixed``: the correlation is fixed at 0 (one level, or every study has one level).
    ``pairs_seen`` (UN): pairs of levels reported together by at least one study; the others
    have their covariance fixed to 0 as metafor does. ``level_times`` (CAR): numeric time of
    each level; ``fixed_rho`` (CAR): a fixed rho in (0, 1) instead of an estimated one.
    """
    T = n_levels
    if struct == "CAR":
        if level_times is None:
            raise ValueError("CAR needs the numeric time of each level")
        return _car(level_times, 0.0 if rho_fixed and fixed_rho is None else fixed_rho)
    pos = np.arange(T)  # metafor: AR lags over the observed levels of the inner factor
    eye = np.eye(T)
    ones = np.ones((T, T))
    nr = 0 if rho_fixed else 1

    def rho_of(theta):
        return 0.0 if rho_fixed else np.tanh(theta[-1])

    if struct in ("CS", "AR"):

        def build(theta):
            r = rho_of(theta)
            corr = eye + r * (ones - eye) if struct == "CS" else _ar_corr(pos, r)
            return np.exp(theta[0]) * corr

        return Structure(
            struct,
            1 + nr,
            build,
            lambda total: np.r_[np.log(total), [math.atanh(0.5)] * nr],
            lambda th: (np.array([math.exp(th[0])]), float(rho_of(th))),
            rho_fixed,
        )
    if struct in ("HCS", "HAR"):

        def build(theta):
            r = rho_of(theta)
            corr = eye + r * (ones - eye) if struct == "HCS" else _ar_corr(pos, r)
            sd = np.exp(theta[:T] / 2)
            return sd[:, None] * corr * sd[None, :]

        return Structure(
            struct,
            T + nr,
            build,
            lambda total: np.r_[np.full(T, np.log(total / T)), [math.atanh(0.5)] * nr],
            lambda th: (np.exp(th[:T]), float(rho_of(th))),
            rho_fixed,
            heteroscedastic=True,
        )
    if struct == "UN":
        # Cholesky parametrisation (metafor's default for UN): G = L L', diag(L) = exp(theta).
        # Pairs of time points that never occur in the same study have their covariance fixed
        # to 0 (metafor: "Corresponding rho value(s) fixed to 0"); no V_i uses such a pair, so
        # each V_i stays a block of L L' plus S_i and is positive definite.
        tril = np.tril_indices(T, -1)
        seen = np.ones((T, T), dtype=bool) if pairs_seen is None else pairs_seen
        keep = seen & ~np.eye(T, dtype=bool) if not rho_fixed else np.zeros((T, T), dtype=bool)
        mask = np.where(keep, 1.0, 0.0) + eye

        def build(theta):
            L = np.zeros((T, T), dtype=theta.dtype)
            L[np.diag_indices(T)] = np.exp(theta[:T])
            L[tril] = theta[T:]
            return (L @ L.T) * mask

        def start(total):
            g0 = total / T * (eye + 0.5 * (ones - eye))
            L = np.linalg.cholesky(g0)
            return np.r_[np.log(np.diag(L)), L[tril]]

        def unpack(th):
            G = build(th)
            sd = np.sqrt(np.diag(G))
            return np.diag(G).copy(), G / np.outer(sd, sd)

        fixed = ~keep[tril].astype(bool)
        n_free = T + int((~fixed).sum())
        return Structure(struct, n_free, build, start, unpack, rho_fixed, fixed, True)
    raise ValueError(f"struct must be one of {STRUCTS}, got {struct!r}")


def dG(structure: Structure, theta: Array) -> Array:
    """dG/dtheta_j for all j, shape (q, T, T), by complex-step differentiation."""
    q = theta.size
    steps = theta[None, :] + 1j * _CSTEP * np.eye(q)
    return np.stack([structure.build(s).imag / _CSTEP for s in steps])


#: Within-study correlation models of the sampling errors (models.within_cov, metafor vcalc).
WITHIN_KINDS = ("cs", "ar", "car")


def check_within(within: str, rho: float) -> tuple[str, float]:
    """Validate the within-study correlation model; returns (kind, rho) normalised."""
    kind = str(within).lower()
    if kind not in WITHIN_KINDS:
        raise ValueError(f"within must be one of {WITHIN_KINDS}, got {within!r}")
    rho = float(rho)
    if not np.isfinite(rho) or not -1.0 < rho < 1.0:
        raise ValueError(f"within-study correlation rho must lie in (-1, 1), got {rho!r}")
    return kind, rho
