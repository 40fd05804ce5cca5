"""Start-up cost of each workflow job: the imports of every script in workflow/scripts/.

    python benchmarks/bench_job_imports.py [--repeats 3] [--scripts-from DIR]

Every Snakemake ``script:`` job is a new Python process that imports Snakemake's script module
and then the script's own top-level imports before it does any work; with 25 jobs that start-up
is a large share of a small run. For each script this runs, in a fresh interpreter, the
script's top-level import statements (read with ``ast``, nothing else of the script) after
``import snakemake.script`` and prints the best wall time of ``--repeats`` runs, beside the
floor (``import snakemake.script, pandas``, which every job pays) and the share above it.
The package is whatever ``timecourse_meta`` the interpreter finds (set ``PYTHONPATH`` to compare
two checkouts in one run of this script each).
"""

from __future__ import annotations

import argparse
import ast
import subprocess
import sys
import time
from pathlib import Path

from _common import machine_line

REPO = Path(__file__).resolve().parents[1]


def imports_of(script: Path) -> str:
    """The script's top-level import statements as one line of Python."""
    tree = ast.parse(script.read_text(encoding="utf-8"))
    return "; ".join(
        ast.unparse(n) for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)
    )


def best(code: str, repeats: int) -> float:
    """Best wall time in seconds of ``python -c code`` over ``repeats`` fresh processes."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--scripts-from", type=Path, default=REPO / "workflow" / "scripts")
    args = ap.parse_args()
    print(machine_line())
    bare = best("pass", args.repeats)
    floor = best("import snakemake.script, pandas", args.repeats)
    print(f"python start-up {bare:.2f} s; floor (snakemake.script + pandas) {floor:.2f} s\n")
    print(f"{'script':24s} {'imports [s]':>11s} {'above floor [s]':>15s}")
    total = 0.0
    scripts = sorted(args.scripts_from.glob("*.py"))
    for script in scripts:
        t = best(f"import snakemake.script; {imports_of(script)}", args.repeats)
        total += t
        print(f"{script.stem:24s} {t:11.2f} {t - floor:15.2f}")
    each = total / len(scripts)
    print(f"\n{len(scripts)} scripts: {total:.1f} s of imports in all, {each:.2f} s each")


if __name__ == "__main__":
    main()
