"""Snakemake workflow-catalog conventions: layout, formatting, a conda env that installs us.

snakemake-workflows layout (workflow/Snakefile, config/README.md, .test/,
.snakemake-workflow-catalog.yml), `snakefmt --check` clean, and an environment file whose pip
section installs this package so that `--sdm conda` runs the same code as the venv.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_catalog_layout() -> None:
    for path in (
        "workflow/Snakefile",
        "config/README.md",
        "config/config.yaml",
        ".snakemake-workflow-catalog.yml",
        ".test/config/config.yaml",
    ):
        assert (ROOT / path).is_file(), path
    assert not (ROOT / "Snakefile").exists(), "the Snakefile lives in workflow/"
    catalog = yaml.safe_load((ROOT / ".snakemake-workflow-catalog.yml").read_text())
    assert catalog["usage"]["software-stack-deployment"]["conda"] is True


def test_conda_env_installs_the_package() -> None:
    env = yaml.safe_load((ROOT / "workflow/envs/timecourse_meta.yaml").read_text())
    pip = [d for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert pip and "-e ../.." in pip[0]["pip"]
    # ../.. from workflow/envs/ is the project root (where pyproject.toml is)
    assert (ROOT / "workflow" / "envs" / ".." / ".." / "pyproject.toml").resolve().is_file()
    for smk in (ROOT / "workflow" / "rules").glob("*.smk"):
        text = smk.read_text()
        rules = text.count("\nrule ")
        for directive in ("conda:", "log:", "benchmark:"):
            assert text.count(f"    {directive}") >= rules, (
                f"{smk.name}: a rule without {directive}"
            )


@pytest.mark.skipif(shutil.which("snakefmt") is None, reason="snakefmt not installed")
def test_snakefmt_clean() -> None:
    out = subprocess.run(
        ["snakefmt", "--check", "workflow/"], cwd=ROOT, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-2000:]


@pytest.mark.slow
def test_dot_test_config_runs_end_to_end(tmp_path: Path) -> None:
    """`snakemake --directory .test` (the catalog's CI convention) runs the tiny config."""
    project = tmp_path / "project"
    for name in ("config", "workflow", ".test"):
        shutil.copytree(ROOT / name, project / name)
    out = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "2", "--directory", ".test"],
        cwd=project,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    pooled = (project / ".test/results/tables/pooled_by_timepoint.csv").read_text()
    assert "score,SMD,24h," in pooled
    claims = (project / ".test/results/tables/claims.csv").read_text()
    assert claims.splitlines()[0].startswith("id,claim,")
    assert "consistent_24h" in claims and "duration_7d" in claims
