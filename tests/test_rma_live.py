"""Live cross-check against R metafor on random data (skipped when Rscript/metafor is missing).

Five data sets of Hedges' g from simulated two-arm trials (fixed numpy seeds, k in {3, 7, 20})
are written to a temporary CSV as hexadecimal floats (bit-exact round trip into R), fitted by
metafor with REML/DL/PM x z/knha, and compared with the engine at the golden tolerances
(rtol 1e-6; tau2 Q-profile CI rtol 1e-4; atol 1e-8 where metafor gives 0 or a tau2-like value
below 1e-10). Each fit is run with metafor's default control ("default") and converged
tightly ("tight", threshold/tol = 1e-12), as in the golden fixture.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from timecourse_meta import fit_random_effects

# (seed, k): k = 3 twice because very small k is where estimators and CIs are fragile.
DATASETS = [(101, 3), (102, 7), (103, 20), (104, 3), (105, 20)]
METHODS = ["REML", "DL", "PM"]
TESTS = ["z", "knha"]
RTOL = 1e-6
RTOL_TAU2_CI = 1e-4

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
    ctl <- if (vv == "tight") list(threshold = 1e-12, tol = 1e-12, maxiter = 1000) else list()
    cictl <- if (vv == "tight") list(tol = 1e-12) else list()
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
    script.write_text(R_SCRIPT, encoding="utf-8")
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


def _as_result(ref: dict[str, Any]) -> SimpleNamespace:
    """metafor output dressed as an engine result (to measure default vs converged)."""
    ns = SimpleNamespace(k=ref["k"], df=ref["ddf"])
    for attr, (key, _) in FIELDS.items():
        setattr(ns, attr, ref[key])
    ns.tau2_ci_low, ns.tau2_ci_high = ref["tau2.ci.lb"], ref["tau2.ci.ub"]
    return ns


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
    """Engine vs metafor converged to threshold/tol 1e-12.

    Where metafor's own default misses the converged value beyond tolerance, an engine that
    follows metafor's defaults must miss it too: xfail, naming the fields, provided every field
    the engine misses is one where metafor's default misses too. Any other mismatch fails.
    """
    ref = metafor_results[f"s{seed}k{k}/{method}/{test}/tight"]
    res = fit_random_effects(*simulate(seed, k), method=method, test=test, level=0.95)
    failures = _mismatches(res, ref, metafor_compare)
    if not failures:
        return
    default = metafor_results[f"s{seed}k{k}/{method}/{test}/default"]
    gap = _mismatches(_as_result(default), ref, metafor_compare)
    gap_fields = {g.split(":")[0] for g in gap}
    if gap and {f.split(":")[0] for f in failures} <= gap_fields:
        fields = ", ".join(sorted(gap_fields))
        pytest.xfail(
            f"metafor's default fit misses its converged value beyond tolerance in: {fields}; "
            "the engine follows metafor's default stopping rules"
        )
    pytest.fail(f"s{seed}k{k}/{method}/{test}/tight\n  " + "\n  ".join(failures))
