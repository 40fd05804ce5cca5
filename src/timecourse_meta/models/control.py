"""Stopping rules of the iterative steps, named after metafor's ``control`` lists.

metafor 3.8.1 takes ``rma(..., control = list(threshold, tol, maxiter, tau2.max))`` for the fit
and ``confint(res, control = list(tol, maxiter))`` for the Q-profile CI of tau^2 (metafor docs,
``rma.uni`` "Note" on control and ``confint.rma``). :class:`Control` gathers both; its defaults
are metafor's, so ``Control()`` (or ``control=None``) reproduces metafor's default fits, while
e.g. ``Control(threshold=1e-12, tol=1e-12, maxiter=1000, ci_tol=1e-12)`` mirrors
``rma(..., control=list(threshold=1e-12, tol=1e-12, maxiter=1000))`` followed by
``confint(res, control=list(tol=1e-12))``, i.e. fully converged values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Integral, Real

from timecourse_meta.models.rootfind import R_UNIROOT_TOL

__all__ = ["Control"]


@dataclass(frozen=True)
class Control:
    """Convergence settings of the tau^2 fit and of its Q-profile CI (metafor ``control``).

    Attributes (metafor's meaning; the default is metafor 3.8.1's):

    * ``threshold`` -- ``rma(control = list(threshold))``: Fisher scoring for ML / REML / EB
      stops once the change in tau^2 between two iterations is at most this (default 1e-5).
      Also the "tau^2 > threshold" condition of metafor's ll0 check (tau^2 set to 0 when the
      log-likelihood at 0 is higher).
    * ``tol`` -- ``rma(control = list(tol))``: tolerance of ``uniroot`` for the Paule-Mandel
      root (default ``.Machine$double.eps^0.25``), and the log-likelihood margin of the ll0
      check ("ll(0) - ll(tau^2) > tol").
    * ``maxiter`` -- ``rma(control = list(maxiter))``: maximum Fisher scoring iterations, and
      ``maxiter`` of the Paule-Mandel ``uniroot`` (default 100). Fisher scoring that needs more
      raises :class:`~.tau2.ConvergenceError` (metafor stops with "Fisher scoring
      algorithm did not converge"), so a fallback estimator can be tried. For PM metafor only
      passes on R's uniroot warning and keeps the unconverged iterate; the engine raises
      ConvergenceError there too rather than report an unconverged tau^2.
    * ``ci_tol`` -- ``confint(res, control = list(tol))``: ``uniroot`` tolerance of each
      Q-profile bound (default ``.Machine$double.eps^0.25``).
    * ``ci_maxiter`` -- ``confint(res, control = list(maxiter))``: ``uniroot`` iterations per
      bound (default 1000). A bound that does not converge is NaN with a warning (metafor
      keeps the unconverged iterate with R's uniroot warning).
    * ``bracket`` -- not a metafor setting. True (default): where ML / REML / EB Fisher
      scoring does not converge (metafor stops with an error) and no further estimator is
      listed in ``method``, tau^2 is the bracketed root of the score instead (see ``tau2.py``),
      with a warning; the fit then never fails. False: fail as metafor does.
    * ``tau2_max`` -- ``rma(control = list(tau2.max))``: upper end of the Paule-Mandel search;
      None means metafor's default max(100, 10 mad(yi)^2). As in metafor (whose ``confint``
      reads the fit's ``control$tau2.max``), a value given here is also the upper end of the
      Q-profile search instead of max(100, 10 tau^2).
    """

    threshold: float = 1e-5
    tol: float = R_UNIROOT_TOL
    maxiter: int = 100
    ci_tol: float = R_UNIROOT_TOL
    ci_maxiter: int = 1000
    tau2_max: float | None = None
    bracket: bool = True

    def __post_init__(self) -> None:
        for name in ("threshold", "tol", "ci_tol"):
            val = getattr(self, name)
            if not (isinstance(val, Real) and math.isfinite(val) and val > 0):
                raise ValueError(f"Control.{name} must be a finite number > 0, got {val!r}")
        for name in ("maxiter", "ci_maxiter"):
            val = getattr(self, name)
            if isinstance(val, bool) or not isinstance(val, Integral) or val < 1:
                raise ValueError(f"Control.{name} must be an integer >= 1, got {val!r}")
        if not isinstance(self.bracket, bool):
            raise ValueError(f"Control.bracket must be True or False, got {self.bracket!r}")
        t = self.tau2_max
        if t is not None and not (isinstance(t, Real) and math.isfinite(t) and t > 0):
            raise ValueError(f"Control.tau2_max must be None or a finite number > 0, got {t!r}")


DEFAULT_CONTROL = Control()


def resolve(control: Control | None) -> Control:
    """``control`` itself, or metafor's defaults for None."""
    if control is None:
        return DEFAULT_CONTROL
    if not isinstance(control, Control):
        raise TypeError(f"control must be a Control or None, got {type(control).__name__}")
    return control
