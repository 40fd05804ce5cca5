"""Normal, t, chi-square, F and logistic probabilities and quantiles, from ``scipy.special``.

The same functions ``scipy.stats`` evaluates for these distributions (its ``norm``, ``t``,
``chi2``, ``f`` and ``logistic`` at loc 0, scale 1 call exactly these ufuncs: ``ndtr``, ``ndtri``,
``stdtr``, ``stdtrit``, ``chdtr``, ``chdtrc``, ``chdtri``, ``fdtrc``, ``expit``), so every value
is bit-identical to ``scipy.stats`` (tests/test_distributions.py checks it on grids). Importing
``scipy.stats`` costs about a second per workflow job on a 2-core machine; ``scipy.special`` a
fraction of that. Arguments are in ``scipy.stats`` order (``t_sf(x, df)``); arrays broadcast.
"""

from __future__ import annotations

import numpy as np
from scipy import special

__all__ = [
    "chi2_cdf",
    "chi2_isf",
    "chi2_sf",
    "f_sf",
    "logistic_cdf",
    "norm_cdf",
    "norm_isf",
    "norm_ppf",
    "norm_sf",
    "t_isf",
    "t_ppf",
    "t_sf",
]

ArrayLike = float | np.ndarray


def norm_cdf(x: ArrayLike) -> ArrayLike:
    """P(Z <= x), Z standard normal (``scipy.stats.norm.cdf``)."""
    return special.ndtr(x)


def norm_sf(x: ArrayLike) -> ArrayLike:
    """P(Z > x) (``scipy.stats.norm.sf``)."""
    return special.ndtr(-np.asarray(x))


def norm_ppf(q: ArrayLike) -> ArrayLike:
    """The q quantile of the standard normal (``scipy.stats.norm.ppf``)."""
    return special.ndtri(q)


def norm_isf(q: ArrayLike) -> ArrayLike:
    """The upper q quantile of the standard normal (``scipy.stats.norm.isf``)."""
    return -special.ndtri(q)


def t_sf(x: ArrayLike, df: ArrayLike) -> ArrayLike:
    """P(T > x), T ~ t(df) (``scipy.stats.t.sf``)."""
    return special.stdtr(df, -np.asarray(x))


def t_ppf(q: ArrayLike, df: ArrayLike) -> ArrayLike:
    """The q quantile of t(df) (``scipy.stats.t.ppf``; q = 0 and 1 give -inf and inf, the
    support's ends, as ``scipy.stats`` does: ``stdtrit`` itself returns inf at q = 0)."""
    q = np.asarray(q, dtype=float)
    out = special.stdtrit(df, q)
    return np.where(q == 0.0, -np.inf, np.where(q == 1.0, np.inf, out))[()]


def t_isf(q: ArrayLike, df: ArrayLike) -> ArrayLike:
    """The upper q quantile of t(df) (``scipy.stats.t.isf``)."""
    return -t_ppf(q, df)


def chi2_cdf(x: ArrayLike, df: ArrayLike) -> ArrayLike:
    """P(X <= x), X ~ chi-square(df) (``scipy.stats.chi2.cdf``)."""
    return special.chdtr(df, x)


def chi2_sf(x: ArrayLike, df: ArrayLike) -> ArrayLike:
    """P(X > x), X ~ chi-square(df) (``scipy.stats.chi2.sf``)."""
    return special.chdtrc(df, x)


def chi2_isf(q: ArrayLike, df: ArrayLike) -> ArrayLike:
    """The upper q quantile of chi-square(df) (``scipy.stats.chi2.isf``)."""
    return special.chdtri(df, q)


def f_sf(x: ArrayLike, dfn: ArrayLike, dfd: ArrayLike) -> ArrayLike:
    """P(F > x), F ~ F(dfn, dfd) (``scipy.stats.f.sf``)."""
    return special.fdtrc(dfn, dfd, x)


def logistic_cdf(x: ArrayLike) -> ArrayLike:
    """The inverse logit 1 / (1 + exp(-x)) (``scipy.stats.logistic.cdf``)."""
    return special.expit(x)
