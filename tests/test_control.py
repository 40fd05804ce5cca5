"""metafor's ``control`` in the engine: :class:`timecourse_meta.models.control.Control`.

Checked here: the defaults are metafor 3.8.1's and reproduce control=None bit for bit; the
iteration limits fail as documented (ConvergenceError / fallback warning / NaN CI bound with a
note); ``tau2_max`` bounds the PM and Q-profile searches as in metafor; ``compute_tau2_ci``.
The agreement of tight controls with converged metafor fits is in test_rma_golden.py,
test_rma_live.py and test_batch.py. Live R checks skip without Rscript/metafor.
Data: bcg_RR (metafor escalc on dat.bcg) from fixtures/metafor/rma_golden.json.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import textwrap
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from timecourse_meta import fit_meta_regression, fit_random_effects
from timecourse_meta.diagnostics.influence import cumulative, leave_one_out
from timecourse_meta.models.batch import fit_random_effects_batch
from timecourse_meta.models.control import Control
from timecourse_meta.models.rma import TAU2_CI_SKIPPED
from timecourse_meta.models.tau2 import BRACKET_NOTE, ConvergenceError, tau2_max_default

GOLDEN = json.loads(
    (Path(__file__).parent / "fixtures" / "metafor" / "rma_golden.json").read_text("utf-8")
)
BCG = GOLDEN["datasets"]["bcg_RR"]
Y = np.asarray(BCG["yi"], dtype=float)
V = np.asarray(BCG["vi"], dtype=float)
ABLAT = np.column_stack([np.ones(Y.size), np.asarray(BCG["ablat"], dtype=float)])
METHODS = ["FE", "DL", "HE", "HS", "SJ", "PM", "EB", "ML", "REML"]
EPS = float(np.finfo(float).eps)
RTOL = 1e-6
RTOL_TAU2_CI = 1e-4


def _same(a: Any, b: Any) -> bool:
    """Bit-for-bit equality of two results (NaN equals NaN; arrays elementwise)."""
    for f in fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, np.ndarray) and x.dtype == object:
            if x.tolist() != y.tolist():
                return False
        elif isinstance(x, np.ndarray | float):
            if not np.array_equal(np.asarray(x), np.asarray(y), equal_nan=True):
                return False
        elif x != y:
            return False
    return True


def test_defaults_are_metafors() -> None:
    # metafor 3.8.1 rma.uni: con <- list(threshold = 10^-5, tol = .Machine$double.eps^0.25,
    # maxiter = 100, tau2.max = max(100, 10 * mad(yi)^2), ...); confint.rma.uni:
    # con <- list(tol = .Machine$double.eps^0.25, maxiter = 1000, ...).
    c = Control()
    assert (c.threshold, c.tol, c.maxiter) == (10**-5, EPS**0.25, 100)
    assert (c.ci_tol, c.ci_maxiter, c.tau2_max) == (EPS**0.25, 1000, None)


@pytest.mark.parametrize("test", ["z", "knha"])
def test_default_control_reproduces_the_default_fit_bit_for_bit(test: str) -> None:
    """control=None, Control() and metafor's defaults spelled out give identical bits."""
    spelled = Control(
        threshold=1e-5,
        tol=EPS**0.25,
        maxiter=100,
        ci_tol=EPS**0.25,
        ci_maxiter=1000,
        tau2_max=max(100.0, 10.0 * (1.4826 * np.median(np.abs(Y - np.median(Y)))) ** 2),
    )
    assert spelled.tau2_max == tau2_max_default(Y)
    for method in METHODS:
        ref = fit_random_effects(Y, V, method=method, test=test)
        for ctl in (Control(), spelled):
            res = fit_random_effects(Y, V, method=method, test=test, control=ctl)
            assert _same(ref, res), (method, ctl)
    for method in ("REML", "ML", "PM", "DL", "FE"):
        ref_reg = fit_meta_regression(Y, V, ABLAT, method=method, test=test)
        res_reg = fit_meta_regression(Y, V, ABLAT, method=method, test=test, control=Control())
        assert _same(ref_reg, res_reg), method
    ref_b = fit_random_effects_batch(np.vstack([Y, Y[::-1]]), np.vstack([V, V[::-1]]), test=test)
    res_b = fit_random_effects_batch(
        np.vstack([Y, Y[::-1]]), np.vstack([V, V[::-1]]), test=test, control=Control()
    )
    assert _same(ref_b, res_b)


def test_fisher_scoring_maxiter_boundary_and_fallback() -> None:
    """Fisher scoring needs n iterations: maxiter = n fits, maxiter = n - 1 stops (metafor:
    ``if (iter > con$maxiter)`` -> "Fisher scoring algorithm did not converge"), and
    method=["REML", "DL"] then falls back to DL with a warning naming the failure."""
    n = fit_random_effects(Y, V, method="REML").iterations
    assert n >= 2
    ok = fit_random_effects(Y, V, method="REML", control=Control(maxiter=n))
    assert _same(ok, fit_random_effects(Y, V, method="REML"))
    strict = Control(maxiter=n - 1, bracket=False)  # metafor: stop, no bracketing
    with pytest.raises(ConvergenceError, match=f"did not converge in {n - 1} iterations"):
        fit_random_effects(Y, V, method="REML", control=strict)
    # default bracket=True: the last listed estimator is solved by bracketing instead
    br = fit_random_effects(Y, V, method="REML", control=Control(maxiter=n - 1))
    assert br.warnings[0] == BRACKET_NOTE.format(m="REML")
    assert br.tau2 == pytest.approx(ok.tau2, abs=Control().threshold)
    fb = fit_random_effects(Y, V, method=["REML", "DL"], control=Control(maxiter=n - 1))
    dl = fit_random_effects(Y, V, method="DL")
    assert fb.method == "DL" and fb.tau2 == dl.tau2 and fb.estimate == dl.estimate
    assert fb.warnings[0] == (
        f"REML failed (REML: Fisher scoring did not converge in {n - 1} iterations); falling back"
    )
    batch = fit_random_effects_batch(Y, V, method="REML", control=strict)
    assert not batch.converged[0] and np.isnan(batch.tau2[0])
    assert "did not converge in" in batch.warnings[0][0]


def test_paule_mandel_maxiter_raises() -> None:
    """PM's uniroot exhausting maxiter: ConvergenceError (metafor keeps the unconverged iterate
    with R's uniroot warning "_NOT_ converged"; the engine does not report it, see Control)."""
    with pytest.raises(ConvergenceError, match="did not converge in 2 iterations"):
        fit_random_effects(Y, V, method="PM", control=Control(maxiter=2))
    fb = fit_random_effects(Y, V, method=["PM", "DL"], control=Control(maxiter=2))
    assert fb.method == "DL" and "PM failed" in fb.warnings[0]


def test_ci_maxiter_gives_nan_bounds_with_a_note() -> None:
    res = fit_random_effects(Y, V, method="REML", control=Control(ci_maxiter=2))
    ref = fit_random_effects(Y, V, method="REML")
    assert np.isnan([res.tau2_ci_low, res.tau2_ci_high, res.I2_ci_low, res.H2_ci_high]).all()
    note = [w for w in res.warnings if w.startswith("tau^2 CI:")]
    assert len(note) == 1 and note[0].count("did not converge in 2 iterations") == 2
    assert res.tau2 == ref.tau2 and res.estimate == ref.estimate  # the fit is untouched
    b = fit_random_effects_batch(Y, V, method="REML", control=Control(ci_maxiter=2))
    assert np.isnan([b.tau2_ci_low[0], b.tau2_ci_high[0]]).all()
    assert b.warnings[0] == res.warnings


def test_tau2_max_bounds_the_searches() -> None:
    """PM fails when Q(tau2.max) > k - 1; a tau2.max below the Q-profile upper bound makes that
    bound the end of the search, flagged (metafor's confint reads the fit's control$tau2.max)."""
    default = fit_random_effects(Y, V, method="REML")
    assert default.tau2_ci_low < 1.0 < default.tau2_ci_high  # so tau2_max = 1 cuts the CI
    res = fit_random_effects(Y, V, method="REML", control=Control(tau2_max=1.0))
    assert res.tau2 == default.tau2  # Fisher scoring does not use tau2.max
    assert res.tau2_ci_high == 1.0
    assert "tau^2 CI: upper bound > 1 (end of the search interval)" in res.warnings
    pm = fit_random_effects(Y, V, method="PM")
    assert pm.tau2 > 0.2  # so tau2_max = 0.2 is below the PM root
    with pytest.raises(ConvergenceError, match="tau2.max too low"):
        fit_random_effects(Y, V, method="PM", control=Control(tau2_max=0.2))


def test_compute_tau2_ci_false_skips_only_the_ci() -> None:
    for method in ("REML", "PM", "DL"):
        full = fit_random_effects(Y, V, method=method, test="knha")
        fast = fit_random_effects(Y, V, method=method, test="knha", compute_tau2_ci=False)
        assert np.isnan(
            [fast.tau2_ci_low, fast.tau2_ci_high, fast.I2_ci_low, fast.H2_ci_high]
        ).all()
        assert fast.warnings == [*full.warnings, TAU2_CI_SKIPPED]
        for name in ("estimate", "se", "ci_low", "ci_high", "tau2", "tau2_se", "I2", "Q", "pi_low"):
            assert getattr(fast, name) == getattr(full, name), (method, name)
    fe = fit_random_effects(Y, V, method="FE", compute_tau2_ci=False)  # FE has no tau^2 CI
    assert TAU2_CI_SKIPPED not in fe.warnings


def test_diagnostic_refits_skip_the_ci_note() -> None:
    for table in (leave_one_out(Y, V), cumulative(Y, V)):
        assert table.attrs["warnings"] == [
            w for w in table.attrs["warnings"] if TAU2_CI_SKIPPED not in w and "tau^2 CI" not in w
        ]


@pytest.mark.parametrize(
    "kwargs",
    [{"threshold": 0.0}, {"tol": -1.0}, {"maxiter": 0}, {"ci_maxiter": 2.5},
     {"ci_tol": float("nan")}, {"tau2_max": 0.0}, {"maxiter": True}],
)  # fmt: skip
def test_invalid_control_is_rejected(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="Control"):
        Control(**kwargs)


def test_control_must_be_a_control() -> None:
    with pytest.raises(TypeError, match="Control"):
        fit_random_effects(Y, V, control={"threshold": 1e-12})  # type: ignore[arg-type]


# --- live: metafor behaves the same under these controls ---------------------------------------


@pytest.fixture(scope="module")
def metafor_control_runs(require_metafor: None) -> dict[str, str]:
    """Run metafor on bcg_RR with the controls tested above; key -> printed value."""
    n = fit_random_effects(Y, V, method="REML").iterations

    def hexes(x: np.ndarray) -> str:  # hexadecimal floats: exact doubles in R
        return ", ".join(f'"{float(t).hex()}"' for t in x)

    script = textwrap.dedent(
        f"""
        suppressMessages(library(metafor))
        yi <- as.numeric(c({hexes(Y)}))
        vi <- as.numeric(c({hexes(V)}))
        out <- function(key, x) cat(key, "\\t", x, "\\n", sep = "")
        num <- function(x) sprintf("%.17g", x)
        r <- try(rma(yi, vi, method = "REML", control = list(maxiter = {n - 1})), silent = TRUE)
        out("reml_short", if (inherits(r, "try-error")) "error" else "fitted")
        r <- rma(yi, vi, method = "REML", control = list(maxiter = {n}))
        out("reml_n_tau2", num(r$tau2))
        r <- rma(yi, vi, method = c("REML", "DL"), control = list(maxiter = {n - 1}))
        out("fallback_method", r$method)
        out("fallback_tau2", num(r$tau2))
        r <- try(rma(yi, vi, method = "PM", control = list(tau2.max = 0.2)), silent = TRUE)
        out("pm_low_max", if (inherits(r, "try-error")) "error" else "fitted")
        r <- rma(yi, vi, method = "PM", control = list(tau2.max = 5))
        out("pm_max5_tau2", num(r$tau2))
        r <- rma(yi, vi, method = "REML", control = list(tau2.max = 1))
        ci <- confint(r)
        out("ci_max1_lb", num(ci$random["tau^2", "ci.lb"]))
        out("ci_max1_ub", num(ci$random["tau^2", "ci.ub"]))
        out("ci_max1_ub_sign", ci$ub.sign)
        """
    )
    proc = subprocess.run(
        [shutil.which("Rscript") or "Rscript", "--vanilla", "-e", script],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return dict(line.split("\t", 1) for line in proc.stdout.splitlines() if "\t" in line)


def test_metafor_agrees_on_maxiter_and_fallback(metafor_control_runs: dict[str, str]) -> None:
    r = metafor_control_runs
    n = fit_random_effects(Y, V, method="REML").iterations
    assert r["reml_short"] == "error"  # engine: ConvergenceError (test above)
    ok = fit_random_effects(Y, V, method="REML", control=Control(maxiter=n))
    np.testing.assert_allclose(ok.tau2, float(r["reml_n_tau2"]), rtol=RTOL)
    fb = fit_random_effects(Y, V, method=["REML", "DL"], control=Control(maxiter=n - 1))
    assert r["fallback_method"] == fb.method == "DL"
    np.testing.assert_allclose(fb.tau2, float(r["fallback_tau2"]), rtol=RTOL)


def test_metafor_agrees_on_tau2_max(metafor_control_runs: dict[str, str]) -> None:
    r = metafor_control_runs
    assert r["pm_low_max"] == "error"  # engine: ConvergenceError "tau2.max too low"
    # the PM bracket [0, 5] instead of [0, 100] moves uniroot's default-tol answer by ~1e-4
    # relative, so rtol 1e-6 checks that the engine searches the same bracket as metafor
    pm = fit_random_effects(Y, V, method="PM", control=Control(tau2_max=5.0))
    np.testing.assert_allclose(pm.tau2, float(r["pm_max5_tau2"]), rtol=RTOL)
    res = fit_random_effects(Y, V, method="REML", control=Control(tau2_max=1.0))
    np.testing.assert_allclose(res.tau2_ci_low, float(r["ci_max1_lb"]), rtol=RTOL_TAU2_CI)
    assert res.tau2_ci_high == float(r["ci_max1_ub"]) == 1.0
    assert r["ci_max1_ub_sign"] == ">"


def test_bracket_must_be_a_bool() -> None:
    with pytest.raises(ValueError, match="Control.bracket must be True or False"):
        Control(bracket="yes")  # type: ignore[arg-type]
