"""Engine benchmarks: our random-effects fits against metafor on the same generated data.

    /opt/venv/bin/python benchmarks/bench_engine.py            # full run (several minutes)
    /opt/venv/bin/python benchmarks/bench_engine.py --quick    # 1 000 fits instead of 10 000

(a) m fits of k = 10 studies, REML + Knapp-Hartung: ours batched (fit_random_effects_batch),
    ours one by one (fit_random_effects in a loop), metafor as a loop of rma() and as a loop of
    rma() + confint() + predict() (ours always computes the Q-profile CI and the prediction
    interval, so the second loop is the like-for-like one).
(b) one fit at k = 2 000 (ours and metafor) and at k = 1 000 000 (ours only, in a fresh child
    process: wall time, tracemalloc peak during the fit and the process's peak RSS).
Data: SMD meta-analyses from timecourse_meta.simulation.coverage.simulate_smd (tau^2 = 0.1),
written to a
CSV with 17 significant digits so that R reads exactly the same numbers. Times are wall-clock
seconds, the best of --repeats runs where a case is repeated. Rscript/metafor missing: the
metafor columns are skipped with a message.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
from _common import machine_line, metafor_version, run_r

from timecourse_meta import fit_random_effects
from timecourse_meta.models.batch import fit_random_effects_batch
from timecourse_meta.simulation.coverage import simulate_smd

METHOD, TEST, TAU2, SEED = "REML", "knha", 0.1, 12345

R_LOOP = r"""
suppressMessages(library(metafor))
a <- commandArgs(TRUE)
d <- read.csv(a[1])
s <- split(d[, c("yi", "vi")], d$g)
fit <- function(x) tryCatch(rma(x$yi, x$vi, method = "REML", test = "knha"),
                            error = function(e) NULL)
t_rma <- system.time(fits <- lapply(s, fit))[["elapsed"]]
t_full <- system.time(for (x in s) {
  r <- fit(x)
  if (!is.null(r)) { suppressWarnings(try(confint(r), silent = TRUE)); predict(r) }
})[["elapsed"]]
b <- vapply(fits, function(r) if (is.null(r)) NA_real_ else r$b[1], 0)
t2 <- vapply(fits, function(r) if (is.null(r)) NA_real_ else r$tau2, 0)
write.csv(data.frame(g = as.integer(names(s)), b = b, tau2 = t2), a[2], row.names = FALSE)
cat("t_rma", t_rma, "\n"); cat("t_full", t_full, "\n"); cat("n_failed", sum(is.na(b)), "\n")
"""

R_SINGLE = r"""
suppressMessages(library(metafor))
a <- commandArgs(TRUE)
d <- read.csv(a[1]); reps <- as.integer(a[2])
best_rma <- Inf; best_full <- Inf
for (i in seq_len(reps)) {
  best_rma <- min(best_rma, system.time(r <- rma(d$yi, d$vi, method = "REML",
                                                 test = "knha"))[["elapsed"]])
  best_full <- min(best_full, system.time({
    r <- rma(d$yi, d$vi, method = "REML", test = "knha"); ci <- confint(r); p <- predict(r)
  })[["elapsed"]])
}
cat("t_rma", best_rma, "\n"); cat("t_full", best_full, "\n")
cat("b", sprintf("%.15g", r$b[1]), "\n"); cat("tau2", sprintf("%.15g", r$tau2), "\n")
cat("ci_lb", sprintf("%.15g", ci$random[1, 2]), "\n")
"""


def best_of(fn, repeats: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def data(m: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    return simulate_smd(k, TAU2, m, np.random.default_rng(SEED))


def write_long(yi: np.ndarray, vi: np.ndarray, path: Path) -> None:
    m, k = yi.shape
    frame = pd.DataFrame({"g": np.repeat(np.arange(m), k), "yi": yi.ravel(), "vi": vi.ravel()})
    frame.to_csv(path, index=False, float_format="%.17g")


def case_many(m: int, k: int, repeats: int, use_r: bool, tmp: Path) -> list[dict]:
    yi, vi = data(m, k)
    t_batch, res = best_of(lambda: fit_random_effects_batch(yi, vi, METHOD, TEST), repeats)
    t0 = time.perf_counter()
    one = [fit_random_effects(yi[i], vi[i], METHOD, TEST) for i in range(m)]
    t_loop = time.perf_counter() - t0
    diff_loop = max(abs(r.estimate - res.estimate[i]) for i, r in enumerate(one))
    rows = [
        {"case": f"(a) {m} fits, k={k}: ours batched", "ours_s": t_batch},
        {"case": f"(a) {m} fits, k={k}: ours one by one", "ours_s": t_loop},
    ]
    note = f"batched vs one-by-one: max |estimate diff| {diff_loop:.1e}"
    if use_r:
        csv, out = tmp / "many.csv", tmp / "many_out.csv"
        write_long(yi, vi, csv)
        r = run_r(R_LOOP, str(csv), str(out))
        ref = pd.read_csv(out).sort_values("g")
        ok = ref["b"].notna().to_numpy() & res.converged
        db = np.max(np.abs(ref["b"].to_numpy()[ok] - res.estimate[ok]))
        dt = np.max(np.abs(ref["tau2"].to_numpy()[ok] - res.tau2[ok]))
        note += (
            f"; vs metafor: max |estimate diff| {db:.1e}, max |tau2 diff| {dt:.1e}; "
            f"failed fits: metafor {int(r['n_failed'])}, ours {int((~res.converged).sum())}"
        )
        rows[0].update(metafor_s=r["t_full"], metafor_what="rma+confint+predict loop")
        rows[1].update(metafor_s=r["t_full"], metafor_what="rma+confint+predict loop")
        rows.append(
            {"case": f"(a) {m} fits, k={k}: ours batched vs metafor rma() only",
             "ours_s": t_batch, "metafor_s": r["t_rma"], "metafor_what": "rma() loop"}
        )  # fmt: skip
    print(note, flush=True)
    return rows


def case_single(k: int, repeats: int, use_r: bool, tmp: Path) -> list[dict]:
    yi, vi = data(1, k)
    t_one, r1 = best_of(lambda: fit_random_effects(yi[0], vi[0], METHOD, TEST), repeats)
    t_b, _ = best_of(lambda: fit_random_effects_batch(yi, vi, METHOD, TEST), repeats)
    rows = [
        {"case": f"(b) 1 fit, k={k}: fit_random_effects", "ours_s": t_one},
        {"case": f"(b) 1 fit, k={k}: batch engine (m=1)", "ours_s": t_b},
    ]
    if use_r:
        csv = tmp / "single.csv"
        write_long(yi, vi, csv)
        r = run_r(R_SINGLE, str(csv), str(repeats))
        for row in rows:
            row.update(metafor_s=r["t_full"], metafor_what="rma+confint+predict")
        print(
            f"k={k}: |estimate diff| {abs(r['b'] - r1.estimate):.1e}, |tau2 diff| "
            f"{abs(r['tau2'] - r1.tau2):.1e}, |tau2 CI low diff| "
            f"{abs(r['ci_lb'] - r1.tau2_ci_low):.1e} (ours vs metafor); "
            f"metafor rma() alone {r['t_rma']:.3f} s",
            flush=True,
        )
    return rows


def child_big(k: int, mode: str) -> None:
    """Runs in a fresh process: one fit at k, prints JSON (time or memory)."""
    yi, vi = data(1, k)
    y, v = yi[0].copy(), vi[0].copy()
    del yi, vi
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if mode == "memory":
        tracemalloc.start()
    t0 = time.perf_counter()
    fit = fit_random_effects if mode != "batch" else None
    if fit is None:
        fit_random_effects_batch(y[None], v[None], METHOD, TEST)
    else:
        fit(y, v, METHOD, TEST)
    dt = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1] / 2**20 if mode == "memory" else float("nan")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"time": dt, "peak_mib": peak, "rss_before": rss_before, "rss": rss}))


def case_big(k: int, repeats: int) -> list[dict]:
    def child(mode: str) -> dict:
        cmd = [sys.executable, __file__, "--child-big", str(k), "--child-mode", mode]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])

    rows = []
    for mode, label in (("time", "fit_random_effects"), ("batch", "batch engine (m=1)")):
        runs = [child(mode) for _ in range(repeats)]
        best = min(runs, key=lambda r: r["time"])
        rows.append(
            {"case": f"(b) 1 fit, k={k}: {label}", "ours_s": best["time"],
             "metafor_s": float("nan"), "metafor_what": "not run (k x k matrices)",
             "peak_rss_mib": max(r["rss"] for r in runs)}
        )  # fmt: skip
    mem = child("memory")
    print(
        f"k={k}: tracemalloc peak during fit_random_effects {mem['peak_mib']:.0f} MiB; "
        f"process peak RSS {mem['rss']:.0f} MiB (before the fit {mem['rss_before']:.0f} MiB, "
        "incl. the interpreter, numpy/scipy/pandas and the data)",
        flush=True,
    )
    rows[0]["tracemalloc_peak_mib"] = mem["peak_mib"]
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fits", type=int, default=10_000)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--mid-k", type=int, default=2_000)
    ap.add_argument("--big-k", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="1 000 fits, 1 repeat")
    ap.add_argument("--no-r", action="store_true", help="skip metafor")
    ap.add_argument("--child-big", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--child-mode", default="time", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_big:
        child_big(args.child_big, args.child_mode)
        return
    if args.quick:
        args.fits, args.repeats = 1_000, 1
    print(machine_line())
    mv = None if args.no_r else metafor_version()
    if mv is None and not args.no_r:
        print("Rscript with metafor not found: metafor timings skipped")
    print(f"numpy {np.__version__}; metafor {mv or 'n/a'}; {METHOD} + {TEST}\n", flush=True)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        rows = case_many(args.fits, args.k, args.repeats, mv is not None, tmp)
        rows += case_single(args.mid_k, args.repeats, mv is not None, tmp)
        rows += case_big(args.big_k, args.repeats)
    table = pd.DataFrame(rows)
    if "metafor_s" not in table:
        table["metafor_s"] = np.nan
    table["metafor/ours"] = table["metafor_s"] / table["ours_s"]
    cols = [c for c in ("case", "ours_s", "metafor_s", "metafor/ours", "metafor_what",
                        "peak_rss_mib", "tracemalloc_peak_mib") if c in table]  # fmt: skip
    print()
    with pd.option_context("display.width", 200, "display.max_colwidth", 60):
        print(table[cols].to_string(index=False, float_format=lambda x: f"{x:.4g}"))


if __name__ == "__main__":
    main()
