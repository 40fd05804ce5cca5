"""Large-data benchmark: a synthetic 100 000-study sheet through the whole workflow.

    python benchmarks/bench_large.py [--studies 100000] [--cores 2] [--keep]

A minimal (yi/vi) sheet of simulated studies — Hedges' g of two-arm trials from
``timecourse_meta.simulation.coverage.simulate_smd`` (tau^2 = 0.1, fixed seed) — at three
reported times (24, 72, 168 h), each row labelled as synthetic with the script and seed as its
source, is written to a temporary copy of the project with a neutral config (no claims file
entries, no published comparators). The workflow is run from an empty results/ and the script
prints the wall time, the peak resident memory of the largest job (GNU time's maximum RSS of
the process tree) and the per-rule times from Snakemake's `benchmark:` files when present.
Targets (project issue "One house, one direction"): <= 60 s and <= 2 GB on 2 cores.
Nothing here is a test: it prints what it measured in one run.
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

import numpy as np
import pandas as pd
from _common import machine_line

from timecourse_meta.simulation.coverage import simulate_smd

REPO = Path(__file__).resolve().parents[1]
SEED = 20261201
TIMES = (24.0, 72.0, 168.0)


def synthetic_sheet(n_studies: int, seed: int = SEED) -> pd.DataFrame:
    """One row per study x time: yi/vi simulated, the source naming this script and seed."""
    rng = np.random.default_rng(seed)
    frames = []
    for i, t in enumerate(TIMES):
        yi, vi = simulate_smd(n_studies, 0.1, 1, rng, mu=0.4 - 0.1 * i)
        frames.append(
            pd.DataFrame(
                {
                    "study_id": [f"S{j:06d}" for j in range(n_studies)],
                    "citation": f"synthetic study (benchmarks/bench_large.py, seed {seed})",
                    "time_hours": t,
                    "timepoint": "",
                    "yi": yi[0],
                    "vi": vi[0],
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


CONFIG = """studies: data/raw/synthetic.csv
published: data/raw/published_pooled.csv
claims_file: config/claims_none.yaml
windows:
  - {label: 24h, low: 18, high: 30, nominal: 24}
  - {label: 3d, low: 60, high: 84, nominal: 72}
  - {label: 7d, low: 144, high: 192, nominal: 168}
subgroups: {}
sensitivity: {crossover_r: [0.5], subsets: [], leave_one_out: false}
timecourse: {struct: AR, structures: [AR], contrasts: [[24h, 7d]]}
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--studies", type=int, default=100_000)
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--keep", action="store_true", help="keep the temporary project")
    args = ap.parse_args()
    print(machine_line())
    tmp = Path(tempfile.mkdtemp(prefix="bench_large_"))
    try:
        for name in ("config", "workflow"):
            shutil.copytree(REPO / name, tmp / name)
        (tmp / "data" / "raw").mkdir(parents=True)
        shutil.copy2(REPO / "data/raw/published_pooled.csv", tmp / "data/raw")
        (tmp / "config" / "claims_none.yaml").write_text("claims: []\n")
        (tmp / "config" / "bench.yaml").write_text(CONFIG)
        t0 = time.perf_counter()
        synthetic_sheet(args.studies).to_csv(tmp / "data/raw/synthetic.csv", index=False)
        print(f"sheet: {args.studies} studies x {len(TIMES)} times written in "
              f"{time.perf_counter() - t0:.1f} s")  # fmt: skip
        cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "snakemake", "--cores",
               str(args.cores), "--configfile", "config/bench.yaml", "-q"]  # fmt: skip
        t0 = time.perf_counter()
        out = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", out.stderr)
        status = "ok" if out.returncode == 0 else f"FAILED (exit {out.returncode})"
        print(f"workflow: {status}, wall {wall:.1f} s (target <= 60 s), peak RSS of the "
              f"largest job {int(rss.group(1)) / 1024:.0f} MiB (target <= 2048 MiB)"
              if rss else f"workflow: {status}, wall {wall:.1f} s")  # fmt: skip
        if out.returncode != 0:
            print(out.stderr[-3000:])
        for tsv in sorted((tmp / "logs" / "benchmarks").glob("*.tsv")):
            row = pd.read_csv(tsv, sep="\t").iloc[0]
            print(f"  {tsv.stem:32s} {row['s']:7.2f} s  max RSS {row['max_rss']:7.0f} MiB")
        return out.returncode
    finally:
        if args.keep:
            print(f"kept: {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
