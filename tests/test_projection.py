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


@pytest.mark.parametrize("ratio", [1.0, 1e7, 1e10, 1e14])
def test_one_column_forms_are_exact_at_extreme_weight_ratios(ratio: float) -> None:
    """OneColumn's tr(P), tr(PV), tr(PP), tr(PVPV), tr(PPV) against exact rational arithmetic,
    for the intercept and a slope column, with one weight `ratio` times the others (the dense
    and textbook forms lose up to eps * ratio here; see projection.py)."""
    from fractions import Fraction

    from timecourse_meta.models.projection import OneColumn

    rng = np.random.default_rng(11)
    k = 6
    w = rng.uniform(0.5, 20, size=k)
    w[2] *= ratio
    v = rng.uniform(0.01, 0.5, size=k)
    for x in (None, rng.uniform(0.5, 2.0, size=k)):
        xs = np.ones(k) if x is None else x
        wf, xf, vf = ([Fraction(float(a)) for a in arr] for arr in (w, xs, v))
        c = sum(wi * xi * xi for wi, xi in zip(wf, xf, strict=True))
        P = [[(wf[i] if i == j else 0) - wf[i] * xf[i] * wf[j] * xf[j] / c for j in range(k)]
             for i in range(k)]  # fmt: skip
        exact = {
            "trace": sum(P[i][i] for i in range(k)),
            "trace_v": sum(P[i][i] * vf[i] for i in range(k)),
            "frob": sum(P[i][j] ** 2 for i in range(k) for j in range(k)),
            "frob_vv": sum(vf[i] * P[i][j] ** 2 * vf[j] for i in range(k) for j in range(k)),
            "frob_1v": sum(P[i][j] ** 2 * vf[j] for i in range(k) for j in range(k)),
        }
        oc = OneColumn(w[None, :], None if x is None else x[None, :])
        got = {
            "trace": oc.trace()[0], "trace_v": oc.trace_with(v[None, :])[0],
            "frob": oc.frob()[0], "frob_vv": oc.frob(v[None, :], v[None, :])[0],
            "frob_1v": oc.frob(None, v[None, :])[0],
        }  # fmt: skip
        for name, val in got.items():
            np.testing.assert_allclose(val, float(exact[name]), rtol=1e-13, err_msg=name)
