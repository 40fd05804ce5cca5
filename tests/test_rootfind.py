"""Brent's zeroin with R's uniroot semantics."""

import math

import pytest
from scipy import optimize

from timecourse_meta.models.rootfind import R_UNIROOT_TOL, zeroin


def test_finds_root_to_tolerance():
    # cos(x) = x has its root at 0.7390851332151607 (Dottie number).
    res = zeroin(lambda x: math.cos(x) - x, 0.0, 1.0, tol=1e-12)
    assert res.converged
    assert res.root == pytest.approx(0.7390851332151607, abs=1e-11)


def test_default_tolerance_is_r_uniroot():
    assert R_UNIROOT_TOL == pytest.approx(2.220446049250313e-16**0.25)
    res = zeroin(lambda x: x**3 - 2.0, 0.0, 2.0)
    # R: uniroot(function(x) x^3 - 2, c(0, 2))$root stops within tol of 2^(1/3).
    assert abs(res.root - 2 ** (1 / 3)) < R_UNIROOT_TOL
    assert res.root == pytest.approx(optimize.brentq(lambda x: x**3 - 2.0, 0, 2), abs=1e-4)


def test_endpoint_root_and_sign_errors():
    assert zeroin(lambda x: x, 0.0, 1.0).root == 0.0
    with pytest.raises(ValueError, match="same sign"):
        zeroin(lambda x: x * x + 1, -1.0, 1.0)


def test_maxiter_reports_non_convergence():
    res = zeroin(lambda x: x**9 - 1e-3, 0.0, 1.0, tol=1e-15, maxiter=2)
    assert not res.converged
