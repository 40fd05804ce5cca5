"""Shared helpers for the benchmark scripts: machine description and R/metafor detection."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import shutil
import subprocess
from pathlib import Path


def cpu_model() -> str:
    """CPU model name from /proc/cpuinfo (Linux), else platform.processor()."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_line() -> str:
    """One line: date (UTC), nproc, CPU model, 1-minute load average."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"{now}; nproc {os.cpu_count()}; CPU {cpu_model()}; load average (1 min) {load:.2f}"


def metafor_version() -> str | None:
    """metafor's version if Rscript and metafor are available, else None."""
    exe = shutil.which("Rscript")
    if exe is None:
        return None
    proc = subprocess.run(
        [exe, "--vanilla", "-e", 'cat(as.character(packageVersion("metafor")))'],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    return proc.stdout.strip() if proc.returncode == 0 and proc.stdout.strip() else None


def run_r(script: str, *args: str) -> dict[str, float]:
    """Run an R script (text) with Rscript; parse lines 'name value' from its stdout."""
    exe = shutil.which("Rscript")
    assert exe is not None
    proc = subprocess.run(
        [exe, "--vanilla", "-e", script, *args],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"Rscript failed:\n{proc.stderr}")
    out: dict[str, float] = {}
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                out[parts[0]] = float(parts[1])
            except ValueError:
                pass
    return out
