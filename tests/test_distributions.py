"""timecourse_meta.distributions gives scipy.stats' values bit for bit (grids with the edges)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from timecourse_meta import distributions as d

X = np.array(
    [-np.inf, -40.0, -8.3, -1.959964, -0.5, 0.0, 1e-12, 0.5, 1.96, 3.1, 37.0, np.inf, np.nan]
)
Q = np.array([0.0, 1e-300, 1e-12, 0.0005, 0.025, 0.05, 0.5, 0.8, 0.975, 1 - 1e-12, 1.0, np.nan])
DF = np.array([0.5, 1.0, 2.0, 3.7, 9.0, 30.0, 1e4, np.inf])
POS = np.array([0.0, 1e-9, 0.3, 1.0, 3.84, 12.5, 80.0, 1e4, np.inf])


def same(a: object, b: object) -> None:
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b), strict=True)


def test_normal_functions_equal_scipy_stats() -> None:
    same(d.norm_cdf(X), stats.norm.cdf(X))
    same(d.norm_sf(X), stats.norm.sf(X))
    same(d.norm_ppf(Q), stats.norm.ppf(Q))
    same(d.norm_isf(Q), stats.norm.isf(Q))


@pytest.mark.parametrize("df", DF)
def test_t_functions_equal_scipy_stats(df: float) -> None:
    same(d.t_sf(X, df), stats.t.sf(X, df))
    same(d.t_ppf(Q, df), stats.t.ppf(Q, df))
    same(d.t_isf(Q, df), stats.t.isf(Q, df))


@pytest.mark.parametrize("df", DF[:-1])
def test_chi2_and_f_functions_equal_scipy_stats(df: float) -> None:
    same(d.chi2_cdf(POS, df), stats.chi2.cdf(POS, df))
    same(d.chi2_sf(POS, df), stats.chi2.sf(POS, df))
    same(d.chi2_isf(Q, df), stats.chi2.isf(Q, df))
    for dfd in (1.0, 4.5, 60.0):
        same(d.f_sf(POS, df, dfd), stats.f.sf(POS, df, dfd))


def test_logistic_and_scalars_equal_scipy_stats() -> None:
    same(d.logistic_cdf(X), stats.logistic.cdf(X))
    for fn, ref in ((d.norm_isf, stats.norm.isf), (d.norm_ppf, stats.norm.ppf)):
        got = fn(0.025)
        assert isinstance(got, np.floating) and got == ref(0.025)
    assert d.t_sf(2.1, 7) == stats.t.sf(2.1, 7) and d.chi2_sf(3.2, 2) == stats.chi2.sf(3.2, 2)
    assert d.norm_isf(0.025) == pytest.approx(1.959963984540054, abs=1e-15)  # textbook z
