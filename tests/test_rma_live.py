"""Live cross-check against R metafor on random data (skipped when Rscript/metafor is missing).

Five data sets of Hedges' g from simulated two-arm trials (fixed numpy seeds, k in {3, 7, 20})
are written to a temporary CSV as hexadecimal floats (bit-exact round trip into R), fitted by
metafor with REML/DL/PM x z/knha, and compared with the engine at the golden tolerances
(rtol 1e-6; tau2 Q-profile CI rtol 1e-4; atol 1e-8 where metafor gives 0 or a tau2-like value
below 1e-10). Each fit is run with metafor's default control ("default") and converged
tightly ("tight", threshold/tol = 1e-12), as in the golden fixture; the engine gets the same
control (None, or the Control built from the very values passed to R).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from timecourse_meta import fit_random_effects
from timecourse_meta.models.control import Control

# (seed, k): k = 3 twice because very small k is where estimators and CIs are fragile.
DATASETS = [(101, 3), (102, 7), (103, 20), (104, 3), (105, 20)]
METHODS = ["REML", "DL", "PM"]
TESTS = ["z", "knha"]
RTOL = 1e-6
RTOL_TAU2_CI = 1e-4
# The "tight" variant: rma(..., control = list(TIGHT_FIT)) and confint(res, control =
# list(TIGHT_CI)) in R; the engine gets the Control with the same values.
TIGHT_FIT = {"threshold": 1e-12, "tol": 1e-12, "maxiter": 1000}
TIGHT_CI = {"tol": 1e-12}
TIGHT = Control(**TIGHT_FIT, ci_tol=TIGHT_CI["tol"])

# engine attribute -> (key in the R output, tau2-like: tiny-value absolute tolerance)
FIELDS: dict[str, tuple[str, bool]] = {
    "estimate": ("b", False),
    "se": ("se", False),
    "stat": ("zval", False),
    "pval": ("pval", False),
    "ci_low": ("ci.lb", False),
    "ci_high": ("ci.ub", False),
    "tau2": ("tau2", True),
    "tau2_se": ("se.tau2", False),
    "I2": ("I2", True),
    "H2": ("H2", False),
    "Q": ("QE", True),
    "Q_p": ("QEp", False),
    "pi_low": ("pi.lb", False),
    "pi_high": ("pi.ub", False),
    "weights": ("weights", False),
}

R_SCRIPT = r"""
suppressPackageStartupMessages(library(metafor))
a <- commandArgs(trailingOnly = TRUE)
d <- read.csv(a[1], colClasses = "character")
d$yi <- as.numeric(d$yi_hex)  # hex floats: exact doubles
d$vi <- as.numeric(d$vi_hex)
f <- function(x) if (is.null(x) || length(x) == 0L) "NA" else
  paste(ifelse(is.na(x), "NA", sprintf("%.17g", x)), collapse = ";")
out <- character(0)
put <- function(id, key, x) out <<- c(out, paste(id, key, f(x), sep = "\t"))
for (ds in unique(d$ds)) for (m in c("REML", "DL", "PM")) for (tt in c("z", "knha"))
  for (vv in c("default", "tight")) {
    dd <- d[d$ds == ds, ]
    ctl <- if (vv == "tight") @TIGHT_FIT@ else list()
    cictl <- if (vv == "tight") @TIGHT_CI@ else list()
    id <- paste(ds, m, tt, vv, sep = "/")
    res <- suppressWarnings(rma(yi, vi, data = dd, method = m, test = tt, control = ctl))
    for (key in c("b", "se", "zval", "pval", "ci.lb", "ci.ub", "tau2", "se.tau2", "I2", "H2",
                  "QE", "QEp", "k")) put(id, key, as.numeric(res[[key]]))
    put(id, "ddf", if (tt == "z") NA_real_ else res$ddf)
    pr <- predict(res)
    put(id, "pi.lb", pr$pi.lb)
    put(id, "pi.ub", pr$pi.ub)
    put(id, "weights", weights(res))
    ci <- try(suppressWarnings(confint(res, control = cictl)), silent = TRUE)
    put(id, "tau2.ci.lb", if (inherits(ci, "try-error")) NA_real_ else ci$random["tau^2", "ci.lb"])
    put(id, "tau2.ci.ub", if (inherits(ci, "try-error")) NA_real_ else ci$random["tau^2", "ci.ub"])
  }
writeLines(out, a[2])
"""


def _r_list(values: dict[str, float | int]) -> str:
    """A Python dict as an R ``list(name = value, ...)`` (repr of a float is valid R)."""
    return "list(" + ", ".join(f"{k} = {v!r}" for k, v in values.items()) + ")"


def simulate(seed: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Hedges' g and its large-sample variance for k simulated parallel-group trials.

    Arms of 8-120 participants; true effects ~ N(0.5, 0.2^2); g ~ N(theta, v) with
    v = 1/n1 + 1/n2 + g^2 / (2 (n1 + n2)) (Hedges & Olkin 1985; metafor escalc "SMD").
    """
    rng = np.random.default_rng(seed)
    n1 = rng.integers(8, 121, size=k)
    n2 = rng.integers(8, 121, size=k)
    theta = rng.normal(0.5, 0.2, size=k)
    v0 = 1 / n1 + 1 / n2
    yi = rng.normal(theta, np.sqrt(v0))
    vi = v0 + yi**2 / (2 * (n1 + n2))
    return yi, vi


def _parse(text: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for line in text.splitlines():
        case_id, key, values = line.split("\t")
        vals = [None if v == "NA" else float(v) for v in values.split(";")]
        out.setdefault(case_id, {})[key] = vals if key == "weights" else vals[0]
    return out


@pytest.fixture(scope="module")
def metafor_results(
    require_metafor: None, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, dict[str, Any]]:
    """Run metafor once on all simulated data sets; results keyed 'ds/method/test/variant'.

    Requesting `require_metafor` skips every live test when Rscript/metafor is missing.
    """
    tmp = tmp_path_factory.mktemp("rma_live")
    rows = ["ds,yi_hex,vi_hex"]
    for seed, k in DATASETS:
        yi, vi = simulate(seed, k)
        rows += [f"s{seed}k{k},{y.hex()},{v.hex()}" for y, v in zip(yi, vi, strict=True)]
    csv = tmp / "data.csv"
    csv.write_text("\n".join(rows) + "\n", encoding="utf-8")
    script = tmp / "live.R"
    r_code = R_SCRIPT.replace("@TIGHT_FIT@", _r_list(TIGHT_FIT))
    script.write_text(r_code.replace("@TIGHT_CI@", _r_list(TIGHT_CI)), encoding="utf-8")
    out = tmp / "out.tsv"
    proc = subprocess.run(
        [shutil.which("Rscript") or "Rscript", "--vanilla", str(script), str(csv), str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, f"Rscript failed:\n{proc.stderr}"
    return _parse(Path(out).read_text(encoding="utf-8"))


CASES = [(seed, k, m, t) for seed, k in DATASETS for m in METHODS for t in TESTS]
CASE_IDS = [f"s{s}k{k}/{m}/{t}" for s, k, m, t in CASES]


def _mismatches(res: Any, ref: dict[str, Any], compare: Callable[..., None]) -> list[str]:
    failures: list[str] = []
    if res.k != ref["k"]:
        failures.append(f"k: engine {res.k} vs metafor {ref['k']}")
    if (res.df is None) != (ref["ddf"] is None) or (
        res.df is not None and float(res.df) != ref["ddf"]
    ):
        failures.append(f"df: engine {res.df!r} vs metafor {ref['ddf']!r}")
    for attr, (key, tau2_like) in FIELDS.items():
        compare(attr, getattr(res, attr), ref[key], RTOL, tau2_like, failures)
    for attr, key in (("tau2_ci_low", "tau2.ci.lb"), ("tau2_ci_high", "tau2.ci.ub")):
        compare(attr, getattr(res, attr), ref[key], RTOL_TAU2_CI, True, failures)
    return failures


@pytest.mark.parametrize(("seed", "k", "method", "test"), CASES, ids=CASE_IDS)
def test_live_matches_metafor(
    seed: int,
    k: int,
    method: str,
    test: str,
    metafor_results: dict[str, dict[str, Any]],
    metafor_compare,
) -> None:
    """Engine vs rma()/predict()/confint()/weights() with metafor's default control."""
    ref = metafor_results[f"s{seed}k{k}/{method}/{test}/default"]
    res = fit_random_effects(*simulate(seed, k), method=method, test=test, level=0.95)
    failures = _mismatches(res, ref, metafor_compare)
    if failures:
        pytest.fail(f"s{seed}k{k}/{method}/{test}\n  " + "\n  ".join(failures))


@pytest.mark.parametrize(("seed", "k", "method", "test"), CASES, ids=CASE_IDS)
def test_live_matches_converged_metafor(
    seed: int,
    k: int,
    method: str,
    test: str,
    metafor_results: dict[str, dict[str, Any]],
    metafor_compare,
) -> None:
    """Engine with the tight Control vs metafor converged to threshold/tol 1e-12."""
    ref = metafor_results[f"s{seed}k{k}/{method}/{test}/tight"]
    res = fit_random_effects(
        *simulate(seed, k), method=method, test=test, level=0.95, control=TIGHT
    )
    failures = _mismatches(res, ref, metafor_compare)
    if failures:
        pytest.fail(f"s{seed}k{k}/{method}/{test}/tight\n  " + "\n  ".join(failures))
