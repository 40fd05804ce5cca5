"""Live cross-check of the workflow's time-response fit on the shipped data against R metafor.

Skipped when Rscript/metafor is missing. The shipped score data (every reported time) include a
three-arm trial (Daly2018) whose comparisons share a control: metafor builds V with
vcalc(vi, cluster = study, time1 = logt, time2 = logt, grp1 = comparison, grp2 = control,
w1 = n_treatment, w2 = n_control_full, phi) and fits rma.mv(yi, V, mods = X,
random = ~ logt | comparison, struct = "CAR"). The same design X (our ns basis, itself checked
against splines::ns in test_time_response.py) is passed to R. Tolerance 1e-5 relative (flat
REML surface, README_time_response.md), and our logLik >= metafor's - 1e-8.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
from pipeline_helpers import shipped_config

from timecourse_meta.effects.comparisons import compute_effects
from timecourse_meta.pipeline.ingest import precomputed_effects, read_sheets
from timecourse_meta.pipeline.time_response_spec import parse_time_response_config
from timecourse_meta.pipeline.time_response_tables import (
    fit_spec,
    time_response_data,
)
from timecourse_meta.pipeline.windows import parse_windows, select_all_times

ROOT = Path(__file__).resolve().parents[1]
CONFIG = shipped_config("ketamine")

R_SCRIPT = r"""
suppressMessages(library(metafor))
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1], stringsAsFactors = FALSE)
phi <- as.numeric(args[3])
V <- vcalc(vi, cluster = study, time1 = logt, time2 = logt, grp1 = arm, grp2 = control,
           w1 = n_arm, w2 = n_control, phi = phi, data = d)
X <- as.matrix(d[, grep("^x", names(d))])
fit <- rma.mv(yi, V, mods = X, intercept = FALSE, random = ~ logt | unit, struct = "CAR",
              data = d, method = "REML", control = list(rel.tol = 1e-10))
out <- list(b = as.numeric(fit$beta), se = as.numeric(fit$se), tau2 = fit$tau2,
            rho = fit$rho, ll = as.numeric(logLik(fit)), V = as.matrix(V))
writeLines(jsonlite::toJSON(out, digits = NA, auto_unbox = TRUE), args[2])
"""


def _data() -> pd.DataFrame:
    rows = read_sheets([ROOT / s for s in CONFIG["studies"]], root=ROOT)
    kept, _ = select_all_times(
        rows, parse_windows(CONFIG["windows"]), CONFIG["include"], CONFIG["exclude_studies"]
    )
    eff, _ = compute_effects(
        kept[kept["sheet_format"] == "extraction"], crossover_r=CONFIG["crossover_r"]
    )
    eff = pd.concat([eff, precomputed_effects(kept, measure_default=CONFIG["precomputed_measure"])])
    return time_response_data(eff, CONFIG["primary_outcome"], CONFIG["primary_measure"])


def test_shipped_fit_matches_metafor(require_metafor, tmp_path: Path) -> None:
    spec = parse_time_response_config(CONFIG["time_response"], CONFIG["level"])
    data = _data()
    tr = fit_spec(data, spec)
    X = tr.basis.design(data["time_hours"])
    frame = pd.DataFrame({
        "study": data["study_id"], "unit": data["comparison_id"], "arm": data["comparison_id"],
        "control": data["_control"], "n_arm": data["n_treatment"],
        "n_control": data["_n_control"], "logt": np.log(data["time_hours"]), "yi": data["yi"],
        "vi": data["vi"],
    })  # fmt: skip
    for j in range(X.shape[1]):
        frame[f"x{j}"] = X[:, j]
    csv, out, script = tmp_path / "d.csv", tmp_path / "out.json", tmp_path / "fit.R"
    frame.to_csv(csv, index=False, float_format="%.17g")
    script.write_text(R_SCRIPT)
    proc = subprocess.run(
        [shutil.which("Rscript") or "Rscript", "--vanilla", str(script), str(csv), str(out),
         repr(spec.phi)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    r = json.loads(out.read_text())
    # within-study V: our vcalc formula (M minus the CAR part) equals metafor's vcalc
    V_r = np.asarray(r["V"], dtype=float)
    G_part = tr.fit.M - V_r  # = tau2 rho^|dt| within a comparison, 0 between comparisons
    assert np.all(np.abs(np.diag(G_part) - tr.fit.tau2) < 1e-10)
    same_unit = frame["unit"].to_numpy()[:, None] == frame["unit"].to_numpy()[None, :]
    assert np.all(np.abs(G_part[~same_unit]) < 1e-12)
    np.testing.assert_allclose(tr.fit.beta, r["b"], rtol=1e-5)
    np.testing.assert_allclose(tr.fit.se, r["se"], rtol=1e-5)
    np.testing.assert_allclose(tr.fit.tau2, r["tau2"], rtol=1e-5)
    np.testing.assert_allclose(tr.fit.rho, r["rho"], rtol=1e-5)
    assert tr.fit.loglik >= r["ll"] - 1e-8
    assert abs(tr.fit.loglik - r["ll"]) < 1e-6
