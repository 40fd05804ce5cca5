"""Shared pytest helpers: R availability, metafor-style numeric comparison, and the one full
run of the shipped ketamine workflow that the slow end-to-end tests share (`ketamine_run`)."""

from __future__ import annotations

import functools
import math
import os
import shutil
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

# One BLAS thread per test process, set before numpy loads OpenBLAS: pytest-xdist already runs
# a process per core, and OpenBLAS's own threads on these small matrices only add CPU time
# (100 replicates of the time-response coverage simulation: 21 s of CPU with them, 10 s
# without; Snakemake sets the same variable for its jobs from `threads`).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pytest
from pipeline_helpers import ROOT, copy_project, snakemake

NO_R_REASON = "Rscript with metafor not available: live cross-check skipped"

# Below this magnitude a golden value is treated as zero: relative tolerance is meaningless
# there (rtol * 0 == 0 demands bit equality), so an absolute tolerance is used instead.
TINY = 1e-10
ZERO_ATOL = 1e-8


@functools.lru_cache(maxsize=1)
def rscript_with_metafor() -> bool:
    """True if `Rscript` is on PATH and can load metafor (checked once per session)."""
    exe = shutil.which("Rscript")
    if exe is None:
        return False
    try:
        proc = subprocess.run(
            [exe, "--vanilla", "-e", "suppressMessages(library(metafor))"],
            capture_output=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


@pytest.fixture(scope="session")
def require_metafor() -> None:
    """Skip the requesting tests when R/metafor is missing."""
    if not rscript_with_metafor():
        pytest.skip(NO_R_REASON)


def golden_number(value: object) -> float | None:
    """Decode a JSON number from the metafor fixtures (null = NA, "Inf"/"-Inf" strings)."""
    if value is None:
        return None
    if isinstance(value, str):
        return float(value.replace("Inf", "inf"))
    return float(value)


def is_missing(value: object) -> bool:
    """True for None or an all-NaN value (how the engine may report a metafor NA)."""
    if value is None:
        return True
    arr = np.asarray(value, dtype=float)
    return bool(arr.size == 0 or np.all(np.isnan(arr)))


def compare(
    name: str,
    actual: object,
    expected: object,
    rtol: float,
    zero_atol: bool,
    failures: list[str],
) -> None:
    """Append a message to `failures` unless `actual` matches the metafor value `expected`.

    expected None (metafor NA) requires a missing actual (None/NaN). Exact zeros in `expected`,
    and tiny values (< 1e-10) when `zero_atol` is set, are compared with atol=1e-8 instead of
    rtol, because relative tolerance cannot be met at zero by a different floating-point path.
    """
    if isinstance(expected, Sequence) and not isinstance(expected, str):
        exp = np.array([_nan(golden_number(v)) for v in expected], dtype=float)
        if all(v is None for v in expected):
            if not is_missing(actual):
                failures.append(f"{name}: metafor NA, engine gave {actual!r}")
            return
    else:
        g = golden_number(expected)
        if g is None:
            if not is_missing(actual):
                failures.append(f"{name}: metafor NA, engine gave {actual!r}")
            return
        exp = np.array([g])
    if actual is None:
        failures.append(f"{name}: engine gave None, metafor {expected!r}")
        return
    act = np.atleast_1d(np.asarray(actual, dtype=float)).ravel()
    if act.shape != exp.shape:
        failures.append(f"{name}: shape {act.shape} vs metafor {exp.shape}")
        return
    tiny = (exp == 0) | ((np.abs(exp) < TINY) if zero_atol else np.zeros(exp.shape, bool))
    for mask, rt, at in ((~tiny, rtol, 0.0), (tiny, 0.0, ZERO_ATOL)):
        if not mask.any():
            continue
        try:
            np.testing.assert_allclose(act[mask], exp[mask], rtol=rt, atol=at)
        except AssertionError:
            a, e = act[mask], exp[mask]
            both = np.isfinite(a) & np.isfinite(e)
            diff = np.abs(a[both] - e[both])
            rel = np.max(diff / np.abs(e[both])) if rt and both.any() else math.nan
            absd = np.max(diff) if both.any() else math.nan
            failures.append(
                f"{name}: engine {_short(a)} vs metafor {_short(e)} "
                f"(max rel diff {rel:.2e}, max abs diff {absd:.2e}, rtol={rt:g}, atol={at:g})"
            )


def _nan(v: float | None) -> float:
    return math.nan if v is None else v


def _short(a: np.ndarray) -> str:
    return np.array2string(a, precision=10, threshold=6)


@pytest.fixture
def metafor_compare() -> Callable[..., None]:
    """The `compare` helper as a fixture, for test modules."""
    return compare


#: The shipped ketamine sheet; without it the shared run (and the tests using it) skip.
KETAMINE_SHEET = "data/raw/ketamine_trials.csv"


@pytest.fixture(scope="session")
def ketamine_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the project after one full run (default target) of the shipped ketamine
    analysis, made once per session and shared by every slow test that only reads its outputs
    (test_workflow, test_reruns, test_changes_workflow). Treat it as READ-ONLY: a test that
    changes files, reruns rules or writes a report works on `copy_run(ketamine_run, dest)`
    (tests/pipeline_helpers.py), which keeps modification times and Snakemake's records."""
    if not (ROOT / KETAMINE_SHEET).exists():
        pytest.skip(f"{KETAMINE_SHEET} not present yet")
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return _full_run(tmp_path_factory.mktemp("ketamine_run") / "project")
    # pytest-xdist: the workers share one run (the first to take the lock makes it) in the
    # directory all workers' temporary directories live in
    import fcntl  # POSIX; xdist runs are the CI's (Linux)

    shared = tmp_path_factory.getbasetemp().parent / "ketamine_run"
    shared.mkdir(exist_ok=True)
    with open(shared / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not (shared / "done").exists():
            _full_run(shared / "project")
            (shared / "done").write_text("ok\n")
    return shared / "project"


def _full_run(dest: Path) -> Path:
    path = copy_project(dest)
    proc = snakemake(path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return path
