"""Workflow benchmark: the whole Snakemake run on the shipped data, and a rerun after one trial.

    /opt/venv/bin/python benchmarks/bench_workflow.py [--cores 2] [--keep]

The repository's files (tracked and untracked, minus git-ignored ones such as results/,
data/processed/, logs/ and .snakemake/) are copied to a temporary directory and timed there:

1. ``snakemake --cores N --configfile config/ketamine.yaml`` (the shipped analysis; every run
   below passes it too) from an empty results/ (the full workflow);
2. ``snakemake --cores N -n`` with everything up to date (Snakemake's own overhead: parsing,
   config validation and building the DAG) and the real no-op run;
3. adding one trial: the rows of one trial (``--trial``, default the sheet's first study) are
   removed from the copied data/raw/ketamine_trials.csv and the workflow is brought up to date
   (timed too); then the shipped sheet is restored byte for byte, i.e. exactly that trial is
   added, and a dry run (jobs to redo) and the rerun are timed. Only shipped, sourced rows are
   used; nothing is made up.

The package itself is the installed one (editable install of src/). Skips with a message when
there is no Snakefile yet.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from _common import machine_line

REPO = Path(__file__).resolve().parents[1]
SHEET = Path("data/raw/ketamine_trials.csv")


def repo_files() -> list[str]:
    """Tracked and untracked files that git does not ignore."""
    out = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=REPO, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return [f for f in out.stdout.splitlines() if (REPO / f).is_file()]


def copy_repo(dest: Path) -> None:
    for rel in repo_files():
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, target)


def snakemake(
    workdir: Path, cores: int, *extra: str, keep_going: bool = False
) -> tuple[float, str]:
    """Run snakemake in `workdir`; returns (seconds, output). Stops on failure unless
    `keep_going`, in which case failed rules are reported by :func:`n_jobs`."""
    exe = shutil.which("snakemake") or str(Path(sys.executable).with_name("snakemake"))
    cmd = [exe, "--cores", str(cores), *extra]
    if keep_going and "-n" not in extra:
        cmd.append("--keep-going")
    cmd += ["--configfile", "config/ketamine.yaml"]  # the shipped analysis (after the targets)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, check=False)
    dt = time.perf_counter() - t0
    log = proc.stdout + proc.stderr
    if proc.returncode != 0:
        failed = sorted(set(re.findall(r"Error in rule (\S+):", log)))
        print(f"$ {' '.join(cmd)} failed (exit {proc.returncode}); failed rules: {failed}")
        if not keep_going:
            print("\n".join(log.splitlines()[-30:]))
            raise SystemExit(1)
    return dt, log


def n_jobs(log: str) -> str:
    """Job count from Snakemake's output ('N of M steps', or the dry-run job table's total),
    with the number of failed jobs if any."""
    failed = len(re.findall(r"Error in rule \S+:", log))
    note = f" ({failed} failed)" if failed else ""
    done = re.findall(r"(\d+) of (\d+) steps", log)
    if done:
        return f"{done[-1][0]}/{done[-1][1]}{note}"
    total = re.search(r"^total\s+(\d+)", log, flags=re.M)
    if total:
        return total.group(1) + note
    return "0" if "Nothing to be done" in log else "?"


def drop_trial(workdir: Path, study: str | None) -> tuple[str, int]:
    """Remove one study's rows from the copied sheet; returns (study, rows removed)."""
    sheet = pd.read_csv(workdir / SHEET, dtype=str, keep_default_na=False)
    study = study or str(sheet["study_id"].iloc[0])
    keep = sheet["study_id"] != study
    if keep.all():
        raise SystemExit(f"study {study!r} not in {SHEET}")
    sheet[keep].to_csv(workdir / SHEET, index=False)
    return study, int((~keep).sum())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--trial", default=None, help="study_id to add (default: the first one)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary copy")
    ap.add_argument(
        "--keep-going", action="store_true",
        help="time the runs even if some jobs fail (failed jobs are counted in the table)",
    )  # fmt: skip
    args = ap.parse_args()
    if not (REPO / "workflow" / "Snakefile").exists():
        print("No Snakefile in the repository yet: workflow benchmark skipped.")
        return
    print(machine_line())
    tmp = Path(tempfile.mkdtemp(prefix="tcm_bench_wf_"))
    try:
        work = tmp / "repo"
        copy_repo(work)
        rows = []
        t, log = snakemake(work, args.cores, keep_going=args.keep_going)
        rows.append(("full run from empty results/", t, n_jobs(log)))
        t, log = snakemake(work, args.cores, "-n", keep_going=args.keep_going)
        rows.append(("dry run, all up to date (Snakemake overhead)", t, n_jobs(log)))
        t, log = snakemake(work, args.cores, keep_going=args.keep_going)
        rows.append(("no-op run, all up to date", t, n_jobs(log)))
        original = (work / SHEET).read_bytes()
        study, n_rows = drop_trial(work, args.trial)
        t, log = snakemake(work, args.cores, keep_going=args.keep_going)
        rows.append((f"rerun without {study} ({n_rows} rows)", t, n_jobs(log)))
        (work / SHEET).write_bytes(original)  # the shipped sheet again: one trial added
        t, log = snakemake(work, args.cores, "-n", keep_going=args.keep_going)
        rows.append((f"dry run after adding {study} back", t, n_jobs(log)))
        t, log = snakemake(work, args.cores, keep_going=args.keep_going)
        rows.append(("rerun after adding the trial", t, n_jobs(log)))
        print(f"\n{'step':<60} {'seconds':>8}  jobs (done/planned)")
        for name, sec, jobs in rows:
            print(f"{name:<60} {sec:>8.1f}  {jobs}")
    finally:
        if args.keep:
            print(f"temporary copy kept: {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
