"""The low-rank projection identities against dense k x k matrices (small k)."""

import numpy as np
import pytest

from timecourse_meta.models.projection import Projection


@pytest.fixture
def case():
    rng = np.random.default_rng(7)
    k = 9
    X = np.column_stack([np.ones(k), rng.normal(size=k), rng.integers(0, 2, size=k)])
    w = rng.uniform(0.5, 20, size=k)
    y = rng.normal(size=k)
    v = rng.uniform(0.01, 0.5, size=k)
    W = np.diag(w)
    P = W - W @ X @ np.linalg.inv(X.T @ W @ X) @ X.T @ W
    return Projection.build(w, X), P, y, v


def test_apply_and_quad(case):
    proj, P, y, _ = case
    np.testing.assert_allclose(proj.apply(y), P @ y, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(proj.quad(y), y @ P @ y, rtol=1e-12)


def test_traces(case):
    proj, P, _, v = case
    V = np.diag(v)
    np.testing.assert_allclose(proj.trace(), np.trace(P), rtol=1e-12)
    np.testing.assert_allclose(proj.trace_with(v), np.trace(P @ V), rtol=1e-12)
    np.testing.assert_allclose(proj.frob(), np.sum(P * P), rtol=1e-12)
    np.testing.assert_allclose(proj.frob(v, v), np.sum((P @ V) * (P @ V).T), rtol=1e-12)
    np.testing.assert_allclose(proj.frob(None, v), np.sum((P @ V) * P), rtol=1e-12)


def test_coef_and_hat(case):
    proj, _, y, _ = case
    X, w = proj.X, proj.w
    XtWX = X.T @ (w[:, None] * X)
    np.testing.assert_allclose(proj.coef(y), np.linalg.solve(XtWX, X.T @ (w * y)), rtol=1e-12)
    np.testing.assert_allclose(proj.xtwx_inv(), np.linalg.inv(XtWX), rtol=1e-10)
    sw = np.sqrt(w)
    H = (sw[:, None] * X) @ np.linalg.inv(XtWX) @ (X.T * sw)
    np.testing.assert_allclose(proj.hat_diag(), np.diag(H), rtol=1e-12)
