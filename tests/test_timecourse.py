"""Multivariate time-course model (models.multivariate) against metafor 3.8.1 rma.mv.

Golden values: tests/fixtures/metafor/rma_mv_golden.R, which fits
rma.mv(yi, V, mods = ~ time - 1, random = ~ time | study, struct = S, method = M) for
S in CS, HCS, AR, HAR, UN and M in REML, ML on dat.ishak2007 (within "ar" rho 0.97 as in its
help page, and "cs" rho 0.5), on a simulated data set with string time points, on the same with
one time point absent from the data, and on the same where two time points never occur together.
Tolerances: estimates, SEs, z and CIs 1e-4 relative; log-likelihood and information criteria
1e-4 absolute; variance components 1e-4 relative to the largest tau^2
(so near-zero tau^2 are compared on that scale). P-values: 1e-3 relative when p > 1e-10, else
log(p) to 1e-4 relative, because a p-value of 1e-160 (|z| = 27) moves by about |z| * dz
relative to a change dz in z.
"""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import compare, rscript_with_metafor

from timecourse_meta.errors import TimecourseMetaError
from timecourse_meta.models.multivariate import (
    STRUCTS,
    compare_fits,
    compare_structures,
    fit_timecourse,
)
from timecourse_meta.models.rma import fit_random_effects

FIXTURES = Path(__file__).parent / "fixtures" / "metafor"
GOLDEN = json.loads((FIXTURES / "rma_mv_golden.json").read_text())
RTOL = 1e-4
LL_ATOL = 1e-4
P_RTOL = 1e-3


def compare_p(name: str, actual: object, expected: object, fails: list[str]) -> None:
    """p-values: relative 1e-3, or on the log scale for p < 1e-10 (see module docstring)."""
    act = np.atleast_1d(np.asarray(actual, dtype=float))
    exp = np.atleast_1d(np.asarray(expected, dtype=float))
    small = exp < 1e-10
    compare(name, act[~small], exp[~small].tolist(), P_RTOL, False, fails)
    if small.any():
        compare(f"log {name}", np.log(act[small]), np.log(exp[small]).tolist(), RTOL, False, fails)


def _fid(f: dict) -> str:
    return f"{f['dataset']}-{f['within']}{f['within_rho']}-{f['struct']}-{f['method']}"


@functools.cache
def _fit(dataset: str, within: str, rho: float, struct: str, method: str):
    ds = GOLDEN["datasets"][dataset]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return fit_timecourse(
            ds["study"],
            ds["time"],
            ds["yi"],
            ds["vi"],
            struct=struct,
            within=within,
            rho=rho,
            method=method,
            timepoint_order=ds["timepoint_order"],
        )


def _fit_for(f: dict):
    return _fit(f["dataset"], f["within"], f["within_rho"], f["struct"], f["method"])


@pytest.mark.parametrize("f", GOLDEN["fits"], ids=[_fid(f) for f in GOLDEN["fits"]])
def test_matches_rma_mv(f: dict) -> None:
    res = _fit_for(f)
    assert res.converged, res.warnings
    est = res.estimates
    assert est["timepoint"].tolist() == f["timepoint"]
    assert est["k"].tolist() == f["k_lvl"]
    assert res.k == f["k"]
    assert res.n_params == f["parms"]
    fails: list[str] = []
    for col, key in [
        ("estimate", "estimate"),
        ("se", "se"),
        ("stat", "zval"),
        ("ci_low", "ci_lb"),
        ("ci_high", "ci_ub"),
    ]:
        compare(col, est[col].to_numpy(), f[key], RTOL, False, fails)
    compare_p("pval", est["pval"].to_numpy(), f["pval"], fails)
    compare("vcov", res.vcov.ravel(order="F"), f["vcov"], RTOL, False, fails)
    for name, ours in [
        ("logLik", res.loglik),
        ("deviance", res.deviance),
        ("AIC", res.aic),
        ("BIC", res.bic),
        ("AICc", res.aicc),
    ]:
        if abs(ours - f[name]) > LL_ATOL:
            fails.append(f"{name}: {ours!r} vs metafor {f[name]!r}")
    scale = max(f["tau2"]) if isinstance(f["tau2"], list) else f["tau2"]
    tau2 = np.atleast_1d(f["tau2"])
    if not np.allclose(res.tau2, tau2, rtol=RTOL, atol=RTOL * scale):
        fails.append(f"tau2: {res.tau2} vs metafor {tau2}")
    if not np.allclose(res.G.ravel(order="F"), f["G"], rtol=RTOL, atol=RTOL * scale):
        fails.append(f"G: {res.G} vs metafor {f['G']}")
    rho = np.atleast_1d(np.asarray(res.rho, dtype=float)).ravel(order="F")
    if not np.allclose(rho, np.atleast_1d(f["rho"]), rtol=0, atol=1e-4):
        fails.append(f"rho: {res.rho} vs metafor {f['rho']}")
    compare("QE", res.QE, f["QE"], 1e-8, False, fails)
    compare_p("QEp", res.QE_pval, f["QEp"], fails)
    compare("QM", res.QM, f["QM"], RTOL, False, fails)
    compare_p("QMp", res.QM_pval, f["QMp"], fails)
    assert not fails, "\n".join(fails)


@pytest.mark.parametrize("f", GOLDEN["fits"], ids=[_fid(f) for f in GOLDEN["fits"]])
def test_contrasts_match_anova(f: dict) -> None:
    """contrast() / test_trend() against metafor anova(res, X = L)."""
    res = _fit_for(f)
    tps = res.timepoints
    fails: list[str] = []
    c = res.contrast({tps[1]: 1, tps[0]: -1})
    assert c["contrast"].iloc[0] == f"{tps[1]} - {tps[0]}"
    d = f["diff21"]
    compare("diff.est", c["estimate"].to_numpy(), d["estimate"], RTOL, False, fails)
    compare("diff.se", c["se"].to_numpy(), d["se"], RTOL, False, fails)
    compare("diff.z", c["z"].to_numpy(), d["zval"], RTOL, False, fails)
    compare_p("diff.p", c["pval"].to_numpy(), d["pval"], fails)
    eq = res.test_trend("equality")
    assert eq.df == f["equality"]["df"] == len(tps) - 1
    compare("eq.QM", eq.QM, f["equality"]["QM"], RTOL, False, fails)
    compare_p("eq.p", eq.QM_pval, f["equality"]["pval"], fails)
    tr = res.test_trend("linear")
    t = f["trend"]
    assert tr.df == 1
    compare("trend.est", tr.estimate, t["estimate"], RTOL, False, fails)
    compare("trend.se", tr.se, t["se"], RTOL, False, fails)
    compare("trend.z", tr.z, t["zval"], RTOL, False, fails)
    compare_p("trend.p", tr.pval, t["pval"], fails)
    # one contrast: QM = z^2 (chi-square 1 df has the same p as the two-sided z test)
    assert tr.QM == pytest.approx(float(tr.z[0]) ** 2, rel=1e-12)
    assert tr.QM_pval == pytest.approx(float(tr.pval[0]), rel=1e-9)
    assert not fails, "\n".join(fails)


def _lrt_groups() -> list[tuple]:
    return sorted(
        {(g["dataset"], g["within"], g["within_rho"], g["method"]) for g in GOLDEN["lrt"]}
    )


@pytest.mark.parametrize("group", _lrt_groups(), ids=lambda g: "-".join(map(str, g)))
def test_lrt_matches_anova(group: tuple) -> None:
    dataset, within, rho, method = group
    fits = {s: _fit(dataset, within, rho, s, method) for s in STRUCTS}
    table = compare_fits(fits)
    golden = [
        g
        for g in GOLDEN["lrt"]
        if (g["dataset"], g["within"], g["within_rho"], g["method"]) == group
    ]
    assert len(golden) == 6
    for g in golden:
        row = table[(table["struct"] == g["full"]) & (table["reduced"] == g["reduced"])]
        assert len(row) == 1, (g["full"], g["reduced"])
        row = row.iloc[0]
        assert row["df"] == g["df"]
        assert row["LRT"] == pytest.approx(g["LRT"], abs=2 * LL_ATOL)
        assert row["pval"] == pytest.approx(g["pval"], rel=P_RTOL, abs=1e-6)
    # CS and AR have no nested fitted model and say why
    for s in ("CS", "AR"):
        row = table[table["struct"] == s]
        assert len(row) == 1 and row["reduced"].iloc[0] == ""
        assert "not nested" in row["note"].iloc[0]
        assert np.isnan(row["LRT"].iloc[0])


def test_compare_structures_refits_same_as_compare_fits() -> None:
    ds = GOLDEN["datasets"]["ishak2007"]
    table = compare_structures(
        ds["study"], ds["time"], ds["yi"], ds["vi"], structs=("CS", "HCS"), rho=0.97
    )
    # CS (6 parms) nested in HCS (9 parms): one LRT row for HCS, one stats row for CS
    assert table["struct"].tolist() == ["CS", "HCS"]
    assert table["reduced"].tolist() == ["", "CS"]
    golden = next(
        g
        for g in GOLDEN["lrt"]
        if (g["dataset"], g["within"], g["method"], g["full"], g["reduced"])
        == ("ishak2007", "ar", "REML", "HCS", "CS")
    )
    assert table["LRT"].iloc[1] == pytest.approx(golden["LRT"], abs=2 * LL_ATOL)
    assert table["df"].iloc[1] == 3


def _numbers(line: str) -> list[float]:
    out = []
    for tok in line.split():
        try:
            out.append(float(tok))
        except ValueError:
            continue
    return out


def test_summary_prints_like_metafor() -> None:
    f = next(
        g
        for g in GOLDEN["fits"]
        if (g["dataset"], g["within"], g["struct"], g["method"])
        == ("ishak2007", "ar", "HAR", "REML")
    )
    lines = _fit_for(f).summary().splitlines()
    assert "Multivariate Meta-Analysis Model (k = 82; method: REML)" in lines
    assert "outer factor: study (nlvls = 46)" in lines
    assert "inner factor: time  (nlvls = 4)" in lines
    assert f"QE(df = 78) = {f['QE']:.4f}, p-val < .0001" in lines

    # printed to 4 decimals: allow half a unit of the last digit plus the 1e-4 relative tolerance
    def close(printed: float, value: float) -> bool:
        return abs(printed - value) <= 0.5e-4 + RTOL * abs(value)

    fit_line = _numbers(
        lines[lines.index("Multivariate Meta-Analysis Model (k = 82; method: REML)") + 3]
    )
    for printed, key in zip(fit_line, ["logLik", "deviance", "AIC", "BIC", "AICc"], strict=True):
        assert close(printed, f[key]), key
    tau_rows = [_numbers(x) for x in lines if x.startswith("tau^2.")]
    assert len(tau_rows) == 4
    for j, row in enumerate(tau_rows):
        # row: index j+1 is not a token of its own ("tau^2.1"), so row = estim, sqrt, k.lvl, level
        assert close(row[0], f["tau2"][j]) and close(row[1], f["tau2"][j] ** 0.5)
        assert row[2] == f["k_lvl"][j]
    rho_line = next(x for x in lines if x.startswith("rho"))
    assert close(_numbers(rho_line)[0], f["rho"])
    start = lines.index("Model Results:") + 3
    for j in range(4):
        # timepoint, estimate, se, zval, ("<.0001"), ci.lb, ci.ub
        nums = _numbers(lines[start + j])
        assert nums[0] == j + 1
        for printed, key in zip(
            nums[1:], ["estimate", "se", "zval", "ci_lb", "ci_ub"], strict=True
        ):
            assert close(printed, f[key][j]), (j, key)


# ---------------------------------------------------------------------------------------------
# simulation and edge cases (no R needed)


def _simulate(n_studies: int, mu: np.ndarray, tau2: np.ndarray, g_rho: float, w_rho: float, seed):
    """HAR true effects, AR(1) within-study errors, ~20% of time points missing at random."""
    rng = np.random.default_rng(seed)
    T = mu.size
    lag = np.abs(np.subtract.outer(np.arange(T), np.arange(T)))
    sd = np.sqrt(tau2)
    G = sd[:, None] * g_rho**lag * sd[None, :]
    u = rng.multivariate_normal(np.zeros(T), G, size=n_studies)
    vi = rng.uniform(0.005, 0.02, size=(n_studies, T))
    e = np.stack(
        [rng.multivariate_normal(np.zeros(T), np.sqrt(np.outer(v, v)) * w_rho**lag) for v in vi]
    )
    y = mu[None, :] + u + e
    keep = rng.random((n_studies, T)) < 0.8
    keep[:, 0] |= ~keep.any(axis=1)
    study, tp = np.nonzero(keep)
    return study, tp, y[keep], vi[keep]


def test_simulation_recovers_truth() -> None:
    mu = np.array([-0.6, -0.5, -0.35, -0.2])
    tau2 = np.array([0.04, 0.05, 0.06, 0.08])
    g_rho, n = 0.7, 60
    study, tp, y, v = _simulate(n, mu, tau2, g_rho, 0.5, seed=20240607)
    res = fit_timecourse(study, tp, y, v, struct="HAR", within="ar", rho=0.5)
    assert res.converged and res.warnings == []
    est = res.estimates
    # means: within 4 standard errors of the truth
    assert np.all(np.abs(est["estimate"].to_numpy() - mu) < 4 * est["se"].to_numpy())
    # tau2: SE(log s^2) ~ sqrt(2 / (k - 1)) for k normal draws (sampling variances here are
    # 4-16x smaller than tau2, so this is close); allow 4 such SEs
    k_lvl = est["k"].to_numpy()
    assert np.all(np.abs(np.log(res.tau2 / tau2)) < 4 * np.sqrt(2 / (k_lvl - 1)))
    # rho: Fisher z of a correlation from n pairs has SE ~ 1 / sqrt(n - 3); allow 4 SEs
    assert abs(np.arctanh(res.rho) - np.arctanh(g_rho)) < 4 / np.sqrt(n - 3)


def test_single_timepoint_studies_equal_separate_univariate_fits() -> None:
    # every study reports one time point: G's rho is not identifiable (fixed to 0, as metafor),
    # and HCS + REML separates into one rma.uni REML fit per time point (the REML likelihood
    # factorises because X is block diagonal: log|X'WX| = sum_j log(sum_i w_ij)).
    rng = np.random.default_rng(7)
    tp = np.repeat(["4h", "24h", "7d"], 12)
    vi = rng.uniform(0.02, 0.1, tp.size)
    yi = np.select([tp == "4h", tp == "24h"], [-0.5, -0.4], -0.1) + rng.normal(0, 0.25, tp.size)
    study = np.arange(tp.size)
    with pytest.warns(RuntimeWarning) as rec:
        res = fit_timecourse(study, tp, yi, vi, struct="HCS", timepoint_order=["4h", "24h", "7d"])
    assert "single time point: G correlation fixed to 0" in " ".join(str(w.message) for w in rec)
    assert res.rho == 0.0 and res.rho_fixed
    assert res.n_params == 3 + 3  # three means, three tau2, no rho
    ll = 0.0
    for j, t in enumerate(["4h", "24h", "7d"]):
        uni = fit_random_effects(yi[tp == t], vi[tp == t], method="REML")
        row = res.estimates.iloc[j]
        assert row["timepoint"] == t
        # rma.uni's Fisher scoring stops when tau2 changes by < 1e-5 (metafor's threshold), so
        # tau2 agrees to ~1e-5 absolute and beta/se to ~1e-4 relative
        assert row["estimate"] == pytest.approx(uni.estimate, rel=1e-4)
        assert row["se"] == pytest.approx(uni.se, rel=1e-4)
        assert res.tau2[j] == pytest.approx(uni.tau2, abs=2e-5)
        ll += uni.loglik_reml
    # both at (numerically) the same maximum: the log-likelihood is flat there
    assert res.loglik == pytest.approx(ll, abs=1e-6)
    assert res.loglik >= ll - 1e-12


def _ishak() -> pd.DataFrame:
    ds = GOLDEN["datasets"]["ishak2007"]
    return pd.DataFrame({k: ds[k] for k in ("study", "time", "yi", "vi")})


def test_timepoint_with_one_study_warns_and_is_estimated() -> None:
    d = _ishak()
    extra = d[d["time"] == "1"].iloc[:1].assign(time="5", yi=-20.0, vi=10.0)
    d = pd.concat([d, extra], ignore_index=True)
    with pytest.warns(RuntimeWarning, match="time point '5' has a single study"):
        res = fit_timecourse(d["study"], d["time"], d["yi"], d["vi"], struct="CS", rho=0.97)
    row = res.estimates.set_index("timepoint").loc["5"]
    assert row["k"] == 1
    assert np.isfinite(row["estimate"]) and np.isfinite(row["se"]) and row["se"] > 0
    assert res.converged


def test_missing_rows_dropped_with_warning() -> None:
    d = _ishak()
    d_na = pd.concat(
        [d, pd.DataFrame({"study": ["X"], "time": ["2"], "yi": [np.nan], "vi": [1.0]})]
    )
    with pytest.warns(RuntimeWarning, match="1 row"):
        res = fit_timecourse(d_na["study"], d_na["time"], d_na["yi"], d_na["vi"], "CS", rho=0.97)
    ref = _fit("ishak2007", "ar", 0.97, "CS", "REML")
    assert res.k == ref.k
    np.testing.assert_allclose(res.beta, ref.beta, rtol=1e-10)


def test_non_convergence_is_reported() -> None:
    d = _ishak()
    with pytest.warns(RuntimeWarning, match="did not converge"):
        res = fit_timecourse(d["study"], d["time"], d["yi"], d["vi"], "UN", rho=0.97, maxiter=1)
    assert not res.converged
    assert any("did not converge" in w for w in res.warnings)
    assert np.all(np.isfinite(res.estimates[["estimate", "se"]].to_numpy()))
    assert "did not converge" in res.summary() and "NOTE" in res.summary()


def test_input_errors() -> None:
    d = _ishak()
    with pytest.raises(TimecourseMetaError, match="share a"):
        fit_timecourse(
            list(d["study"]) + [d["study"][0]],
            list(d["time"]) + [d["time"][0]],
            list(d["yi"]) + [0.0],
            list(d["vi"]) + [1.0],
        )
    with pytest.raises(ValueError, match="struct"):
        fit_timecourse(d["study"], d["time"], d["yi"], d["vi"], struct="TOEP")
    with pytest.raises(ValueError, match="method"):
        fit_timecourse(d["study"], d["time"], d["yi"], d["vi"], method="DL")
    with pytest.raises(TimecourseMetaError, match="equal length"):
        fit_timecourse(d["study"], d["time"][:-1], d["yi"], d["vi"])
    with pytest.raises(TimecourseMetaError, match="not in timepoint_order"):
        fit_timecourse(d["study"], d["time"], d["yi"], d["vi"], timepoint_order=["1", "2"])


def test_fit_time_100_studies_by_5_timepoints() -> None:
    mu = np.linspace(-0.6, -0.1, 5)
    study, tp, y, v = _simulate(100, mu, np.full(5, 0.05), 0.6, 0.5, seed=11)
    start = time.perf_counter()
    for struct in ("HAR", "UN"):
        res = fit_timecourse(study, tp, y, v, struct=struct)
        assert res.converged
    # measured about 0.2 s (HAR) and 0.7 s (UN) on the 2-core dev machine
    assert time.perf_counter() - start < 15


# ---------------------------------------------------------------------------------------------
# live cross-check against R (skipped without Rscript + metafor)

LIVE_R = r"""
suppressPackageStartupMessages({library(metafor); library(jsonlite)})
a <- commandArgs(trailingOnly = TRUE)
d <- read.csv(a[1], stringsAsFactors = FALSE)
order <- strsplit(a[2], ",")[[1]]
d$tf <- factor(d$time, levels = order)
V <- vcalc(d$vi, cluster = d$study, time1 = match(d$time, order), phi = 0.5)
out <- list()
for (st in strsplit(a[3], ",")[[1]]) {
  r <- rma.mv(yi, V, mods = ~ tf - 1, random = ~ tf | study, struct = st, data = d)
  out[[st]] <- list(estimate = as.vector(r$beta), se = r$se, tau2 = r$tau2,
                    logLik = as.numeric(logLik(r)))
}
write_json(out, a[4], digits = I(15), auto_unbox = TRUE)
"""


def _run_r(tmp_path: Path, d: pd.DataFrame, order: list[str], structs: list[str]) -> dict:
    csv, script, out = tmp_path / "d.csv", tmp_path / "fit.R", tmp_path / "out.json"
    d.to_csv(csv, index=False)
    script.write_text(LIVE_R)
    subprocess.run(
        [
            shutil.which("Rscript"),
            "--vanilla",
            str(script),
            str(csv),
            ",".join(order),
            ",".join(structs),
            str(out),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return json.loads(out.read_text())


@pytest.mark.skipif(not rscript_with_metafor(), reason="Rscript with metafor not available")
def test_live_r_edge_cases(tmp_path: Path) -> None:
    """Fresh data through R: a time point listed in the order but absent ("1h"), one reported
    by a single study ("28d"), string labels. 40 studies keep R's dense fit to a few seconds."""
    labels = np.array(["4h", "24h", "3d", "7d", "14d"])
    mu = np.array([-0.6, -0.55, -0.4, -0.3, -0.15])
    study, tp, y, v = _simulate(40, mu, np.array([0.03, 0.04, 0.05, 0.05, 0.06]), 0.6, 0.5, 3)
    d = pd.DataFrame({"study": [f"S{s:03d}" for s in study], "time": labels[tp], "yi": y, "vi": v})
    order = ["1h", *labels.tolist(), "28d"]
    d = pd.concat(
        [d, pd.DataFrame({"study": ["S000"], "time": ["28d"], "yi": [-0.1], "vi": [0.01]})],
        ignore_index=True,
    )
    structs = ["CS", "HAR"]
    ref = _run_r(tmp_path, d, order, structs)
    for st in structs:
        with pytest.warns(RuntimeWarning) as rec:
            res = fit_timecourse(
                d["study"], d["time"], d["yi"], d["vi"], st, "ar", 0.5, timepoint_order=order
            )
        messages = " ".join(str(w.message) for w in rec)
        assert "['1h'] have no data" in messages and "'28d' has a single study" in messages
        assert res.timepoints == order[1:]
        assert abs(res.loglik - ref[st]["logLik"]) < LL_ATOL, st
        # under HAR the single-study level's own tau2 sits on a flat ridge of the likelihood
        # (same logLik, different tau2/estimate between optimisers): compare the other levels
        ok = slice(None) if st == "CS" else slice(0, len(labels))
        fails: list[str] = []
        compare(f"{st}.estimate", res.beta[ok], ref[st]["estimate"][ok], RTOL, False, fails)
        se = res.estimates["se"].to_numpy()
        compare(f"{st}.se", se[ok], ref[st]["se"][ok], RTOL, False, fails)
        assert not fails, "\n".join(fails)
        # the ridge level still agrees to within a fraction of its standard error
        assert abs(res.beta[-1] - ref[st]["estimate"][-1]) < 0.5 * se[-1]


def test_row_order_does_not_matter_and_numeric_times_sort_numerically() -> None:
    mu = np.array([-0.6, -0.45, -0.3, -0.2])
    study, tp, y, v = _simulate(30, mu, np.full(4, 0.05), 0.6, 0.5, seed=5)
    hours = np.array([168, 4, 24, 72])[tp]  # unsorted labels: default order must be numeric
    res = fit_timecourse(study, hours, y, v, struct="HCS")
    assert res.timepoints == [4, 24, 72, 168]
    perm = np.random.default_rng(0).permutation(y.size)
    res_p = fit_timecourse(study[perm], hours[perm], y[perm], v[perm], struct="HCS")
    np.testing.assert_allclose(res_p.beta, res.beta, rtol=1e-7)
    np.testing.assert_allclose(res_p.tau2, res.tau2, rtol=1e-5)
    assert res_p.loglik == pytest.approx(res.loglik, abs=1e-9)
    # same input, same output (deterministic)
    again = fit_timecourse(study, hours, y, v, struct="HCS")
    assert again.estimates.equals(res.estimates) and again.loglik == res.loglik


def test_contrast_forms_agree_and_bad_contrasts_raise() -> None:
    res = _fit("sim_labels", "ar", 0.5, "HCS", "REML")
    by_map = res.contrast({"7d": 1, "24h": -1})
    by_vec = res.contrast([0, -1, 0, 1])
    assert by_map["contrast"].iloc[0] == by_vec["contrast"].iloc[0] == "7d - 24h"
    np.testing.assert_allclose(by_map[["estimate", "se"]], by_vec[["estimate", "se"]], rtol=0)
    # hand check: var(b4 - b2) = V44 + V22 - 2 V24
    V = res.vcov
    assert by_vec["se"].iloc[0] == pytest.approx(np.sqrt(V[3, 3] + V[1, 1] - 2 * V[1, 3]))
    with pytest.raises(TimecourseMetaError, match="unknown time point"):
        res.contrast({"9d": 1})
    with pytest.raises(TimecourseMetaError, match="columns"):
        res.contrast([1, -1])
    with pytest.raises(TimecourseMetaError, match="not all zero"):
        res.contrast([0, 0, 0, 0])


def test_boundary_rho_is_flagged() -> None:
    # metafor also ends at rho -> -1 for this fit (golden rho = -0.999999999)
    res = _fit("sim_labels", "ar", 0.5, "HAR", "REML")
    assert any("boundary (|rho| ~ 1)" in w for w in res.warnings)


def test_un_pairs_never_together_fixed_to_zero() -> None:
    # sim_nopair: "4h" and "7d" never occur in the same study; metafor fixes that correlation
    # to 0 and counts 4 means + 4 tau2 + 5 correlations = 13 parameters (golden "parms")
    res = _fit("sim_nopair", "cs", 0.5, "UN", "REML")
    assert any("never occur in the same study" in w for w in res.warnings)
    assert res.rho[3, 0] == 0.0 and res.G[3, 0] == 0.0
    assert res.n_params == 13
