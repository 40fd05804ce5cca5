"""Continuous-time (CAR) meta-regression (models.time_response) against metafor 3.8 rma.mv.

Golden values: tests/fixtures/metafor/time_response_golden.R (README_time_response.md):
dat.ishak2007 with a natural-spline / log-linear / intercept-only design passed in, CAR on
time_num, V = vcalc(vi, cluster, time1 = time_num, phi = 0.97); a simulated 40-study set with
CAR on log hours; clubSandwich CR2; and the windows model (factor(time) - 1) with CAR.

Tolerances: coefficients, tau^2, rho and predictions 1e-6 relative, SEs 1e-5, logLik 1e-6
absolute; and, the sharper check, our logLik must not be below metafor's by more than 1e-8.
The README explains the limit: the ishak2007 REML surface is flat in tau^2 (~27-30), where
three R optimisers agree on tau^2 to ~2e-7 relative only, and suggests 1e-5 for everything;
our values agree to < 4e-7 relative (b of fit 1a: 3e-7), so 1e-6 holds with a margin of 3,
and a tighter tolerance would test R's optimiser, not the model.
QE does not depend on (tau^2, rho) and is compared to 1e-8 relative; CR2 SEs and
Satterthwaite df and the HTZ F test (clubSandwich) to 1e-5, p-values to 1e-4.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from timecourse_meta.models.multivariate import fit_timecourse
from timecourse_meta.models.time_basis import make_basis, ns_basis
from timecourse_meta.models.time_response import fit_car, vcalc_shared

GOLDEN = json.loads(
    (Path(__file__).parent / "fixtures" / "metafor" / "time_response_golden.json").read_text()
)
FITS = [
    "fit_1a_ishak_spline",
    "fit_1b_ishak_loglinear",
    "fit_1c_ishak_intercept",
    "fit_2_sim_spline",
]
RTOL = 1e-6  # estimates; flat REML surface (README_time_response.md): agreement < 4e-7
SE_RTOL = 1e-5
LL_ATOL = 1e-6


def _V(d: dict) -> np.ndarray:
    e = d["V"]
    V = np.zeros((e["n"], e["n"]))
    V[e["row"], e["col"]] = e["value"]
    return V + V.T - np.diag(np.diag(V))


def _fit(key: str, **kw):
    f = GOLDEN[key]
    d = GOLDEN[f["dataset"]]
    t = np.asarray(d[f["time_var_random"]], dtype=float)
    return (
        f,
        d,
        fit_car(d["study"], t, d["yi"], d["vi"], np.array(f["X"]), phi=d["vcalc_phi"], **kw),
    )


@pytest.mark.parametrize("key", FITS)
def test_car_fit_matches_metafor(key: str) -> None:
    f, _, r = _fit(key)
    assert r.converged
    np.testing.assert_allclose(r.beta, f["b"], rtol=RTOL)
    np.testing.assert_allclose(r.se, f["se"], rtol=SE_RTOL)
    np.testing.assert_allclose(r.tau2, f["tau2"], rtol=RTOL)
    np.testing.assert_allclose(r.rho, f["rho"], rtol=RTOL)
    assert abs(r.loglik - f["logLik_REML"]) < LL_ATOL
    assert r.loglik >= f["logLik_REML"] - 1e-8
    for ours, key_r in ((r.aic, "AIC"), (r.bic, "BIC"), (r.aicc, "AICc")):
        assert abs(ours - f[key_r]) < 1e-5
    np.testing.assert_allclose(r.QE, f["QE"], rtol=1e-8)
    assert r.QE_df == f["QEdf"]
    np.testing.assert_allclose(r.QM, f["QM"], rtol=SE_RTOL)  # a function of b and vcov
    assert r.QM_df == f["QMdf"]
    pr = r.predict(np.array(f["predict"]["Xnew"]))
    for col, gkey in (
        ("estimate", "pred"),
        ("se", "se"),
        ("ci_low", "ci_lb"),
        ("ci_high", "ci_ub"),
        ("pi_low", "pi_lb"),
        ("pi_high", "pi_ub"),
    ):
        tol = RTOL if col == "estimate" else SE_RTOL  # bounds carry the SE's tolerance
        np.testing.assert_allclose(pr[col], np.atleast_1d(f["predict"][gkey]), rtol=tol)


@pytest.mark.parametrize("key", ["fit_1a_ishak_spline", "fit_2_sim_spline"])
def test_cr2_matches_clubsandwich(key: str) -> None:
    f, _, r = _fit(key)
    c = f["robust"]["cr2_clubSandwich"]
    rb = r.robust()
    assert rb.n_clusters == c["n_clusters"]
    np.testing.assert_allclose(rb.se, c["se"], rtol=SE_RTOL)
    np.testing.assert_allclose(rb.df, c["df"], rtol=SE_RTOL)
    np.testing.assert_allclose(rb.pval, c["pval"], rtol=1e-4)
    # HTZ F test of the non-intercept coefficients (btt)
    w = r.wald(np.eye(r.p)[np.asarray(c["btt"]) - 1], robust=True)
    np.testing.assert_allclose(w["stat"], c["QM_F"], rtol=SE_RTOL)
    np.testing.assert_allclose([w["df1"], w["df"]], c["QMdf"], rtol=SE_RTOL)
    np.testing.assert_allclose(w["pval"], c["QMp"], rtol=1e-4)


def test_within_covariance_is_vcalc() -> None:
    """vcalc(vi, cluster, time1 = t, phi) for both data sets, block by block."""
    for name, tv in (("data_ishak2007", "time_num"), ("data_sim", "logt")):
        d = GOLDEN[name]
        V = _V(d)
        study = np.asarray(d["study"], dtype=object)
        t, vi = np.asarray(d[tv], float), np.asarray(d["vi"], float)
        ours = np.zeros_like(V)
        for s in np.unique(study):
            ix = np.flatnonzero(study == s)
            ours[np.ix_(ix, ix)] = vcalc_shared(t[ix], vi[ix], d["vcalc_phi"])
        np.testing.assert_allclose(ours, V, rtol=1e-12, atol=1e-15)


def test_passing_v_equals_vcalc_formula() -> None:
    f, d, r = _fit("fit_2_sim_spline")
    t = np.asarray(d["logt"], float)
    r2 = fit_car(d["study"], t, d["yi"], d["vi"], np.array(f["X"]), V=_V(d))
    np.testing.assert_allclose(r2.beta, r.beta, rtol=1e-9)
    assert abs(r2.loglik - r.loglik) < 1e-9


def test_shared_control_correlation() -> None:
    """Two arms vs one control at one time: r = (1/nc) / sqrt((1/na1+1/nc)(1/na2+1/nc))
    (vcalc grp1/grp2/w1/w2); equal sizes give vcalc's default 0.5. Checked by hand."""
    S = vcalc_shared(np.zeros(2), [1.0, 1.0], 0.5, arm=["a", "b"], control=["c", "c"])
    assert S[0, 1] == pytest.approx(0.5)
    S = vcalc_shared(
        np.zeros(2), [1.0, 4.0], 0.5, ["a", "b"], ["c", "c"], n_arm=[10, 20], n_control=[30, 30]
    )
    r = (1 / 30) / np.sqrt((1 / 10 + 1 / 30) * (1 / 20 + 1 / 30))
    assert S[0, 1] == pytest.approx(r * 2.0)
    # one comparison at two times 1 unit apart: phi
    S = vcalc_shared(np.array([0.0, 1.0]), [1.0, 1.0], 0.3, ["a", "a"], ["c", "c"], [5, 5], [7, 7])
    assert S[0, 1] == pytest.approx(0.3)


def test_ns_basis_matches_r() -> None:
    for key, dkey in (("fit_1a_ishak_spline", "data_ishak2007"), ("fit_2_sim_spline", "data_sim")):
        sp = GOLDEN[key]["spline"]
        B = ns_basis(GOLDEN[dkey]["logt"], np.atleast_1d(sp["knots"]), sp["Boundary_knots"])
        np.testing.assert_allclose(B, sp["basis"], atol=1e-14)


def test_default_knots_on_distinct_times() -> None:
    hours = [2, 2, 2, 24, 24, 24, 24, 48, 336]
    b = make_basis(hours, "spline", None, 1)
    # distinct log times {2, 24, 48, 336}: median = (log 24 + log 48) / 2
    assert b.knots[0] == pytest.approx((np.log(24) + np.log(48)) / 2)
    assert b.boundary == pytest.approx((np.log(2), np.log(336)))
    X = b.design([2, 336])
    assert X.shape == (2, 3)


def test_fit_timecourse_car_matches_metafor() -> None:
    f = GOLDEN["fit_4_ishak_factor_car"]
    d = GOLDEN["data_ishak2007"]
    times = dict(zip([1, 2, 3, 4], f["timepoint_months"], strict=True))
    r = fit_timecourse(
        d["study"], d["time"], d["yi"], d["vi"], struct="CAR", within="car",
        rho=d["vcalc_phi"], times=times,
    )  # fmt: skip
    assert r.converged
    np.testing.assert_allclose(r.beta, f["b"], rtol=RTOL)
    np.testing.assert_allclose(r.estimates["se"], f["se"], rtol=SE_RTOL)
    np.testing.assert_allclose(r.tau2, f["tau2"], rtol=RTOL)
    np.testing.assert_allclose(r.rho, f["rho"], rtol=RTOL)
    assert r.loglik >= f["logLik_REML"] - 1e-8
    assert abs(r.loglik - f["logLik_REML"]) < LL_ATOL
    np.testing.assert_allclose(r.QM, f["QM"], rtol=SE_RTOL)


def test_fit_timecourse_hcs_reaches_metafor_best() -> None:
    """publication_golden.json edge.hcs: 30 studies x 5 times, HCS by REML, V = diag(vi).
    Our log-likelihood must reach the best of metafor's 17 optimisers (uobyqa) within 1e-8,
    with the estimates of that optimum (spread across R optimisers: ~6e-6)."""
    e = json.loads(
        (Path(__file__).parent / "fixtures" / "metafor" / "publication_golden.json").read_text()
    )["edge"]["hcs"]
    s = e["simulation"]
    best = e["models"]["time_means"]["best"]
    r = fit_timecourse(s["study"], s["time"], s["yi"], s["vi"], struct="HCS", within="cs", rho=0.0)
    assert r.converged
    assert r.loglik >= best["logLik"] - 1e-8
    np.testing.assert_allclose(r.beta, best["b"], rtol=1e-5)
    np.testing.assert_allclose(r.tau2, best["tau2"], rtol=1e-4)
    np.testing.assert_allclose(r.rho, best["rho"], rtol=1e-4)


def test_general_design_hcs_intercept_only_reaches_metafor_best() -> None:
    """The shared likelihood engine (mv_likelihood) with a general X: edge.hcs intercept-only
    (rma.mv(yi, vi, mods = ~ 1, random = ~ time_f | study, struct = "HCS")), best of 17 R
    optimisers."""
    from timecourse_meta.models.mv_likelihood import initial_total, make_blocks, maximise
    from timecourse_meta.models.mv_structures import make_structure

    e = json.loads(
        (Path(__file__).parent / "fixtures" / "metafor" / "publication_golden.json").read_text()
    )["edge"]["hcs"]
    s, best = e["simulation"], e["models"]["intercept_only"]["best"]
    lev = np.asarray(s["time"]) - 1
    v = np.asarray(s["vi"], dtype=float)
    y = np.asarray(s["yi"], dtype=float)
    blocks = make_blocks(s["study"], lev, y, np.ones((y.size, 1)), 5, lambda r: np.diag(v[r]))
    st = make_structure("HCS", 5)
    theta, f, grad, _, _ = maximise(blocks, st, True, st.start(initial_total(blocks, 5)))
    assert np.max(np.abs(grad)) < 1e-5
    assert -f >= best["logLik"] - 1e-8
    tau2, rho = st.unpack(theta)
    np.testing.assert_allclose(tau2, best["tau2"], rtol=1e-4)
    np.testing.assert_allclose(rho, best["rho"], rtol=1e-4)
