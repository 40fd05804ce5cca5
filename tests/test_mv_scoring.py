"""Newton-Raphson for the multivariate time-course model (models.mv_scoring).

Checks the analytic score, Fisher and observed information against finite differences and a
dense n x n computation, that Newton reaches the same maximum as the BFGS optimiser (1e-8 in
theta) and the metafor rma.mv golden values (tests/fixtures/metafor/rma_mv_golden.json),
that it hands over to BFGS when its result would not be clean, and which optimiser
``optimiser = "auto"`` uses.
"""

from __future__ import annotations

import functools
import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from timecourse_meta.models import multivariate as mv
from timecourse_meta.models.mv_likelihood import evaluate, initial_total, maximise
from timecourse_meta.models.mv_scoring import hessian_terms, maximise_newton, newton_raphson
from timecourse_meta.models.mv_structures import dG, make_structure

GOLDEN = json.loads(
    (Path(__file__).parent / "fixtures" / "metafor" / "rma_mv_golden.json").read_text()
)
ISHAK = GOLDEN["datasets"]["ishak2007"]


def _prepared(ds: dict, within: str = "ar", rho: float = 0.97):
    return mv._prepare(ds["study"], ds["time"], ds["yi"], ds["vi"], within, rho,
                       ds["timepoint_order"])  # fmt: skip


def _structure(data, struct: str):
    return make_structure(struct, len(data.levels), pairs_seen=data.pairs_seen)


def _theta(data, st, shift: float = 0.1) -> np.ndarray:
    """A point away from the maximum: metafor's start, shifted."""
    n_tau2 = len(data.levels) if st.heteroscedastic else 1
    return st.start(initial_total(data.blocks, n_tau2)) + shift * np.arange(st.n_par) / st.n_par


@functools.cache
def simulated(n: int = 1200, seed: int = 7) -> dict:
    """n studies at 24/72/168 h (a fifth of them missing one time), AR(0.6) G, tau^2 0.05."""
    rng = np.random.default_rng(seed)
    times = np.array(["24h", "72h", "168h"])
    G = 0.05 * 0.6 ** np.abs(np.subtract.outer(np.arange(3), np.arange(3)))
    study, time, yi, vi = [], [], [], []
    for i in range(n):
        keep = np.ones(3, bool) if i % 5 else np.arange(3) != i % 3
        u = rng.multivariate_normal([0.5, 0.4, 0.2], G)
        v = rng.uniform(0.02, 0.3, 3)
        e = rng.normal(0, np.sqrt(v))
        study += [f"s{i}"] * int(keep.sum())
        time += list(times[keep])
        yi += list((u + e)[keep])
        vi += list(v[keep])
    return {"study": study, "time": time, "yi": yi, "vi": vi, "timepoint_order": list(times)}


@pytest.mark.parametrize("struct", ["CS", "HCS", "AR", "UN"])
@pytest.mark.parametrize("reml", [True, False])
def test_score_and_observed_information_match_finite_differences(struct: str, reml: bool):
    data = _prepared(ISHAK)
    st = _structure(data, struct)
    th = _theta(data, st)
    ev = evaluate(data.blocks, st.build(th).real, reml, grad=True)
    score, _, observed = hessian_terms(data.blocks, st, th, ev, reml)
    h = 1e-5
    fd_score = np.empty(th.size)
    fd_hess = np.empty((th.size, th.size))
    for k in range(th.size):
        e = np.zeros(th.size)
        e[k] = h
        up = evaluate(data.blocks, st.build(th + e).real, reml, grad=True)
        down = evaluate(data.blocks, st.build(th - e).real, reml, grad=True)
        fd_score[k] = (up.ll - down.ll) / (2 * h)
        s_up = hessian_terms(data.blocks, st, th + e, up, reml)[0]
        s_down = hessian_terms(data.blocks, st, th - e, down, reml)[0]
        fd_hess[:, k] = -(s_up - s_down) / (2 * h)
    np.testing.assert_allclose(score, fd_score, rtol=1e-6, atol=1e-6 * np.abs(score).max())
    np.testing.assert_allclose(observed, fd_hess, rtol=1e-6, atol=1e-6 * np.abs(observed).max())


@pytest.mark.parametrize("reml", [True, False])
def test_fisher_information_equals_dense_trace(reml: bool):
    """1/2 tr(P V_j P V_k) with the full k x k matrices (ML: W for P), Harville 1977."""
    data = _prepared(ISHAK)
    st = _structure(data, "HCS")
    th = _theta(data, st)
    ev = evaluate(data.blocks, st.build(th).real, reml, grad=True)
    _, fisher, _ = hessian_terms(data.blocks, st, th, ev, reml)
    rows = np.concatenate([g.rows.ravel() for g in data.blocks.groups])
    k = rows.size
    V, X = np.zeros((k, k)), np.zeros((k, data.blocks.p))
    dV = np.zeros((st.n_par, k, k))
    dgs = dG(st, th)
    G = st.build(th).real
    for g in data.blocks.groups:
        for i in range(g.rows.shape[0]):
            r, lev = g.rows[i], g.idx[i]
            V[np.ix_(r, r)] = g.S[i] + G[np.ix_(lev, lev)]
            dV[:, r[:, None], r[None, :]] = dgs[:, lev[:, None], lev[None, :]]
            X[r] = g.X[i]
    W = np.linalg.inv(V)
    P = W - W @ X @ np.linalg.inv(X.T @ W @ X) @ X.T @ W if reml else W
    PdV = [P @ d for d in dV]
    dense = 0.5 * np.array([[np.sum(a * b.T) for b in PdV] for a in PdV])
    np.testing.assert_allclose(fisher, dense, rtol=1e-10)


@pytest.mark.parametrize(
    ("struct", "method"),
    # UN/ML and (on some CPUs) HAR/REML stop BFGS just above GTOL: polished by L-BFGS-B, which
    # used to be followed by minutes of Nelder-Mead on 1 200 studies (mv_likelihood.maximise)
    [(s, m) for s in ("CS", "HCS", "AR", "HAR", "UN") for m in ("REML", "ML")],
)
def test_newton_equals_bfgs_on_1200_studies(struct: str, method: str):
    ds = simulated()
    fits = {}
    for opt in ("newton", "bfgs"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            fits[opt] = mv.fit_timecourse(ds["study"], ds["time"], ds["yi"], ds["vi"], struct,
                                          method=method, timepoint_order=ds["timepoint_order"],
                                          optimiser=opt)  # fmt: skip
    new, old = fits["newton"], fits["bfgs"]
    assert new.converged and old.converged
    # BFGS stops on its gradient tolerance, so its theta is known to ~1e-7 only (7e-8 seen on
    # an AMD EPYC for HAR/REML); the likelihood is flat there, so estimates agree far closer.
    np.testing.assert_allclose(new.theta, old.theta, rtol=0, atol=1e-6)
    np.testing.assert_allclose(new.estimates["estimate"], old.estimates["estimate"], atol=1e-8)
    np.testing.assert_allclose(new.estimates["se"], old.estimates["se"], atol=1e-8)
    assert new.loglik == pytest.approx(old.loglik, abs=1e-8)
    assert new.iterations < old.iterations  # Newton steps, not BFGS iterations


def test_newton_matches_metafor_golden():
    """Newton forced on ishak2007 (AR, within ar 0.97, REML): metafor's rma.mv values."""
    key = ("ishak2007", "AR", "REML", 0.97)
    gold = next(
        f
        for f in GOLDEN["fits"]
        if (f["dataset"], f["struct"], f["method"], f["within_rho"]) == key
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        res = mv.fit_timecourse(ISHAK["study"], ISHAK["time"], ISHAK["yi"], ISHAK["vi"], "AR",
                                within="ar", rho=0.97, timepoint_order=ISHAK["timepoint_order"],
                                optimiser="newton")  # fmt: skip
    # tolerances of test_timecourse (metafor's nlminb stops ~3e-6 relative from the maximum)
    np.testing.assert_allclose(res.estimates["estimate"], gold["estimate"], rtol=1e-4)
    np.testing.assert_allclose(res.estimates["se"], gold["se"], rtol=1e-4)
    np.testing.assert_allclose(res.tau2, gold["tau2"], rtol=1e-4)
    assert res.rho == pytest.approx(gold["rho"], rel=1e-4)
    assert res.loglik == pytest.approx(gold["logLik"], abs=1e-4)
    assert res.iterations <= 8


def test_unidentified_direction_falls_back_to_bfgs():
    """UN on ishak2007: the information at the start is near singular (condition > 1e10), so
    Newton gives up and maximise_newton returns exactly what BFGS returns."""
    data = _prepared(ISHAK)
    st = _structure(data, "UN")
    th0 = st.start(initial_total(data.blocks, len(data.levels)))
    assert newton_raphson(data.blocks, st, True, th0) is None
    a = maximise_newton(data.blocks, st, True, th0)
    b = maximise(data.blocks, st, True, th0)
    np.testing.assert_array_equal(a[0], b[0])
    assert a[1] == b[1] and a[3] == b[3]


def test_auto_uses_newton_from_1000_studies_only():
    big, small = simulated(), GOLDEN["datasets"]["sim_labels"]
    for ds, expect in ((big, "newton"), (small, "bfgs")):
        fits = {}
        for opt in ("auto", expect):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                fits[opt] = mv.fit_timecourse(ds["study"], ds["time"], ds["yi"], ds["vi"],
                                              "HAR", timepoint_order=ds["timepoint_order"],
                                              optimiser=opt)  # fmt: skip
        np.testing.assert_array_equal(fits["auto"].theta, fits[expect].theta)
    assert mv.NEWTON_MIN_STUDIES == 1000
    with pytest.raises(ValueError, match="optimiser must be one of"):
        mv.fit_timecourse(["a", "b"], [1, 2], [0.1, 0.2], [0.1, 0.1], optimiser="lbfgs")
